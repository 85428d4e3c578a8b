-- Outbox claims and due times in milliseconds since the epoch (compared as numbers).
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until_ms INTEGER;
ALTER TABLE outbox ADD COLUMN next_attempt_ms INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS checkpoints (
    projection  TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    commit_id   INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (projection, partition)
);

CREATE TABLE IF NOT EXISTS leases (
    projection     TEXT NOT NULL,
    partition      INTEGER NOT NULL,
    owner          TEXT NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (projection, partition)
);

CREATE TABLE IF NOT EXISTS dead_letters (
    projection   TEXT NOT NULL,
    event_id     BLOB NOT NULL,
    position     INTEGER NOT NULL,
    commit_id    INTEGER NOT NULL,
    tenant_id    TEXT NOT NULL,
    stream_type  TEXT NOT NULL,
    stream_id    TEXT NOT NULL,
    version      INTEGER NOT NULL,
    event_type   TEXT NOT NULL,
    error        TEXT NOT NULL,
    failed_at    TEXT NOT NULL,
    PRIMARY KEY (projection, event_id)
);

CREATE TABLE IF NOT EXISTS documents (
    collection  TEXT NOT NULL,
    id          TEXT NOT NULL,
    version     INTEGER NOT NULL,
    document    TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (collection, id)
);
