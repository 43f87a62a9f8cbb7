-- Logs streamed while a call runs (SPEC section 17): each line a python step printed or a shell
-- step wrote, appended in batches as it comes, so `noetl logs --follow` and the console show it
-- before the step ends. No foreign key to `execution`: a batch is never refused because of a race
-- with pruning, which deletes an execution's lines with it.

CREATE TABLE log (
    log_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    step         TEXT NOT NULL,
    loop_index   INTEGER,
    stream       TEXT NOT NULL,
    line         TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE INDEX log_execution_idx ON log (execution_id, log_id);
