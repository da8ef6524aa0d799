-- Up Migration

-- wallet.transaction.transfer moves tokens too: the asset is part of what an idempotency key stands
-- for (`native`, `token:<mint or contract>`), so the same key with another asset is a conflict.
-- An EVM transfer's nonce is stored with its signed bytes.
ALTER TABLE transfers
  ADD COLUMN asset text NOT NULL DEFAULT 'native',
  ADD COLUMN nonce bigint CHECK (nonce >= 0);

-- The next nonce of each EVM wallet, allocated under this row's lock in the transaction that
-- stores the signed bytes: concurrent transfers of one wallet get distinct, gapless nonces, and a
-- restart continues from here (or from the chain's pending count, when that is higher).
CREATE TABLE evm_nonces (
  wallet_id  uuid        PRIMARY KEY REFERENCES wallets (wallet_id),
  next_nonce bigint      NOT NULL CHECK (next_nonce >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT UPDATE (nonce) ON transfers TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (next_nonce, updated_at) ON evm_nonces TO %I', runtime);
END $$;

-- Down Migration
DROP TABLE evm_nonces;
ALTER TABLE transfers DROP COLUMN nonce, DROP COLUMN asset;
