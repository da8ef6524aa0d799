-- Up Migration

-- Idempotency of wallet.transaction.transferSol: one row per (wallet, key). The signed transaction
-- is stored BEFORE it is sent, so that a retry after a crash or a timeout asks the chain what became
-- of exactly those bytes (and sends them again) instead of signing a second transfer. A signed
-- transaction is public once sent: it holds a signature, never key material.
CREATE TABLE transfers (
  wallet_id       uuid        NOT NULL REFERENCES wallets (wallet_id),
  idempotency_key text        NOT NULL,
  recipient       text        NOT NULL,
  amount          numeric(78) NOT NULL CHECK (amount > 0),
  status          text        NOT NULL CHECK (status IN ('new', 'signed', 'confirmed', 'failed')),
  signed_tx       bytea,
  signature       text,
  error_code      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (wallet_id, idempotency_key)
);

-- Down Migration
DROP TABLE transfers;
