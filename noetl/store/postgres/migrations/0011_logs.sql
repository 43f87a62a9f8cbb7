-- Logs streamed while a call runs (SPEC section 17): each line a python step printed or a shell
-- step wrote, appended in batches as it comes, so `noetl logs --follow` and the console show it
-- before the step ends. No foreign key to `execution`: a batch is never refused because of a race
-- with pruning, which deletes an execution's lines with it.

CREATE TABLE IF NOT EXISTS noetl.log (
    log_id       BIGSERIAL PRIMARY KEY,
    execution_id BIGINT NOT NULL,
    step         TEXT NOT NULL,
    loop_index   INTEGER,
    stream       TEXT NOT NULL,
    line         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX IF NOT EXISTS log_execution_idx ON noetl.log (execution_id, log_id);
