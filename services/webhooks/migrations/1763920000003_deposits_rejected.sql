-- Up Migration

-- Reconciliation looks for deposits rejected because their address was unknown when they arrived
-- (the wallet's `wallet.created` event came later) to re-open them once the address is ours.
CREATE INDEX deposits_rejected ON deposits (created_at) WHERE status = 'rejected';

-- Down Migration
DROP INDEX deposits_rejected;
