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

export interface PassOptions {
  pendingAfterSeconds: number;
  maxAgeSeconds: number;
  concurrency: number;
  maxPerPass: number;
}

export interface DepositTally {
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
  /** The re-validation itself failed (chain RPC or webhooks service down): counts by error code. */
  errors: Record<string, number>;
  /** More stuck deposits than `maxPerPass`: the rest wait for the next pass. */
  truncated: boolean;
}

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
  onDeposit: (result: 'credited' | 'failed' | 'rejected' | 'reversed' | 'unlisted' | 'pending' | 'settled' | 'error') => void = () => undefined,
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

async function reconcileDeposits(ports: PassPorts, o: PassOptions, signal: AbortSignal, onDeposit: Parameters<typeof runPass>[4] & {}): Promise<DepositTally> {
  const t: DepositTally = {
    checked: 0,
    credited: 0,
    failed: 0,
    rejected: 0,
    reversed: 0,
    unlisted: 0,
    stillPending: 0,
    alreadySettled: 0,
    errors: {},
    truncated: false,
  };
  const limit = pLimit(o.concurrency);
  let after: string | undefined;
  for (;;) {
    if (signal.aborted) break;
    const room = o.maxPerPass - t.checked;
    if (room <= 0) {
      t.truncated = true;
      break;
    }
    const page = await ports.deposits.stuck({ olderThanSeconds: o.pendingAfterSeconds, limit: Math.min(100, room), ...(after ? { after } : {}) });
    await Promise.all(
      page.deposits.map((d) =>
        limit(async () => {
          if (signal.aborted) return;
          t.checked++;
          try {
            const r = await ports.deposits.reconcile({ depositId: d.depositId, maxAgeSeconds: o.maxAgeSeconds });
            // Confirming is still open (awaiting finality); a credit re-checked and standing is settled.
            const open = r.status === 'pending' || r.status === 'confirming';
            const result = open ? 'pending' : !r.changed ? 'settled' : (r.status as Exclude<typeof r.status, 'pending' | 'confirming'>);
            if (result === 'credited') t.credited++;
            else if (result === 'failed') t.failed++;
            else if (result === 'rejected') t.rejected++;
            else if (result === 'reversed') t.reversed++;
            else if (result === 'unlisted') t.unlisted++;
            else if (result === 'pending') t.stillPending++;
            else t.alreadySettled++;
            onDeposit(result);
          } catch (e) {
            const code = errorText(e);
            t.errors[code] = (t.errors[code] ?? 0) + 1;
            onDeposit('error');
          }
        }),
      ),
    );
    if (!page.next) break;
    after = page.next;
  }
  return t;
}
