-- The stream of each outbox row (its `stream` header): a stream's rows leave in order.
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS stream_key TEXT;
CREATE INDEX IF NOT EXISTS outbox_streams ON {schema}.outbox (stream_key, position) WHERE status = 'pending';
