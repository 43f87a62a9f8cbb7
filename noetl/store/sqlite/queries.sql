-- Named queries of the SQLite store, loaded once by store.py.
-- Each block starts with "-- name: <query_name>"; parameters are named (:param).

-- name: insert_execution
INSERT INTO execution (execution_id, path, status, parent_execution_id, playbook, payload,
                       result, error, started_at, ended_at, owner)
VALUES (:execution_id, :path, :status, :parent_execution_id, :playbook, :payload,
        :result, :error, :started_at, :ended_at, :owner);

-- name: update_execution
-- One fixed statement for every combination of fields: each field has a set_* flag, so the
-- statement is prepared once and cached instead of building SQL per key set.
UPDATE execution SET
    status   = CASE WHEN :set_status   THEN :status   ELSE status   END,
    result   = CASE WHEN :set_result   THEN :result   ELSE result   END,
    error    = CASE WHEN :set_error    THEN :error    ELSE error    END,
    ended_at = CASE WHEN :set_ended_at THEN :ended_at ELSE ended_at END
WHERE execution_id = :execution_id;

-- name: get_execution
SELECT execution_id, path, status, parent_execution_id, playbook, payload, result, error,
       started_at, ended_at, owner
FROM execution
WHERE execution_id = :execution_id;

-- name: get_execution_state
-- What a watcher or a live console page polls for: not the playbook, payload or result.
SELECT status,
       COALESCE((SELECT MAX(event_id) FROM event_log WHERE event_log.execution_id = execution.execution_id), 0),
       ended_at
FROM execution
WHERE execution_id = :execution_id;

-- name: list_executions
SELECT execution_id, path, status, parent_execution_id, playbook, payload, result, error,
       started_at, ended_at, owner
FROM execution
WHERE (:status IS NULL OR status = :status)
  AND (:parent_execution_id IS NULL OR parent_execution_id = :parent_execution_id)
  AND (:path IS NULL OR instr(lower(path), lower(:path)) > 0)
  -- times are stored as UTC ISO text, so the bounds (normalised to UTC by the store) compare as text
  AND (:started_since IS NULL OR started_at >= :started_since)
  AND (:ended_since IS NULL OR ended_at >= :ended_since)
ORDER BY started_at DESC, execution_id DESC
LIMIT :limit OFFSET :offset;

-- name: set_execution_owner
UPDATE execution SET owner = :owner WHERE execution_id = :execution_id;

-- name: max_event_id
SELECT COALESCE(MAX(event_id), 0) FROM event_log WHERE execution_id = :execution_id;

-- name: insert_event
INSERT INTO event_log (execution_id, event_id, event_type, node_name, status, result, error, meta,
                   created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: list_event_heads
-- As list_events, a loop call without its result and with its meta as four columns (not decoded
-- from JSON in Python: noetl.store.common.event_head says what they are).
SELECT execution_id, event_type, node_name, status,
       CASE WHEN loop_call THEN NULL ELSE result END, error,
       CASE WHEN loop_call THEN NULL ELSE meta END, event_id, created_at, loop_call,
       json_extract(meta, '$.loop_index'), json_extract(meta, '$.duration'),
       json_extract(meta, '$.logs_streamed'),
       CASE WHEN loop_call AND NOT COALESCE(json_extract(meta, '$.logs_streamed'), 0)
            THEN json_extract(meta, '$.logs') END
FROM (SELECT *, event_type IN ('call.done', 'call.error') AND json_type(meta, '$.loop_index') IS NOT NULL
                AS loop_call
      FROM event_log
      WHERE execution_id = :execution_id AND event_id > :after_id
      ORDER BY event_id
      LIMIT COALESCE(:limit, -1))
ORDER BY event_id;

-- name: list_events
-- LIMIT -1 means "no limit" in SQLite.
SELECT execution_id, event_type, node_name, status, result, error, meta, event_id, created_at
FROM event_log
WHERE execution_id = :execution_id AND event_id > :after_id
ORDER BY event_id
LIMIT COALESCE(:limit, -1);

-- name: max_catalog_version
SELECT COALESCE(MAX(version), 0) FROM catalog WHERE path = :path;

-- name: insert_catalog
INSERT INTO catalog (path, version, kind, name, content, catalog_id, created_at)
VALUES (:path, :version, :kind, :name, :content, :catalog_id, :created_at);

-- name: get_catalog_version
SELECT path, version, kind, content, catalog_id, name, created_at
FROM catalog
WHERE path = :path AND version = :version;

-- name: get_catalog_latest
SELECT path, version, kind, content, catalog_id, name, created_at
FROM catalog
WHERE path = :path
ORDER BY version DESC
LIMIT 1;

-- name: list_catalog_latest
SELECT c.path, c.version, c.kind, c.content, c.catalog_id, c.name, c.created_at
FROM catalog AS c
WHERE c.version = (SELECT MAX(v.version) FROM catalog AS v WHERE v.path = c.path)
  AND (:kind IS NULL OR c.kind = :kind)
ORDER BY c.path;

-- name: upsert_credential
-- created_at survives an overwrite; everything else is replaced.
INSERT INTO credential (name, type, data, description, created_at, updated_at)
VALUES (:name, :type, :data, :description, :now, :now)
ON CONFLICT (name) DO UPDATE SET
    type = excluded.type,
    data = excluded.data,
    description = excluded.description,
    updated_at = excluded.updated_at;

-- name: get_credential
SELECT name, type, data, description, created_at, updated_at
FROM credential
WHERE name = :name;

-- name: list_credentials
SELECT name, type, data, description, created_at, updated_at
FROM credential
ORDER BY name;

-- name: delete_credential
DELETE FROM credential WHERE name = :name;

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

-- name: applied_migrations
SELECT version FROM schema_migrations;

-- name: record_migration
INSERT INTO schema_migrations (version, name, applied_at) VALUES (:version, :name, :applied_at);

-- name: insert_result
-- A re-delivered command stores the same result id again: the first copy wins.
INSERT INTO result (result_id, execution_id, step, name, size, sha256, data, created_at, expires_at)
VALUES (:result_id, :execution_id, :step, :name, :size, :sha256, :data, :created_at, :expires_at)
ON CONFLICT (result_id) DO NOTHING;

-- name: insert_result_space
-- A result written in pieces afterwards (incremental blob I/O): its bytes are never joined first.
INSERT INTO result (result_id, execution_id, step, name, size, sha256, data, created_at, expires_at)
VALUES (:result_id, :execution_id, :step, :name, :size, :sha256, zeroblob(:size), :created_at, :expires_at)
ON CONFLICT (result_id) DO NOTHING;

-- name: get_result
SELECT result_id, data, sha256, size, execution_id, step, name, created_at, expires_at
FROM result
WHERE result_id = :result_id;

-- name: find_result
SELECT result_id, data, sha256, size, execution_id, step, name, created_at, expires_at
FROM result
WHERE name = :name
ORDER BY created_at DESC, rowid DESC
LIMIT 1;

-- name: delete_results
DELETE FROM result
WHERE (:created_before IS NOT NULL AND created_at < :created_before)
   OR (:expired_by IS NOT NULL AND expires_at IS NOT NULL AND expires_at <= :expired_by);

-- name: finished_before
SELECT execution_id FROM execution
WHERE status <> 'running' AND ended_at IS NOT NULL AND ended_at < :ended_before;

-- name: delete_execution_events
DELETE FROM event_log WHERE execution_id = :execution_id;

-- name: delete_execution
DELETE FROM execution WHERE execution_id = :execution_id;

-- name: upsert_schedule
-- A schedule added again keeps its cursor (fire times already handled) and created_at.
INSERT INTO schedule (name, path, cron, timezone, payload, overlap, catchup, enabled, cursor, source, created_at)
VALUES (:name, :path, :cron, :timezone, :payload, :overlap, :catchup, :enabled, :cursor, :source, :created_at)
ON CONFLICT (name) DO UPDATE SET
    path = excluded.path, cron = excluded.cron, timezone = excluded.timezone, payload = excluded.payload,
    overlap = excluded.overlap, catchup = excluded.catchup, enabled = excluded.enabled, source = excluded.source;

-- name: get_schedule
SELECT name, path, cron, timezone, payload, overlap, catchup, enabled, cursor, source, created_at
FROM schedule WHERE name = :name;

-- name: list_schedules
SELECT name, path, cron, timezone, payload, overlap, catchup, enabled, cursor, source, created_at
FROM schedule ORDER BY name;

-- name: update_schedule
UPDATE schedule SET
    enabled = CASE WHEN :set_enabled THEN :enabled ELSE enabled END,
    cursor  = CASE WHEN :set_cursor  THEN :cursor  ELSE cursor  END
WHERE name = :name;

-- name: delete_schedule_fires
DELETE FROM schedule_fire WHERE schedule = :name;

-- name: delete_schedule
DELETE FROM schedule WHERE name = :name;

-- name: claim_fire
INSERT INTO schedule_fire (schedule, scheduled_for, status, execution_id, created_at)
VALUES (:schedule, :scheduled_for, :status, :execution_id, :created_at)
ON CONFLICT (schedule, scheduled_for) DO NOTHING;

-- name: start_queued_fire
UPDATE schedule_fire SET status = 'started', execution_id = :execution_id
WHERE schedule = :schedule AND scheduled_for = :scheduled_for AND status = 'queued';

-- name: list_fires
SELECT schedule, scheduled_for, status, execution_id, created_at
FROM schedule_fire
WHERE schedule = :schedule AND (:status IS NULL OR status = :status)
ORDER BY scheduled_for DESC
LIMIT :limit;

-- name: upsert_hook
-- A hook added again keeps its created_at.
INSERT INTO hook (name, path, secret, token_sha256, payload_template, created_at)
VALUES (:name, :path, :secret, :token_sha256, :payload_template, :created_at)
ON CONFLICT (name) DO UPDATE SET
    path = excluded.path, secret = excluded.secret, token_sha256 = excluded.token_sha256,
    payload_template = excluded.payload_template;

-- name: get_hook
SELECT name, path, secret, token_sha256, payload_template, created_at FROM hook WHERE name = :name;

-- name: list_hooks
SELECT name, path, secret, token_sha256, payload_template, created_at FROM hook ORDER BY name;

-- name: delete_hook_deliveries
DELETE FROM hook_delivery WHERE hook = :name;

-- name: delete_hook
DELETE FROM hook WHERE name = :name;

-- name: claim_delivery
INSERT INTO hook_delivery (hook, delivery_id, created_at) VALUES (:hook, :delivery_id, :created_at)
ON CONFLICT (hook, delivery_id) DO NOTHING;

-- name: upsert_trigger
INSERT INTO execution_trigger (name, on_path, on_status, run_path, created_at)
VALUES (:name, :on_path, :on_status, :run_path, :created_at)
ON CONFLICT (name) DO UPDATE SET
    on_path = excluded.on_path, on_status = excluded.on_status, run_path = excluded.run_path;

-- name: list_triggers
SELECT name, on_path, on_status, run_path, created_at FROM execution_trigger ORDER BY name;

-- name: delete_trigger_fires
DELETE FROM execution_trigger_fire WHERE trigger_name = :name;

-- name: delete_trigger
DELETE FROM execution_trigger WHERE name = :name;

-- name: claim_trigger_fire
INSERT INTO execution_trigger_fire (trigger_name, source_execution_id, execution_id, created_at)
VALUES (:trigger, :source, :execution_id, :created_at)
ON CONFLICT (trigger_name, source_execution_id) DO NOTHING;

-- name: loop_done_event
-- Where the reports of one entry of a loop end: its loop.done (none yet while that is being decided).
SELECT min(d.event_id) FROM event_log d
WHERE d.execution_id = :execution_id AND d.node_name = :step AND d.event_type = 'loop.done'
  AND d.event_id > (SELECT max(n.event_id) FROM event_log n
                    WHERE n.execution_id = :execution_id AND n.node_name = :step AND n.event_type = 'step.enter'
                      AND json_extract(n.meta, '$.entry') = :entry);

-- name: loop_reports
-- The reports of a loop's iterations [start, stop) recorded before :before (a loop's results by
-- reference), through event_loop_report_idx; for an index reported twice the later one is last.
SELECT json_extract(meta, '$.loop_index'), event_type, result, error FROM event_log
WHERE execution_id = :execution_id AND node_name = :step AND event_type IN ('call.done', 'call.error')
  AND json_extract(meta, '$.loop_index') IS NOT NULL AND json_extract(meta, '$.loop_index') >= :start AND json_extract(meta, '$.loop_index') < :stop
  AND event_id < :before
ORDER BY json_extract(meta, '$.loop_index'), event_id;

-- name: insert_log
INSERT INTO log (execution_id, step, loop_index, stream, line, created_at)
VALUES (:execution_id, :step, :loop_index, :stream, :line, :created_at);

-- name: list_logs
SELECT log_id, execution_id, step, loop_index, stream, line, created_at
FROM log
WHERE execution_id = :execution_id AND log_id > :after_id AND (:step IS NULL OR step = :step)
ORDER BY log_id
LIMIT COALESCE(:limit, -1);

-- name: delete_execution_logs
DELETE FROM log WHERE execution_id = :execution_id;
