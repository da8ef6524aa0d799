// What the wallet handlers need from the outside world, as narrow interfaces: the KMS custody
// (packages/kms) and the transactional outbox (packages/messaging) satisfy them in production;
// tests use the same real implementations against the KMS emulator and the real broker.
import type { Chain } from '@wallet-fleet/contracts';
import type { ProtectionLevel } from '@wallet-fleet/kms';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import type pg from 'pg';

export type KeyAlgorithm = 'ed25519' | 'secp256k1';

export interface KeyCustody {
  /** Creates (or, for an existing id, returns) a key with these labels; resolves once its version can sign. */
  createKey(keyId: string, algorithm: KeyAlgorithm, options?: { labels?: Record<string, string> }): Promise<{ keyVersionName: string; publicKey: Uint8Array }>;
  /** The protection level keys of `algorithm` are created at. */
  protectionLevelOf(algorithm: KeyAlgorithm): ProtectionLevel;
}

export interface OutboxWriter {
  enqueue(client: pg.ClientBase, messages: OutboxMessage | readonly OutboxMessage[]): Promise<void>;
  /** The messages on their own (one statement, its own commit). */
  write(messages: OutboxMessage | readonly OutboxMessage[]): Promise<void>;
  /** The messages as a data-modifying CTE of the caller's own statement (see messaging's `Outbox.insertSql`). */
  insertSql(messages: OutboxMessage | readonly OutboxMessage[], firstParam: number): { sql: string; values: unknown[] };
  /** Wakes this process's relay after a commit of rows from `insertSql`. */
  wake(): void;
}

export const algorithmOf = (chain: Chain): KeyAlgorithm => (chain === 'ETH' ? 'secp256k1' : 'ed25519');
