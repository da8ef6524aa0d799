import { randomUUID } from 'node:crypto';
import { type AuditEvent, auditRoutingKey } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';

/** An audit event of the provisioning service, ready for the outbox (same transaction as the change). */
export function auditMessage(
  action: string,
  fields: Pick<AuditEvent, 'resource' | 'status'> & Partial<Pick<AuditEvent, 'userId' | 'before' | 'after' | 'error' | 'correlationId'>>,
): OutboxMessage {
  const eventId = randomUUID();
  const event: AuditEvent = {
    eventId,
    occurredAt: new Date().toISOString(),
    actor: { type: 'service', id: 'provisioning' },
    action,
    ...fields,
  };
  return { routingKey: auditRoutingKey('provisioning', action.replace(/^provisioning\./, '')), payload: event, messageId: eventId };
}
