-- Up Migration

-- A delivery whose message another relay holds, and every duplicate delivery, look their outbox row
-- up by message id; without an index that is a scan of the whole backlog, which is largest exactly
-- when the broker has been down.
CREATE INDEX IF NOT EXISTS outbox_message_id ON outbox (message_id);

-- Down Migration
DROP INDEX IF EXISTS outbox_message_id;
