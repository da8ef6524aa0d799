-- Up Migration

-- One row per reconciliation pass, written when the pass starts (status `running`) and finished
-- with its counts. A row left `running` by a crashed holder is marked `abandoned` by the next pass
-- that takes the lock. `report` holds the counts and the drift the pass saw (no secrets: ids,
-- counts and error codes only).
CREATE TABLE reconciliation_runs (
  run_id      uuid        PRIMARY KEY,
  instance    text        NOT NULL,
  trigger     text        NOT NULL CHECK (trigger IN ('schedule', 'manual')),
  status      text        NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'abandoned')),
  started_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  report      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  error       text
);
CREATE INDEX reconciliation_runs_started ON reconciliation_runs (started_at DESC);

-- Down Migration
DROP TABLE reconciliation_runs;
