-- Initial schema of the distributed runtime's store, in schema `noetl`.
--
-- Execution ids are 64-bit numbers (noetl.ids), stored as BIGINT so the seeds' queries
-- `WHERE execution_id = 123` and `WHERE execution_id = '123'` both work. Ids that are not canonical
-- decimal numbers (tests, imports) are stored under a negative hash; execution_key keeps their text.

CREATE TABLE IF NOT EXISTS noetl.execution (
    execution_id        BIGINT PRIMARY KEY,
    execution_key       TEXT,
    path                TEXT NOT NULL,
    status              TEXT NOT NULL,
    parent_execution_id BIGINT,
    parent_key          TEXT,
    playbook            TEXT NOT NULL DEFAULT '',
    payload             JSONB NOT NULL DEFAULT '{}',
    result              JSONB,
    error               TEXT,
    started_at          TIMESTAMPTZ NOT NULL,
    ended_at            TIMESTAMPTZ,
    -- The id of the last appended event: an append bumps it in the same UPDATE that locks the row,
    -- so numbering is gap-free and serialised per execution without a MAX() scan.
    last_event_id       BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS execution_status_idx ON noetl.execution (status, started_at);
CREATE INDEX IF NOT EXISTS execution_parent_idx ON noetl.execution (parent_execution_id);
CREATE INDEX IF NOT EXISTS execution_started_idx ON noetl.execution (started_at);

-- The append-only log. The primary key is also the read path (range scan per execution).
CREATE TABLE IF NOT EXISTS noetl.event (
    execution_id BIGINT NOT NULL REFERENCES noetl.execution (execution_id),
    event_id     BIGINT NOT NULL,
    event_type   TEXT NOT NULL,
    node_name    TEXT,
    status       TEXT,
    result       JSONB,
    error        JSONB,
    meta         JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (execution_id, event_id)
);

-- The command queue. A row is queued, then leased by one worker (attempt counts leases), then done
-- (or failed / cancelled). Workers lease with FOR UPDATE SKIP LOCKED through command_queued_idx, a
-- partial index holding only queued rows, so finished rows never slow the hot path down.
CREATE TABLE IF NOT EXISTS noetl.command (
    queue_id         BIGSERIAL NOT NULL,
    command_id       TEXT PRIMARY KEY,
    execution_id     BIGINT NOT NULL REFERENCES noetl.execution (execution_id),
    step             TEXT NOT NULL,
    payload          JSONB NOT NULL,
    status           TEXT NOT NULL DEFAULT 'queued',
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    heartbeat_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS command_queued_idx ON noetl.command (queue_id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS command_leased_idx ON noetl.command (lease_expires_at) WHERE status = 'leased';
CREATE INDEX IF NOT EXISTS command_execution_idx ON noetl.command (execution_id);

CREATE TABLE IF NOT EXISTS noetl.catalog (
    path       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    content    TEXT NOT NULL,
    catalog_id TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (path, version)
);

CREATE TABLE IF NOT EXISTS noetl.credential (
    name        TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    data        BYTEA NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
