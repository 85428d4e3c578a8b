-- Tenancy on every table: documents, idempotency keys and scheduled command ids are per
-- tenant ('' for none), so two tenants never overwrite or refuse each other's rows.
-- SQLite cannot change a primary key in place: each table is copied into its new shape.
CREATE TABLE documents_new (
    tenant_id   TEXT NOT NULL DEFAULT '',
    collection  TEXT NOT NULL,
    id          TEXT NOT NULL,
    version     INTEGER NOT NULL,
    document    TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, collection, id)
);
INSERT INTO documents_new (collection, id, version, document, updated_at)
    SELECT collection, id, version, document, updated_at FROM documents;
DROP TABLE documents;
ALTER TABLE documents_new RENAME TO documents;

CREATE TABLE processed_commands_new (
    tenant_id        TEXT NOT NULL DEFAULT '',
    key              BLOB NOT NULL,
    processed_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
INSERT INTO processed_commands_new (key, processed_at_ms) SELECT key, processed_at_ms FROM processed_commands;
DROP TABLE processed_commands;
ALTER TABLE processed_commands_new RENAME TO processed_commands;

CREATE TABLE scheduled_commands_new (
    id                BLOB NOT NULL,
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
    created_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO scheduled_commands_new SELECT id, command_type, payload, due_at_ms, correlation_id, causation_id,
    tenant_id, principal, headers, attempts, last_error, dead, claimed_by, claimed_until_ms, created_at_ms
    FROM scheduled_commands;
DROP TABLE scheduled_commands;
ALTER TABLE scheduled_commands_new RENAME TO scheduled_commands;
CREATE INDEX IF NOT EXISTS scheduled_commands_due ON scheduled_commands (due_at_ms) WHERE dead = 0;
