import { randomUUID } from 'node:crypto';
import { type AuditEvent, auditRoutingKey } from './audit.js';

/**
 * What a service says about one audit event; the builder adds id, time, routing key and the actor
 * (the service itself, unless `actor` names who decided, e.g. an approver's broker user).
 */
export type AuditFields = Pick<AuditEvent, 'resource' | 'status'> &
  Partial<Pick<AuditEvent, 'userId' | 'before' | 'after' | 'error' | 'correlationId' | 'actor'>>;

/** An audit event ready to publish (an outbox message has this shape): the eventId is also the message id. */
export interface AuditMessage {
  routingKey: string;
  messageId: string;
  payload: AuditEvent;
}

/**
 * The one builder of audit events, for every service: actor `{type: 'service', id: service}`, a new
 * eventId, now as occurredAt, routing key `audit.<service>.<action>` with a leading `<service>.`
 * of the action dropped (`wallet.create` of the wallet service → `audit.wallet.create`). Pure: no I/O.
 * An event that may be built again and published a second time (a recovery re-sending what was never
 * confirmed) passes its own `eventId` and `occurredAt` in `identity`, so that both copies are one
 * event (audit stores an eventId once).
 */
export function auditMessage(service: string, action: string, fields: AuditFields, identity?: { eventId: string; occurredAt: string }): AuditMessage {
  const eventId = identity?.eventId ?? randomUUID();
  const payload: AuditEvent = {
    eventId,
    occurredAt: identity?.occurredAt ?? new Date().toISOString(),
    actor: { type: 'service', id: service },
    action,
    ...fields,
  };
  const prefix = `${service}.`;
  return { routingKey: auditRoutingKey(service, action.startsWith(prefix) ? action.slice(prefix.length) : action), payload, messageId: eventId };
}
