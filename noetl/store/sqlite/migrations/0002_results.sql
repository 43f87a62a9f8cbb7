-- Results stored by reference (SPEC section 19): a tool result over `inline_max_bytes` is kept here
-- and its events carry `{_ref: {uri, size, sha256, preview}}`. Artifacts (`kind: artifact, action:
-- put`) live here too, under their `name`. No foreign key to `execution`: an artifact may outlive
-- the execution that stored it, and pruning deletes results on their own schedule.

CREATE TABLE result (
    result_id    TEXT PRIMARY KEY,
    execution_id TEXT,
    step         TEXT,
    name         TEXT,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    data         BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT
);

CREATE INDEX result_execution_idx ON result (execution_id);
CREATE INDEX result_name_idx ON result (name, created_at);
CREATE INDEX result_created_idx ON result (created_at);
CREATE INDEX result_expires_idx ON result (expires_at);
