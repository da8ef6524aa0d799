-- Up Migration

-- The runtime role (the user of DATABASE_URL, named to this session by the migration runner): a
-- deposit's status and attempt log change, nothing else of it; addresses and ledger entries are
-- only ever added (a credit is never edited or removed).
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (status, attempts, updated_at) ON deposits TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT ON known_addresses, ledger TO %I', runtime);
END $$;

-- Down Migration
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('REVOKE ALL ON deposits, known_addresses, ledger FROM %I', runtime);
END $$;
