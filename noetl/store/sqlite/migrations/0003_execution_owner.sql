-- The process that runs a local execution (host:pid:process-start), so a later command can tell
-- that it died (kill -9, power loss) and record the execution as abandoned.

ALTER TABLE execution ADD COLUMN owner TEXT NOT NULL DEFAULT '';
