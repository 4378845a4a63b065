//! The notification outbox: durable inserts, due groups, delivery ids, retries, dead letters and
//! requeues, de-duplication lookups, counts and pruning; and the digest figures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_core::{ActionKind, ActionState, Severity, Timestamp};
use sentinel_store::{NewOutboxRow, OutboxState, Record};

fn row(id: &str, channel: &str, key: &str, created: i64, due: i64) -> NewOutboxRow {
    NewOutboxRow {
        id: id.into(),
        channel: channel.into(),
        key: key.into(),
        body: format!("{{\"id\":\"{id}\"}}"),
        created: Timestamp::from_millis(created),
        due: Timestamp::from_millis(due),
    }
}

fn ids(rows: &[sentinel_store::OutboxRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

#[tokio::test]
async fn inserted_rows_survive_a_reopen_and_a_fixed_id_is_inserted_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let added = store
        .insert_outbox(&[row("a", "hook", "k", 1, 1), row("b", "mail", "k", 1, 1)])
        .await
        .unwrap();
    assert_eq!(added, 2);
    assert_eq!(
        store
            .insert_outbox(&[row("a", "hook", "k", 2, 2)])
            .await
            .unwrap(),
        0
    );
    store.close().await;
    drop(store);
    let store = open(&dir).await;
    let a = store.outbox_row("a").await.unwrap().unwrap();
    assert_eq!(a.channel, "hook");
    assert_eq!(a.created, Timestamp::from_millis(1));
    assert_eq!(a.state, OutboxState::Pending);
    assert_eq!(a.attempts, 0);
    assert_eq!(a.delivery, None);
    assert_eq!(a.body, "{\"id\":\"a\"}");
    let counts = store.outbox_counts().await.unwrap();
    assert_eq!(counts.len(), 2);
    assert!(counts
        .iter()
        .all(|c| c.rows == 1 && c.state == OutboxState::Pending));
}

// Due groups, delivery ids, retries, dead letters, requeue, pruning and a 3,000-row assignment are in
// the shared suite (tests/backends/outbox.rs), which runs them on SQLite and on PostgreSQL.

#[tokio::test]
async fn digest_counts_the_window_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (writer, task) = store.writer(fast_writer());
    let t = "trace-digest";
    // Inside [10_000, 20_000): 2 events, 3 alerts (2 ssh from .7, 1 web from .8), 2 actions
    // (one reverted inside the window); outside: one of each.
    let mut records: Vec<Record> = vec![
        event(10_000, "203.0.113.7", "auth_failure", t).into(),
        event(19_999, "203.0.113.7", "auth_failure", t).into(),
        event(20_000, "203.0.113.7", "auth_failure", t).into(),
    ];
    let a1 = alert(
        11_000,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.7"),
        t,
    );
    let a2 = alert(
        12_000,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.7"),
        t,
    );
    let a3 = alert(13_000, "web_scan", Severity::Low, ip("203.0.113.8"), t);
    let a0 = alert(9_000, "web_scan", Severity::Low, ip("203.0.113.9"), t);
    let inv = investigation(&a1);
    let pl = plan(&a1, &inv);
    let mut rev = action(&pl, ActionKind::BlockIp, ActionState::Reverted, 14_000);
    rev.updated = Timestamp::from_millis(15_000);
    let kept = action(&pl, ActionKind::RateLimit, ActionState::Applied, 16_000);
    let old = action(&pl, ActionKind::BlockIp, ActionState::Expired, 1_000);
    for a in [a1, a2, a3, a0] {
        records.push(a.into());
    }
    for a in [rev, kept, old] {
        records.push(a.into());
    }
    for r in records {
        writer.write(r).await.unwrap();
    }
    drop(writer);
    task.finish().await.unwrap();
    let d = store
        .digest(
            Timestamp::from_millis(10_000),
            Timestamp::from_millis(20_000),
            5,
        )
        .await
        .unwrap();
    assert_eq!(d.events, 2);
    assert_eq!(d.alerts, 3);
    assert_eq!(
        d.alerts_by_scenario,
        vec![("ssh_bruteforce".into(), 2), ("web_scan".into(), 1)]
    );
    assert_eq!(
        d.actions_by_kind,
        vec![("block_ip".into(), 1), ("rate_limit".into(), 1)]
    );
    assert_eq!(d.top_sources.len(), 2);
    assert_eq!(d.top_sources[0].1, 2);
    assert!(
        d.top_sources[0].0.contains("203.0.113.7"),
        "{:?}",
        d.top_sources
    );
    assert_eq!(d.reverted, 1);
    assert_eq!(d.reverted_recent.len(), 1);
    assert!(d.reverted_recent[0].starts_with("block_ip "));
    assert!(d.reverted_recent[0].contains("203.0.113.7"));
}

/// A flood: 3000 rows of one key due first, then 2000 distinct keys. Groups come in the order of
/// each key's earliest due row, the big key whole; draining group by group takes every row once.
#[tokio::test]
async fn due_groups_drain_a_flood_of_keys_in_due_order_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut rows = Vec::new();
    for i in 0..3000 {
        rows.push(row(&format!("big{i:05}"), "hook", "big", i, i));
    }
    for i in 0..2000 {
        // Interleaved due times: key k{i} is due at 10_000 + i, its second row later.
        rows.push(row(
            &format!("a{i:05}"),
            "hook",
            &format!("k{i:05}"),
            0,
            10_000 + i,
        ));
        rows.push(row(
            &format!("b{i:05}"),
            "hook",
            &format!("k{i:05}"),
            0,
            20_000 + i,
        ));
    }
    store.insert_outbox(&rows).await.unwrap();
    let now = Timestamp::from_millis(1_000_000);
    let first = store.outbox_due_groups("hook", now, 16).await.unwrap();
    assert!(!first.is_empty());
    assert_eq!(first[0].key, "big");
    assert_eq!(first[0].rows.len(), 3000);
    let mut seen = std::collections::BTreeSet::new();
    let mut order = Vec::new();
    let mut n = 0;
    loop {
        let groups = store.outbox_due_groups("hook", now, 16).await.unwrap();
        if groups.is_empty() {
            break;
        }
        for g in groups {
            assert!(g.delivery.is_none());
            for r in &g.rows {
                assert!(seen.insert(r.id.clone()), "{} twice", r.id);
            }
            order.push(g.key.clone());
            n += 1;
            let d = format!("d{n}");
            let ids: Vec<String> = g.rows.iter().map(|r| r.id.clone()).collect();
            store.outbox_assign(&d, &ids).await.unwrap();
            store.outbox_delivered(&d, now).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 7000);
    let mut expected = vec!["big".to_string()];
    expected.extend((0..2000).map(|i| format!("k{i:05}")));
    assert_eq!(order, expected);
}

/// Rows created in the same millisecond keep the order they were written in (their ids are random
/// ULIDs within a millisecond): the first notice of a folded message is the first one accepted.
#[tokio::test]
async fn rows_of_one_millisecond_keep_their_insertion_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    for id in ["z", "m", "a"] {
        store
            .insert_outbox(&[row(id, "hook", "k", 500, 500)])
            .await
            .unwrap();
    }
    let groups = store
        .outbox_due_groups("hook", Timestamp::from_millis(600), 4)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(ids(&groups[0].rows), ["z", "m", "a"]);
    store
        .outbox_assign("d1", &["z".into(), "m".into(), "a".into()])
        .await
        .unwrap();
    let rows = store.outbox_delivery_rows("d1").await.unwrap();
    assert_eq!(ids(&rows), ["z", "m", "a"]);
}
