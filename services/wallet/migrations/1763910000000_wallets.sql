-- Up Migration

-- One row per wallet. The private key lives in Cloud KMS only; we keep the name of its key version
-- (a resource name, not a secret) and the public key the address is derived from.
CREATE TABLE wallets (
  wallet_id       uuid        PRIMARY KEY,
  user_id         text        NOT NULL,
  chain           text        NOT NULL CHECK (chain IN ('SOL', 'ETH', 'APTOS')),
  address         text        NOT NULL,
  label           text,
  is_active       boolean     NOT NULL DEFAULT false,
  kms_key_version text        NOT NULL UNIQUE,
  public_key      bytea       NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (chain, address)
);
-- At most one active wallet per user and chain, enforced by the database rather than by a check
-- that two concurrent requests could both pass.
CREATE UNIQUE INDEX wallets_one_active ON wallets (user_id, chain) WHERE is_active;
CREATE INDEX wallets_user ON wallets (user_id, created_at);

-- Idempotency of wallet.management.create: one row per (user, key); the hash of the request tells a
-- replay (same payload: same wallet) from a conflict (same key, other payload).
CREATE TABLE create_requests (
  user_id         text        NOT NULL,
  idempotency_key text        NOT NULL,
  request_hash    text        NOT NULL,
  wallet_id       uuid        NOT NULL REFERENCES wallets (wallet_id),
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, idempotency_key)
);

-- Down Migration
DROP TABLE create_requests;
DROP TABLE wallets;
