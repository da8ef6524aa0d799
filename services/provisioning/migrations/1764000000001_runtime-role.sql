-- Up Migration

-- The runtime role (the user of DATABASE_URL, named to this session by the migration runner) reads,
-- adds and updates provisioning state; it never deletes it.
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (chains, completed_at) ON provisioning_users TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (status, attempts, last_error_code, last_error_message, wallet_id, address, started_at, lease_until, updated_at) ON provisioning_chains TO %I', runtime);
END $$;

-- Down Migration
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('REVOKE ALL ON provisioning_users, provisioning_chains FROM %I', runtime);
END $$;
