import { type ParsedRequestOf, type ResultOf, isFleetError } from '@wallet-fleet/contracts';
import type { Logger } from '@wallet-fleet/service-kit';
import pLimit from 'p-limit';

/** What a pass needs from the outside: the webhooks service's deposit operations and the outboxes. */
export interface PassPorts {
  deposits: {
    stuck(q: ParsedRequestOf<'wallet.deposits.stuck'>): Promise<ResultOf<'wallet.deposits.stuck'>>;
    reconcile(q: ParsedRequestOf<'wallet.deposits.reconcile'>): Promise<ResultOf<'wallet.deposits.reconcile'>>;
    summary(): Promise<ResultOf<'wallet.deposits.summary'>>;
  };
  outboxes: ReadonlyArray<{
    schema: string;
    /** Rows older than the stale threshold and the age of the oldest, in seconds. */
    stale(): Promise<{ rows: number; oldestSeconds: number | null }>;
  }>;
}

type ReconcileResult = ResultOf<'wallet.deposits.reconcile'>;

export interface PassOptions {
  pendingAfterSeconds: number;
  maxAgeSeconds: number;
  concurrency: number;
  /** Open deposits looked at per pass at most. */
  maxPerPass: number;
  /** Recent credits and reversals re-checked per pass at most, after the open work (never in its stead). */
  maxRechecksPerPass: number;
}

export interface DepositTally {
  /** Open deposits looked at. */
  checked: number;
  /** Moved out of pending by this pass (the recoveries). */
  credited: number;
  failed: number;
  rejected: number;
  /** Credits reversed by this pass: their transaction left the chain. */
  reversed: number;
  /** Final token transfers of a token outside the allow-list: recorded, not credited. */
  unlisted: number;
  /** Still pending or confirming: not yet final or found, younger than the maximum age. */
  stillPending: number;
  /** Settled by someone else between the listing and the re-validation. */
  alreadySettled: number;
  /** Recent credits and reversals checked on chain again (after the open work, `maxRechecksPerPass` at most). */
  rechecked: number;
  /** Re-checked credits that stand (their transfer is still on chain, or a miss awaits its confirmation). */
  standing: number;
  /** Reversed transfers mined again and credited again (also counted in `credited`). */
  recredited: number;
  /** The re-validation itself failed (chain RPC or webhooks service down): counts by error code. */
  errors: Record<string, number>;
  /** More open deposits than `maxPerPass`, or re-checks than `maxRechecksPerPass`: the rest wait for the next pass. */
  truncated: boolean;
}

type DepositResult = 'credited' | 'failed' | 'rejected' | 'reversed' | 'unlisted' | 'pending' | 'settled' | 'standing' | 'error';

export interface PassReport {
  deposits: DepositTally | { error: string };
  /** Per service schema: rows its relay left behind (reported, never published from here). */
  outbox: Array<{ schema: string; staleRows: number; oldestSeconds: number | null; error?: string }>;
  drift:
    | {
        depositsPending: number;
        oldestPendingSeconds: number | null;
        creditedWithoutLedgerEntry: number;
        ledgerEntryWithoutCredit: number;
        ledgerAmountMismatch: number;
        reversedWithoutCompensation: number;
        /** The ledger per asset, each with its own drift counts. */
        assets: ResultOf<'wallet.deposits.summary'>['assets'];
      }
    | { error: string };
}

/** Whether the pass did its whole job: every step answered (single deposits may still have failed). */
export const passSucceeded = (r: PassReport) => !('error' in r.deposits) && !('error' in r.drift) && r.outbox.every((o) => !o.error);

const errorText = (e: unknown) => (isFleetError(e) ? e.code : e instanceof Error ? e.name : 'ERROR');

/**
 * One reconciliation pass: outbox rows left behind are counted per service (their own relays
 * publish them: only the owner's broker user may), then stuck deposits are re-validated with
 * bounded concurrency, then drift is read. A failing step is reported and the next one still runs. Stops
 * taking new deposits when `signal` aborts (the lock was lost); what is in flight finishes.
 * `onDeposit` sees each outcome (metrics, audit of a recovery happens in the webhooks service).
 */
export async function runPass(
  ports: PassPorts,
  o: PassOptions,
  signal: AbortSignal,
  logger: Logger,
  onDeposit: (result: DepositResult) => void = () => undefined,
): Promise<PassReport> {
  const outbox: PassReport['outbox'] = [];
  for (const ob of ports.outboxes) {
    if (signal.aborted) break;
    try {
      const stale = await ob.stale();
      if (stale.rows > 0) {
        logger.warn(
          { schema: ob.schema, staleRows: stale.rows, oldestSeconds: stale.oldestSeconds },
          "outbox rows left behind: the service's relay publishes them on its next poll; is it running?",
        );
      }
      outbox.push({ schema: ob.schema, staleRows: stale.rows, oldestSeconds: stale.oldestSeconds });
    } catch (e) {
      logger.warn({ err: e, schema: ob.schema }, 'reading an outbox failed');
      outbox.push({ schema: ob.schema, staleRows: 0, oldestSeconds: null, error: errorText(e) });
    }
  }

  let deposits: PassReport['deposits'];
  try {
    deposits = await reconcileDeposits(ports, o, signal, onDeposit);
  } catch (e) {
    logger.warn({ err: e }, 'listing stuck deposits failed');
    deposits = { error: errorText(e) };
  }

  let drift: PassReport['drift'];
  try {
    const s = await ports.deposits.summary();
    drift = {
      depositsPending: s.byStatus.pending,
      oldestPendingSeconds: s.oldestPendingAt ? Math.max(0, Math.round((Date.now() - Date.parse(s.oldestPendingAt)) / 1000)) : null,
      ...s.drift,
      assets: s.assets,
    };
    const bad = Object.entries(s.drift).filter(([, n]) => n > 0);
    if (bad.length) {
      const assets = s.assets.filter((a) => Object.values(a.drift).some((n) => n > 0)).map((a) => ({ chain: a.chain, asset: a.asset, drift: a.drift }));
      logger.error({ drift: s.drift, assets }, 'deposits and ledger disagree');
    }
  } catch (e) {
    logger.warn({ err: e }, 'reading deposit drift failed');
    drift = { error: errorText(e) };
  }
  return { deposits, outbox, drift };
}

async function reconcileDeposits(ports: PassPorts, o: PassOptions, signal: AbortSignal, onDeposit: (result: DepositResult) => void): Promise<DepositTally> {
  const t: DepositTally = {
    checked: 0,
    credited: 0,
    failed: 0,
    rejected: 0,
    reversed: 0,
    unlisted: 0,
    stillPending: 0,
    alreadySettled: 0,
    rechecked: 0,
    standing: 0,
    recredited: 0,
    errors: {},
    truncated: false,
  };
  const limit = pLimit(o.concurrency);
  const count = (result: DepositResult) => {
    if (result === 'credited') t.credited++;
    else if (result === 'failed') t.failed++;
    else if (result === 'rejected') t.rejected++;
    else if (result === 'reversed') t.reversed++;
    else if (result === 'unlisted') t.unlisted++;
    else if (result === 'pending') t.stillPending++;
    else if (result === 'standing') t.standing++;
    else t.alreadySettled++;
    onDeposit(result);
  };

  /** Pages through one kind of listed deposits, `budget` at most, each through `wallet.deposits.reconcile`. */
  async function work(kind: 'open' | 'credits', budget: number, seen: () => number, take: (d: { depositId: string }, r: ReconcileResult) => DepositResult) {
    let after: string | undefined;
    for (;;) {
      if (signal.aborted) return;
      const room = budget - seen();
      if (room <= 0) {
        // Reached only after a page that had a next one: more is listed than the budget.
        t.truncated ||= after !== undefined;
        return;
      }
      const page = await ports.deposits.stuck({ olderThanSeconds: o.pendingAfterSeconds, limit: Math.min(100, room), kind, ...(after ? { after } : {}) });
      await Promise.all(
        page.deposits.map((d) =>
          limit(async () => {
            if (signal.aborted) return;
            if (kind === 'open') t.checked++;
            else t.rechecked++;
            try {
              count(take(d, await ports.deposits.reconcile({ depositId: d.depositId, maxAgeSeconds: o.maxAgeSeconds })));
            } catch (e) {
              const code = errorText(e);
              t.errors[code] = (t.errors[code] ?? 0) + 1;
              onDeposit('error');
            }
          }),
        ),
      );
      if (!page.next) return;
      after = page.next;
    }
  }

  // Open work first, with its own budget: re-checks never take its place.
  await work(
    'open',
    o.maxPerPass,
    () => t.checked,
    (_d, r) => {
      // Confirming is still open (awaiting finality).
      if (r.status === 'pending' || r.status === 'confirming') return 'pending';
      return r.changed ? (r.status as DepositResult) : 'settled';
    },
  );
  await work(
    'credits',
    o.maxRechecksPerPass,
    () => t.rechecked,
    (d, r) => {
      // A credit re-checked and standing; a reversal whose transfer is still gone stands too.
      if (r.depositId === d.depositId && !r.changed && (r.status === 'credited' || r.status === 'reversed')) return 'standing';
      // A reversed transfer mined again: the answer names its new deposit.
      if (r.depositId !== d.depositId && r.changed && r.status === 'credited') t.recredited++;
      if (r.status === 'pending' || r.status === 'confirming') return 'pending';
      return r.changed ? (r.status as DepositResult) : 'settled';
    },
  );
  return t;
}
