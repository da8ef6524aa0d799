-- Up Migration

-- Signed checkpoints: the chain head (sequence, hash) at a moment, signed with a KMS key of the audit
-- service's own. Whoever can rewrite audit_events (a superuser, the schema owner) can recompute every
-- hash and the head, but cannot sign: verify checks the chain up to the latest checkpoint against
-- its signed hash. Each checkpoint is also published as an `audit.checkpoint` event, so a copy lives
-- outside this database. The runtime role adds checkpoints and reads them, nothing else.
CREATE TABLE audit_checkpoints (
  checkpoint_id uuid        PRIMARY KEY,
  sequence      bigint      NOT NULL CHECK (sequence >= 0),
  hash          bytea       NOT NULL CHECK (length(hash) = 32),
  signed_at     timestamptz NOT NULL,
  key_version   text        NOT NULL,
  signature     bytea       NOT NULL
);
CREATE INDEX audit_checkpoints_latest ON audit_checkpoints (sequence DESC, signed_at DESC);

DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT SELECT, INSERT ON audit_checkpoints TO %I', runtime);
END $$;

-- Down Migration
DROP TABLE audit_checkpoints;
