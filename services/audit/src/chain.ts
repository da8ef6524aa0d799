import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import type { AuditEvent } from '@wallet-fleet/contracts';

// canonicalize is CommonJS (`module.exports = serialize`) but types itself as an ES default export;
// under NodeNext the default import is module.exports, i.e. the function itself.
const canonicalize = canonicalizeModule as unknown as (input: unknown) => string | undefined;

/** Hash of the row before the first one. */
export const GENESIS_HASH = Buffer.alloc(32);

/** The exact text we store and hash for an event: its RFC 8785 canonical JSON. */
export function canonicalPayload(event: AuditEvent): string {
  const text = canonicalize(event);
  if (text === undefined) throw new TypeError('event is not serialisable');
  return text;
}

/**
 * SHA-256 over the previous hash, the sequence (8 bytes big-endian), the recording time and the
 * canonical payload. Binding the sequence makes a reordering of rows detectable even when their
 * payloads are swapped together with their hashes.
 */
export function rowHash(prevHash: Buffer, sequence: number, recordedAt: string, payload: string): Buffer {
  const seq = Buffer.alloc(8);
  seq.writeBigUInt64BE(BigInt(sequence));
  return createHash('sha256').update(prevHash).update(seq).update(recordedAt, 'utf8').update('\n').update(payload, 'utf8').digest();
}
