-- Up Migration

-- One row per deposit notification we answered 200 to: the processing job. The unique constraint is
-- the dedupe (INSERT … ON CONFLICT DO NOTHING), never a lookup that two concurrent deliveries could
-- both pass. `attempts` is the job's attempt log: [{attempt, status, errorCode, message, at}].
CREATE TABLE deposits (
  deposit_id  uuid        PRIMARY KEY,
  chain       text        NOT NULL CHECK (chain IN ('SOL', 'ETH', 'APTOS')),
  tx_hash     text        NOT NULL,
  event_index integer     NOT NULL CHECK (event_index >= 0),
  token       text        NOT NULL,
  amount      numeric(78) NOT NULL CHECK (amount >= 0),
  to_address  text        NOT NULL,
  webhook_id  text        NOT NULL,
  status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'credited', 'failed', 'rejected')),
  attempts    jsonb       NOT NULL DEFAULT '[]'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (chain, tx_hash, event_index)
);
-- Reconciliation reads pending deposits by age.
CREATE INDEX deposits_pending ON deposits (created_at) WHERE status = 'pending';

-- Addresses of wallets of ours, from the wallet service's `wallet.created` events (never its tables).
-- EVM addresses are kept lower-case so a checksummed and a plain spelling match.
CREATE TABLE known_addresses (
  chain      text        NOT NULL,
  address    text        NOT NULL,
  wallet_id  uuid        NOT NULL,
  user_id    text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (chain, address)
);

-- The credit. UNIQUE (deposit_id) is what makes crediting exactly-once, whatever redeliveries,
-- retries or concurrent consumers do.
CREATE TABLE ledger (
  entry_id   uuid        PRIMARY KEY,
  deposit_id uuid        NOT NULL UNIQUE REFERENCES deposits (deposit_id),
  wallet_id  uuid        NOT NULL,
  user_id    text        NOT NULL,
  chain      text        NOT NULL,
  token      text        NOT NULL,
  amount     numeric(78) NOT NULL CHECK (amount >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_wallet ON ledger (wallet_id, created_at);

-- Down Migration
DROP TABLE ledger;
DROP TABLE known_addresses;
DROP TABLE deposits;
