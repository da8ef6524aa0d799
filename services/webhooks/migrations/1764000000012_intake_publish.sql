-- Up Migration

-- The intake publishes a delivery's `deposit.received` (and its audit event) itself, straight after the
-- INSERT, instead of through an outbox row and a relay pass. `job_published` says whether that publish
-- was confirmed by the broker: false from the intake's INSERT until the confirm is recorded (in batches,
-- after the 200), true for every other row (reopened reversals are not published by the intake, and rows
-- from before this migration were published through the outbox). The republisher sends again whatever
-- stays false past its grace period (a process killed between its commit and the confirm, a broker
-- that failed the publish); consumers are idempotent by deposit id and audit by event id.
ALTER TABLE deposits ADD COLUMN job_published boolean NOT NULL DEFAULT true;
CREATE INDEX deposits_unpublished ON deposits (created_at) WHERE NOT job_published;

-- The runtime role sets the flag (the intake after the confirm, the republisher after its sweep).
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT INSERT (job_published), UPDATE (job_published) ON deposits TO %I', runtime);
END $$;

-- Down Migration
DROP INDEX deposits_unpublished;
ALTER TABLE deposits DROP COLUMN job_published;
