-- Idempotency keys of the commands already committed, written in the command's own
-- statement: a second commit under one key fails on this constraint and writes nothing.
CREATE TABLE IF NOT EXISTS {schema}.processed_commands (
    key           UUID NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT processed_commands_key PRIMARY KEY (key)
);

-- Saga instances, versioned for optimistic concurrency. `data` is `json`: stored as
-- written, loaded back as the same text. Times have millisecond precision.
CREATE TABLE IF NOT EXISTS {schema}.sagas (
    tenant_id   TEXT NOT NULL DEFAULT '',
    saga_type   TEXT NOT NULL,
    saga_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    wake_at     TIMESTAMPTZ,
    data        JSON NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, saga_type, saga_id)
);
CREATE INDEX IF NOT EXISTS sagas_wake ON {schema}.sagas (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS sagas_by_type_status ON {schema}.sagas (saga_type, status, created_at);

-- Commands waiting for their time. A worker holds a claim until claimed_until; dead
-- commands stay until they are scheduled again or cancelled. Metadata is kept in
-- columns as for events (tenant '' for none, headers NULL when empty).
CREATE TABLE IF NOT EXISTS {schema}.scheduled_commands (
    id              UUID PRIMARY KEY,
    command_type    TEXT NOT NULL,
    payload         JSON NOT NULL,
    due_at          TIMESTAMPTZ NOT NULL,
    correlation_id  UUID,
    causation_id    UUID,
    tenant_id       TEXT NOT NULL DEFAULT '',
    principal       TEXT,
    headers         JSON,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    dead            BOOLEAN NOT NULL DEFAULT false,
    claimed_by      TEXT,
    claimed_until   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS scheduled_commands_due ON {schema}.scheduled_commands (due_at) WHERE NOT dead;
