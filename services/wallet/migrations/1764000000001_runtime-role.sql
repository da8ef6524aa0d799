-- Up Migration

-- The runtime role (the user of DATABASE_URL, named to this session by the migration runner) gets
-- what the service does and nothing more. Wallets are never deleted, and only `is_active` changes:
-- the runtime role cannot move a wallet to another user (`user_id`) or swap its key or address.
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (is_active) ON wallets TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT ON create_requests TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (status, signed_tx, signature, error_code, updated_at) ON transfers TO %I', runtime);
END $$;

-- Down Migration
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('REVOKE ALL ON wallets, create_requests, transfers FROM %I', runtime);
END $$;
