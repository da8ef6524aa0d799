import type { AuditCheckpoint, AuditQueryResult, AuditVerifyResult, ParsedRequestOf } from '@wallet-fleet/contracts';
import type { CheckpointSigner } from '../checkpoints.js';
import type { AuditMetrics } from '../metrics.js';
import type { AuditStore } from '../store/audit-store.js';

/** `wallet.audit.query`. Throws VALIDATION_FAILED for a foreign cursor, UNAVAILABLE when the database is down. */
export function createQueryHandler(store: AuditStore) {
  return (input: ParsedRequestOf<'wallet.audit.query'>): Promise<AuditQueryResult> => store.query(input);
}

/**
 * `wallet.audit.verify`: the chain walked row by row, and checked against the latest signed
 * checkpoint, whose signature is checked first. Counted in `audit_verify_total{result}`.
 * Throws UNAVAILABLE when the database (or, with a checkpoint, KMS) is down.
 */
export function createVerifyHandler(store: AuditStore, signer: CheckpointSigner, metrics: AuditMetrics) {
  const run = async (): Promise<AuditVerifyResult> => {
    const checkpoint = await store.latestCheckpoint();
    if (checkpoint && !(await signer.verify(checkpoint))) {
      return {
        valid: false,
        checked: 0,
        brokenAt: Math.max(1, checkpoint.sequence),
        reason: 'the latest checkpoint does not carry a valid signature of the audit key',
      };
    }
    const result = await store.verify(checkpoint);
    return checkpoint ? { ...result, checkpoint: { sequence: checkpoint.sequence, signedAt: checkpoint.signedAt } } : result;
  };
  return async (): Promise<AuditVerifyResult> => {
    try {
      const result = await run();
      metrics.verify.inc({ result: result.valid ? 'valid' : 'invalid' });
      return result;
    } catch (err) {
      metrics.verify.inc({ result: 'error' });
      throw err;
    }
  };
}

/** `wallet.audit.checkpoint`: `take` (see checkpoints.ts), counted like the scheduled ones. */
export function createCheckpointHandler(take: () => Promise<AuditCheckpoint>, metrics: AuditMetrics) {
  return async (): Promise<AuditCheckpoint> => {
    try {
      const c = await take();
      metrics.checkpoints.inc({ result: 'signed' });
      return c;
    } catch (err) {
      metrics.checkpoints.inc({ result: 'failed' });
      throw err;
    }
  };
}
