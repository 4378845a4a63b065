-- Sentinel store schema, version 7: alert listings filtered by scenario, subject or severity walk an
-- index in id order. A listing is newest first by id with a LIMIT; with an index on the filter column
-- alone, SQLite read every matching row and sorted them before the LIMIT (all 100,000 alerts of a busy
-- scenario for a page of 50). With `(column, id)` it reads the page's rows in order and stops, and a
-- cursor (`id < ?`) seeks into the index. The single-column indexes on scenario and subject are
-- prefixes of the new ones and are dropped; reads by subject alone (a subject's history) use the new one.
-- A listing filtered only by time or by minimum severity walks `(id, ts, severity_rank)`: the filter is
-- checked in the index and only the page's rows are read (a walk over the table read every row it
-- skipped; a walk over `alerts_ts` sorted every row in the range).

DROP INDEX IF EXISTS alerts_scenario;
DROP INDEX IF EXISTS alerts_subject;
CREATE INDEX alerts_scenario_id ON alerts (scenario, id);
CREATE INDEX alerts_subject_id ON alerts (subject, id);
CREATE INDEX alerts_severity_id ON alerts (severity, id);
CREATE INDEX alerts_id_ts_rank ON alerts (id, ts, severity_rank);
