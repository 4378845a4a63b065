-- Sentinel store schema, version 1.
-- Every record table keeps the full record as JSON in `body` and copies the fields that reads filter on
-- into indexed columns. Times are milliseconds since the Unix epoch; ids are ULID text (sortable by time).

CREATE TABLE events (
    id       TEXT PRIMARY KEY NOT NULL,
    ts       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    source   TEXT NOT NULL,
    src_ip   TEXT,
    trace_id TEXT NOT NULL,
    body     TEXT NOT NULL
);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_trace_id ON events (trace_id);
CREATE INDEX events_src_ip ON events (src_ip);
CREATE INDEX events_kind ON events (kind);

CREATE TABLE alerts (
    id            TEXT PRIMARY KEY NOT NULL,
    ts            INTEGER NOT NULL,
    scenario      TEXT NOT NULL,
    severity      TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    subject       TEXT NOT NULL,
    trace_id      TEXT NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX alerts_ts ON alerts (ts);
CREATE INDEX alerts_trace_id ON alerts (trace_id);
CREATE INDEX alerts_subject ON alerts (subject);
CREATE INDEX alerts_scenario ON alerts (scenario);
CREATE INDEX alerts_severity_rank ON alerts (severity_rank);

CREATE TABLE investigations (
    id         TEXT PRIMARY KEY NOT NULL,
    alert_id   TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    risk_score INTEGER NOT NULL,
    trace_id   TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX investigations_alert_id ON investigations (alert_id);
CREATE INDEX investigations_ts ON investigations (ts);
CREATE INDEX investigations_trace_id ON investigations (trace_id);

CREATE TABLE plans (
    id               TEXT PRIMARY KEY NOT NULL,
    alert_id         TEXT NOT NULL,
    investigation_id TEXT NOT NULL,
    ts               INTEGER NOT NULL,
    mode             TEXT NOT NULL,
    trace_id         TEXT NOT NULL,
    body             TEXT NOT NULL
);
CREATE INDEX plans_alert_id ON plans (alert_id);
CREATE INDEX plans_ts ON plans (ts);
CREATE INDEX plans_trace_id ON plans (trace_id);

CREATE TABLE actions (
    id         TEXT PRIMARY KEY NOT NULL,
    plan_id    TEXT NOT NULL,
    alert_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    updated    INTEGER NOT NULL,
    trace_id   TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX actions_alert_id ON actions (alert_id);
CREATE INDEX actions_plan_id ON actions (plan_id);
CREATE INDEX actions_subject ON actions (subject);
CREATE INDEX actions_state ON actions (state);
CREATE INDEX actions_created ON actions (created);
CREATE INDEX actions_expires_at ON actions (expires_at);
CREATE INDEX actions_trace_id ON actions (trace_id);

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    trace_id   TEXT NOT NULL,
    summary    TEXT NOT NULL
);
CREATE INDEX audit_trace_id ON audit (trace_id);
CREATE INDEX audit_ts ON audit (ts);

CREATE TABLE api_keys (
    id      TEXT PRIMARY KEY NOT NULL,
    name    TEXT NOT NULL,
    role    TEXT NOT NULL,
    hash    TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
