-- Up Migration

-- The policy check reads no policy from the database on the signing path: each replica keeps the
-- rules it has read in memory, tagged with the epoch they were read at. Every change of `policies`
-- (through wallet.policy.set or by hand) moves the epoch in its own transaction, and the one
-- statement that reserves a signing's spend compares the epoch its rules were read at with this
-- row: a replica that decided on rules older than a committed change is told so, reloads and
-- decides again. Exact across replicas, without a read per signing or a notification channel.
CREATE TABLE policy_epoch (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch     bigint  NOT NULL
);
INSERT INTO policy_epoch (epoch) VALUES (1);

CREATE FUNCTION policy_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE policy_epoch SET epoch = epoch + 1;
  RETURN NULL;
END $$;

CREATE TRIGGER policies_move_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON policies
  FOR EACH STATEMENT EXECUTE FUNCTION policy_epoch_bump();

-- A signing's spend recorded in one round trip, rolling caps included (what policy-store's
-- `reserve` did in a transaction of up to seven). In order:
-- - 'stale' when `p_epoch` is not the current epoch (nothing done: the caller reloads);
-- - 'held' when `p_ref` already holds a reservation none of which was released (a retry of the same
--   idempotent transfer: counted once); released rows of `p_ref` are replaced;
-- - under one advisory lock per capped asset and user (taken in sorted order, held to the end of the
--   statement's transaction), the spend of the last 24 h per cap, fresh for each cap (a volatile
--   function takes a new snapshot per statement, after the lock): 'denied' with the 1-based index of
--   the first cap the spend would break and what that cap had used;
-- - else the spend rows are inserted (not in a dry run) and 'ok'.
-- Caps are parallel arrays: per cap whether it counts the wallet (else the user), its asset, its limit.
CREATE FUNCTION policy_reserve(
  p_epoch bigint, p_ref text, p_user text, p_wallet uuid, p_assets text[], p_amounts numeric[],
  p_cap_wallet boolean[], p_cap_assets text[], p_cap_limits numeric[], p_dry_run boolean,
  OUT outcome text, OUT cap integer, OUT used numeric
) LANGUAGE plpgsql AS $$
DECLARE
  held_all integer;
  held_open integer;
  locked text;
  wanted numeric;
BEGIN
  IF p_epoch IS DISTINCT FROM (SELECT epoch FROM policy_epoch) THEN
    outcome := 'stale';
    RETURN;
  END IF;
  IF NOT p_dry_run THEN
    SELECT count(*), count(*) FILTER (WHERE released_at IS NULL) INTO held_all, held_open FROM policy_spend WHERE ref = p_ref;
    IF held_all > 0 AND held_open = held_all THEN
      outcome := 'held';
      RETURN;
    END IF;
    IF held_all > 0 THEN
      DELETE FROM policy_spend WHERE ref = p_ref;
    END IF;
  END IF;
  FOR locked IN SELECT DISTINCT a FROM unnest(p_cap_assets) AS a ORDER BY a LOOP
    PERFORM pg_advisory_xact_lock(hashtextextended('policy-spend:' || p_user || ':' || locked, 0));
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(p_cap_assets, 1), 0) LOOP
    IF p_cap_wallet[i] THEN
      SELECT coalesce(sum(s.amount), 0) INTO used FROM policy_spend s
       WHERE s.wallet_id = p_wallet AND s.asset = p_cap_assets[i] AND s.released_at IS NULL AND s.created_at > now() - interval '24 hours';
    ELSE
      SELECT coalesce(sum(s.amount), 0) INTO used FROM policy_spend s
       WHERE s.user_id = p_user AND s.asset = p_cap_assets[i] AND s.released_at IS NULL AND s.created_at > now() - interval '24 hours';
    END IF;
    wanted := coalesce(p_amounts[array_position(p_assets, p_cap_assets[i])], 0);
    IF used + wanted > p_cap_limits[i] THEN
      outcome := 'denied';
      cap := i;
      RETURN;
    END IF;
  END LOOP;
  used := NULL;
  IF NOT p_dry_run THEN
    INSERT INTO policy_spend (ref, asset, user_id, wallet_id, amount)
    SELECT p_ref, t.a, p_user, p_wallet, t.m FROM unnest(p_assets, p_amounts) AS t(a, m);
  END IF;
  outcome := 'ok';
END $$;

-- Functions are executable by PUBLIC unless revoked: only the runtime role calls these. Both run
-- with the caller's rights, so the runtime role keeps exactly its table privileges (and may move
-- the epoch, which only makes replicas reload).
REVOKE EXECUTE ON FUNCTION policy_reserve(bigint, text, text, uuid, text[], numeric[], boolean[], text[], numeric[], boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION policy_epoch_bump() FROM PUBLIC;
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT SELECT, UPDATE (epoch) ON policy_epoch TO %I', runtime);
  EXECUTE format('GRANT EXECUTE ON FUNCTION policy_reserve(bigint, text, text, uuid, text[], numeric[], boolean[], text[], numeric[], boolean) TO %I', runtime);
  EXECUTE format('GRANT EXECUTE ON FUNCTION policy_epoch_bump() TO %I', runtime);
END $$;

-- Down Migration
DROP FUNCTION policy_reserve(bigint, text, text, uuid, text[], numeric[], boolean[], text[], numeric[], boolean);
DROP TRIGGER policies_move_epoch ON policies;
DROP FUNCTION policy_epoch_bump();
DROP TABLE policy_epoch;
