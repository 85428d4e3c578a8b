-- The stream of each outbox row (its `stream` header): a stream's rows leave in order.
ALTER TABLE outbox ADD COLUMN stream_key TEXT;
CREATE INDEX IF NOT EXISTS outbox_streams ON outbox (stream_key, position) WHERE status = 'pending';
-- Claims walk the pending rows in order without reading past the published ones.
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (position) WHERE status = 'pending';
