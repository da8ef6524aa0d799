-- Up Migration

-- policy_spend keeps a row per reservation, but only the last 24 h count. `policy_prune_spend`
-- deletes, `p_batch` rows at a time, what can never count again: rows created more than 25 h ago
-- (the window and an hour), released or not (a released row counts nowhere, an unreleased one has
-- left the window). A running total whose `counted_after` is older than that may still have to take
-- such a row off when its next check expires it: those totals are deleted first, and the next check
-- of their cap sums the window again (once; `policy_reserve` creates a missing total that way). The
-- wallet service calls it now and then (POLICY_SPEND_PRUNE_INTERVAL_MS). A total created while it
-- runs counts only rows of the last 24 h, which it does not touch. The one guarantee given up: a
-- retry of an idempotent transfer more than 25 h after its first reservation reserves again, in the
-- current window (counted twice: the safe side).
CREATE INDEX policy_spend_created ON policy_spend USING brin (created_at);

CREATE FUNCTION policy_prune_spend(p_batch integer, OUT deleted_rows bigint, OUT dropped_totals bigint) LANGUAGE plpgsql AS $$
DECLARE
  horizon timestamptz := now() - interval '25 hours';
BEGIN
  DELETE FROM policy_spend_totals WHERE counted_after < horizon;
  GET DIAGNOSTICS dropped_totals = ROW_COUNT;
  DELETE FROM policy_spend WHERE ctid = ANY (ARRAY(SELECT ctid FROM policy_spend WHERE created_at < horizon LIMIT p_batch));
  GET DIAGNOSTICS deleted_rows = ROW_COUNT;
END $$;

REVOKE EXECUTE ON FUNCTION policy_prune_spend(integer) FROM PUBLIC;
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT EXECUTE ON FUNCTION policy_prune_spend(integer) TO %I', runtime);
  EXECUTE format('GRANT DELETE ON policy_spend_totals TO %I', runtime);
END $$;

-- Down Migration
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('REVOKE DELETE ON policy_spend_totals FROM %I', runtime);
END $$;
DROP FUNCTION policy_prune_spend(integer);
DROP INDEX policy_spend_created;
