-- JSON columns hold JSON. PostgreSQL refuses anything else by type; here each JSON
-- column refuses it with a trigger, on insert and on update, so a row no reader can
-- decode never gets in. The message starts with `cqrs_ddd: `, which the store reports
-- as `Error::Unstorable`. (Escapes PostgreSQL's jsonb cannot hold, like `\u0000`, are
-- refused by the store before it writes, on both databases alike.)

CREATE TRIGGER IF NOT EXISTS events_payload_json_insert BEFORE INSERT ON events
WHEN json_valid(NEW.payload) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: events.payload must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS events_payload_json_update BEFORE UPDATE OF payload ON events
WHEN json_valid(NEW.payload) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: events.payload must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS events_headers_json_insert BEFORE INSERT ON events
WHEN NEW.headers IS NOT NULL AND json_valid(NEW.headers) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: events.headers must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS events_headers_json_update BEFORE UPDATE OF headers ON events
WHEN NEW.headers IS NOT NULL AND json_valid(NEW.headers) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: events.headers must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS states_state_json_insert BEFORE INSERT ON states
WHEN json_valid(NEW.state) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: states.state must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS states_state_json_update BEFORE UPDATE OF state ON states
WHEN json_valid(NEW.state) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: states.state must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS snapshots_state_json_insert BEFORE INSERT ON snapshots
WHEN json_valid(NEW.state) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: snapshots.state must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS snapshots_state_json_update BEFORE UPDATE OF state ON snapshots
WHEN json_valid(NEW.state) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: snapshots.state must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS outbox_payload_json_insert BEFORE INSERT ON outbox
WHEN json_valid(NEW.payload) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: outbox.payload must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS outbox_payload_json_update BEFORE UPDATE OF payload ON outbox
WHEN json_valid(NEW.payload) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: outbox.payload must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS outbox_headers_json_insert BEFORE INSERT ON outbox
WHEN json_valid(NEW.headers) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: outbox.headers must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS outbox_headers_json_update BEFORE UPDATE OF headers ON outbox
WHEN json_valid(NEW.headers) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: outbox.headers must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS documents_document_json_insert BEFORE INSERT ON documents
WHEN json_valid(NEW.document) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: documents.document must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS documents_document_json_update BEFORE UPDATE OF document ON documents
WHEN json_valid(NEW.document) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: documents.document must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS sagas_data_json_insert BEFORE INSERT ON sagas
WHEN json_valid(NEW.data) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: sagas.data must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS sagas_data_json_update BEFORE UPDATE OF data ON sagas
WHEN json_valid(NEW.data) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: sagas.data must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS scheduled_commands_payload_json_insert BEFORE INSERT ON scheduled_commands
WHEN json_valid(NEW.payload) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: scheduled_commands.payload must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS scheduled_commands_payload_json_update BEFORE UPDATE OF payload ON scheduled_commands
WHEN json_valid(NEW.payload) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: scheduled_commands.payload must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS scheduled_commands_headers_json_insert BEFORE INSERT ON scheduled_commands
WHEN NEW.headers IS NOT NULL AND json_valid(NEW.headers) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: scheduled_commands.headers must be JSON text'); END;

CREATE TRIGGER IF NOT EXISTS scheduled_commands_headers_json_update BEFORE UPDATE OF headers ON scheduled_commands
WHEN NEW.headers IS NOT NULL AND json_valid(NEW.headers) = 0
BEGIN SELECT RAISE(ABORT, 'cqrs_ddd: scheduled_commands.headers must be JSON text'); END;
