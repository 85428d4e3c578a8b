-- Background jobs. A job is enqueued pending (with the command that enqueued it, in its
-- transaction), claimed by a worker that holds a lease until lease_until (renewed by
-- heartbeats), and ends completed, failed or cancelled. Metadata is kept in columns as
-- for events (tenant '' for none, headers NULL when empty). Times have millisecond
-- precision; the caller's clock decides what is due and which leases ran out.
CREATE TABLE IF NOT EXISTS {schema}.jobs (
    id                  UUID PRIMARY KEY,
    tenant_id           TEXT NOT NULL DEFAULT '',
    job_type            TEXT NOT NULL,
    payload             JSON NOT NULL,
    correlation_id      UUID,
    causation_id        UUID,
    principal           TEXT,
    headers             JSON,
    status              TEXT NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    run_at              TIMESTAMPTZ NOT NULL,
    lease_owner         TEXT,
    lease_until         TIMESTAMPTZ,
    heartbeat_at        TIMESTAMPTZ,
    progress_total      BIGINT,
    progress_processed  BIGINT NOT NULL DEFAULT 0,
    result              JSON,
    error               TEXT,
    cancel_requested    BOOLEAN NOT NULL DEFAULT false,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
-- Claims walk the due pending jobs; the sweeper the running ones by lease.
CREATE INDEX IF NOT EXISTS jobs_due ON {schema}.jobs (run_at, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_leases ON {schema}.jobs (lease_until) WHERE status = 'running';
-- Operators list by status and tenant, most recently changed first.
CREATE INDEX IF NOT EXISTS jobs_by_status ON {schema}.jobs (status, updated_at, id);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON {schema}.jobs (tenant_id, status, updated_at);
