-- `noetl.event` as on PostgreSQL, for `noetl query` on the embedded store: a view over the log that
-- adds `playbook_path` and `playbook_name` (the last segment of the playbook's path) from the
-- execution rows to the log's own columns (and `id`, `data` of migration 7). The log itself moves to
-- `event_log`; nothing is stored twice. Deleting from the view (`noetl query --write "DELETE FROM
-- noetl.event WHERE ..."`) deletes from the log.
ALTER TABLE event RENAME TO event_log;

CREATE VIEW event AS
SELECT e.execution_id, e.event_id, e.event_type, e.node_name, e.status, e.result, e.error, e.meta,
       e.created_at, e.id, e.data,
       x.path AS playbook_path,
       -- rtrim drops the trailing characters that are not '/': what is left is the path up to its last '/'
       substr(x.path, length(rtrim(x.path, replace(x.path, '/', ''))) + 1) AS playbook_name
FROM event_log e
JOIN execution x ON x.execution_id = e.execution_id;

CREATE TRIGGER event_delete INSTEAD OF DELETE ON event
BEGIN
    DELETE FROM event_log WHERE execution_id = OLD.execution_id AND event_id = OLD.event_id;
END;
