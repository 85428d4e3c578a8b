-- The undo log: one row per undo or redo of an event, written in the commit of the
-- command it sent. The primary key lets one writer through per tenant, event, generation
-- and action, so two concurrent undos of one event cannot both commit.
CREATE TABLE IF NOT EXISTS {schema}.undo_log (
    tenant_id     TEXT NOT NULL DEFAULT '',
    event_id      UUID NOT NULL,
    generation    BIGINT NOT NULL,
    action        TEXT NOT NULL,
    stream_type   TEXT NOT NULL,
    stream_id     TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    command_type  TEXT NOT NULL,
    command_key   UUID NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT undo_log_entry PRIMARY KEY (tenant_id, event_id, generation, action)
);
CREATE INDEX IF NOT EXISTS undo_log_streams ON {schema}.undo_log (tenant_id, stream_type, stream_id);
-- `undo` finds its event by id.
CREATE INDEX IF NOT EXISTS events_by_id ON {schema}.events (event_id);
