-- Rollups: counts per time bucket that the dashboard's overview reads instead of scanning the record
-- tables. One row per (series, bucket, key). `bucket` is the start of the bucket in ms since the epoch:
-- 5 minutes for every series but `alert_subject`, whose buckets are 1 hour (many subjects, few alerts
-- each). Series: `event_kind` (events by kind), `alert_scenario`, `alert_severity`, `alert_subject`
-- (alerts), `action_kind` (actions, counted once, in the bucket of their creation).
-- Events are added by the store writer, aggregated per batch in the transaction that stores them;
-- alerts and actions by the triggers below, which fire on a row's first insert only (an upsert that
-- updates an existing row, like an action changing state, fires no INSERT trigger).

CREATE TABLE rollups (
    series TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    key    TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (series, bucket, key)
) WITHOUT ROWID;

CREATE TRIGGER rollups_alert_insert AFTER INSERT ON alerts BEGIN
    INSERT INTO rollups (series, bucket, key, n)
        VALUES ('alert_scenario', NEW.ts - (NEW.ts % 300000), NEW.scenario, 1)
        ON CONFLICT (series, bucket, key) DO UPDATE SET n = n + 1;
    INSERT INTO rollups (series, bucket, key, n)
        VALUES ('alert_severity', NEW.ts - (NEW.ts % 300000), NEW.severity, 1)
        ON CONFLICT (series, bucket, key) DO UPDATE SET n = n + 1;
    INSERT INTO rollups (series, bucket, key, n)
        VALUES ('alert_subject', NEW.ts - (NEW.ts % 3600000), NEW.subject, 1)
        ON CONFLICT (series, bucket, key) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER rollups_action_insert AFTER INSERT ON actions BEGIN
    INSERT INTO rollups (series, bucket, key, n)
        VALUES ('action_kind', NEW.created - (NEW.created % 300000), NEW.kind, 1)
        ON CONFLICT (series, bucket, key) DO UPDATE SET n = n + 1;
END;

-- Backfill from the rows already stored.
INSERT INTO rollups (series, bucket, key, n)
    SELECT 'event_kind', ts - (ts % 300000), kind, COUNT(*) FROM events GROUP BY 2, 3;
INSERT INTO rollups (series, bucket, key, n)
    SELECT 'alert_scenario', ts - (ts % 300000), scenario, COUNT(*) FROM alerts GROUP BY 2, 3;
INSERT INTO rollups (series, bucket, key, n)
    SELECT 'alert_severity', ts - (ts % 300000), severity, COUNT(*) FROM alerts GROUP BY 2, 3;
INSERT INTO rollups (series, bucket, key, n)
    SELECT 'alert_subject', ts - (ts % 3600000), subject, COUNT(*) FROM alerts GROUP BY 2, 3;
INSERT INTO rollups (series, bucket, key, n)
    SELECT 'action_kind', created - (created % 300000), kind, COUNT(*) FROM actions GROUP BY 2, 3;
