-- Up Migration

-- The runtime role (the user of DATABASE_URL, named to this session by the migration runner) starts
-- and finishes runs; it never deletes them.
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (status, finished_at, report, error) ON reconciliation_runs TO %I', runtime);
END $$;

-- Down Migration
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('REVOKE ALL ON reconciliation_runs FROM %I', runtime);
END $$;
