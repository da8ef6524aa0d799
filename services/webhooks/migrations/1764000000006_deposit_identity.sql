-- Up Migration

-- A deposit row is a delivery's claim, no longer the transfer itself: deliveries may name the same
-- (chain, tx_hash, event_index) with different claims (a false one is failed, the true one credited),
-- so the dedupe of deliveries is the whole claim. What is credited at most once is the transfer at
-- its on-chain identity, `credit_key` (packages/chains `creditKey`), unique in the ledger below.
ALTER TABLE deposits DROP CONSTRAINT deposits_chain_tx_hash_event_index_key;
ALTER TABLE deposits ADD CONSTRAINT deposits_claim UNIQUE (chain, tx_hash, event_index, token, amount, to_address);

-- confirming: matches the chain, not final yet. unlisted: a final token transfer whose token is not
-- in the allow-list (recorded, not credited). reversed: credited, then its transfer left the chain.
ALTER TABLE deposits DROP CONSTRAINT deposits_status_check;
ALTER TABLE deposits ADD CONSTRAINT deposits_status_check
  CHECK (status IN ('pending', 'confirming', 'credited', 'failed', 'rejected', 'unlisted', 'reversed'));

-- What the chain says, set when the claim is found there: the credit key, the asset (`native`, the
-- ERC-20 contract checksummed, the SPL mint) and its decimals (read from the chain, never the webhook).
ALTER TABLE deposits ADD COLUMN credit_key text, ADD COLUMN asset text, ADD COLUMN decimals integer;

-- Reconciliation reads open deposits (pending or confirming) by age, and recent credits to re-check.
DROP INDEX deposits_pending;
CREATE INDEX deposits_open ON deposits (created_at) WHERE status IN ('pending', 'confirming');
CREATE INDEX deposits_credited ON deposits (updated_at) WHERE status = 'credited';

-- The ledger: a credit, and at most one compensating reversal (negative amount) per deposit.
ALTER TABLE ledger ADD COLUMN kind text NOT NULL DEFAULT 'credit' CHECK (kind IN ('credit', 'reversal'));
ALTER TABLE ledger ADD COLUMN credit_key text, ADD COLUMN asset text, ADD COLUMN decimals integer;
-- Entries before this migration are native credits keyed by the delivery's eventIndex.
UPDATE ledger l SET credit_key = d.chain || ':' || CASE WHEN d.chain = 'ETH' THEN lower(d.tx_hash) ELSE d.tx_hash END || ':native:' || d.event_index,
                    asset = 'native', decimals = CASE d.chain WHEN 'ETH' THEN 18 WHEN 'SOL' THEN 9 ELSE 8 END
  FROM deposits d WHERE d.deposit_id = l.deposit_id;
UPDATE deposits d SET credit_key = l.credit_key, asset = l.asset, decimals = l.decimals FROM ledger l WHERE l.deposit_id = d.deposit_id;
ALTER TABLE ledger ALTER COLUMN credit_key SET NOT NULL, ALTER COLUMN asset SET NOT NULL, ALTER COLUMN decimals SET NOT NULL;
ALTER TABLE ledger DROP CONSTRAINT ledger_deposit_id_key;
ALTER TABLE ledger ADD CONSTRAINT ledger_deposit_kind UNIQUE (deposit_id, kind);
-- One on-chain transfer is credited once, whatever the deliveries say.
CREATE UNIQUE INDEX ledger_credit_once ON ledger (credit_key) WHERE kind = 'credit';
ALTER TABLE ledger DROP CONSTRAINT ledger_amount_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_amount_sign CHECK ((kind = 'credit' AND amount >= 0) OR (kind = 'reversal' AND amount <= 0));

-- The runtime role records what the chain says of a deposit (its credit key, asset and decimals)
-- besides its status; ledger entries stay insert-only (a reversal is a new, negative entry).
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT UPDATE (credit_key, asset, decimals) ON deposits TO %I', runtime);
END $$;

-- Down Migration
ALTER TABLE ledger DROP CONSTRAINT ledger_amount_sign;
DELETE FROM ledger WHERE kind = 'reversal';
ALTER TABLE ledger ADD CONSTRAINT ledger_amount_check CHECK (amount >= 0);
DROP INDEX ledger_credit_once;
ALTER TABLE ledger DROP CONSTRAINT ledger_deposit_kind;
ALTER TABLE ledger ADD CONSTRAINT ledger_deposit_id_key UNIQUE (deposit_id);
ALTER TABLE ledger DROP COLUMN kind, DROP COLUMN credit_key, DROP COLUMN asset, DROP COLUMN decimals;
DROP INDEX deposits_credited;
DROP INDEX deposits_open;
CREATE INDEX deposits_pending ON deposits (created_at) WHERE status = 'pending';
UPDATE deposits SET status = 'failed' WHERE status IN ('unlisted', 'reversed');
UPDATE deposits SET status = 'pending' WHERE status = 'confirming';
ALTER TABLE deposits DROP CONSTRAINT deposits_status_check;
ALTER TABLE deposits ADD CONSTRAINT deposits_status_check CHECK (status IN ('pending', 'credited', 'failed', 'rejected'));
ALTER TABLE deposits DROP COLUMN credit_key, DROP COLUMN asset, DROP COLUMN decimals;
ALTER TABLE deposits DROP CONSTRAINT deposits_claim;
ALTER TABLE deposits ADD CONSTRAINT deposits_chain_tx_hash_event_index_key UNIQUE (chain, tx_hash, event_index);
