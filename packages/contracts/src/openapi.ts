import { z } from 'zod';
import { DepositWebhookBody } from './deposits.js';
import { ErrorCode, FieldError } from './errors.js';

/** The 200 answer of `POST /webhooks/deposits`, for a first delivery and for its duplicates alike. */
const DepositWebhookAccepted = z
  .object({
    status: z.literal('accepted'),
    jobId: z.string().describe('The same for every delivery of the same claim (chain, txHash, eventIndex, token, amount, toAddress)'),
  })
  .strict();

/** The body of every refusal of `POST /webhooks/deposits`. */
const WebhookProblem = z.object({
  error: z.object({
    code: z.string().describe('`VALIDATION_FAILED`, `UNAUTHORIZED`, `WEBHOOK_ID_REUSED`, `PAYLOAD_TOO_LARGE`, `RATE_LIMITED` or `UNAVAILABLE`'),
    message: z.string(),
    fields: z.array(FieldError).optional().describe('With VALIDATION_FAILED: each field that failed and why'),
  }),
});

const jsonSchema = (s: z.ZodType, io: 'input' | 'output') => {
  // OpenAPI 3.1 schemas are JSON Schema 2020-12, what zod writes; the dialect is the document's.
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

const problem = (description: string, code: string, headers?: Record<string, unknown>) => ({
  description: `${description} (\`error.code\` ${code})`,
  ...(headers ? { headers } : {}),
  content: { 'application/json': { schema: { $ref: '#/components/schemas/WebhookProblem' } } },
});

const retryAfter = { 'Retry-After': { description: 'Seconds to wait before the next delivery', schema: { type: 'integer', minimum: 1 } } };

const header = (name: string, description: string, schema: Record<string, unknown>) => ({ name, in: 'header', required: true, description, schema });

/**
 * The OpenAPI 3.1 document of the webhooks service's HTTP intake (`POST /webhooks/deposits`), the
 * body built from `DepositWebhookBody` (never written by hand). `pnpm asyncapi` writes it to
 * `docs/openapi.json` beside the AsyncAPI document; a test fails when the committed file is stale.
 */
export function buildOpenApi(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'wallet-fleet deposit webhooks',
      version,
      description: [
        'The chain indexer announces each incoming transfer to the webhooks service. Deliveries are signed as',
        'Standard Webhooks (https://www.standardwebhooks.com) sign them: HMAC-SHA256 with the base64 key of a',
        '`whsec_` secret (each sender has its own, named in `WEBHOOK_SECRETS`; a sender may have two while one',
        'rotates) over `webhook-id.webhook-timestamp.body`, the raw body bytes as sent. A timestamp more than 5',
        'minutes from the service clock is refused. Delivering the same claim again is harmless: the answer is',
        'the same 200 with the same jobId. Each on-chain transfer is credited once, after finality, only if the',
        'claim (token, amount, toAddress at eventIndex) is what the chain says there; another claim for the',
        'same transfer is accepted as another job and fails if false. Checks run in this order: service running',
        "(503), size (413), signature (401), the sender's rate limit (429), webhook-id replay (409), body (400),",
        'then the durable accept (200 or 503).',
      ].join(' '),
      license: { name: 'Apache-2.0' },
    },
    servers: [{ url: 'http://127.0.0.1:8084', description: 'webhooks service of a local fleet' }],
    paths: {
      '/webhooks/deposits': {
        post: {
          operationId: 'depositWebhook',
          summary: 'Announce one incoming transfer (one transfer of one transaction)',
          parameters: [
            header(
              'webhook-id',
              'Unique id of the delivery (the sender keeps it across its retries; the same id with another body within 10 minutes is refused)',
              { type: 'string', minLength: 1 },
            ),
            header('webhook-timestamp', 'Unix time of the signature, in seconds', { type: 'string', pattern: '^[0-9]+$' }),
            header('webhook-signature', 'Space-separated `v1,<base64 HMAC-SHA256>` signatures; one valid is enough', {
              type: 'string',
              pattern: '^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$',
            }),
          ],
          requestBody: {
            required: true,
            description: 'Strict: an unknown field is refused. At most `WEBHOOK_MAX_BODY_BYTES` (64 KiB by default).',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/DepositWebhookBody' } } },
          },
          responses: {
            '200': {
              description: 'Accepted: the deposit is stored and its `deposit.received` event confirmed by the broker (also for a repeated delivery)',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/DepositWebhookAccepted' } } },
            },
            '400': problem(
              'The body is not JSON or fails the schema (a txHash that cannot be a transaction on its chain included)',
              ErrorCode.VALIDATION_FAILED,
            ),
            '401': problem('Signature missing, invalid or its timestamp out of tolerance', 'UNAUTHORIZED'),
            '409': problem('This webhook-id was delivered by this sender within the last 10 minutes with another body', 'WEBHOOK_ID_REUSED'),
            '413': problem('The body is larger than WEBHOOK_MAX_BODY_BYTES', 'PAYLOAD_TOO_LARGE'),
            '429': problem('Too many deliveries from this sender (WEBHOOK_RATE_PER_MINUTE, per authenticated sender)', ErrorCode.RATE_LIMITED, retryAfter),
            '503': problem(
              'The service is not running yet (or is stopping), or the deposit could not be stored or enqueued durably; deliver again',
              ErrorCode.UNAVAILABLE,
              retryAfter,
            ),
          },
        },
      },
    },
    components: {
      schemas: {
        DepositWebhookBody: jsonSchema(DepositWebhookBody, 'input'),
        DepositWebhookAccepted: jsonSchema(DepositWebhookAccepted, 'output'),
        WebhookProblem: jsonSchema(WebhookProblem, 'output'),
      },
    },
  };
}
