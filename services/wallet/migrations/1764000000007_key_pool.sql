-- Up Migration

-- KMS keys created ahead of demand (by the pool refiller), so that a create does not wait for Cloud
-- KMS to generate a key. A row with wallet_id NULL is unassigned; a create assigns one in the same
-- transaction that inserts the wallet, so a create that rolls back leaves its key in the pool. Rows
-- stay after assignment: they say which KMS keys came from the pool and which wallet holds each.
-- As in wallets, only the key version's name and its public key are kept, never key material.
CREATE TABLE key_pool (
  kms_key_version  text        PRIMARY KEY,
  algorithm        text        NOT NULL CHECK (algorithm IN ('ed25519', 'secp256k1')),
  protection_level text        NOT NULL CHECK (protection_level IN ('SOFTWARE', 'HSM')),
  public_key       bytea       NOT NULL,
  wallet_id        uuid        UNIQUE,
  created_at       timestamptz NOT NULL DEFAULT now(),
  assigned_at      timestamptz,
  CHECK ((wallet_id IS NULL) = (assigned_at IS NULL))
);
-- What a create and the refiller look for: the unassigned keys of one kind, oldest first.
CREATE INDEX key_pool_unassigned ON key_pool (algorithm, protection_level, created_at) WHERE wallet_id IS NULL;

-- The runtime role adds keys (the refiller) and assigns one to a wallet (a create); it never deletes
-- a pool row nor changes which key a row names.
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (wallet_id, assigned_at) ON key_pool TO %I', runtime);
END $$;

-- Down Migration
DROP TABLE key_pool;
