-- The undo log: one row per undo or redo of an event, written in the commit of the
-- command it sent. The primary key lets one writer through per tenant, event, generation
-- and action, so two concurrent undos of one event cannot both commit.
CREATE TABLE IF NOT EXISTS undo_log (
    tenant_id     TEXT NOT NULL DEFAULT '',
    event_id      BLOB NOT NULL,
    generation    INTEGER NOT NULL,
    action        TEXT NOT NULL,
    stream_type   TEXT NOT NULL,
    stream_id     TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    command_type  TEXT NOT NULL,
    command_key   BLOB NOT NULL,
    recorded_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, event_id, generation, action)
);
CREATE INDEX IF NOT EXISTS undo_log_streams ON undo_log (tenant_id, stream_type, stream_id);
-- `undo` finds its event by id.
CREATE INDEX IF NOT EXISTS events_by_id ON events (event_id);
