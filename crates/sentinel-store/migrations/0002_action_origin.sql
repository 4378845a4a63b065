-- Sentinel store schema, version 2: an action names a plan and an alert only when it comes from one.
-- An operator's decisions and reconcile's corrections have no plan: their `plan_id` and `alert_id` are
-- NULL (the body says `"origin": "operator"` or `"reconcile"`). SQLite cannot drop NOT NULL in place, so
-- the table is rebuilt; rows stored before keep their ids (the body of an old one reads as `plan`).

CREATE TABLE actions_v2 (
    id         TEXT PRIMARY KEY NOT NULL,
    plan_id    TEXT,
    alert_id   TEXT,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    updated    INTEGER NOT NULL,
    trace_id   TEXT NOT NULL,
    body       TEXT NOT NULL
);
INSERT INTO actions_v2 (id, plan_id, alert_id, kind, subject, state, expires_at, created, updated, trace_id, body)
    SELECT id, plan_id, alert_id, kind, subject, state, expires_at, created, updated, trace_id, body FROM actions;
DROP TABLE actions;
ALTER TABLE actions_v2 RENAME TO actions;
CREATE INDEX actions_alert_id ON actions (alert_id);
CREATE INDEX actions_plan_id ON actions (plan_id);
CREATE INDEX actions_subject ON actions (subject);
CREATE INDEX actions_state ON actions (state);
CREATE INDEX actions_created ON actions (created);
CREATE INDEX actions_expires_at ON actions (expires_at);
CREATE INDEX actions_trace_id ON actions (trace_id);
