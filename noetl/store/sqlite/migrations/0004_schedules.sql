-- Cron schedules and their fire times. (schedule, scheduled_for) is the primary key of a fire, so
-- a fire time runs once even when two schedulers or a restarted one look at it again.

CREATE TABLE schedule (
    name       TEXT PRIMARY KEY,
    path       TEXT NOT NULL,
    cron       TEXT NOT NULL,
    timezone   TEXT NOT NULL DEFAULT 'UTC',
    payload    TEXT NOT NULL DEFAULT '{}',
    overlap    TEXT NOT NULL DEFAULT 'skip',
    catchup    TEXT NOT NULL DEFAULT 'latest',
    enabled    INTEGER NOT NULL DEFAULT 1,
    cursor     TEXT,
    source     TEXT NOT NULL DEFAULT 'cli',
    created_at TEXT NOT NULL
);

CREATE TABLE schedule_fire (
    schedule      TEXT NOT NULL REFERENCES schedule (name) ON DELETE CASCADE,
    scheduled_for TEXT NOT NULL,
    status        TEXT NOT NULL,
    execution_id  TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (schedule, scheduled_for)
);
