-- The process that runs an execution started by the local runtime over this database
-- (host:pid:process-start); empty for executions of the server and its workers.

ALTER TABLE noetl.execution ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';
