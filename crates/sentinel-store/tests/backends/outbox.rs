//! Outbox cases of the shared store suite: inserts at most once per id, due groups, delivery ids,
//! retries, de-duplication lookups, dead letters and requeues, counts and pruning (the same flows as
//! `tests/outbox.rs`, on both engines).

use crate::case::*;
use sentinel_core::Timestamp;
use sentinel_store::{NewOutboxRow, OutboxState, StoreError};

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

pub async fn outbox_rows_are_grouped_delivered_and_retried(c: Case) {
    let store = &c.store;
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
    // What another handle (another process) reads.
    let store = &sentinel_store::Store::open_url(&c.url()).await.unwrap();
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
    // Clear the way for the next flow: those rows are delivered, then pruned.
    let store = &c.store;
    let both = ["a".to_owned(), "b".to_owned()];
    assert_eq!(store.outbox_assign("d-setup", &both).await.unwrap(), 2);
    let at = Timestamp::from_millis(1);
    assert_eq!(store.outbox_delivered("d-setup", at).await.unwrap(), 2);
    let later = Timestamp::from_millis(2);
    assert_eq!(store.outbox_prune_delivered(later).await.unwrap(), 2);
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

pub async fn outbox_dead_letters_requeue_and_prune(c: Case) {
    let store = &c.store;
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
    // The rows above stay; pruning takes only old delivered rows.
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
