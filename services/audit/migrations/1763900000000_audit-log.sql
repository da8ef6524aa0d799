-- Up Migration

-- The audit log: append-only and hash-chained. Each row's hash covers its sequence, the time we
-- recorded it, the canonical JSON of the event (RFC 8785) and the previous row's hash, so an edited,
-- deleted, inserted or reordered row breaks the chain from that row on (see `wallet.audit.verify`).
-- The columns beside `payload` are copies for querying; verify checks they still match it.
CREATE TABLE audit_events (
  sequence       bigint      PRIMARY KEY CHECK (sequence > 0),
  event_id       uuid        NOT NULL UNIQUE,
  occurred_at    timestamptz NOT NULL,
  recorded_at    timestamptz NOT NULL,
  actor_type     text        NOT NULL,
  actor_id       text        NOT NULL,
  action         text        NOT NULL,
  resource_type  text        NOT NULL,
  resource_id    text        NOT NULL,
  user_id        text,
  status         text        NOT NULL,
  correlation_id text,
  payload        text        NOT NULL,
  prev_hash      bytea       NOT NULL CHECK (length(prev_hash) = 32),
  hash           bytea       NOT NULL CHECK (length(hash) = 32)
);

CREATE INDEX audit_events_user_idx     ON audit_events (user_id, sequence DESC) WHERE user_id IS NOT NULL;
CREATE INDEX audit_events_action_idx   ON audit_events (action, sequence DESC);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id, sequence DESC);
CREATE INDEX audit_events_occurred_idx ON audit_events (occurred_at);

-- The head of the chain: one row, locked by every append so that appends are serialised across
-- replicas, and compared by verify so that deleting the newest rows is detected too.
CREATE TABLE audit_chain_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  sequence  bigint  NOT NULL,
  hash      bytea   NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO audit_chain_head (singleton, sequence, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

-- Append-only: the service never updates or deletes a row; neither may anybody else by accident.
-- (Someone with the rights to drop this trigger can still edit rows: verify is what detects that.)
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Down Migration
DROP TABLE audit_events;
DROP TABLE audit_chain_head;
DROP FUNCTION audit_events_append_only();
