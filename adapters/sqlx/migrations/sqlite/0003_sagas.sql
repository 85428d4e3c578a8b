-- Idempotency keys of the commands already committed, written in the command's own
-- transaction: a second commit under one key fails on the primary key.
CREATE TABLE IF NOT EXISTS processed_commands (
    key              BLOB NOT NULL PRIMARY KEY,
    processed_at_ms  INTEGER NOT NULL
);

-- Saga instances, versioned for optimistic concurrency. Times in milliseconds since the
-- epoch (compared as numbers).
CREATE TABLE IF NOT EXISTS sagas (
    tenant_id      TEXT NOT NULL DEFAULT '',
    saga_type      TEXT NOT NULL,
    saga_id        TEXT NOT NULL,
    status         TEXT NOT NULL,
    version        INTEGER NOT NULL,
    wake_at_ms     INTEGER,
    data           TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, saga_type, saga_id)
);
CREATE INDEX IF NOT EXISTS sagas_wake ON sagas (wake_at_ms) WHERE wake_at_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS sagas_by_type_status ON sagas (saga_type, status, created_at_ms);

-- Commands waiting for their time; times in milliseconds since the epoch.
CREATE TABLE IF NOT EXISTS scheduled_commands (
    id                BLOB NOT NULL PRIMARY KEY,
    command_type      TEXT NOT NULL,
    payload           TEXT NOT NULL,
    due_at_ms         INTEGER NOT NULL,
    correlation_id    BLOB,
    causation_id      BLOB,
    tenant_id         TEXT NOT NULL DEFAULT '',
    principal         TEXT,
    headers           TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    dead              INTEGER NOT NULL DEFAULT 0,
    claimed_by        TEXT,
    claimed_until_ms  INTEGER,
    created_at_ms     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS scheduled_commands_due ON scheduled_commands (due_at_ms) WHERE dead = 0;
