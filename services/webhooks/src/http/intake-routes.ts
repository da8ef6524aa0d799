import { ErrorCode } from '@wallet-fleet/contracts';
import type { Logger } from '@wallet-fleet/service-kit';
import express, { type Request, type Response } from 'express';
import type { Counter } from 'prom-client';
import type { createIntakeHandler } from '../handlers/intake.js';

export interface IntakeRouteDeps {
  intake: ReturnType<typeof createIntakeHandler>;
  /**
   * Whether the service runs. The HTTP server starts first (probes answer while the rest starts), so
   * deliveries can arrive before the pools, Redis and the broker are up: they get 503 and touch none
   * of them (a command on the lazy Redis client would connect it behind its component's back, and the
   * component's start would then fail the whole process).
   */
  accepting(): boolean;
  logger: Logger;
  maxBodyBytes: number;
  deliveries: Counter<'outcome'>;
}

const problem = (res: Response, status: number, code: string, message: string, extra: Record<string, unknown> = {}) =>
  res.status(status).json({ error: { code, message, ...extra } });

/**
 * `POST /webhooks/deposits`. Order matters: not running yet → 503 before anything else; size
 * (express.raw refuses past the limit with 413); then the intake handler (signature, the sender's rate
 * limit, the webhook-id replay guard, schema, durable accept). Answers:
 * - 200 `{status:"accepted", jobId}` once the deposit row is committed and its `deposit.received`
 *   message and accept audit event are confirmed by the broker (same jobId for the same claim);
 * - 400 `{error:{code:"VALIDATION_FAILED", fields}}`, 401 bad/stale/missing signature, 409
 *   `WEBHOOK_ID_REUSED` the same webhook-id with another body, 413 too large, 429 the sender is rate
 *   limited (Retry-After), 503 not running yet, or the deposit could not be stored or enqueued
 *   durably (the sender retries; dedupe makes that harmless).
 */
export function createIntakeRouter(deps: IntakeRouteDeps): express.Router {
  const router = express.Router();
  const log = deps.logger.child({ component: 'intake' });
  const count = (outcome: string) => deps.deliveries.inc({ outcome });

  const running = (_req: Request, res: Response, next: express.NextFunction) => {
    if (deps.accepting()) return next();
    count('not_running');
    res.set('Retry-After', '1');
    problem(res, 503, ErrorCode.UNAVAILABLE, 'the service is not running yet (or is stopping); retry');
  };

  const raw = express.raw({ type: () => true, limit: deps.maxBodyBytes });

  router.post(
    '/webhooks/deposits',
    running,
    (req, res, next) => {
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
    },
    async (req, res) => {
      const outcome = await deps.intake(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), req.headers);
      switch (outcome.kind) {
        case 'accepted':
          count(outcome.created ? 'accepted' : 'duplicate');
          res.status(200).json({ status: 'accepted', jobId: outcome.jobId });
          return;
        case 'unauthorized':
          count('unauthorized');
          log.info({ reason: outcome.reason }, 'webhook signature refused');
          problem(res, 401, 'UNAUTHORIZED', 'invalid webhook signature');
          return;
        case 'rate_limited':
          count('rate_limited');
          res.set('Retry-After', String(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000))));
          problem(res, 429, ErrorCode.RATE_LIMITED, 'too many deliveries from this sender');
          return;
        case 'replayed':
          count('replayed');
          problem(res, 409, 'WEBHOOK_ID_REUSED', 'this webhook-id was already delivered with another body');
          return;
        case 'bad_body':
          count('bad_body');
          problem(res, 400, ErrorCode.VALIDATION_FAILED, outcome.message, { fields: outcome.fields });
          return;
        case 'unavailable':
          count('unavailable');
          log.warn({ err: outcome.error }, 'deposit not stored durably; answering 503');
          res.set('Retry-After', '1');
          problem(res, 503, ErrorCode.UNAVAILABLE, 'deposit could not be stored; retry');
          return;
      }
    },
  );
  return router;
}
