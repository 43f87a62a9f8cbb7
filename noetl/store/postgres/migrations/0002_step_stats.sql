-- Totals behind the /metrics step counter and step duration histogram.
--
-- Every process that records reports (workers, servers) keeps its counts in memory and adds them to
-- its own rows every few seconds, so the hot path never waits on a shared counter row. A scrape sums
-- the rows. bucket_counts[i] counts the runs that took at most the i-th bound of
-- noetl.store.postgres.stats.STEP_DURATION_BUCKETS (and more than the previous one); the last element
-- counts the rest.

CREATE TABLE IF NOT EXISTS noetl.step_stats (
    owner         TEXT NOT NULL,
    status        TEXT NOT NULL,
    count         BIGINT NOT NULL DEFAULT 0,
    duration_sum  DOUBLE PRECISION NOT NULL DEFAULT 0,
    bucket_counts BIGINT[] NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, status)
);
