-- The stream of each outbox row (its `stream` header): a stream's rows leave in order.
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS stream_key TEXT;
CREATE INDEX IF NOT EXISTS outbox_streams ON {schema}.outbox (stream_key, position) WHERE status = 'pending';
-- Claims walk the pending rows in order without reading past the published ones.
CREATE INDEX IF NOT EXISTS outbox_queue ON {schema}.outbox (position) WHERE status = 'pending';
-- Room on each page, so that claiming a row (columns no index holds) updates it in place.
ALTER TABLE {schema}.outbox SET (fillfactor = 50);
