-- `noetl.event` under the column names NoETL's user guides query (seed 001): besides every column
-- of the log, `id` (the event's number within its execution), `data` (its result), `playbook_path`
-- and `playbook_name` (the last segment of the playbook's catalog path, which is its name unless the
-- path says otherwise). The log itself moves to `noetl.event_log`; `noetl.event` becomes a view over
-- it and the execution rows, so nothing is stored twice and inserts go to the table.
ALTER TABLE noetl.event RENAME TO event_log;

CREATE OR REPLACE VIEW noetl.event AS
SELECT e.execution_id,
       e.event_id,
       e.event_type,
       e.node_name,
       e.status,
       e.result,
       e.error,
       e.meta,
       e.created_at,
       e.event_id AS id,
       e.result AS data,
       x.path AS playbook_path,
       regexp_replace(x.path, '^.*/', '') AS playbook_name
FROM noetl.event_log e
JOIN noetl.execution x ON x.execution_id = e.execution_id;
