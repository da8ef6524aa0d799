import type { AuditQueryResult, AuditVerifyResult, ParsedRequestOf } from '@wallet-fleet/contracts';
import type { AuditStore } from '../store/audit-store.js';
import { databaseError } from '@wallet-fleet/service-kit';

/** `wallet.audit.query`. Throws VALIDATION_FAILED for a foreign cursor, UNAVAILABLE when the database is down. */
export function createQueryHandler(store: AuditStore) {
  return async (input: ParsedRequestOf<'wallet.audit.query'>): Promise<AuditQueryResult> => {
    try {
      return await store.query(input);
    } catch (e) {
      throw databaseError(e);
    }
  };
}

/** `wallet.audit.verify`. Throws UNAVAILABLE when the database is down. */
export function createVerifyHandler(store: AuditStore) {
  return async (): Promise<AuditVerifyResult> => {
    try {
      return await store.verify();
    } catch (e) {
      throw databaseError(e);
    }
  };
}
