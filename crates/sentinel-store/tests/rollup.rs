//! Rollups: kept by the writer in the transaction that stores the records, equal to the counts of the
//! record tables; backfilled by their migration from the rows already stored; pruned with the events.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_core::{ActionKind, ActionState, Severity, Timestamp};
use sentinel_store::{Record, RollupSeries, Store, BUCKET_MS, SUBJECT_BUCKET_MS};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

const T0: i64 = 1_780_000_000_000;

async fn write(store: &Store, records: Vec<Record>) {
    let (w, task) = store.writer(fast_writer());
    for r in records {
        w.write(r).await.unwrap();
    }
    drop(w);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.dropped, 0);
}

/// Events of three kinds over three hours, alerts of two scenarios, and actions written twice (planned,
/// then applied: the second write is an update of the same row).
fn records() -> Vec<Record> {
    let mut out = Vec::new();
    for i in 0..600i64 {
        let kind = ["auth_failure", "http_request", "port_probe"][(i % 3) as usize];
        out.push(Record::Event(event(
            T0 + i * 17_000,
            &format!("198.51.100.{}", i % 9 + 1),
            kind,
            "trace-r",
        )));
    }
    for i in 0..40i64 {
        let sev = if i % 4 == 0 {
            Severity::Critical
        } else {
            Severity::Medium
        };
        let scenario = if i % 2 == 0 {
            "ssh_bruteforce"
        } else {
            "http_scan"
        };
        let a = alert(
            T0 + i * 250_000,
            scenario,
            sev,
            ip(&format!("203.0.113.{}", i % 5 + 1)),
            "trace-r",
        );
        let inv = investigation(&a);
        let p = plan(&a, &inv);
        let kind = if i % 3 == 0 {
            ActionKind::RateLimit
        } else {
            ActionKind::BlockIp
        };
        let mut act = action(&p, kind, ActionState::Planned, T0 + i * 250_000 + 3);
        out.push(Record::Alert(a));
        out.push(Record::Action(act.clone()));
        act.state = ActionState::Applied;
        act.updated = Timestamp::from_millis(act.updated.as_millis() + 5);
        out.push(Record::Action(act));
    }
    out
}

async fn assert_consistent(store: &Store) {
    for s in RollupSeries::ALL {
        let kept = store.rollup_buckets(s).await.unwrap();
        let counted = store.rollup_recount(s).await.unwrap();
        assert!(!counted.is_empty(), "{s:?}: nothing stored");
        assert_eq!(kept, counted, "{s:?}");
    }
}

#[tokio::test]
async fn the_writer_keeps_rollups_equal_to_the_tables_and_counts_an_action_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    write(&store, records()).await;
    assert_consistent(&store).await;
    let totals = store
        .rollup_totals(
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + 86_400_000),
        )
        .await
        .unwrap();
    assert_eq!(
        (totals.events, totals.alerts, totals.actions),
        (600, 40, 40)
    );
    // The same alert written again (a retried write) is not counted again.
    let again: Vec<Record> = records()
        .into_iter()
        .filter(|r| matches!(r, Record::Action(_)))
        .take(2)
        .collect();
    write(&store, again).await;
    assert_consistent(&store).await;
}

#[tokio::test]
async fn reads_sum_steps_rank_keys_and_bound_windows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    write(&store, records()).await;
    let since = Timestamp::from_millis(T0);
    let until = Timestamp::from_millis(T0 + 3_600_000);
    // One-hour steps over the first hour: one step per kind, 3,600 s / 17 s = 212 events (0..=211).
    let pts = store
        .rollup_series(RollupSeries::EventKind, since, until, 3_600_000)
        .await
        .unwrap();
    let sum: u64 = pts.iter().map(|p| p.n).sum();
    let first_hour_buckets = (T0 + 3_600_000 - sentinel_store::bucket_of(T0, BUCKET_MS)) / 17_000;
    assert!(sum > 0 && sum as i64 <= first_hour_buckets + 20, "{sum}");
    let all = store
        .rollup_top(
            RollupSeries::AlertScenario,
            since,
            Timestamp::from_millis(T0 + 86_400_000),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![
            ("http_scan".to_string(), 20),
            ("ssh_bruteforce".to_string(), 20)
        ]
    );
    let one = store
        .rollup_top(
            RollupSeries::AlertSeverity,
            since,
            Timestamp::from_millis(T0 + 86_400_000),
            1,
        )
        .await
        .unwrap();
    assert_eq!(one, vec![("medium".to_string(), 30)]);
    // A window before everything is empty.
    let none = store
        .rollup_totals(
            Timestamp::from_millis(T0 - 7_200_000),
            Timestamp::from_millis(T0 - 3_600_000),
        )
        .await
        .unwrap();
    assert_eq!((none.events, none.alerts, none.actions), (0, 0, 0));
}

#[tokio::test]
async fn the_migration_backfills_from_the_rows_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/sentinel.db");
    let store = open(&dir).await;
    write(&store, records()).await;
    store.close().await;
    // Back to the schema before the rollups: the rows stay, the rollups and their migration go.
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    for sql in [
        "DROP TRIGGER rollups_alert_insert",
        "DROP TRIGGER rollups_action_insert",
        "DROP TABLE rollups",
        "DELETE FROM _sqlx_migrations WHERE version = 6",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    let store = Store::open(&path).await.unwrap();
    assert_consistent(&store).await;
    // And the writer goes on from there.
    write(&store, records()).await;
    assert_consistent(&store).await;
}

#[tokio::test]
async fn pruning_events_by_age_prunes_the_rollups_of_that_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    write(&store, records()).await;
    let cutoff = T0 + 2 * SUBJECT_BUCKET_MS + 1;
    store
        .prune_events(Timestamp::from_millis(cutoff), u64::MAX)
        .await
        .unwrap();
    for s in RollupSeries::ALL {
        for p in store.rollup_buckets(s).await.unwrap() {
            assert!(p.bucket + s.bucket_ms() > cutoff, "{s:?} kept {p:?}");
        }
    }
    // The event rollups left still equal the events left (the cutoff is inside a bucket, whose
    // events before the cutoff are pruned while its count stays until the bucket is whole past).
    let kept = store.rollup_buckets(RollupSeries::EventKind).await.unwrap();
    let counted = store.rollup_recount(RollupSeries::EventKind).await.unwrap();
    let edge = sentinel_store::bucket_of(cutoff, BUCKET_MS);
    let (kept_edge, kept_rest): (Vec<_>, Vec<_>) = kept.iter().partition(|p| p.bucket == edge);
    let (counted_edge, counted_rest): (Vec<_>, Vec<_>) =
        counted.iter().partition(|p| p.bucket == edge);
    assert_eq!(kept_rest, counted_rest);
    assert_eq!(kept_edge.len(), counted_edge.len());
    for (k, c) in kept_edge.iter().zip(&counted_edge) {
        assert!(k.key == c.key && k.n >= c.n, "{k:?} {c:?}");
    }
    let total: u64 = kept.iter().map(|p| p.n).sum();
    assert!(total < 600 && total > 0);
}
