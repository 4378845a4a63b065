//! Every record kind survives the writer, a close and a reopen unchanged; actions upsert; API keys.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_core::{ActionKind, ActionState, AuditKind, Severity, Timestamp};
use sentinel_store::{ApiKeyRow, EventFilter, Record, Store, StoreError};

#[tokio::test]
async fn every_record_kind_reads_back_equal_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let t = "trace-rt-1";
    let ev = event(1_000, "203.0.113.7", "auth_failure", t);
    let al = alert(
        2_000,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.7"),
        t,
    );
    let inv = investigation(&al);
    let pl = plan(&al, &inv);
    let act = action(&pl, ActionKind::BlockIp, ActionState::Applied, 3_000);
    let audits = vec![
        audit(1_000, AuditKind::EventAccepted, &ev.id.to_string(), t),
        audit(2_000, AuditKind::AlertRaised, &al.id.to_string(), t),
        audit(3_000, AuditKind::ActionChanged, &act.id.to_string(), t),
    ];

    let (writer, task) = store.writer(fast_writer());
    for r in [
        Record::from(ev.clone()),
        al.clone().into(),
        inv.clone().into(),
        pl.clone().into(),
        act.clone().into(),
    ] {
        writer.write(r).await.unwrap();
    }
    for a in &audits {
        writer.write(a.clone().into()).await.unwrap();
    }
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.records, 8);
    assert_eq!(stats.failed_batches, 0);
    store.close().await;
    drop(store);

    let store = open(&dir).await;
    store.ping().await.unwrap();
    assert_eq!(store.count_events().await.unwrap(), 1);
    let events = store.list_events(&EventFilter::default()).await.unwrap();
    assert_eq!(events.items, vec![ev]);
    assert_eq!(events.next_cursor, None);

    let detail = store.get_alert(al.id).await.unwrap().unwrap();
    assert_eq!(detail.alert, al);
    assert_eq!(detail.investigation, Some(inv));
    assert_eq!(detail.plans, vec![pl]);
    assert_eq!(detail.actions, vec![act.clone()]);
    assert_eq!(store.get_action(act.id).await.unwrap(), Some(act));
    let read: Vec<_> = store
        .audit_for_trace(&trace(t))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            assert_eq!(row.log_seq, None);
            row.record
        })
        .collect();
    assert_eq!(read, audits);
    assert!(store
        .audit_for_trace(&trace("other"))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .get_alert(sentinel_core::AlertId::new())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn writing_an_action_again_replaces_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let al = alert(
        10_000,
        "http_attack",
        Severity::Medium,
        ip("198.51.100.2"),
        "t-up",
    );
    let inv = investigation(&al);
    let pl = plan(&al, &inv);
    let planned = action(&pl, ActionKind::RateLimit, ActionState::Planned, 10_100);
    let mut applied = planned.clone();
    applied.state = ActionState::Applied;
    applied.updated = Timestamp::from_millis(10_200);
    let mut reverted = applied.clone();
    reverted.state = ActionState::Reverted;
    reverted.updated = Timestamp::from_millis(10_300);

    let (writer, task) = store.writer(fast_writer());
    writer.write(planned.clone().into()).await.unwrap();
    writer.write(applied.clone().into()).await.unwrap();
    drop(writer);
    task.finish().await.unwrap();
    assert_eq!(store.get_action(planned.id).await.unwrap(), Some(applied));

    let (writer, task) = store.writer(fast_writer());
    writer.write(reverted.clone().into()).await.unwrap();
    drop(writer);
    task.finish().await.unwrap();
    assert_eq!(
        store.get_action(planned.id).await.unwrap(),
        Some(reverted.clone())
    );
    let page = store
        .list_actions(&sentinel_store::ActionFilter::default())
        .await
        .unwrap();
    assert_eq!(page.items, vec![reverted]);
}

fn key(id: &str, hash: &str, created: i64) -> ApiKeyRow {
    ApiKeyRow {
        id: id.into(),
        name: format!("{id} key"),
        role: "operator".into(),
        hash: hash.into(),
        created: Timestamp::from_millis(created),
        expires: None,
        revoked_at: None,
    }
}

#[tokio::test]
async fn api_keys_insert_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let a = key("k1", "aa11", 1);
    let b = key("k2", "bb22", 2);
    store.insert_api_key(&a).await.unwrap();
    store.insert_api_key(&b).await.unwrap();
    assert_eq!(store.api_keys().await.unwrap(), vec![a.clone(), b.clone()]);

    // The hash is unique.
    let dup = store.insert_api_key(&key("k3", "aa11", 3)).await;
    assert!(matches!(dup, Err(StoreError::Db(_))), "{dup:?}");

    assert!(store.revoke_api_key("k1").await.unwrap());
    assert!(!store.revoke_api_key("k1").await.unwrap());
    assert!(!store.revoke_api_key("missing").await.unwrap());
    assert_eq!(store.api_keys().await.unwrap(), vec![b]);

    // Revocation survives a reopen.
    store.close().await;
    let store = open(&dir).await;
    assert_eq!(store.api_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_body_that_does_not_parse_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let path = dir.path().join("nested/dir/sentinel.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (id, ts, kind, source, src_ip, trace_id, body) \
         VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', 1, 'x', 'api', NULL, 't', '{not json')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let err = store
        .list_events(&EventFilter::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt(ref m) if m.contains("events")),
        "{err:?}"
    );
}

#[tokio::test]
async fn open_reports_an_unusable_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    // A regular file where the parent directory should be.
    let res = Store::open(&file.join("db.sqlite")).await;
    assert!(res.is_err());
}

/// A database written before action parameters were typed holds params as free JSON (`{"anything":1}`,
/// a rate on a block). After an upgrade those records must still be listed, fetched and shown with the
/// alert (its plan too), with their params exactly as stored, and refused by `check()` so nothing can
/// apply them.
#[tokio::test]
async fn records_stored_with_untyped_params_still_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let t = "trace-old-params";
    let al = alert(
        2_000,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.7"),
        t,
    );
    let inv = investigation(&al);
    let pl = plan(&al, &inv);
    let act = action(&pl, ActionKind::BlockIp, ActionState::Applied, 3_000);
    let (writer, task) = store.writer(fast_writer());
    for r in [
        Record::from(al.clone()),
        inv.clone().into(),
        pl.clone().into(),
        act.clone().into(),
    ] {
        writer.write(r).await.unwrap();
    }
    drop(writer);
    task.finish().await.unwrap();
    store.close().await;
    drop(store);

    // Rewrite the stored bodies as an older release wrote them.
    let path = dir.path().join("nested/dir/sentinel.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let old = |body: String, params: &str| {
        let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let spec = if v.get("spec").is_some() {
            &mut v["spec"]
        } else {
            &mut v["actions"][0]
        };
        spec["params"] = serde_json::from_str(params).unwrap();
        v.to_string()
    };
    for (table, id, params) in [
        ("actions", act.id.to_string(), r#"{"anything":1}"#),
        ("plans", pl.id.to_string(), r#"{"rate_per_sec":10}"#),
    ] {
        let (body,): (String,) = sqlx::query_as(&format!("SELECT body FROM {table} WHERE id = ?"))
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("UPDATE {table} SET body = ? WHERE id = ?"))
            .bind(old(body, params))
            .bind(&id)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let store = open(&dir).await;
    let listed = store
        .list_actions(&sentinel_store::ActionFilter::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let got = &listed.items[0];
    assert_eq!(got.id, act.id);
    assert_eq!(got.state, ActionState::Applied);
    assert_eq!(
        serde_json::to_value(&got.spec).unwrap()["params"],
        serde_json::json!({"anything": 1}),
        "the params are kept as they were stored"
    );
    let e = got.spec.check().unwrap_err().to_string();
    assert!(e.contains("cannot be applied"), "{e}");
    assert_eq!(store.get_action(act.id).await.unwrap().as_ref(), Some(got));
    let detail = store.get_alert(al.id).await.unwrap().unwrap();
    assert_eq!(detail.actions.len(), 1);
    assert_eq!(
        serde_json::to_value(&detail.plans[0].actions[0]).unwrap()["params"],
        serde_json::json!({"rate_per_sec": 10})
    );
    assert!(detail.plans[0].actions[0].check().is_err());
}
