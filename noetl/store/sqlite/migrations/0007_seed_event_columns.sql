-- `noetl.event` under the column names NoETL's user guides query (seed 001), for `noetl query` on
-- the embedded store: `id` (the event's number within its execution) and `data` (its result).
-- Virtual columns: computed when read, nothing stored twice. (`playbook_name` exists only on
-- PostgreSQL, whose `noetl.event` view joins the execution rows; locally, join `execution` on
-- `execution_id` and read its `path`.)
ALTER TABLE event ADD COLUMN id INTEGER GENERATED ALWAYS AS (event_id) VIRTUAL;
ALTER TABLE event ADD COLUMN data TEXT GENERATED ALWAYS AS (result) VIRTUAL;
