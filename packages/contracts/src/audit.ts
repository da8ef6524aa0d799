import { z } from 'zod';
import { Text, Timestamp, UserId, Uuid } from './common.js';

/** Who did it: a service of the fleet, a user, an operator, or an outside system. */
export const AuditActor = z.object({
  type: z.enum(['service', 'user', 'operator', 'system']),
  id: Text(1, 128),
});

export const AuditStatus = z
  .enum(['success', 'failed', 'retry_scheduled', 'started', 'skipped', 'dead_lettered'])
  .describe('Outcome of the attempt this event records');

/**
 * An audit event: one attempt of one action on one resource. Published on `wallet.events` with
 * routing key `audit.<service>.<action>` (for example `audit.wallet.create`). `eventId` makes it
 * idempotent: the same event published twice is stored once.
 */
export const AuditEvent = z
  .object({
    eventId: Uuid.describe('Unique id of this event; duplicates are stored once'),
    occurredAt: Timestamp,
    actor: AuditActor,
    action: Text(1, 128).describe('What was attempted, e.g. `wallet.create`'),
    resource: z.object({ type: Text(1, 64), id: Text(1, 256) }),
    userId: UserId.optional(),
    status: AuditStatus,
    before: z.record(z.string(), z.unknown()).nullable().optional().describe('State before (no secrets)'),
    after: z.record(z.string(), z.unknown()).nullable().optional().describe('State after (no secrets)'),
    error: z.object({ code: z.string(), message: z.string().max(1024), retryable: z.boolean().optional() }).optional(),
    correlationId: Text(0, 128).optional(),
  })
  .strict();
export type AuditEvent = z.infer<typeof AuditEvent>;

/** `audit.<service>.<action>`: the routing key of an audit event. */
export function auditRoutingKey(service: string, action: string): string {
  return `audit.${service}.${action}`;
}

export const AuditQueryRequest = z
  .object({
    userId: UserId.optional(),
    action: z.string().max(128).optional(),
    resourceType: z.string().max(64).optional(),
    resourceId: z.string().max(256).optional(),
    from: Timestamp.optional().describe('occurredAt >= from'),
    to: Timestamp.optional().describe('occurredAt < to'),
    limit: z.number().int().min(1).max(500).default(50),
    cursor: z.string().max(200).optional().describe('`nextCursor` of the previous page'),
  })
  .strict();
export type AuditQueryRequest = z.input<typeof AuditQueryRequest>;

export const StoredAuditEvent = AuditEvent.extend({
  sequence: z.number().int().positive().describe('Position in the hash chain'),
  recordedAt: Timestamp,
  hash: z.string().describe('hex SHA-256 of this row, chained to the previous row'),
});
export type StoredAuditEvent = z.infer<typeof StoredAuditEvent>;

export const AuditQueryResult = z.object({
  items: z.array(StoredAuditEvent).describe('Newest first'),
  nextCursor: z.string().nullable(),
});
export type AuditQueryResult = z.infer<typeof AuditQueryResult>;

export const AuditVerifyRequest = z.object({}).strict();
export const AuditVerifyResult = z.object({
  valid: z.boolean(),
  checked: z.number().int().nonnegative().describe('Rows walked'),
  brokenAt: z.number().int().positive().optional().describe('Sequence of the first row that does not verify'),
  reason: z.string().optional(),
});
export type AuditVerifyResult = z.infer<typeof AuditVerifyResult>;
