-- Up Migration

-- Signing policies as data: one row per scope ('fleet' with scope_id '', 'user' with a user id,
-- 'wallet' with a wallet id). `rules` is the PolicyRules object of packages/contracts.
CREATE TABLE policies (
  scope      text        NOT NULL CHECK (scope IN ('fleet', 'user', 'wallet')),
  scope_id   text        NOT NULL,
  rules      jsonb       NOT NULL,
  version    integer     NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, scope_id)
);

-- What signed transactions may move, per asset, for the rolling 24 h caps. One row per
-- (signing reference, asset): an idempotent transfer keeps its reference across retries, so it is
-- counted once. A row is released (released_at set) only when the transaction provably never
-- reached the chain (it was never signed).
CREATE TABLE policy_spend (
  ref         text        NOT NULL,
  asset       text        NOT NULL,
  user_id     text        NOT NULL,
  wallet_id   uuid        NOT NULL,
  amount      numeric(78) NOT NULL CHECK (amount >= 0),
  created_at  timestamptz NOT NULL DEFAULT now(),
  released_at timestamptz,
  PRIMARY KEY (ref, asset)
);
CREATE INDEX policy_spend_user ON policy_spend (user_id, asset, created_at) WHERE released_at IS NULL;
CREATE INDEX policy_spend_wallet ON policy_spend (wallet_id, asset, created_at) WHERE released_at IS NULL;

-- The runtime role may read and change policies (through wallet.policy.set, audited) and record,
-- read, release and replace spend rows; the migration role owns both tables.
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (rules, version, updated_at) ON policies TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT, DELETE, UPDATE (released_at) ON policy_spend TO %I', runtime);
END $$;

-- Down Migration
DROP TABLE policy_spend;
DROP TABLE policies;
