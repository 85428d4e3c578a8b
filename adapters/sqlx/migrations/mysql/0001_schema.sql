-- The schema of the other databases, in one migration. Identifiers are text of a
-- binary collation that does not pad (`{bin}`): `A` and `a`, `a` and `a ` are distinct.
-- JSON columns are LONGTEXT that must be JSON (a CHECK constraint, as MariaDB's own
-- JSON type). Times are DATETIME(3): UTC, to the millisecond. Every statement can run
-- again after a failure part way (DDL is not transactional here).

-- Events: the unique key enforces one writer per stream version. Positions are
-- assigned while the commit holds the row of `event_lock`, so position order is
-- commit order.
CREATE TABLE IF NOT EXISTS events (
    position        BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant_id       VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
    stream_type     VARCHAR(255) COLLATE {bin} NOT NULL,
    stream_id       VARCHAR(255) COLLATE {bin} NOT NULL,
    version         BIGINT NOT NULL,
    event_id        BINARY(16) NOT NULL,
    event_type      VARCHAR(255) COLLATE {bin} NOT NULL,
    schema_version  BIGINT NOT NULL,
    payload         LONGTEXT NOT NULL CHECK (json_valid(payload)),
    correlation_id  BINARY(16),
    causation_id    BINARY(16),
    principal       TEXT COLLATE {bin},
    headers         LONGTEXT CHECK (headers IS NULL OR json_valid(headers)),
    occurred_at     DATETIME(3) NOT NULL,
    UNIQUE KEY events_stream_version (tenant_id, stream_type, stream_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row, locked by every commit that appends events until it ends.
CREATE TABLE IF NOT EXISTS event_lock (id TINYINT NOT NULL PRIMARY KEY) ENGINE=InnoDB;
INSERT IGNORE INTO event_lock (id) VALUES (1);

CREATE TABLE IF NOT EXISTS states (
    tenant_id    VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
    stream_type  VARCHAR(255) COLLATE {bin} NOT NULL,
    stream_id    VARCHAR(255) COLLATE {bin} NOT NULL,
    version      BIGINT NOT NULL,
    state        LONGTEXT NOT NULL CHECK (json_valid(state)),
    updated_at   DATETIME(3) NOT NULL,
    PRIMARY KEY (tenant_id, stream_type, stream_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS snapshots (
    tenant_id    VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
    stream_type  VARCHAR(255) COLLATE {bin} NOT NULL,
    stream_id    VARCHAR(255) COLLATE {bin} NOT NULL,
    version      BIGINT NOT NULL,
    state        LONGTEXT NOT NULL CHECK (json_valid(state)),
    taken_at     DATETIME(3) NOT NULL,
    PRIMARY KEY (tenant_id, stream_type, stream_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS outbox (
    position         BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id               BINARY(16) NOT NULL,
    topic            TEXT COLLATE {bin} NOT NULL,
    payload          LONGTEXT NOT NULL CHECK (json_valid(payload)),
    headers          LONGTEXT NOT NULL DEFAULT ('{}') CHECK (json_valid(headers)),
    created_at       DATETIME(3) NOT NULL,
    status           VARCHAR(16) NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  DATETIME(3) NOT NULL,
    published_at     DATETIME(3),
    claimed_by       TEXT,
    claimed_until    DATETIME(3),
    UNIQUE KEY outbox_id (id),
    KEY outbox_pending (status, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS checkpoints (
    projection   VARCHAR(255) COLLATE {bin} NOT NULL,
    `partition`  BIGINT NOT NULL,
    commit_id    BIGINT NOT NULL,
    position     BIGINT NOT NULL,
    updated_at   DATETIME(3) NOT NULL,
    PRIMARY KEY (projection, `partition`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS leases (
    projection   VARCHAR(255) COLLATE {bin} NOT NULL,
    `partition`  BIGINT NOT NULL,
    owner        TEXT COLLATE {bin} NOT NULL,
    expires_at   DATETIME(3) NOT NULL,
    PRIMARY KEY (projection, `partition`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS dead_letters (
    projection   VARCHAR(255) COLLATE {bin} NOT NULL,
    event_id     BINARY(16) NOT NULL,
    position     BIGINT NOT NULL,
    commit_id    BIGINT NOT NULL,
    tenant_id    VARCHAR(128) COLLATE {bin} NOT NULL,
    stream_type  VARCHAR(255) COLLATE {bin} NOT NULL,
    stream_id    VARCHAR(255) COLLATE {bin} NOT NULL,
    version      BIGINT NOT NULL,
    event_type   VARCHAR(255) COLLATE {bin} NOT NULL,
    error        TEXT NOT NULL,
    failed_at    DATETIME(3) NOT NULL,
    PRIMARY KEY (projection, event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS documents (
    tenant_id   VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
    collection  VARCHAR(255) COLLATE {bin} NOT NULL,
    id          VARCHAR(255) COLLATE {bin} NOT NULL,
    version     BIGINT NOT NULL,
    document    LONGTEXT NOT NULL CHECK (json_valid(document)),
    updated_at  DATETIME(3) NOT NULL,
    PRIMARY KEY (tenant_id, collection, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS processed_commands (
    tenant_id     VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
    `key`         BINARY(16) NOT NULL,
    processed_at  DATETIME(3) NOT NULL,
    PRIMARY KEY (tenant_id, `key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS sagas (
    tenant_id   VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
    saga_type   VARCHAR(255) COLLATE {bin} NOT NULL,
    saga_id     VARCHAR(255) COLLATE {bin} NOT NULL,
    status      VARCHAR(32) NOT NULL,
    version     BIGINT NOT NULL,
    wake_at     DATETIME(3),
    data        LONGTEXT NOT NULL CHECK (json_valid(data)),
    created_at  DATETIME(3) NOT NULL,
    updated_at  DATETIME(3) NOT NULL,
    PRIMARY KEY (tenant_id, saga_type, saga_id),
    KEY sagas_wake (wake_at),
    KEY sagas_by_type_status (saga_type, status, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS scheduled_commands (
    tenant_id       VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
    id              BINARY(16) NOT NULL,
    command_type    VARCHAR(255) COLLATE {bin} NOT NULL,
    payload         LONGTEXT NOT NULL CHECK (json_valid(payload)),
    due_at          DATETIME(3) NOT NULL,
    correlation_id  BINARY(16),
    causation_id    BINARY(16),
    principal       TEXT COLLATE {bin},
    headers         LONGTEXT CHECK (headers IS NULL OR json_valid(headers)),
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    dead            BOOLEAN NOT NULL DEFAULT FALSE,
    claimed_by      TEXT,
    claimed_until   DATETIME(3),
    created_at      DATETIME(3) NOT NULL,
    PRIMARY KEY (tenant_id, id),
    KEY scheduled_commands_due (dead, due_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
