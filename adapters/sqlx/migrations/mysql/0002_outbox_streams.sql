-- The stream of each outbox row (its `stream` header): a stream's rows leave in order.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS stream_key TEXT COLLATE {bin};
CREATE INDEX IF NOT EXISTS outbox_streams ON outbox (stream_key(191), position);
-- Claims walk the pending rows in order without reading past the published ones.
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (status, position);
