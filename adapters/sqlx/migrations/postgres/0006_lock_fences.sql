-- Fencing tokens of PostgreSQL advisory locks: one counter per locked resource.
CREATE TABLE IF NOT EXISTS {schema}.lock_fences (
    resource  TEXT PRIMARY KEY,
    fence     BIGINT NOT NULL
);
