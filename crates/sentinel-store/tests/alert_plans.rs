//! The alert listings the dashboard pages through are index walks: each filter on one column, with or
//! without a cursor, reads its page in id order from an index and stops at the LIMIT, never sorting
//! every matching row first (SQLite's plan says `USE TEMP B-TREE FOR ORDER BY` when it would).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_store::Store;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

/// The plan of `SELECT id, body FROM alerts WHERE <where> ORDER BY id DESC LIMIT 51`, the statement
/// `Store::list_alerts` builds, one line per step.
async fn plan(conn: &mut SqliteConnection, where_: &str) -> String {
    plan_from(conn, "alerts", where_).await
}

async fn plan_from(conn: &mut SqliteConnection, from: &str, where_: &str) -> String {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
        "EXPLAIN QUERY PLAN SELECT id, body FROM {from} WHERE 1 = 1{where_} ORDER BY id DESC LIMIT 51"
    ))
    .fetch_all(conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
}

/// A connection to a new store's database (all migrations run); keep the tempdir.
async fn schema() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path).await.unwrap());
    let conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    (dir, conn)
}

#[tokio::test]
async fn alert_filters_walk_an_index_in_id_order() {
    let (_dir, mut conn) = schema().await;
    let cursor = " AND id < '01KBDN3R0000000000000000'";
    for (filter, index) in [
        (" AND scenario = 'ssh_bruteforce'", "alerts_scenario_id"),
        (" AND subject = 'ip:203.0.113.7'", "alerts_subject_id"),
        (" AND severity = 'high'", "alerts_severity_id"),
        // Unfiltered: either index in id order.
        ("", "USING INDEX "),
    ] {
        for w in [filter.to_owned(), format!("{filter}{cursor}")] {
            let p = plan(&mut conn, &w).await;
            assert!(!p.contains("TEMP B-TREE"), "{w}: sorts every match:\n{p}");
            assert!(p.contains(index), "{w}: not by {index}:\n{p}");
        }
    }
    // Time and minimum severity alone: `list_alerts` names the covering index, checked in it.
    for filter in [
        " AND severity_rank >= 3",
        " AND ts >= 1764000000000",
        " AND ts <= 1764000000000",
        " AND ts >= 1764000000000 AND ts <= 1765000000000 AND severity_rank >= 2",
    ] {
        for w in [filter.to_owned(), format!("{filter}{cursor}")] {
            let p = plan_from(&mut conn, "alerts INDEXED BY alerts_id_ts_rank", &w).await;
            assert!(!p.contains("TEMP B-TREE"), "{w}: sorts every match:\n{p}");
            assert!(p.contains("alerts_id_ts_rank"), "{w}:\n{p}");
        }
    }
    // Two equality filters: one of them is walked in order, the other checked on the way.
    let p = plan(
        &mut conn,
        " AND scenario = 'port_scan' AND severity_rank >= 3 AND subject = 'ip:203.0.113.7'",
    )
    .await;
    assert!(!p.contains("TEMP B-TREE"), "{p}");
}

/// The overview's counts of the decisions in force read a range of one index that holds every column
/// they need (`COVERING INDEX`), never the actions' rows.
#[tokio::test]
async fn active_counts_read_only_an_index() {
    let (_dir, mut conn) = schema().await;
    for sql in [
        sentinel_store::ACTIVE_ACTIONS_SQL,
        sentinel_store::ACTIVE_SUBJECTS_SQL,
    ] {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .bind(1_764_000_000_000i64)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let p = rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n");
        assert!(
            p.contains("COVERING INDEX actions_state_expires (state=? AND expires_at>?)"),
            "{sql}:\n{p}"
        );
    }
}
