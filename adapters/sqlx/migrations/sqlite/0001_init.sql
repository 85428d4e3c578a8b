-- Events: one row per event. The unique key enforces one writer per stream version
-- (optimistic concurrency); SQLite commits one writer at a time, so position order is
-- commit order.
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT NOT NULL DEFAULT '',
    stream_type     TEXT NOT NULL,
    stream_id       TEXT NOT NULL,
    version         INTEGER NOT NULL,
    event_id        BLOB NOT NULL,
    event_type      TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT NOT NULL,
    correlation_id  BLOB,
    causation_id    BLOB,
    principal       TEXT,
    headers         TEXT,
    occurred_at     TEXT NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (tenant_id, stream_type, stream_id, version)
);

CREATE TABLE IF NOT EXISTS states (
    tenant_id    TEXT NOT NULL DEFAULT '',
    stream_type  TEXT NOT NULL,
    stream_id    TEXT NOT NULL,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, stream_type, stream_id)
);

CREATE TABLE IF NOT EXISTS snapshots (
    tenant_id    TEXT NOT NULL DEFAULT '',
    stream_type  TEXT NOT NULL,
    stream_id    TEXT NOT NULL,
    version      INTEGER NOT NULL,
    state        TEXT NOT NULL,
    taken_at     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, stream_type, stream_id)
);

CREATE TABLE IF NOT EXISTS outbox (
    position         INTEGER PRIMARY KEY AUTOINCREMENT,
    id               BLOB NOT NULL UNIQUE,
    topic            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    headers          TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  TEXT NOT NULL,
    published_at     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, next_attempt_at);
