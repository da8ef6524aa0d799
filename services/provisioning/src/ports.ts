// What the provisioning handlers need from the outside world, as narrow interfaces: the
// transactional outbox (packages/messaging) and the wallet service behind a breaker satisfy them in
// production; tests use the same real implementations against the real broker and wallet service.
import type { Chain, Wallet } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import type pg from 'pg';

export interface OutboxWriter {
  enqueue(client: pg.ClientBase, messages: OutboxMessage | readonly OutboxMessage[]): Promise<void>;
  /** The messages as a data-modifying CTE of the caller's own statement (see messaging's `Outbox.insertSql`). */
  insertSql(messages: OutboxMessage | readonly OutboxMessage[], firstParam: number): { sql: string; values: unknown[] };
  /** Wakes this process's relay after a commit of rows from `insertSql`. */
  wake(): void;
}

/** `wallet.management.create` with a deterministic idempotency key, behind the breaker. */
export type CreateWallet = (req: { userId: string; chain: Chain; idempotencyKey: string }) => Promise<Wallet>;

/** The idempotency key of a user's provisioned wallet on a chain: the same for every retry, redelivery and replica. */
export const idempotencyKeyOf = (userId: string, chain: Chain) => `provisioning:${userId}:${chain}`;

/** The messageId of a chain job (for tracing; duplicates are harmless, the state row decides). */
export const chainJobMessage = (userId: string, chain: Chain): OutboxMessage => ({
  routingKey: 'provisioning.chain.requested',
  payload: { userId, chain },
});
