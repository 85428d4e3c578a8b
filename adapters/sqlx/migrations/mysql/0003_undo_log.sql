-- The undo log: one row per undo or redo of an event, written in the commit of the
-- command it sent. The primary key lets one writer through per tenant, event, generation
-- and action, so two concurrent undos of one event cannot both commit.
CREATE TABLE IF NOT EXISTS undo_log (
    tenant_id     VARCHAR(128) COLLATE {bin} NOT NULL DEFAULT '',
    event_id      BINARY(16) NOT NULL,
    generation    BIGINT NOT NULL,
    action        VARCHAR(16) COLLATE {bin} NOT NULL,
    stream_type   VARCHAR(255) COLLATE {bin} NOT NULL,
    stream_id     VARCHAR(255) COLLATE {bin} NOT NULL,
    event_type    VARCHAR(255) COLLATE {bin} NOT NULL,
    command_type  VARCHAR(255) COLLATE {bin} NOT NULL,
    command_key   BINARY(16) NOT NULL,
    recorded_at   DATETIME(3) NOT NULL,
    PRIMARY KEY (tenant_id, event_id, generation, action),
    KEY undo_log_streams (tenant_id, stream_type, stream_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- `undo` finds its event by id.
CREATE INDEX IF NOT EXISTS events_by_id ON events (event_id);
