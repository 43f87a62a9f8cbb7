-- Results stored by reference (SPEC section 19): a tool result over `inline_max_bytes` is kept here
-- and its events carry `{_ref: {uri, size, sha256, preview}}`. Artifacts (`kind: artifact, action:
-- put`) live here too, under their `name`. No foreign key to `execution`: an artifact may outlive the
-- execution that stored it, and pruning deletes results on their own schedule. `data` is the result
-- as JSON text in BYTEA (not jsonb): it is read back whole and parsed by the reader, never queried.

CREATE TABLE IF NOT EXISTS noetl.result (
    result_id    TEXT PRIMARY KEY,
    execution_id TEXT,
    step         TEXT,
    name         TEXT,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    data         BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS result_execution_idx ON noetl.result (execution_id);
CREATE INDEX IF NOT EXISTS result_name_idx ON noetl.result (name, created_at);
CREATE INDEX IF NOT EXISTS result_created_idx ON noetl.result (created_at);
CREATE INDEX IF NOT EXISTS result_expires_idx ON noetl.result (expires_at) WHERE expires_at IS NOT NULL;
