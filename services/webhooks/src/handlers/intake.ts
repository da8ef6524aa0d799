import { DepositWebhookBody, ErrorCode, type FieldError, fieldErrors, isFleetError, auditMessage } from '@wallet-fleet/contracts';
import type { Outbox } from '@wallet-fleet/messaging';
import type { Logger, RateLimiter } from '@wallet-fleet/service-kit';
import express, { type Request, type Response } from 'express';
import type pg from 'pg';
import type { Counter } from 'prom-client';
import type { SignatureVerifier } from '../signature.js';
import { acceptDeposit, ensurePublished } from '../store/deposit-store.js';

export interface IntakeDeps {
  pool: pg.Pool;
  outbox: Outbox;
  verifier: SignatureVerifier;
  limiter: RateLimiter;
  logger: Logger;
  maxBodyBytes: number;
  /** Header naming the source for the rate limit; undefined = the client IP. */
  sourceHeader?: string;
  deliveries: Counter<'outcome'>;
}

const problem = (res: Response, status: number, code: string, message: string, extra: Record<string, unknown> = {}) =>
  res.status(status).json({ error: { code, message, ...extra } });

/**
 * `POST /webhooks/deposits`. Order matters: rate limit (cheap, before any HMAC work), size (express.raw
 * refuses past the limit with 413), signature over the raw bytes, then the strict body schema, then
 * the durable accept. Answers:
 * - 200 `{status:"accepted", jobId}` once the deposit row is committed and its `deposit.received`
 *   message is confirmed by the broker (same jobId for the same chain/txHash/eventIndex);
 * - 400 `{error:{code:"VALIDATION_FAILED", fields}}`, 401 bad/stale/missing signature, 409 the same
 *   transfer with other token/amount/address, 413 too large, 429 rate limited (Retry-After),
 *   503 when the deposit could not be stored or enqueued durably (the sender retries; dedupe makes
 *   that harmless).
 */
export function createIntakeRouter(deps: IntakeDeps): express.Router {
  const router = express.Router();
  const log = deps.logger.child({ component: 'intake' });
  const count = (outcome: string) => deps.deliveries.inc({ outcome });

  const rateLimit = async (req: Request, res: Response, next: express.NextFunction) => {
    const header = deps.sourceHeader ? req.get(deps.sourceHeader) : undefined;
    // The first hop of a forwarded-for list is the original client.
    const source = (header?.split(',')[0]?.trim() || req.socket.remoteAddress || 'unknown').slice(0, 100);
    try {
      const r = await deps.limiter.take(source);
      if (!r.allowed) {
        count('rate_limited');
        res.set('Retry-After', String(Math.max(1, Math.ceil(r.resetMs / 1000))));
        problem(res, 429, ErrorCode.RATE_LIMITED, 'too many deliveries from this source');
        return;
      }
    } catch (err) {
      // Fail open: refusing deposits because the limiter's cache is down would make senders pile
      // up retries; the signature check still guards the endpoint.
      log.warn({ err }, 'rate limiter unavailable; letting the delivery through');
    }
    next();
  };

  const raw = express.raw({ type: () => true, limit: deps.maxBodyBytes });

  router.post('/webhooks/deposits', rateLimit, (req, res, next) => {
    raw(req, res, (err?: unknown) => {
      if (err) {
        const status = (err as { status?: number }).status;
        if (status === 413) {
          count('too_large');
          problem(res, 413, 'PAYLOAD_TOO_LARGE', `body exceeds ${deps.maxBodyBytes} bytes`);
          return;
        }
        count('bad_body');
        problem(res, status && status >= 400 && status < 500 ? status : 400, ErrorCode.VALIDATION_FAILED, 'unreadable body');
        return;
      }
      next();
    });
  }, async (req, res) => {
    const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const verdict = deps.verifier.verify(body, req.headers);
    if (!verdict.ok) {
      count('unauthorized');
      log.info({ reason: verdict.reason }, 'webhook signature refused');
      problem(res, 401, 'UNAUTHORIZED', 'invalid webhook signature');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      count('bad_body');
      problem(res, 400, ErrorCode.VALIDATION_FAILED, 'body is not JSON', { fields: [{ path: '(root)', message: 'not JSON' }] satisfies FieldError[] });
      return;
    }
    const parsed = DepositWebhookBody.safeParse(json);
    if (!parsed.success) {
      count('bad_body');
      const fields = fieldErrors(parsed.error);
      problem(res, 400, ErrorCode.VALIDATION_FAILED, `invalid ${fields.map((f) => f.path).join(', ')}`, { fields });
      return;
    }
    const deposit = parsed.data;
    const webhookId = String(req.headers['webhook-id']).slice(0, 200);
    try {
      const accepted = await acceptDeposit(deps.pool, deps.outbox, deposit, webhookId, (depositId) => [
        { routingKey: 'deposit.received', messageId: depositId, payload: { depositId, ...deposit } },
        auditMessage('webhooks', 'deposit.accept', {
          resource: { type: 'deposit', id: depositId },
          status: 'success',
          after: { chain: deposit.chain, txHash: deposit.txHash, eventIndex: deposit.eventIndex, amount: deposit.amount, toAddress: deposit.toAddress },
        }),
      ]);
      // A duplicate waits too: the first delivery may have been answered 503 (or its process
      // killed) after the commit but before the publish, and this is the one that gets the 200.
      await ensurePublished(deps.pool, accepted);
      count(accepted.created ? 'accepted' : 'duplicate');
      res.status(200).json({ status: 'accepted', jobId: accepted.jobId });
    } catch (err) {
      if (isFleetError(err, ErrorCode.IDEMPOTENCY_CONFLICT)) {
        count('conflict');
        problem(res, 409, err.code, err.message, { jobId: err.details?.jobId });
        return;
      }
      count('unavailable');
      log.warn({ err }, 'deposit not stored durably; answering 503');
      res.set('Retry-After', '1');
      problem(res, 503, ErrorCode.UNAVAILABLE, 'deposit could not be stored; retry');
    }
  });
  return router;
}
