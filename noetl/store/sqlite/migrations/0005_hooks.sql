-- Webhooks of catalog entries and the delivery ids they accepted. (hook, delivery_id) is the
-- primary key of a delivery, so a replayed delivery is refused even across restarts.

CREATE TABLE hook (
    name             TEXT PRIMARY KEY,
    path             TEXT NOT NULL,
    secret           TEXT NOT NULL DEFAULT '',
    token_sha256     TEXT NOT NULL DEFAULT '',
    payload_template TEXT,
    created_at       TEXT NOT NULL
);

CREATE TABLE hook_delivery (
    hook        TEXT NOT NULL REFERENCES hook (name) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (hook, delivery_id)
);
