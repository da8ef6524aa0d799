-- Up Migration

-- The runtime role (the user of DATABASE_URL, named to this session by the migration runner) appends
-- events and moves the head; it cannot UPDATE, DELETE or TRUNCATE events, and, not owning the table,
-- cannot disable the append-only trigger or alter the table. Of the head only `sequence` and `hash`
-- change (the singleton key stays), and nothing can delete it.
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), runtime);
  EXECUTE format('GRANT SELECT, INSERT ON audit_events TO %I', runtime);
  EXECUTE format('GRANT SELECT, UPDATE (sequence, hash) ON audit_chain_head TO %I', runtime);
END $$;
REVOKE ALL ON FUNCTION audit_events_append_only() FROM PUBLIC;

-- Down Migration
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('REVOKE ALL ON audit_events, audit_chain_head FROM %I', runtime);
END $$;
