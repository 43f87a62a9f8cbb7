-- The index of loop reports (migration 9) holds only the reports that have a loop index: a step
-- that is not a loop (every step of a chain) no longer adds an entry to it.
DROP INDEX IF EXISTS event_loop_report_idx;
CREATE INDEX event_loop_report_idx ON event_log (execution_id, node_name, json_extract(meta, '$.loop_index'), event_id)
    WHERE event_type IN ('call.done', 'call.error') AND json_extract(meta, '$.loop_index') IS NOT NULL;
