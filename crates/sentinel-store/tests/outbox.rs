//! The notification outbox: durable inserts, due groups, delivery ids, retries, dead letters and
//! requeues, de-duplication lookups, counts and pruning; and the digest figures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_core::{ActionKind, ActionState, Severity, Timestamp};
use sentinel_store::{NewOutboxRow, OutboxState, Record, StoreError};

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

#[tokio::test]
async fn due_groups_take_every_row_of_a_due_key_and_skip_keys_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .insert_outbox(&[
            row("1", "hook", "k1", 100, 200),
            row("2", "hook", "k1", 150, 250), // not due yet, but its key is
            row("3", "hook", "k2", 160, 900), // key not due
            row("4", "mail", "k1", 100, 100), // other channel
        ])
        .await
        .unwrap();
    assert_eq!(
        store.outbox_next_due("hook").await.unwrap(),
        Some(Timestamp::from_millis(200))
    );
    assert!(store
        .outbox_due_groups("hook", Timestamp::from_millis(199), 10)
        .await
        .unwrap()
        .is_empty());
    let groups = store
        .outbox_due_groups("hook", Timestamp::from_millis(200), 10)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].key, "k1");
    assert_eq!(groups[0].delivery, None);
    assert_eq!(ids(&groups[0].rows), vec!["1", "2"]);

    // Assigned: the group is in flight; a new row of k1 waits for it.
    let n = store
        .outbox_assign("d1", &["1".to_string(), "2".to_string()])
        .await
        .unwrap();
    assert_eq!(n, 2);
    store
        .insert_outbox(&[row("5", "hook", "k1", 300, 300)])
        .await
        .unwrap();
    store
        .outbox_retry("d1", Timestamp::from_millis(1_000), "503")
        .await
        .unwrap();
    // Row 5 is due at 300 but its key has a delivery in flight; next due is k2's 900.
    assert_eq!(
        store.outbox_next_due("hook").await.unwrap(),
        Some(Timestamp::from_millis(900))
    );
    let groups = store
        .outbox_due_groups("hook", Timestamp::from_millis(950), 10)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].key, "k2");
    // The retry comes first once due, with all its rows and the same delivery id.
    let groups = store
        .outbox_due_groups("hook", Timestamp::from_millis(1_000), 10)
        .await
        .unwrap();
    assert_eq!(groups[0].delivery.as_deref(), Some("d1"));
    assert_eq!(ids(&groups[0].rows), vec!["1", "2"]);
    assert!(groups[0]
        .rows
        .iter()
        .all(|r| r.attempts == 1 && r.last_error.as_deref() == Some("503")));
    assert_eq!(groups.len(), 2); // d1 and k2; k1's new row still waits for d1

    // Delivered: the key's last delivery is known, and row 5 becomes takeable.
    store
        .outbox_delivered("d1", Timestamp::from_millis(1_100))
        .await
        .unwrap();
    assert_eq!(
        store.outbox_last_delivered("hook", "k1").await.unwrap(),
        Some(Timestamp::from_millis(1_100))
    );
    assert_eq!(
        store.outbox_last_delivered("mail", "k1").await.unwrap(),
        None
    );
    let r1 = store.outbox_row("1").await.unwrap().unwrap();
    assert_eq!(r1.state, OutboxState::Delivered);
    assert_eq!(r1.attempts, 2);
    assert_eq!(r1.done_at, Some(Timestamp::from_millis(1_100)));

    // A de-duplication window defers row 5.
    let moved = store
        .outbox_defer("hook", "k1", Timestamp::from_millis(5_000))
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(
        store.outbox_row("5").await.unwrap().unwrap().due,
        Timestamp::from_millis(5_000)
    );
}

#[tokio::test]
async fn dead_letters_page_newest_first_and_requeue_resets_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    for i in 0..5 {
        let id = format!("r{i}");
        store
            .insert_outbox(&[row(&id, "hook", &format!("k{i}"), i, i)])
            .await
            .unwrap();
        store.outbox_assign(&format!("d{i}"), &[id]).await.unwrap();
        store
            .outbox_retry(&format!("d{i}"), Timestamp::from_millis(i), "timeout")
            .await
            .unwrap();
        store
            .outbox_dead(
                &format!("d{i}"),
                Timestamp::from_millis(1_000 + i),
                "410 gone",
            )
            .await
            .unwrap();
    }
    let page1 = store.outbox_dead_letters(2, None).await.unwrap();
    let names: Vec<_> = page1.iter().map(|d| d.delivery.as_str()).collect();
    assert_eq!(names, vec!["d4", "d3"]);
    assert_eq!(page1[0].attempts, 2);
    assert_eq!(page1[0].last_error.as_deref(), Some("410 gone"));
    assert_eq!(page1[0].died_at, Timestamp::from_millis(1_004));
    assert_eq!(page1[0].rows.len(), 1);
    let page2 = store.outbox_dead_letters(2, Some("d3")).await.unwrap();
    let names: Vec<_> = page2.iter().map(|d| d.delivery.as_str()).collect();
    assert_eq!(names, vec!["d2", "d1"]);
    let page3 = store.outbox_dead_letters(2, Some("d1")).await.unwrap();
    assert_eq!(page3.len(), 1);
    assert!(matches!(
        store.outbox_dead_letters(2, Some("nope")).await,
        Err(StoreError::BadCursor)
    ));

    assert!(store
        .outbox_requeue("d4", Timestamp::from_millis(2_000))
        .await
        .unwrap());
    assert!(!store
        .outbox_requeue("d4", Timestamp::from_millis(2_000))
        .await
        .unwrap());
    let r = store.outbox_row("r4").await.unwrap().unwrap();
    assert_eq!(r.state, OutboxState::Pending);
    assert_eq!(r.attempts, 0);
    assert_eq!(r.delivery.as_deref(), Some("d4"));
    assert_eq!(r.due, Timestamp::from_millis(2_000));
    let groups = store
        .outbox_due_groups("hook", Timestamp::from_millis(2_000), 10)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].delivery.as_deref(), Some("d4"));
    assert_eq!(store.outbox_dead_letters(10, None).await.unwrap().len(), 4);
}

#[tokio::test]
async fn prune_deletes_only_old_delivered_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store
        .insert_outbox(&[
            row("old", "hook", "a", 1, 1),
            row("new", "hook", "b", 1, 1),
            row("dead", "hook", "c", 1, 1),
            row("live", "hook", "d", 1, 1),
        ])
        .await
        .unwrap();
    for (id, d) in [("old", "d-old"), ("new", "d-new"), ("dead", "d-dead")] {
        store.outbox_assign(d, &[id.to_string()]).await.unwrap();
    }
    store
        .outbox_delivered("d-old", Timestamp::from_millis(100))
        .await
        .unwrap();
    store
        .outbox_delivered("d-new", Timestamp::from_millis(10_000))
        .await
        .unwrap();
    store
        .outbox_dead("d-dead", Timestamp::from_millis(100), "x")
        .await
        .unwrap();
    assert_eq!(
        store
            .outbox_prune_delivered(Timestamp::from_millis(5_000))
            .await
            .unwrap(),
        1
    );
    assert!(store.outbox_row("old").await.unwrap().is_none());
    for id in ["new", "dead", "live"] {
        assert!(store.outbox_row(id).await.unwrap().is_some(), "{id}");
    }
}

#[tokio::test]
async fn assigning_many_rows_works_past_the_statement_variable_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let rows: Vec<_> = (0..3_000)
        .map(|i| row(&format!("r{i:05}"), "hook", "burst", i, 0))
        .collect();
    assert_eq!(store.insert_outbox(&rows).await.unwrap(), 3_000);
    let groups = store
        .outbox_due_groups("hook", Timestamp::from_millis(0), 4)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].rows.len(), 3_000);
    let ids: Vec<String> = groups[0].rows.iter().map(|r| r.id.clone()).collect();
    assert_eq!(store.outbox_assign("big", &ids).await.unwrap(), 3_000);
    assert_eq!(
        store.outbox_delivery_rows("big").await.unwrap().len(),
        3_000
    );
}

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
