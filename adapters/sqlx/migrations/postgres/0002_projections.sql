-- Outbox claims: a relay holds a row until claimed_until.
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS claimed_by TEXT;
ALTER TABLE {schema}.outbox ADD COLUMN IF NOT EXISTS claimed_until TIMESTAMPTZ;

-- Where each projection partition stands, moved in the read model's transaction.
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    projection  TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    commit_id   BIGINT NOT NULL,
    position    BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, partition)
);

-- One active worker per projection partition.
CREATE TABLE IF NOT EXISTS {schema}.leases (
    projection  TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    owner       TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (projection, partition)
);

-- Events a projection gave up on.
CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
    projection   TEXT NOT NULL,
    event_id     UUID NOT NULL,
    position     BIGINT NOT NULL,
    commit_id    BIGINT NOT NULL,
    tenant_id    TEXT NOT NULL,
    stream_type  TEXT NOT NULL,
    stream_id    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    event_type   TEXT NOT NULL,
    error        TEXT NOT NULL,
    failed_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (projection, event_id)
);

-- The JSON document store for read models.
CREATE TABLE IF NOT EXISTS {schema}.documents (
    collection  TEXT NOT NULL,
    id          TEXT NOT NULL,
    version     BIGINT NOT NULL,
    document    JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, id)
);
