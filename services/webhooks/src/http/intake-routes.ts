import { ErrorCode } from '@wallet-fleet/contracts';
import type { Logger, RateLimiter } from '@wallet-fleet/service-kit';
import express, { type Request, type Response } from 'express';
import type { Counter } from 'prom-client';
import type { createIntakeHandler } from '../handlers/intake.js';

export interface IntakeRouteDeps {
  intake: ReturnType<typeof createIntakeHandler>;
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
 * refuses past the limit with 413), then the intake handler (signature, schema, durable accept). Answers:
 * - 200 `{status:"accepted", jobId}` once the deposit row is committed and its `deposit.received`
 *   message is confirmed by the broker (same jobId for the same chain/txHash/eventIndex);
 * - 400 `{error:{code:"VALIDATION_FAILED", fields}}`, 401 bad/stale/missing signature, 409 the same
 *   transfer with other token/amount/address, 413 too large, 429 rate limited (Retry-After),
 *   503 when the deposit could not be stored or enqueued durably (the sender retries; dedupe makes
 *   that harmless).
 */
export function createIntakeRouter(deps: IntakeRouteDeps): express.Router {
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

  router.post(
    '/webhooks/deposits',
    rateLimit,
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
        case 'bad_body':
          count('bad_body');
          problem(res, 400, ErrorCode.VALIDATION_FAILED, outcome.message, { fields: outcome.fields });
          return;
        case 'conflict':
          count('conflict');
          problem(res, 409, outcome.error.code, outcome.error.message, { jobId: outcome.jobId });
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
