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

-- A change takes the epoch's advisory lock exclusively, every reservation takes it shared (below):
-- a reservation decided at the old epoch commits before the change does, and one after it sees the
-- new epoch. So spend recorded under rules without a cap is always visible to the first check of a
-- cap that replaced them.
CREATE FUNCTION policy_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('policy-epoch', 0));
  UPDATE policy_epoch SET epoch = epoch + 1;
  RETURN NULL;
END $$;

CREATE TRIGGER policies_move_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON policies
  FOR EACH STATEMENT EXECUTE FUNCTION policy_epoch_bump();

-- What the rolling 24 h caps count, kept as running totals instead of summed per check (a sum over
-- every signing of a busy wallet's day grows with its traffic): per wallet or user and asset, the
-- unreleased spend created after `counted_after`. A total is created by the first check of a cap
-- that needs it (summed once from policy_spend), kept current by every reservation and release of
-- its wallet or user, and moved forward by the checks: spend that left the 24 h window is taken
-- off (each row once) and `counted_after` set to the window's start.
CREATE TABLE policy_spend_totals (
  kind          text        NOT NULL CHECK (kind IN ('wallet', 'user')),
  who           text        NOT NULL,
  asset         text        NOT NULL,
  total         numeric(78) NOT NULL CHECK (total >= 0),
  counted_after timestamptz NOT NULL,
  PRIMARY KEY (kind, who, asset)
);

-- A signing's spend recorded in one round trip, rolling caps included (what policy-store's
-- `reserve` did in a transaction of up to seven round trips). In order:
-- - 'stale' when `p_epoch` is not the current epoch (nothing done: the caller reloads its rules);
-- - 'held' when `p_ref` already holds a reservation none of which was released (a retry of the same
--   idempotent transfer: counted once); released rows of `p_ref` are replaced;
-- - under one advisory lock per capped asset and user (taken in sorted order, held to the end of the
--   statement's transaction), each cap's total brought up to date: 'denied' with the 1-based index
--   of the first cap the spend would break and what that cap had used;
-- - else the spend rows are inserted and added to the totals that exist (not in a dry run), 'ok'.
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
  expired numeric;
  v_kind text;
  v_who text;
  v_after timestamptz;
  cutoff timestamptz := now() - interval '24 hours';
BEGIN
  PERFORM pg_advisory_xact_lock_shared(hashtextextended('policy-epoch', 0));
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
      -- Released rows were taken off their totals when released.
      DELETE FROM policy_spend WHERE ref = p_ref;
    END IF;
  END IF;
  FOR locked IN SELECT DISTINCT a FROM unnest(p_cap_assets) AS a ORDER BY a LOOP
    PERFORM pg_advisory_xact_lock(hashtextextended('policy-spend:' || p_user || ':' || locked, 0));
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(p_cap_assets, 1), 0) LOOP
    v_kind := CASE WHEN p_cap_wallet[i] THEN 'wallet' ELSE 'user' END;
    v_who := CASE WHEN p_cap_wallet[i] THEN p_wallet::text ELSE p_user END;
    -- No row lock: every writer of a total that a check reads holds this check's advisory lock
    -- (checks, expiries and releases), or only adds spend created now (reservations without a cap).
    SELECT t.total, t.counted_after INTO used, v_after FROM policy_spend_totals t
     WHERE t.kind = v_kind AND t.who = v_who AND t.asset = p_cap_assets[i];
    -- Wallet and user sums are separate statements so that each uses its index.
    IF NOT FOUND THEN
      IF p_cap_wallet[i] THEN
        SELECT coalesce(sum(s.amount), 0) INTO used FROM policy_spend s
         WHERE s.wallet_id = p_wallet AND s.asset = p_cap_assets[i] AND s.released_at IS NULL AND s.created_at > cutoff;
      ELSE
        SELECT coalesce(sum(s.amount), 0) INTO used FROM policy_spend s
         WHERE s.user_id = p_user AND s.asset = p_cap_assets[i] AND s.released_at IS NULL AND s.created_at > cutoff;
      END IF;
      INSERT INTO policy_spend_totals (kind, who, asset, total, counted_after) VALUES (v_kind, v_who, p_cap_assets[i], used, cutoff);
    ELSE
      IF p_cap_wallet[i] THEN
        SELECT coalesce(sum(s.amount), 0) INTO expired FROM policy_spend s
         WHERE s.wallet_id = p_wallet AND s.asset = p_cap_assets[i] AND s.released_at IS NULL AND s.created_at > v_after AND s.created_at <= cutoff;
      ELSE
        SELECT coalesce(sum(s.amount), 0) INTO expired FROM policy_spend s
         WHERE s.user_id = p_user AND s.asset = p_cap_assets[i] AND s.released_at IS NULL AND s.created_at > v_after AND s.created_at <= cutoff;
      END IF;
      -- Nothing left the window: the total stands, and the next check looks at the same span again.
      IF expired > 0 THEN
        used := used - expired;
        UPDATE policy_spend_totals t SET total = t.total - expired, counted_after = cutoff
         WHERE t.kind = v_kind AND t.who = v_who AND t.asset = p_cap_assets[i];
      END IF;
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
    UPDATE policy_spend_totals t SET total = t.total + x.m FROM unnest(p_assets, p_amounts) AS x(a, m)
     WHERE t.asset = x.a AND ((t.kind = 'wallet' AND t.who = p_wallet::text) OR (t.kind = 'user' AND t.who = p_user));
  END IF;
  outcome := 'ok';
END $$;

-- A release gives back what `p_ref` reserved, and takes it off the totals that count it, under the
-- advisory locks the checks of those totals take (so a check never expires a row being released).
CREATE FUNCTION policy_release(p_ref text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  held record;
BEGIN
  FOR held IN SELECT DISTINCT user_id, asset FROM policy_spend WHERE ref = p_ref AND released_at IS NULL ORDER BY user_id, asset LOOP
    PERFORM pg_advisory_xact_lock(hashtextextended('policy-spend:' || held.user_id || ':' || held.asset, 0));
  END LOOP;
  WITH released AS (
    UPDATE policy_spend SET released_at = now() WHERE ref = p_ref AND released_at IS NULL
    RETURNING asset, user_id, wallet_id, amount, created_at
  )
  UPDATE policy_spend_totals t SET total = t.total - r.amount FROM released r
   WHERE t.asset = r.asset AND r.created_at > t.counted_after
     AND ((t.kind = 'wallet' AND t.who = r.wallet_id::text) OR (t.kind = 'user' AND t.who = r.user_id));
END $$;

-- Functions are executable by PUBLIC unless revoked: only the runtime role calls these. Both run
-- with the caller's rights, so the runtime role keeps exactly its table privileges (and may move
-- the epoch, which only makes replicas reload).
REVOKE EXECUTE ON FUNCTION policy_reserve(bigint, text, text, uuid, text[], numeric[], boolean[], text[], numeric[], boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION policy_release(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION policy_epoch_bump() FROM PUBLIC;
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT SELECT, UPDATE (epoch) ON policy_epoch TO %I', runtime);
  EXECUTE format('GRANT EXECUTE ON FUNCTION policy_reserve(bigint, text, text, uuid, text[], numeric[], boolean[], text[], numeric[], boolean) TO %I', runtime);
  EXECUTE format('GRANT EXECUTE ON FUNCTION policy_release(text) TO %I', runtime);
  EXECUTE format('GRANT EXECUTE ON FUNCTION policy_epoch_bump() TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (total, counted_after) ON policy_spend_totals TO %I', runtime);
END $$;

-- Down Migration
DROP FUNCTION policy_release(text);
DROP TABLE policy_spend_totals;
DROP FUNCTION policy_reserve(bigint, text, text, uuid, text[], numeric[], boolean[], text[], numeric[], boolean);
DROP TRIGGER policies_move_epoch ON policies;
DROP FUNCTION policy_epoch_bump();
DROP TABLE policy_epoch;
