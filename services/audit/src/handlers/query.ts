import type { AuditQueryResult, AuditVerifyResult, ParsedRequestOf } from '@wallet-fleet/contracts';
import type { AuditStore } from '../store/audit-store.js';

/** `wallet.audit.query`. Throws VALIDATION_FAILED for a foreign cursor, UNAVAILABLE when the database is down. */
export function createQueryHandler(store: AuditStore) {
  return (input: ParsedRequestOf<'wallet.audit.query'>): Promise<AuditQueryResult> => store.query(input);
}

/** `wallet.audit.verify`. Throws UNAVAILABLE when the database is down. */
export function createVerifyHandler(store: AuditStore) {
  return (): Promise<AuditVerifyResult> => store.verify();
}
