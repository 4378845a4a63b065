-- Sentinel store schema, version 4: the notification outbox.
-- One row per notice per channel, written before `notify` returns (a notice accepted is a notice on disk).
-- `key` is the notice's de-duplication key; rows folded into one message share a `delivery` id, written
-- before the first send and kept across retries and restarts. `state` is pending, delivered or dead;
-- `done_at` is when it was delivered or died. `body` is the notice as JSON. Times are milliseconds.

CREATE TABLE outbox (
    id         TEXT PRIMARY KEY NOT NULL,
    channel    TEXT NOT NULL,
    key        TEXT NOT NULL,
    body       TEXT NOT NULL,
    created    INTEGER NOT NULL,
    due        INTEGER NOT NULL,
    delivery   TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    state      TEXT NOT NULL DEFAULT 'pending',
    done_at    INTEGER
);
-- Due scans: a channel's pending rows by due time.
CREATE INDEX outbox_due ON outbox (channel, state, due);
-- The last delivery of a key on a channel (de-duplication windows) and in-flight groups of a key.
CREATE INDEX outbox_channel_key ON outbox (channel, key, state, done_at);
-- The rows of one delivery.
CREATE INDEX outbox_delivery ON outbox (delivery) WHERE delivery IS NOT NULL;
-- Dead letters newest first, and pruning delivered rows by age.
CREATE INDEX outbox_done ON outbox (state, done_at);
