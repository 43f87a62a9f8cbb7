-- The index of loop reports (migration 10) holds only the reports that have a loop index: a step
-- that is not a loop (every step of a chain) no longer adds an entry to it.
DROP INDEX IF EXISTS noetl.event_log_loop_report_idx;
CREATE INDEX IF NOT EXISTS event_log_loop_report_idx
    ON noetl.event_log (execution_id, node_name, (meta->'loop_index'), event_id)
    WHERE event_type IN ('call.done', 'call.error') AND meta ? 'loop_index';
