//! A store made by the first schema, holding records in their old forms (an investigation with its
//! alert copied in, an action with only `plan_id` and `alert_id`), opens under the current schema and
//! reads back unchanged; new records are stored in their compact forms.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_core::{ActionKind, ActionState, Origin, Severity};
use sentinel_store::{Record, Store};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

/// Builds a database with only migration 1 applied, the way a release before this one left it.
async fn version_one(path: &std::path::Path) -> SqliteConnection {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/0001_init.sql"),
        dir.path().join("0001_init.sql"),
    )
    .unwrap();
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    migrator.run(&mut conn).await.unwrap();
    conn
}

#[tokio::test]
async fn old_records_read_back_after_the_migration_and_new_ones_are_compact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sentinel.db");
    let t = "trace-mig-1";
    let al = alert(
        5_000,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.8"),
        t,
    );
    let inv = investigation(&al);
    let pl = plan(&al, &inv);
    let act = action(&pl, ActionKind::BlockIp, ActionState::Applied, 5_100);

    // The old forms, as the first schema's writer stored them.
    let mut old_action = serde_json::to_value(&act).unwrap();
    let m = old_action.as_object_mut().unwrap();
    m.remove("origin");
    m.remove("investigation_id");
    let mut conn = version_one(&path).await;
    sqlx::query("INSERT INTO alerts (id, ts, scenario, severity, severity_rank, subject, trace_id, body) VALUES (?, ?, ?, ?, 3, ?, ?, ?)")
        .bind(al.id.to_string()).bind(al.ts.as_millis()).bind(&al.scenario).bind(al.severity.as_str())
        .bind(al.subject.key()).bind(t).bind(serde_json::to_string(&al).unwrap())
        .execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO investigations (id, alert_id, ts, risk_score, trace_id, body) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(inv.id.to_string()).bind(al.id.to_string()).bind(inv.ts.as_millis()).bind(82)
        .bind(t).bind(serde_json::to_string(&inv).unwrap())
        .execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO actions (id, plan_id, alert_id, kind, subject, state, expires_at, created, updated, trace_id, body) VALUES (?, ?, ?, 'block_ip', ?, 'applied', 0, ?, ?, ?, ?)")
        .bind(act.id.to_string()).bind(pl.id.to_string()).bind(al.id.to_string())
        .bind(act.spec.subject.key()).bind(act.created.as_millis()).bind(act.updated.as_millis())
        .bind(t).bind(old_action.to_string())
        .execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    let store = Store::open(&path).await.unwrap();
    let detail = store.get_alert(al.id).await.unwrap().unwrap();
    assert_eq!(detail.investigation.as_ref(), Some(&inv));
    let read = store.get_action(act.id).await.unwrap().unwrap();
    assert_eq!(
        read.origin,
        Origin::Plan {
            plan_id: pl.id,
            alert_id: al.id,
            investigation_id: None
        }
    );
    assert_eq!(detail.actions, vec![read]);

    // New records: an operator's action has no plan or alert (NULL columns, allowed now), and an
    // investigation is stored without its alert.
    let al2 = alert(6_000, "http_attack", Severity::Medium, ip("203.0.113.9"), t);
    let inv2 = investigation(&al2);
    let mut op = action(&pl, ActionKind::BlockIp, ActionState::Planned, 6_100);
    op.origin = Origin::Operator;
    let (writer, task) = store.writer(fast_writer());
    for r in [
        Record::from(al2.clone()),
        inv2.clone().into(),
        op.clone().into(),
    ] {
        writer.write(r).await.unwrap();
    }
    drop(writer);
    task.finish().await.unwrap();
    assert_eq!(store.get_action(op.id).await.unwrap(), Some(op.clone()));
    let detail2 = store.get_alert(al2.id).await.unwrap().unwrap();
    assert_eq!(detail2.investigation, Some(inv2.clone()));
    store.close().await;

    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    let (plan_id, alert_id): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT plan_id, alert_id FROM actions WHERE id = ?")
            .bind(op.id.to_string())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((plan_id, alert_id), (None, None));
    let (body,): (String,) = sqlx::query_as("SELECT body FROM investigations WHERE id = ?")
        .bind(inv2.id.to_string())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("alert").is_none(), "the alert is copied in: {body}");
    assert_eq!(v["alert_id"], al2.id.to_string());
    let copied = serde_json::to_string(&inv2).unwrap().len();
    assert!(
        body.len() * 2 < copied,
        "stored {} bytes, the copy would be {copied}",
        body.len()
    );
    conn.close().await.unwrap();
}
