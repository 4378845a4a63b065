//! Rollups: counts per time bucket, so the dashboard's overview never scans the record tables.
//!
//! The `rollups` table (migration `0006_rollups.sql`) holds one row per series, bucket and key.
//! Buckets are [`BUCKET_MS`] (5 minutes) wide, except [`RollupSeries::AlertSubject`]'s, which are
//! [`SUBJECT_BUCKET_MS`] (1 hour): a 7-day window is then at most 2,016 buckets per key of a series, and
//! a 1-hour window still has 12 points. Events are counted by the writer ([`add_events`]): a batch is
//! aggregated in memory first, so 10,000 events of 4 kinds in one 5-minute bucket are 4 upserts, in the
//! transaction that stores them. Alerts and actions are counted by SQLite triggers on their first insert
//! only, so an action upserted again on every state change is counted once, in the bucket of its
//! creation, and an alert stored twice (a retried write) is counted once.
//!
//! Events by source address are not rolled up: with many distinct addresses per hour such a series
//! would hold nearly a row per event. The "top sources" of the overview are alerts by subject.
//!
//! An event written twice with the same id (it is an upsert) is counted twice; ingestion mints each
//! event's id once and writes it once. Pruning events by age prunes the rollups of the same age
//! ([`prune_before`]); events pruned by count (over `max_events`) stay counted in their buckets.
//!
//! Every call runs on SQLite and PostgreSQL alike (PostgreSQL's triggers are in `migrations_pg/`;
//! sums are cast back to BIGINT, as PostgreSQL sums BIGINTs into NUMERIC).

use crate::backend::{on_backend, tuples, Tx, Val};
use crate::error::StoreError;
use crate::record::Record;
use crate::store::Store;
use sentinel_core::Timestamp;
use std::collections::HashMap;

/// Width of a bucket of every series but [`RollupSeries::AlertSubject`], in ms (5 minutes).
pub const BUCKET_MS: i64 = 300_000;
/// Width of a bucket of [`RollupSeries::AlertSubject`], in ms (1 hour).
pub const SUBJECT_BUCKET_MS: i64 = 3_600_000;

/// One series of the rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RollupSeries {
    /// Events by kind.
    EventKind,
    /// Alerts by scenario.
    AlertScenario,
    /// Alerts by severity.
    AlertSeverity,
    /// Alerts by subject (1-hour buckets).
    AlertSubject,
    /// Actions by kind, counted once each, at creation.
    ActionKind,
}

impl RollupSeries {
    /// Every series.
    pub const ALL: [RollupSeries; 5] = [
        RollupSeries::EventKind,
        RollupSeries::AlertScenario,
        RollupSeries::AlertSeverity,
        RollupSeries::AlertSubject,
        RollupSeries::ActionKind,
    ];

    /// The series' name in the `rollups` table.
    pub fn as_str(self) -> &'static str {
        match self {
            RollupSeries::EventKind => "event_kind",
            RollupSeries::AlertScenario => "alert_scenario",
            RollupSeries::AlertSeverity => "alert_severity",
            RollupSeries::AlertSubject => "alert_subject",
            RollupSeries::ActionKind => "action_kind",
        }
    }

    /// The width of the series' buckets, in ms.
    pub fn bucket_ms(self) -> i64 {
        match self {
            RollupSeries::AlertSubject => SUBJECT_BUCKET_MS,
            _ => BUCKET_MS,
        }
    }
}

/// The start of the bucket of width `width` holding `ts_ms`.
pub fn bucket_of(ts_ms: i64, width: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(width)
}

/// One point of a series: the count of `key` in the step starting at `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupPoint {
    /// Start of the step, ms since the epoch.
    pub bucket: i64,
    /// The key (an event kind, a scenario, a severity, a subject, an action kind).
    pub key: String,
    /// How many.
    pub n: u64,
}

/// Totals over a window, summed from the rollups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupTotals {
    /// Events stored in the window.
    pub events: u64,
    /// Alerts raised in the window.
    pub alerts: u64,
    /// Actions created in the window.
    pub actions: u64,
}

/// Rows per upsert statement (4 values bound per row).
const ROWS_PER_STATEMENT: usize = 256;

const UPSERT_HEAD: &str = "INSERT INTO rollups (series, bucket, key, n) VALUES ";
const UPSERT_TAIL: &str =
    " ON CONFLICT (series, bucket, key) DO UPDATE SET n = rollups.n + excluded.n";

/// Adds the events among `records` to the `event_kind` series, in the caller's transaction: counted
/// per (bucket, kind) in memory first, then one multi-row upsert. Other records are ignored (their
/// rollups are kept by triggers).
pub(crate) async fn add_events(tx: &mut Tx, records: &[&Record]) -> Result<(), StoreError> {
    let mut counts: HashMap<(i64, &str), i64> = HashMap::new();
    for r in records {
        if let Record::Event(e) = r {
            *counts
                .entry((bucket_of(e.ts.as_millis(), BUCKET_MS), e.kind.0.as_str()))
                .or_default() += 1;
        }
    }
    if counts.is_empty() {
        return Ok(());
    }
    let rows: Vec<((i64, &str), i64)> = counts.into_iter().collect();
    let series = RollupSeries::EventKind.as_str();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!("{UPSERT_HEAD}{}{UPSERT_TAIL}", tuples(chunk.len(), 4));
        let mut vals = Vec::with_capacity(chunk.len() * 4);
        for ((bucket, kind), n) in chunk {
            vals.extend([series.into(), (*bucket).into(), (*kind).into(), (*n).into()]);
        }
        tx.execute(&sql, vals).await?;
    }
    Ok(())
}

/// Deletes, in the caller's transaction, the rollup buckets that end at or before `older_than` (the
/// events they counted are pruned by age in the same transaction). Returns the rows deleted.
pub(crate) async fn prune_before(tx: &mut Tx, older_than: Timestamp) -> Result<u64, StoreError> {
    tx.execute(
        "DELETE FROM rollups WHERE bucket + \
         CASE series WHEN 'alert_subject' THEN ? ELSE ? END <= ?",
        vec![
            Val::Int(SUBJECT_BUCKET_MS),
            Val::Int(BUCKET_MS),
            Val::Int(older_than.as_millis()),
        ],
    )
    .await
}

/// The SQL of [`Store::count_active_actions`] (public for `EXPLAIN QUERY PLAN` checks).
pub const ACTIVE_ACTIONS_SQL: &str =
    "SELECT COUNT(*) FROM actions WHERE state = 'applied' AND expires_at > ?";
/// The SQL of [`Store::count_active_subjects`] (public for `EXPLAIN QUERY PLAN` checks).
pub const ACTIVE_SUBJECTS_SQL: &str =
    "SELECT COUNT(DISTINCT subject) FROM actions WHERE state = 'applied' AND expires_at > ?";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `(bucket, key, n)` rows as points.
fn points(rows: Vec<(i64, String, i64)>) -> Vec<RollupPoint> {
    rows.into_iter()
        .map(|(bucket, key, n)| RollupPoint {
            bucket,
            key,
            n: count(n),
        })
        .collect()
}

impl Store {
    /// The counts of `series` in `[since, until)`, summed per step of `step_ms` (rounded up to a
    /// multiple of the series' bucket) and key, oldest step first. A step is the start of its buckets;
    /// steps with no count are absent.
    pub async fn rollup_series(
        &self,
        series: RollupSeries,
        since: Timestamp,
        until: Timestamp,
        step_ms: i64,
    ) -> Result<Vec<RollupPoint>, StoreError> {
        let width = series.bucket_ms();
        let step = (step_ms.max(width) + width - 1) / width * width;
        let sql = self.sql(
            "SELECT bucket - (bucket % ?) AS step, key, CAST(SUM(n) AS BIGINT) FROM rollups \
             WHERE series = ? AND bucket >= ? AND bucket < ? \
             GROUP BY step, key ORDER BY step, key",
        );
        let rows: Vec<(i64, String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(step)
                .bind(series.as_str())
                .bind(bucket_of(since.as_millis(), width))
                .bind(until.as_millis())
                .fetch_all(pool)
                .await?
        });
        Ok(points(rows))
    }

    /// The `limit` keys of `series` with the most counts in `[since, until)`, most first (ties by
    /// key), with their counts.
    pub async fn rollup_top(
        &self,
        series: RollupSeries,
        since: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let sql = self.sql(
            "SELECT key, CAST(SUM(n) AS BIGINT) AS total FROM rollups \
             WHERE series = ? AND bucket >= ? AND bucket < ? \
             GROUP BY key ORDER BY total DESC, key LIMIT ?",
        );
        let rows: Vec<(String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(series.as_str())
                .bind(bucket_of(since.as_millis(), series.bucket_ms()))
                .bind(until.as_millis())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(k, n)| (k, count(n))).collect())
    }

    /// Events, alerts and actions in `[since, until)`, summed from the rollups.
    pub async fn rollup_totals(
        &self,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<RollupTotals, StoreError> {
        let sql = self.sql(
            "SELECT series, CAST(SUM(n) AS BIGINT) FROM rollups \
             WHERE series IN ('event_kind', 'alert_severity', 'action_kind') \
             AND bucket >= ? AND bucket < ? GROUP BY series",
        );
        let rows: Vec<(String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(bucket_of(since.as_millis(), BUCKET_MS))
                .bind(until.as_millis())
                .fetch_all(pool)
                .await?
        });
        let mut t = RollupTotals::default();
        for (series, n) in rows {
            match series.as_str() {
                "event_kind" => t.events = count(n),
                "alert_severity" => t.alerts = count(n),
                "action_kind" => t.actions = count(n),
                _ => {}
            }
        }
        Ok(t)
    }

    /// Actions applied and not expired at `now` (a range of the `actions_state_expires` index).
    pub async fn count_active_actions(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.count_at(ACTIVE_ACTIONS_SQL, now).await
    }

    /// Distinct subjects under an applied, unexpired action at `now`: the decisions in force (the
    /// same range of the same index, which holds the subject too).
    pub async fn count_active_subjects(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.count_at(ACTIVE_SUBJECTS_SQL, now).await
    }

    /// Investigations concluded at or after `since` (an index range count).
    pub async fn count_investigations_since(&self, since: Timestamp) -> Result<u64, StoreError> {
        self.count_at("SELECT COUNT(*) FROM investigations WHERE ts >= ?", since)
            .await
    }

    /// The one count `sql` answers with its one parameter bound to `at` (ms).
    async fn count_at(&self, sql: &'static str, at: Timestamp) -> Result<u64, StoreError> {
        let sql = self.sql(sql);
        let n: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar(&sql)
                .bind(at.as_millis())
                .fetch_one(pool)
                .await?
        });
        Ok(count(n))
    }
}

impl Store {
    /// Every stored bucket of `series`, ordered by bucket then key: the rollups as they are.
    pub async fn rollup_buckets(
        &self,
        series: RollupSeries,
    ) -> Result<Vec<RollupPoint>, StoreError> {
        let sql =
            self.sql("SELECT bucket, key, n FROM rollups WHERE series = ? ORDER BY bucket, key");
        let rows: Vec<(i64, String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(series.as_str())
                .fetch_all(pool)
                .await?
        });
        Ok(points(rows))
    }

    /// The buckets of `series` counted afresh from the record tables, in the order of
    /// [`Store::rollup_buckets`]: what the rollups should hold. A full scan, for checking the rollups
    /// (tests, repairs); never for serving a page.
    pub async fn rollup_recount(
        &self,
        series: RollupSeries,
    ) -> Result<Vec<RollupPoint>, StoreError> {
        let (table, ts, key) = match series {
            RollupSeries::EventKind => ("events", "ts", "kind"),
            RollupSeries::AlertScenario => ("alerts", "ts", "scenario"),
            RollupSeries::AlertSeverity => ("alerts", "ts", "severity"),
            RollupSeries::AlertSubject => ("alerts", "ts", "subject"),
            RollupSeries::ActionKind => ("actions", "created", "kind"),
        };
        let sql = format!(
            "SELECT {ts} - ({ts} % ?) AS b, {key} AS k, COUNT(*) FROM {table} \
             GROUP BY b, k ORDER BY b, k"
        );
        let rows: Vec<(i64, String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(&sql))
                .bind(series.bucket_ms())
                .fetch_all(pool)
                .await?
        });
        Ok(points(rows))
    }
}
