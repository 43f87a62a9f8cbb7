-- Cron schedules and their fire times. (schedule, scheduled_for) is the primary key of a fire, so a
-- fire time runs once even with two servers or a restarted one. Instants are ISO 8601 UTC text,
-- written by the scheduler in one canonical form, so both backends compare and return them alike.

CREATE TABLE IF NOT EXISTS noetl.schedule (
    name       TEXT PRIMARY KEY,
    path       TEXT NOT NULL,
    cron       TEXT NOT NULL,
    timezone   TEXT NOT NULL DEFAULT 'UTC',
    payload    JSONB NOT NULL DEFAULT '{}',
    overlap    TEXT NOT NULL DEFAULT 'skip',
    catchup    TEXT NOT NULL DEFAULT 'latest',
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    cursor     TEXT,
    source     TEXT NOT NULL DEFAULT 'cli',
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS noetl.schedule_fire (
    schedule      TEXT NOT NULL REFERENCES noetl.schedule (name) ON DELETE CASCADE,
    scheduled_for TEXT NOT NULL,
    status        TEXT NOT NULL,
    execution_id  TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (schedule, scheduled_for)
);
