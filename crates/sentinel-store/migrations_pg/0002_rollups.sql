-- Rollups for PostgreSQL: counts per time bucket that the dashboard's overview reads instead of scanning
-- the record tables, as in SQLite's migrations/0006_rollups.sql (series, bucket widths and keys are the
-- same). Events are added by the store writer in the transaction that stores them; alerts and actions by
-- the triggers below. PostgreSQL fires an AFTER INSERT row trigger only for rows an
-- `INSERT ... ON CONFLICT DO UPDATE` really inserts, so, as in SQLite, an action upserted again on a
-- state change and an alert stored twice are counted once.

CREATE TABLE rollups (
    series TEXT COLLATE "C" NOT NULL,
    bucket BIGINT NOT NULL,
    key    TEXT COLLATE "C" NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (series, bucket, key)
);

CREATE FUNCTION rollups_alert_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollups (series, bucket, key, n)
        VALUES ('alert_scenario', NEW.ts - (NEW.ts % 300000), NEW.scenario, 1)
        ON CONFLICT (series, bucket, key) DO UPDATE SET n = rollups.n + 1;
    INSERT INTO rollups (series, bucket, key, n)
        VALUES ('alert_severity', NEW.ts - (NEW.ts % 300000), NEW.severity, 1)
        ON CONFLICT (series, bucket, key) DO UPDATE SET n = rollups.n + 1;
    INSERT INTO rollups (series, bucket, key, n)
        VALUES ('alert_subject', NEW.ts - (NEW.ts % 3600000), NEW.subject, 1)
        ON CONFLICT (series, bucket, key) DO UPDATE SET n = rollups.n + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER rollups_alert_insert AFTER INSERT ON alerts
    FOR EACH ROW EXECUTE FUNCTION rollups_alert_insert();

CREATE FUNCTION rollups_action_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollups (series, bucket, key, n)
        VALUES ('action_kind', NEW.created - (NEW.created % 300000), NEW.kind, 1)
        ON CONFLICT (series, bucket, key) DO UPDATE SET n = rollups.n + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER rollups_action_insert AFTER INSERT ON actions
    FOR EACH ROW EXECUTE FUNCTION rollups_action_insert();
