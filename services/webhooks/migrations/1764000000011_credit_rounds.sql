-- Up Migration

-- A transfer reversed after a reorganisation and mined again is credited again, and never twice at
-- once. Ledger rows stay insert-only: a credit carries its `round`, the number of reversals of its
-- credit key before it, and the key is unique per round among credits. A standing credit (round r, no
-- reversal yet) holds round r; its reversal copies r, so the next credit of that key takes r + 1.
ALTER TABLE ledger ADD COLUMN round integer NOT NULL DEFAULT 0 CHECK (round >= 0);
DROP INDEX ledger_credit_once;
CREATE UNIQUE INDEX ledger_credit_once ON ledger (credit_key, round) WHERE kind = 'credit';

-- A reversed deposit no longer holds its claim: the same claim delivered again (the transfer mined
-- again) is a new deposit, credited in the next round. At most one deposit per claim is not reversed.
ALTER TABLE deposits DROP CONSTRAINT deposits_claim;
CREATE UNIQUE INDEX deposits_claim ON deposits (chain, tx_hash, event_index, token, amount, to_address) WHERE status <> 'reversed';
-- Reconciliation re-checks recent reversals (mined again?) as it re-checks recent credits.
CREATE INDEX deposits_reversed ON deposits (updated_at) WHERE status = 'reversed';

-- The runtime role already inserts ledger rows (every column, `round` included); granted again by
-- column so that this migration says what it relies on.
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT INSERT (round) ON ledger TO %I', runtime);
END $$;

-- Down Migration
DROP INDEX deposits_reversed;
DROP INDEX deposits_claim;
ALTER TABLE deposits ADD CONSTRAINT deposits_claim UNIQUE (chain, tx_hash, event_index, token, amount, to_address);
DROP INDEX ledger_credit_once;
CREATE UNIQUE INDEX ledger_credit_once ON ledger (credit_key) WHERE kind = 'credit';
ALTER TABLE ledger DROP COLUMN round;
