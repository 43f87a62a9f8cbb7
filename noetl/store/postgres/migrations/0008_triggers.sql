-- Completion triggers and the executions they fired for. (trigger, source_execution_id) is the
-- primary key of a fire, so a trigger fires once per finished execution, across restarts.

CREATE TABLE IF NOT EXISTS noetl.execution_trigger (
    name       TEXT PRIMARY KEY,
    on_path    TEXT NOT NULL,
    on_status  TEXT NOT NULL,
    run_path   TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS noetl.execution_trigger_fire (
    trigger_name        TEXT NOT NULL REFERENCES noetl.execution_trigger (name) ON DELETE CASCADE,
    source_execution_id TEXT NOT NULL,
    execution_id        TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    PRIMARY KEY (trigger_name, source_execution_id)
);
