-- One schema shape with the other databases: columns keep the names they have there.
-- Times that SQL compares (due times, claims, leases, saga times) stay integers, in
-- milliseconds since the epoch; the outbox's unused text copy of its due time goes.
ALTER TABLE outbox RENAME COLUMN claimed_until_ms TO claimed_until;
DROP INDEX IF EXISTS outbox_pending;
ALTER TABLE outbox DROP COLUMN next_attempt_at;
ALTER TABLE outbox RENAME COLUMN next_attempt_ms TO next_attempt_at;
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, next_attempt_at);
ALTER TABLE leases RENAME COLUMN expires_at_ms TO expires_at;
ALTER TABLE processed_commands RENAME COLUMN processed_at_ms TO processed_at;
ALTER TABLE sagas RENAME COLUMN wake_at_ms TO wake_at;
ALTER TABLE sagas RENAME COLUMN created_at_ms TO created_at;
ALTER TABLE sagas RENAME COLUMN updated_at_ms TO updated_at;
ALTER TABLE scheduled_commands RENAME COLUMN due_at_ms TO due_at;
ALTER TABLE scheduled_commands RENAME COLUMN claimed_until_ms TO claimed_until;
ALTER TABLE scheduled_commands RENAME COLUMN created_at_ms TO created_at;
