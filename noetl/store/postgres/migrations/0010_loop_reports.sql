-- A loop's aggregate by reference (SPEC section 19) reads its iterations back from their reports:
-- one item, or one page in index order, of one step of one execution, and where an entry's reports
-- end (its loop.done). Partial indexes: only call reports and step marks are in them.
CREATE INDEX IF NOT EXISTS event_log_loop_report_idx
    ON noetl.event_log (execution_id, node_name, (meta->'loop_index'), event_id)
    WHERE event_type IN ('call.done', 'call.error');
CREATE INDEX IF NOT EXISTS event_log_step_mark_idx ON noetl.event_log (execution_id, node_name, event_type, event_id)
    WHERE event_type IN ('step.enter', 'loop.done');
