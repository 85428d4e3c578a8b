-- Events: one row per event. The primary key enforces one writer per stream version
-- (optimistic concurrency); (transaction_id, position) is the gap-safe global order.
-- Payloads are `json`: stored as written (no parse into jsonb on insert, no conversion
-- back to text on load); read models that need indexing live in `documents` (jsonb).
CREATE TABLE IF NOT EXISTS {schema}.events (
    position        BIGINT GENERATED ALWAYS AS IDENTITY,
    transaction_id  BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    tenant_id       TEXT NOT NULL DEFAULT '',
    stream_type     TEXT NOT NULL,
    stream_id       TEXT NOT NULL,
    version         BIGINT NOT NULL,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         JSON NOT NULL,
    correlation_id  UUID,
    causation_id    UUID,
    principal       TEXT,
    headers         JSON,
    occurred_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT events_stream_version PRIMARY KEY (tenant_id, stream_type, stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_commit_order ON {schema}.events (transaction_id, position);

-- State rows of state-stored aggregates.
CREATE TABLE IF NOT EXISTS {schema}.states (
    tenant_id    TEXT NOT NULL DEFAULT '',
    stream_type  TEXT NOT NULL,
    stream_id    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    state        JSONB NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, stream_type, stream_id)
);

-- The newest snapshot of each stream.
CREATE TABLE IF NOT EXISTS {schema}.snapshots (
    tenant_id    TEXT NOT NULL DEFAULT '',
    stream_type  TEXT NOT NULL,
    stream_id    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    state        JSONB NOT NULL,
    taken_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, stream_type, stream_id)
);

-- The transactional outbox.
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    position         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               UUID NOT NULL UNIQUE,
    topic            TEXT NOT NULL,
    payload          JSONB NOT NULL,
    headers          JSONB NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at     TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_pending ON {schema}.outbox (next_attempt_at) WHERE status = 'pending';
