-- Background jobs (see the PostgreSQL migration of the same name). Times SQL compares
-- are integers, in milliseconds since the epoch.
CREATE TABLE IF NOT EXISTS jobs (
    id                  BLOB NOT NULL PRIMARY KEY,
    tenant_id           TEXT NOT NULL DEFAULT '',
    job_type            TEXT NOT NULL,
    payload             TEXT NOT NULL,
    correlation_id      BLOB,
    causation_id        BLOB,
    principal           TEXT,
    headers             TEXT,
    status              TEXT NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    run_at              INTEGER NOT NULL,
    lease_owner         TEXT,
    lease_until         INTEGER,
    heartbeat_at        INTEGER,
    progress_total      INTEGER,
    progress_processed  INTEGER NOT NULL DEFAULT 0,
    result              TEXT,
    error               TEXT,
    cancel_requested    INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (run_at, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, updated_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant_id, status, updated_at);
