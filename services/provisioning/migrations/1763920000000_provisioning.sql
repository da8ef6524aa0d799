-- Up Migration

-- One row per user who was approved: the chains requested, and whether
-- wallet.provisioning.completed was emitted (set in the same transaction as the last READY, so the
-- event is enqueued exactly once even when the last two chains finish at the same moment).
CREATE TABLE provisioning_users (
  user_id      text        PRIMARY KEY,
  chains       text[]      NOT NULL,
  completed_at timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per user and chain: the state the onboarding screen shows.
CREATE TABLE provisioning_chains (
  user_id            text        NOT NULL REFERENCES provisioning_users (user_id),
  chain              text        NOT NULL CHECK (chain IN ('SOL', 'ETH', 'APTOS')),
  status             text        NOT NULL CHECK (status IN ('PENDING', 'READY', 'FAILED')),
  attempts           integer     NOT NULL DEFAULT 0,
  last_error_code    text,
  last_error_message text,
  wallet_id          uuid,
  address            text,
  -- When the current job (or its latest attempt) started.
  started_at         timestamptz NOT NULL DEFAULT now(),
  -- A PENDING row not touched by a job before this time is stuck (crashed worker, lost job) and is
  -- enqueued again by the sweep. Pushed forward past the longest retry delay when a retry is scheduled.
  lease_until        timestamptz NOT NULL,
  updated_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, chain)
);
CREATE INDEX provisioning_chains_stuck ON provisioning_chains (lease_until) WHERE status = 'PENDING';

-- Down Migration
DROP TABLE provisioning_chains;
DROP TABLE provisioning_users;
