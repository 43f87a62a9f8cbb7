-- Named queries of the PostgreSQL store, loaded once by sql.py.
-- Each block starts with "-- name: <query_name>"; parameters use psycopg's %(name)s style.
-- JSON values arrive as compact JSON text and are cast to jsonb here.

-- name: start_execution
-- A new execution in one statement, run on its own (autocommit: one round trip, one COMMIT): the
-- row, its first events and its first commands, and a NOTIFY at commit when it queued any. A
-- duplicate execution id breaks the primary key, and nothing is written.
WITH execution AS (
    INSERT INTO noetl.execution (execution_id, execution_key, path, status, parent_execution_id, parent_key,
                                 playbook, payload, result, error, started_at, ended_at, last_event_id, owner)
    VALUES (%(execution_id)s, %(execution_key)s, %(path)s, %(status)s, %(parent_execution_id)s, %(parent_key)s,
            %(playbook)s, %(payload)s::jsonb, %(result)s::jsonb, %(error)s, %(started_at)s::timestamptz,
            %(ended_at)s::timestamptz, %(last_event_id)s, %(owner)s)
), events AS (
    INSERT INTO noetl.event_log (execution_id, event_id, event_type, node_name, status, result, error, meta, created_at)
    SELECT %(execution_id)s, e.event_id, e.event_type, e.node_name, e.status, e.result::jsonb, e.error::jsonb,
           e.meta::jsonb, e.created_at::timestamptz
    FROM unnest(%(event_ids)b::bigint[], %(event_types)b::text[], %(node_names)b::text[], %(statuses)b::text[],
                %(results)b::text[], %(errors)b::text[], %(metas)b::text[], %(created_ats)b::text[])
         AS e(event_id, event_type, node_name, status, result, error, meta, created_at)
), queued AS (
    INSERT INTO noetl.command (command_id, execution_id, step, payload, status, created_at)
    SELECT c.command_id, %(execution_id)s, c.step, c.payload::jsonb, 'queued', %(now)s::timestamptz
    FROM unnest(%(command_ids)b::text[], %(steps)b::text[], %(payloads)b::text[]) AS c(command_id, step, payload)
    ON CONFLICT (command_id) DO NOTHING
)
SELECT CASE WHEN cardinality(%(command_ids)b::text[]) > 0 THEN pg_notify(%(commands_channel)s, '') END;

-- name: bump_execution
-- Locks the row, reserves event ids and applies the optional field updates in one statement.
-- One fixed statement for every combination of fields (set_* flags), so it is prepared once.
UPDATE noetl.execution SET
    last_event_id = last_event_id + %(count)s,
    status   = CASE WHEN %(set_status)s   THEN %(status)s::text ELSE status END,
    result   = CASE WHEN %(set_result)s   THEN %(result)s::jsonb ELSE result END,
    error    = CASE WHEN %(set_error)s    THEN %(error)s::text ELSE error END,
    ended_at = CASE WHEN %(set_ended_at)s THEN %(ended_at)s::timestamptz ELSE ended_at END
WHERE execution_id = %(execution_id)s
RETURNING last_event_id - %(count)s;

-- name: lock_execution_state
SELECT status, owner FROM noetl.execution WHERE execution_id = %(execution_id)s FOR UPDATE;

-- name: set_execution_owner
UPDATE noetl.execution SET owner = %(owner)s WHERE execution_id = %(execution_id)s;

-- name: get_execution
SELECT COALESCE(execution_key, execution_id::text), path, status,
       COALESCE(parent_key, parent_execution_id::text), playbook, payload, result, error, started_at, ended_at, owner
FROM noetl.execution
WHERE execution_id = %(execution_id)s;

-- name: get_execution_state
-- What a watcher polls for (every half second): not the playbook, payload or result of get_execution.
SELECT status, last_event_id, ended_at FROM noetl.execution WHERE execution_id = %(execution_id)s;

-- name: list_executions
SELECT COALESCE(execution_key, execution_id::text), path, status,
       COALESCE(parent_key, parent_execution_id::text), playbook, payload, result, error, started_at, ended_at, owner
FROM noetl.execution
WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(parent_execution_id)s::bigint IS NULL OR parent_execution_id = %(parent_execution_id)s::bigint)
  AND (%(path)s::text IS NULL OR strpos(lower(path), lower(%(path)s::text)) > 0)
  AND (%(started_since)s::timestamptz IS NULL OR started_at >= %(started_since)s::timestamptz)
  AND (%(ended_since)s::timestamptz IS NULL OR ended_at >= %(ended_since)s::timestamptz)
ORDER BY started_at DESC, execution_id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: insert_events
-- Any number of events of one execution in one statement (one array per column): a batch costs one
-- message, not one per row.
INSERT INTO noetl.event_log (execution_id, event_id, event_type, node_name, status, result, error, meta, created_at)
SELECT %(execution_id)s, e.event_id, e.event_type, e.node_name, e.status, e.result::jsonb, e.error::jsonb,
       e.meta::jsonb, e.created_at::timestamptz
FROM unnest(%(event_ids)b::bigint[], %(event_types)b::text[], %(node_names)b::text[], %(statuses)b::text[],
            %(results)b::text[], %(errors)b::text[], %(metas)b::text[], %(created_ats)b::text[])
     AS e(event_id, event_type, node_name, status, result, error, meta, created_at);

-- name: list_events
SELECT event_type, node_name, status, result, error, meta, event_id, created_at
FROM noetl.event_log
WHERE execution_id = %(execution_id)s AND event_id > %(after_id)s
ORDER BY event_id
LIMIT %(limit)s;

-- name: list_event_heads
-- As list_events, a loop call without its result and with its meta as four columns (read without
-- decoding JSON: noetl.store.common.event_head says what they are).
SELECT event_type, node_name, status,
       CASE WHEN loop_call THEN NULL ELSE result END, error,
       CASE WHEN loop_call THEN NULL ELSE meta END, event_id, created_at, loop_call,
       (meta->>'loop_index')::bigint, (meta->>'duration')::float8, (meta->>'logs_streamed')::boolean,
       CASE WHEN loop_call AND NOT COALESCE((meta->>'logs_streamed')::boolean, false) THEN meta->'logs' END
FROM (SELECT *, event_type IN ('call.done', 'call.error') AND meta ? 'loop_index' AS loop_call
      FROM noetl.event_log
      WHERE execution_id = %(execution_id)s AND event_id > %(after_id)s
      ORDER BY event_id
      LIMIT %(limit)s) AS page
ORDER BY event_id;

-- name: list_events_of_types
-- Only some kinds of events (the status document needs a handful of a loop's 100,000 events).
SELECT event_type, node_name, status, result, error, meta, event_id, created_at
FROM noetl.event_log
WHERE execution_id = %(execution_id)s AND event_id > %(after_id)s AND event_type = ANY(%(types)b::text[])
ORDER BY event_id
LIMIT %(limit)s;

-- name: list_events_of_types_or_warned
-- As list_events_of_types, plus any event that carries template warnings (a call's warnings come
-- from the worker's rendering of its tool config and belong in the status document).
SELECT event_type, node_name, status, result, error, meta, event_id, created_at
FROM noetl.event_log
WHERE execution_id = %(execution_id)s AND event_id > %(after_id)s
  AND (event_type = ANY(%(types)b::text[]) OR meta ? 'warnings')
ORDER BY event_id
LIMIT %(limit)s;

-- name: max_catalog_version
SELECT COALESCE(MAX(version), 0) FROM noetl.catalog WHERE path = %(path)s;

-- name: lock_catalog_path
-- Two servers registering the same path at once must not both pick the same next version.
SELECT pg_advisory_xact_lock(hashtextextended('noetl.catalog:' || %(path)s, 0));

-- name: insert_catalog
INSERT INTO noetl.catalog (path, version, kind, name, content, catalog_id, created_at)
VALUES (%(path)s, %(version)s, %(kind)s, %(name)s, %(content)s, %(catalog_id)s, %(created_at)s::timestamptz);

-- name: get_catalog_version
SELECT path, version, kind, content, catalog_id, name, created_at
FROM noetl.catalog
WHERE path = %(path)s AND version = %(version)s;

-- name: get_catalog_latest
SELECT path, version, kind, content, catalog_id, name, created_at
FROM noetl.catalog
WHERE path = %(path)s
ORDER BY version DESC
LIMIT 1;

-- name: list_catalog_latest
SELECT DISTINCT ON (path) path, version, kind, content, catalog_id, name, created_at
FROM noetl.catalog
ORDER BY path, version DESC;

-- name: upsert_credential
-- created_at survives an overwrite; everything else is replaced.
INSERT INTO noetl.credential (name, type, data, description, created_at, updated_at)
VALUES (%(name)s, %(type)s, %(data)s, %(description)s, %(now)s::timestamptz, %(now)s::timestamptz)
ON CONFLICT (name) DO UPDATE SET
    type = excluded.type,
    data = excluded.data,
    description = excluded.description,
    updated_at = excluded.updated_at;

-- name: get_credential
SELECT name, type, data, description, created_at, updated_at FROM noetl.credential WHERE name = %(name)s;

-- name: list_credentials
SELECT name, type, data, description, created_at, updated_at FROM noetl.credential ORDER BY name;

-- name: delete_credential
DELETE FROM noetl.credential WHERE name = %(name)s;

-- command queue ---------------------------------------------------------------------------------

-- name: queue_commands
-- ON CONFLICT: a command id is deterministic, so a decision replayed after a crash cannot queue the
-- same work twice. The NOTIFY is delivered at commit (and only once per transaction).
WITH queued AS (
    INSERT INTO noetl.command (command_id, execution_id, step, payload, status, created_at)
    SELECT c.command_id, %(execution_id)s, c.step, c.payload::jsonb, 'queued', %(now)s::timestamptz
    FROM unnest(%(command_ids)b::text[], %(steps)b::text[], %(payloads)b::text[]) AS c(command_id, step, payload)
    ON CONFLICT (command_id) DO NOTHING
)
SELECT pg_notify(%(commands_channel)s, '');

-- name: record_decisions
-- Everything the decisions of a group transaction write, in one statement whatever the number of
-- executions (one array per column): reserve the event ids and update each execution (the rows are
-- already locked), append the events, queue the new commands, mark the reported ones done, and wake
-- workers when there is new work and waiters when an execution ended.
-- A new command with a lease owner is inserted already leased to it (attempt 1, the lease expiry and
-- heartbeat of lease_commands): the deciding worker runs it at once. Only the others are queued, and
-- only they wake workers (%(notify_commands)s).
WITH bumped AS (
    UPDATE noetl.execution AS x SET
        last_event_id = x.last_event_id + u.count,
        status   = CASE WHEN u.set_status   THEN u.status ELSE x.status END,
        result   = CASE WHEN u.set_result   THEN u.result::jsonb ELSE x.result END,
        error    = CASE WHEN u.set_error    THEN u.error ELSE x.error END,
        ended_at = CASE WHEN u.set_ended_at THEN u.ended_at::timestamptz ELSE x.ended_at END
    FROM unnest(%(execution_ids)b::bigint[], %(counts)b::int[], %(set_statuses)b::bool[], %(new_statuses)b::text[],
                %(set_results)b::bool[], %(new_results)b::text[], %(set_errors)b::bool[], %(new_errors)b::text[],
                %(set_ended_ats)b::bool[], %(new_ended_ats)b::text[])
         AS u(execution_id, count, set_status, status, set_result, result, set_error, error, set_ended_at, ended_at)
    WHERE x.execution_id = u.execution_id
), events AS (
    INSERT INTO noetl.event_log (execution_id, event_id, event_type, node_name, status, result, error, meta, created_at)
    SELECT e.execution_id, e.event_id, e.event_type, e.node_name, e.status, e.result::jsonb, e.error::jsonb,
           e.meta::jsonb, e.created_at::timestamptz
    FROM unnest(%(event_execution_ids)b::bigint[], %(event_ids)b::bigint[], %(event_types)b::text[],
                %(node_names)b::text[], %(statuses)b::text[], %(results)b::text[], %(errors)b::text[],
                %(metas)b::text[], %(created_ats)b::text[])
         AS e(execution_id, event_id, event_type, node_name, status, result, error, meta, created_at)
), queued AS (
    INSERT INTO noetl.command (command_id, execution_id, step, payload, status, created_at,
                               attempt, lease_owner, lease_expires_at, heartbeat_at)
    SELECT c.command_id, c.execution_id, c.step, c.payload::jsonb,
           CASE WHEN c.lease_owner IS NOT NULL THEN 'leased' ELSE 'queued' END, c.created_at::timestamptz,
           CASE WHEN c.lease_owner IS NOT NULL THEN 1 ELSE 0 END,
           c.lease_owner,
           CASE WHEN c.lease_owner IS NOT NULL
                THEN %(lease_now)s::timestamptz + make_interval(secs => %(lease_seconds)s) END,
           CASE WHEN c.lease_owner IS NOT NULL THEN %(lease_now)s::timestamptz END
    FROM unnest(%(command_ids)b::text[], %(command_execution_ids)b::bigint[], %(steps)b::text[],
                %(payloads)b::text[], %(command_created_ats)b::text[], %(lease_owners)b::text[])
         AS c(command_id, execution_id, step, payload, created_at, lease_owner)
    ON CONFLICT (command_id) DO NOTHING
), done AS (
    UPDATE noetl.command SET status = 'done', lease_expires_at = NULL WHERE command_id = ANY(%(done_ids)b::text[])
)
SELECT CASE WHEN %(notify_commands)s THEN pg_notify(%(commands_channel)s, '') END,
       (SELECT count(pg_notify(%(executions_channel)s, k)) FROM unnest(%(ended_keys)b::text[]) AS k);

-- name: lease_commands
-- SKIP LOCKED: concurrent workers each take different rows without waiting for each other.
-- A worker first takes queued commands of executions no other worker holds a lease of (`preferred`;
-- command_leased_idx finds the few leased rows), then, if that is fewer than it asked for, any
-- others (`rest`), each in queue order (command_queued_idx, a partial index of queued rows). Two
-- workers that lease commands of one execution both decide its reports: their transactions wait for
-- each other's lock and COMMIT, and each reads the other's events to catch up. `rest` skips the
-- rows `preferred` locked (SKIP LOCKED does not skip a transaction's own locks) and reads nothing
-- once `preferred` has them all (LIMIT 0). The rows are found by primary key (= ANY of an array,
-- never a join the planner could turn into a scan of the whole table).
WITH preferred AS (
    SELECT command_id
    FROM noetl.command
    WHERE status = 'queued'
      AND execution_id NOT IN (SELECT execution_id FROM noetl.command
                               WHERE status = 'leased' AND lease_owner <> %(owner)s)
    ORDER BY queue_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), rest AS (
    SELECT command_id
    FROM noetl.command
    WHERE status = 'queued' AND command_id <> ALL(ARRAY(SELECT command_id FROM preferred))
    ORDER BY queue_id
    LIMIT %(limit)s - (SELECT count(*) FROM preferred)
    FOR UPDATE SKIP LOCKED
)
UPDATE noetl.command
SET status = 'leased', attempt = attempt + 1, lease_owner = %(owner)s,
    lease_expires_at = %(now)s::timestamptz + make_interval(secs => %(lease_seconds)s),
    heartbeat_at = %(now)s::timestamptz
WHERE command_id = ANY(ARRAY(SELECT command_id FROM preferred UNION ALL SELECT command_id FROM rest))
RETURNING command_id, execution_id, step, attempt, payload;

-- name: get_command
SELECT command_id, execution_id, step, attempt, lease_owner, payload FROM noetl.command WHERE command_id = %(command_id)s;

-- name: count_commands
SELECT count(*) FROM noetl.command WHERE execution_id = %(execution_id)s;

-- name: heartbeat
-- Rows are locked in command_id order, as decisions lock them, so the two cannot deadlock.
UPDATE noetl.command
SET lease_expires_at = %(now)s::timestamptz + make_interval(secs => %(lease_seconds)s),
    heartbeat_at = %(now)s::timestamptz
WHERE command_id = ANY(ARRAY(
    SELECT command_id FROM noetl.command
    WHERE command_id = ANY(%(command_ids)s) AND status = 'leased' AND lease_owner = %(owner)s
    ORDER BY command_id
    FOR UPDATE
)) AND status = 'leased' AND lease_owner = %(owner)s
RETURNING command_id;

-- name: lock_commands
-- Called with the execution row already locked (lock order: execution, then its commands, by id).
SELECT command_id, status, attempt, lease_owner FROM noetl.command
WHERE command_id = ANY(%(command_ids)s)
ORDER BY command_id
FOR UPDATE;

-- name: finish_commands
UPDATE noetl.command SET status = %(status)s, lease_expires_at = NULL WHERE command_id = ANY(%(command_ids)s);

-- name: release_command
-- A worker shutting down hands back work it has not started; the attempt does not count.
-- Locked in command_id order, as heartbeats and cancels lock them.
UPDATE noetl.command
SET status = 'queued', attempt = attempt - 1, lease_owner = NULL, lease_expires_at = NULL
WHERE command_id = ANY(ARRAY(
    SELECT command_id FROM noetl.command
    WHERE command_id = ANY(%(command_ids)s) AND status = 'leased' AND lease_owner = %(owner)s
    ORDER BY command_id
    FOR UPDATE
));

-- name: requeue_expired
-- Leases that ran out (the worker died or hung) go back to the queue while attempts remain.
UPDATE noetl.command
SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL
WHERE command_id = ANY(ARRAY(
    SELECT command_id FROM noetl.command
    WHERE status = 'leased' AND lease_expires_at < %(now)s::timestamptz AND attempt < %(max_attempts)s
    FOR UPDATE SKIP LOCKED
))
RETURNING command_id;

-- name: exhausted_commands
-- Expired leases with no attempts left: the reaper fails their step through the decision core.
SELECT command_id, execution_id, step, attempt, lease_owner, payload FROM noetl.command
WHERE status = 'leased' AND lease_expires_at < %(now)s::timestamptz AND attempt >= %(max_attempts)s
LIMIT 100;

-- name: cancel_commands
-- Rows are locked in command_id order, as heartbeats lock them: in scan order, a cancel holding one
-- command while waiting for another that a heartbeat holds (and the heartbeat waiting for the first)
-- deadlocked, and PostgreSQL aborted one of them (a 503 for the cancel).
UPDATE noetl.command SET status = 'cancelled', lease_expires_at = NULL
WHERE command_id = ANY(ARRAY(
    SELECT command_id FROM noetl.command
    WHERE execution_id = %(execution_id)s AND status IN ('queued', 'leased')
    ORDER BY command_id
    FOR UPDATE
));

-- name: lock_group
-- A group transaction's executions, locked in id order (so two groups cannot deadlock), then their
-- reported commands, also in id order, in one statement: the executions' rows come first (command_id
-- NULL), then the commands' (execution_id NULL). The commands' scan waits for every execution lock
-- (its filter reads the count of the locked executions), whatever order the plan would run them in.
WITH executions AS MATERIALIZED (
    SELECT execution_id, status, last_event_id FROM noetl.execution
    WHERE execution_id = ANY(%(execution_ids)s::bigint[])
    ORDER BY execution_id
    FOR UPDATE
), commands AS MATERIALIZED (
    SELECT command_id, status, attempt, lease_owner FROM noetl.command
    WHERE command_id = ANY(%(command_ids)s::text[]) AND (SELECT count(*) FROM executions) >= 0
    ORDER BY command_id
    FOR UPDATE
)
SELECT execution_id, status, last_event_id, NULL::text, NULL::int, NULL::text FROM executions
UNION ALL
SELECT NULL::bigint, status, NULL::bigint, command_id, attempt, lease_owner FROM commands;

-- name: lock_execution
-- Serialises decisions for one execution; what the decision needs is the status and the last event id.
SELECT status, last_event_id FROM noetl.execution WHERE execution_id = %(execution_id)s FOR UPDATE;

-- name: queue_depth
SELECT status, count(*) FROM noetl.command WHERE status IN ('queued', 'leased') GROUP BY status;

-- name: oldest_lease_age
SELECT COALESCE(EXTRACT(EPOCH FROM (%(now)s::timestamptz - min(heartbeat_at))), 0)
FROM noetl.command WHERE status = 'leased';

-- name: executions_by_status
SELECT status, count(*) FROM noetl.execution GROUP BY status;

-- name: notify_commands
SELECT pg_notify(%(commands_channel)s, '');

-- name: ping
SELECT 1;

-- step statistics (/metrics) ----------------------------------------------------------------------

-- name: add_step_stats
-- Adds one process's counts since its last flush (bucket arrays element by element).
INSERT INTO noetl.step_stats AS s (owner, status, count, duration_sum, bucket_counts, updated_at)
SELECT %(owner)s, d.status, d.count, d.duration_sum, d.bucket_counts::bigint[], %(now)s::timestamptz
FROM jsonb_to_recordset(%(deltas)s::jsonb) AS d(status text, count bigint, duration_sum double precision,
                                                 bucket_counts bigint[])
ON CONFLICT (owner, status) DO UPDATE SET
    count = s.count + excluded.count,
    duration_sum = s.duration_sum + excluded.duration_sum,
    bucket_counts = ARRAY(SELECT COALESCE(a, 0) + COALESCE(b, 0)
                          FROM unnest(s.bucket_counts, excluded.bucket_counts) WITH ORDINALITY AS t(a, b, i)
                          ORDER BY i),
    updated_at = excluded.updated_at;

-- name: step_stats
SELECT status, sum(count)::bigint, sum(duration_sum)::double precision,
       ARRAY(SELECT sum(b)::bigint
             FROM noetl.step_stats AS o, unnest(o.bucket_counts) WITH ORDINALITY AS t(b, i)
             WHERE o.status = s.status GROUP BY i ORDER BY i)
FROM noetl.step_stats AS s
GROUP BY status
ORDER BY status;

-- name: insert_result
-- A re-delivered command stores the same result id again: the first copy wins.
INSERT INTO noetl.result (result_id, execution_id, step, name, size, sha256, data, created_at, expires_at)
VALUES (%(result_id)s, %(execution_id)s, %(step)s, %(name)s, %(size)s, %(sha256)s, %(data)s,
        %(created_at)s::timestamptz, %(expires_at)s::timestamptz)
ON CONFLICT (result_id) DO NOTHING;

-- name: create_result_upload
-- A result sent in pieces (COPY into this table, then insert_result_upload): never whole in memory.
CREATE TEMPORARY TABLE IF NOT EXISTS noetl_result_upload (data BYTEA NOT NULL) ON COMMIT DELETE ROWS;

-- name: copy_result_upload
COPY noetl_result_upload (data) FROM STDIN (FORMAT BINARY);

-- name: insert_result_upload
INSERT INTO noetl.result (result_id, execution_id, step, name, size, sha256, data, created_at, expires_at)
SELECT %(result_id)s, %(execution_id)s, %(step)s, %(name)s, %(size)s, %(sha256)s, data,
       %(created_at)s::timestamptz, %(expires_at)s::timestamptz
FROM noetl_result_upload
ON CONFLICT (result_id) DO NOTHING;

-- name: get_result
SELECT result_id, data, sha256, size, execution_id, step, name, created_at, expires_at
FROM noetl.result
WHERE result_id = %(result_id)s;

-- name: get_result_slice
-- Part of a result's bytes (from 1): a large result is sent a slice at a time, never whole in memory.
SELECT substring(data FROM %(start)s FOR %(length)s), size FROM noetl.result WHERE result_id = %(result_id)s;

-- name: find_result
SELECT result_id, data, sha256, size, execution_id, step, name, created_at, expires_at
FROM noetl.result
WHERE name = %(name)s
ORDER BY created_at DESC
LIMIT 1;

-- name: delete_results
DELETE FROM noetl.result
WHERE (%(created_before)s::timestamptz IS NOT NULL AND created_at < %(created_before)s::timestamptz)
   OR (%(expired_by)s::timestamptz IS NOT NULL AND expires_at <= %(expired_by)s::timestamptz);

-- name: delete_finished_executions
-- One statement: the foreign keys from event and command are checked at its end, when both are gone.
WITH gone AS (
    SELECT execution_id, COALESCE(execution_key, execution_id::text) AS key
    FROM noetl.execution
    WHERE status <> 'running' AND ended_at < %(ended_before)s::timestamptz
    FOR UPDATE
), events AS (
    DELETE FROM noetl.event_log WHERE execution_id IN (SELECT execution_id FROM gone)
), commands AS (
    DELETE FROM noetl.command WHERE execution_id IN (SELECT execution_id FROM gone)
), logs AS (
    DELETE FROM noetl.log WHERE execution_id IN (SELECT execution_id FROM gone)
), executions AS (
    DELETE FROM noetl.execution WHERE execution_id IN (SELECT execution_id FROM gone)
)
SELECT key FROM gone;

-- name: upsert_schedule
-- A schedule added again keeps its cursor (fire times already handled) and created_at.
INSERT INTO noetl.schedule (name, path, cron, timezone, payload, overlap, catchup, enabled, cursor, source,
                            created_at)
VALUES (%(name)s, %(path)s, %(cron)s, %(timezone)s, %(payload)s::jsonb, %(overlap)s, %(catchup)s, %(enabled)s,
        %(cursor)s, %(source)s, %(created_at)s)
ON CONFLICT (name) DO UPDATE SET
    path = excluded.path, cron = excluded.cron, timezone = excluded.timezone, payload = excluded.payload,
    overlap = excluded.overlap, catchup = excluded.catchup, enabled = excluded.enabled, source = excluded.source;

-- name: get_schedule
SELECT name, path, cron, timezone, payload, overlap, catchup, enabled, cursor, source, created_at
FROM noetl.schedule WHERE name = %(name)s;

-- name: list_schedules
SELECT name, path, cron, timezone, payload, overlap, catchup, enabled, cursor, source, created_at
FROM noetl.schedule ORDER BY name;

-- name: update_schedule
UPDATE noetl.schedule SET
    enabled = CASE WHEN %(set_enabled)s THEN %(enabled)s::boolean ELSE enabled END,
    cursor  = CASE WHEN %(set_cursor)s  THEN %(cursor)s::text ELSE cursor END
WHERE name = %(name)s;

-- name: delete_schedule
-- Its fire records go with it (ON DELETE CASCADE).
DELETE FROM noetl.schedule WHERE name = %(name)s;

-- name: claim_fire
INSERT INTO noetl.schedule_fire (schedule, scheduled_for, status, execution_id, created_at)
VALUES (%(schedule)s, %(scheduled_for)s, %(status)s, %(execution_id)s, %(created_at)s)
ON CONFLICT (schedule, scheduled_for) DO NOTHING;

-- name: start_queued_fire
UPDATE noetl.schedule_fire SET status = 'started', execution_id = %(execution_id)s
WHERE schedule = %(schedule)s AND scheduled_for = %(scheduled_for)s AND status = 'queued';

-- name: list_fires
SELECT schedule, scheduled_for, status, execution_id, created_at
FROM noetl.schedule_fire
WHERE schedule = %(schedule)s AND (%(status)s::text IS NULL OR status = %(status)s::text)
ORDER BY scheduled_for DESC
LIMIT %(limit)s;

-- name: try_scheduler_lock
-- Session-level: held while the scheduler's own connection stays open.
SELECT pg_try_advisory_lock(%(key)s);

-- name: upsert_hook
-- A hook added again keeps its created_at.
INSERT INTO noetl.hook (name, path, secret, token_sha256, payload_template, created_at)
VALUES (%(name)s, %(path)s, %(secret)s, %(token_sha256)s, %(payload_template)s, %(created_at)s)
ON CONFLICT (name) DO UPDATE SET
    path = excluded.path, secret = excluded.secret, token_sha256 = excluded.token_sha256,
    payload_template = excluded.payload_template;

-- name: get_hook
SELECT name, path, secret, token_sha256, payload_template, created_at FROM noetl.hook WHERE name = %(name)s;

-- name: list_hooks
SELECT name, path, secret, token_sha256, payload_template, created_at FROM noetl.hook ORDER BY name;

-- name: delete_hook
-- Its deliveries go with it (ON DELETE CASCADE).
DELETE FROM noetl.hook WHERE name = %(name)s;

-- name: claim_delivery
INSERT INTO noetl.hook_delivery (hook, delivery_id, created_at) VALUES (%(hook)s, %(delivery_id)s, %(created_at)s)
ON CONFLICT (hook, delivery_id) DO NOTHING;

-- name: upsert_trigger
INSERT INTO noetl.execution_trigger (name, on_path, on_status, run_path, created_at)
VALUES (%(name)s, %(on_path)s, %(on_status)s, %(run_path)s, %(created_at)s)
ON CONFLICT (name) DO UPDATE SET
    on_path = excluded.on_path, on_status = excluded.on_status, run_path = excluded.run_path;

-- name: list_triggers
SELECT name, on_path, on_status, run_path, created_at FROM noetl.execution_trigger ORDER BY name;

-- name: delete_trigger
-- Its fire records go with it (ON DELETE CASCADE).
DELETE FROM noetl.execution_trigger WHERE name = %(name)s;

-- name: claim_trigger_fire
INSERT INTO noetl.execution_trigger_fire (trigger_name, source_execution_id, execution_id, created_at)
VALUES (%(trigger)s, %(source)s, %(execution_id)s, %(created_at)s)
ON CONFLICT (trigger_name, source_execution_id) DO NOTHING;

-- name: loop_done_event
-- Where the reports of one entry of a loop end: its loop.done (none yet while that is being decided).
SELECT min(d.event_id) FROM noetl.event_log d
WHERE d.execution_id = %(execution_id)s AND d.node_name = %(step)s AND d.event_type = 'loop.done'
  AND d.event_id > (SELECT max(n.event_id) FROM noetl.event_log n
                    WHERE n.execution_id = %(execution_id)s AND n.node_name = %(step)s
                      AND n.event_type = 'step.enter' AND n.meta->>'entry' = %(entry)s::text);

-- name: loop_reports
-- The reports of a loop's iterations [start, stop) recorded before %(before)s (a loop's results by
-- reference), through event_log_loop_report_idx; for an index reported twice the later one is last.
-- jsonb compares numbers as numbers, and never fails on a value that is not one (as a cast would).
SELECT (meta->>'loop_index')::numeric, event_type, result, error FROM noetl.event_log
WHERE execution_id = %(execution_id)s AND node_name = %(step)s AND event_type IN ('call.done', 'call.error')
  AND meta ? 'loop_index' AND meta->'loop_index' >= to_jsonb(%(start)s::bigint) AND meta->'loop_index' < to_jsonb(%(stop)s::bigint)
  AND event_id < %(before)s
ORDER BY meta->'loop_index', event_id;

-- name: insert_log
INSERT INTO noetl.log (execution_id, step, loop_index, stream, line, created_at)
VALUES (%(execution_id)s, %(step)s, %(loop_index)s, %(stream)s, %(line)s, %(created_at)s::timestamptz);

-- name: list_logs
SELECT log_id, step, loop_index, stream, line, created_at
FROM noetl.log
WHERE execution_id = %(execution_id)s AND log_id > %(after_id)s
  AND (%(step)s::text IS NULL OR step = %(step)s::text)
ORDER BY log_id
LIMIT %(limit)s;
