-- `noetl.queue`: the command queue under the names NoETL's integration guides query (seed 002):
-- queue_id, execution_id, step, tool_kind, status, attempt, created_at, priority,
-- assigned_worker_id, started_at, completed_at. A view over noetl.command, so nothing is stored twice.
-- priority is always 0 (commands are leased in queue order); started_at is the current lease's last
-- heartbeat; completed_at is not recorded (NULL).

CREATE OR REPLACE VIEW noetl.queue AS
SELECT queue_id,
       execution_id,
       step,
       COALESCE(payload -> 'tasks' -> 0 ->> 'kind', 'noop') AS tool_kind,
       status,
       attempt,
       created_at,
       0 AS priority,
       lease_owner AS assigned_worker_id,
       heartbeat_at AS started_at,
       NULL::timestamptz AS completed_at,
       command_id
FROM noetl.command;
