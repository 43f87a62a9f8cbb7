-- Initial schema of the embedded store. JSON columns hold compact JSON text (NULL for None).

CREATE TABLE execution (
    execution_id        TEXT PRIMARY KEY,
    path                TEXT NOT NULL,
    status              TEXT NOT NULL,
    parent_execution_id TEXT,
    playbook            TEXT NOT NULL DEFAULT '',
    payload             TEXT NOT NULL DEFAULT '{}',
    result              TEXT,
    error               TEXT,
    started_at          TEXT NOT NULL,
    ended_at            TEXT
);

CREATE INDEX execution_status_idx ON execution (status, started_at);
CREATE INDEX execution_parent_idx ON execution (parent_execution_id);
CREATE INDEX execution_started_idx ON execution (started_at);

-- The append-only log. The primary key is also the read path: list_events is a range scan on it.
CREATE TABLE event (
    execution_id TEXT NOT NULL REFERENCES execution (execution_id),
    event_id     INTEGER NOT NULL,
    event_type   TEXT NOT NULL,
    node_name    TEXT,
    status       TEXT,
    result       TEXT,
    error        TEXT,
    meta         TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    PRIMARY KEY (execution_id, event_id)
);

CREATE TABLE catalog (
    path       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    content    TEXT NOT NULL,
    catalog_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (path, version)
);

CREATE TABLE credential (
    name        TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    data        BLOB NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
