-- Up Migration

-- Transactions the policy holds back until approvers approve them (wallet.approval.*). One row per
-- request: `request_key` makes a repeated request (same idempotency key, same bytes to sign) find
-- the same row. `request` is the operation's request as it was sent, executed once approved;
-- `intent` the decoded transaction, `rule` the approval threshold that applied. A pending request
-- past `expires_at` is expired (computed when read: nothing has to run at expiry).
CREATE TABLE approvals (
  approval_id   uuid        PRIMARY KEY,
  request_key   text        NOT NULL UNIQUE,
  operation     text        NOT NULL,
  user_id       text        NOT NULL,
  wallet_id     uuid        NOT NULL,
  chain         text        NOT NULL,
  request       jsonb       NOT NULL,
  intent        jsonb       NOT NULL,
  rule          jsonb       NOT NULL,
  requested_by  text        NOT NULL,
  required      integer     NOT NULL CHECK (required >= 1),
  status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'completed', 'failed', 'rejected')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  decided_at    timestamptz,
  rejected_by   text,
  reject_reason text,
  result        jsonb,
  error         jsonb
);
CREATE INDEX approvals_newest ON approvals (created_at DESC);

-- One row per distinct approver of a request: approving twice counts once.
CREATE TABLE approval_signoffs (
  approval_id uuid        NOT NULL REFERENCES approvals,
  approver    text        NOT NULL,
  approved_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (approval_id, approver)
);

-- The runtime role keeps requests and sign-offs and moves a request through its states; it never
-- deletes either, nor changes what a request asks for or who asked.
DO $$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT SELECT, INSERT, UPDATE (status, decided_at, rejected_by, reject_reason, result, error) ON approvals TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT ON approval_signoffs TO %I', runtime);
END $$;

-- Down Migration
DROP TABLE approval_signoffs;
DROP TABLE approvals;
