//! Listings select the right rows, page without gaps or repeats, reject bad cursors; retention prunes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_core::{ActionKind, ActionState, Alert, Severity, Subject, Timestamp};
use sentinel_store::{
    ActionFilter, AlertFilter, EventFilter, FeedFilter, FeedKind, Record, Store, StoreError,
    DEFAULT_LIMIT,
};
use std::collections::HashSet;

async fn write_all(store: &Store, records: Vec<Record>) {
    let (writer, task) = store.writer(fast_writer());
    for r in records {
        writer.write(r).await.unwrap();
    }
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.failed_batches, 0);
}

/// Five alerts, one per severity, at ts 1000, 2000, … with varied scenario, subject and trace.
fn alerts() -> Vec<Alert> {
    vec![
        alert(
            1_000,
            "ssh_bruteforce",
            Severity::Info,
            ip("203.0.113.7"),
            "t-a",
        ),
        alert(
            2_000,
            "ssh_bruteforce",
            Severity::Low,
            ip("203.0.113.8"),
            "t-a",
        ),
        alert(
            3_000,
            "http_attack",
            Severity::Medium,
            ip("203.0.113.7"),
            "t-b",
        ),
        alert(
            4_000,
            "http_attack",
            Severity::High,
            Subject::Container("web".into()),
            "t-c",
        ),
        alert(
            5_000,
            "port_scan",
            Severity::Critical,
            ip("2001:db8::1"),
            "t-c",
        ),
    ]
}

fn ts_of(items: &[Alert]) -> Vec<i64> {
    items.iter().map(|a| a.ts.as_millis()).collect()
}

#[tokio::test]
async fn alert_filters_select_the_right_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    write_all(&store, alerts().into_iter().map(Record::from).collect()).await;

    let list = |f: AlertFilter| {
        let store = store.clone();
        async move { ts_of(&store.list_alerts(&f).await.unwrap().items) }
    };
    assert_eq!(
        list(AlertFilter::default()).await,
        vec![5_000, 4_000, 3_000, 2_000, 1_000]
    );
    assert_eq!(
        list(AlertFilter {
            severity: Some(Severity::Medium),
            ..Default::default()
        })
        .await,
        vec![3_000]
    );
    assert_eq!(
        list(AlertFilter {
            min_severity: Some(Severity::Medium),
            ..Default::default()
        })
        .await,
        vec![5_000, 4_000, 3_000]
    );
    assert_eq!(
        list(AlertFilter {
            scenario: Some("ssh_bruteforce".into()),
            ..Default::default()
        })
        .await,
        vec![2_000, 1_000]
    );
    assert_eq!(
        list(AlertFilter {
            subject: Some("ip:203.0.113.7".into()),
            ..Default::default()
        })
        .await,
        vec![3_000, 1_000]
    );
    assert_eq!(
        list(AlertFilter {
            subject: Some("203.0.113.7".into()),
            ..Default::default()
        })
        .await,
        vec![3_000, 1_000]
    );
    assert_eq!(
        list(AlertFilter {
            subject: Some("2001:DB8::1".into()),
            ..Default::default()
        })
        .await,
        vec![5_000]
    );
    assert_eq!(
        list(AlertFilter {
            subject: Some("container:web".into()),
            ..Default::default()
        })
        .await,
        vec![4_000]
    );
    assert_eq!(
        list(AlertFilter {
            since: Some(Timestamp::from_millis(2_000)),
            until: Some(Timestamp::from_millis(4_000)),
            ..Default::default()
        })
        .await,
        vec![4_000, 3_000, 2_000]
    );
    assert_eq!(
        list(AlertFilter {
            trace_id: Some("t-c".into()),
            ..Default::default()
        })
        .await,
        vec![5_000, 4_000]
    );
    assert_eq!(
        list(AlertFilter {
            trace_id: Some("t-a".into()),
            min_severity: Some(Severity::Low),
            ..Default::default()
        })
        .await,
        vec![2_000]
    );
    assert!(list(AlertFilter {
        scenario: Some("nothing".into()),
        ..Default::default()
    })
    .await
    .is_empty());
}

#[tokio::test]
async fn action_and_event_filters_select_the_right_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let [a1, a2, ..] = <[Alert; 5]>::try_from(alerts()).unwrap();
    let (i1, i2) = (investigation(&a1), investigation(&a2));
    let (p1, p2) = (plan(&a1, &i1), plan(&a2, &i2));
    let x1 = action(&p1, ActionKind::BlockIp, ActionState::Applied, 1_100);
    let x2 = action(&p1, ActionKind::RateLimit, ActionState::Planned, 1_200);
    let x3 = action(&p2, ActionKind::BlockIp, ActionState::Refused, 2_100);
    let e1 = event(100, "203.0.113.7", "auth_failure", "t-e1");
    let e2 = event(200, "203.0.113.8", "auth_failure", "t-e2");
    let e3 = event(300, "203.0.113.7", "http_request", "t-e2");
    write_all(
        &store,
        vec![
            x1.clone().into(),
            x2.clone().into(),
            x3.clone().into(),
            e1.clone().into(),
            e2.clone().into(),
            e3.clone().into(),
        ],
    )
    .await;

    let actions = |f: ActionFilter| {
        let store = store.clone();
        async move { store.list_actions(&f).await.unwrap().items }
    };
    assert_eq!(
        actions(ActionFilter::default()).await,
        vec![x3.clone(), x2.clone(), x1.clone()]
    );
    assert_eq!(
        actions(ActionFilter {
            state: Some(ActionState::Applied),
            ..Default::default()
        })
        .await,
        vec![x1.clone()]
    );
    assert_eq!(
        actions(ActionFilter {
            kind: Some(ActionKind::BlockIp),
            ..Default::default()
        })
        .await,
        vec![x3.clone(), x1.clone()]
    );
    assert_eq!(
        actions(ActionFilter {
            subject: Some("203.0.113.8".into()),
            ..Default::default()
        })
        .await,
        vec![x3.clone()]
    );
    assert_eq!(
        actions(ActionFilter {
            trace_id: Some("t-a".into()),
            since: Some(Timestamp::from_millis(1_150)),
            until: Some(Timestamp::from_millis(2_000)),
            ..Default::default()
        })
        .await,
        vec![x2.clone()]
    );

    let events = |f: EventFilter| {
        let store = store.clone();
        async move { store.list_events(&f).await.unwrap().items }
    };
    assert_eq!(
        events(EventFilter {
            src_ip: Some("203.0.113.7".into()),
            ..Default::default()
        })
        .await,
        vec![e3.clone(), e1.clone()]
    );
    assert_eq!(
        events(EventFilter {
            kind: Some("auth_failure".into()),
            trace_id: Some("t-e2".into()),
            ..Default::default()
        })
        .await,
        vec![e2.clone()]
    );
    assert_eq!(
        events(EventFilter {
            since: Some(Timestamp::from_millis(150)),
            until: Some(Timestamp::from_millis(300)),
            ..Default::default()
        })
        .await,
        vec![e3, e2]
    );
}

#[tokio::test]
async fn paging_returns_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let all: Vec<Alert> = (0..25)
        .map(|n| alert(10_000 + n, "scan", Severity::Low, ip("192.0.2.1"), "t-page"))
        .collect();
    write_all(&store, all.iter().cloned().map(Record::from).collect()).await;

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_alerts(&AlertFilter {
                cursor: cursor.clone(),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        match &page.next_cursor {
            Some(c) => assert_eq!(c, &page.items.last().unwrap().id.to_string()),
            None => assert!(page.items.len() <= 10),
        }
        seen.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    let unique: HashSet<_> = seen.iter().map(|a| a.id).collect();
    assert_eq!(unique.len(), 25);
    let mut expected = all;
    expected.reverse();
    assert_eq!(seen, expected);

    // Exactly a full last page: no dangling cursor.
    let page = store
        .list_alerts(&AlertFilter {
            limit: 25,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (25, None));
    // 0 means the default; the limit is clamped.
    let page = store.list_alerts(&AlertFilter::default()).await.unwrap();
    assert_eq!(page.items.len(), 25.min(DEFAULT_LIMIT as usize));
}

#[tokio::test]
async fn a_bad_cursor_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let bad = || Some("not-a-ulid'; DROP TABLE alerts; --".to_owned());
    let r = store
        .list_alerts(&AlertFilter {
            cursor: bad(),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
    let r = store
        .list_actions(&ActionFilter {
            cursor: bad(),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
    let r = store
        .list_events(&EventFilter {
            cursor: bad(),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
}

#[tokio::test]
async fn prune_events_by_age_then_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let events: Vec<_> = (0..10)
        .map(|n| event(1_000 * (n + 1), "192.0.2.9", "flow", "t-prune"))
        .collect();
    write_all(&store, events.iter().cloned().map(Record::from).collect()).await;
    assert_eq!(store.count_events().await.unwrap(), 10);

    // By age: ts 1000..=3000 are older than 4000.
    let deleted = store
        .prune_events(Timestamp::from_millis(4_000), 1_000)
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    assert_eq!(store.count_events().await.unwrap(), 7);

    // By count: keep the newest 4 of 7.
    let deleted = store
        .prune_events(Timestamp::from_millis(0), 4)
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    let left = store.list_events(&EventFilter::default()).await.unwrap();
    let ts: Vec<i64> = left.items.iter().map(|e| e.ts.as_millis()).collect();
    assert_eq!(ts, vec![10_000, 9_000, 8_000, 7_000]);

    // Nothing to do.
    assert_eq!(
        store
            .prune_events(Timestamp::from_millis(0), 4)
            .await
            .unwrap(),
        0
    );
}

/// Pruning every event keeps the newest row: SQLite would otherwise give its row id to the next
/// event, and a stream resuming from a cursor taken before the prune would skip the new events.
#[tokio::test]
async fn a_full_prune_never_lets_a_stream_cursor_skip_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let old: Vec<_> = (0..5)
        .map(|n| event(1_000 * (n + 1), "192.0.2.9", "flow", "t-old"))
        .collect();
    write_all(&store, old.into_iter().map(Record::from).collect()).await;
    let cursor = store.feed_head().await.unwrap();

    // Everything is older than the cutoff, and the count limit is 0: only the newest row stays.
    let deleted = store
        .prune_events(Timestamp::from_millis(1_000_000), 0)
        .await
        .unwrap();
    assert_eq!(deleted, 4);
    assert_eq!(store.count_events().await.unwrap(), 1);

    let fresh: Vec<_> = (0..3)
        .map(|n| event(2_000_000 + n, "198.51.100.4", "flow", "t-new"))
        .collect();
    write_all(&store, fresh.into_iter().map(Record::from).collect()).await;
    let filter = FeedFilter {
        kinds: vec![FeedKind::Event],
        ..Default::default()
    };
    let page = store.feed_after(cursor, &filter, 100).await.unwrap();
    assert_eq!(page.items.len(), 3, "{:?}", page.items);
    assert!(page
        .items
        .iter()
        .all(|i| i.data.to_string().contains("198.51.100.4")));
}

/// A subject's history counts its alerts and actions in `[since, before)` and nobody else's, and
/// names the latest alert; the alert at `before` itself (the one under investigation) does not count.
#[tokio::test]
async fn subject_history_counts_alerts_and_actions_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let me = ip("203.0.113.7");
    let mut records: Vec<Record> = Vec::new();
    for ts in [500, 1_000, 2_000, 3_000, 4_000] {
        records.push(alert(ts, "ssh_bruteforce", Severity::High, me.clone(), "t-h").into());
    }
    records.push(
        alert(
            2_500,
            "ssh_bruteforce",
            Severity::High,
            ip("203.0.113.8"),
            "t-o",
        )
        .into(),
    );
    records.push(
        alert(
            2_600,
            "http_attack",
            Severity::High,
            Subject::Container("web".into()),
            "t-c",
        )
        .into(),
    );
    let a = alert(1_500, "ssh_bruteforce", Severity::High, me.clone(), "t-h");
    let p = plan(&a, &investigation(&a));
    records.push(action(&p, ActionKind::BlockIp, ActionState::Applied, 1_600).into());
    records.push(action(&p, ActionKind::RateLimit, ActionState::Expired, 2_900).into());
    records.push(action(&p, ActionKind::BlockIp, ActionState::Applied, 100).into());
    let other = alert(
        1_500,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.8"),
        "t-o",
    );
    let po = plan(&other, &investigation(&other));
    records.push(action(&po, ActionKind::BlockIp, ActionState::Applied, 1_700).into());
    write_all(&store, records).await;

    let h = store
        .subject_history(
            &me,
            Timestamp::from_millis(1_000),
            Timestamp::from_millis(4_000),
        )
        .await
        .unwrap();
    assert_eq!(
        h.alerts, 3,
        "1000, 2000 and 3000; not 500 (before), not 4000 (the one investigated)"
    );
    assert_eq!(
        h.actions, 2,
        "1600 and 2900; not 100, not the other address's"
    );
    assert_eq!(h.last_alert, Some(Timestamp::from_millis(3_000)));

    let none = store
        .subject_history(
            &ip("192.0.2.1"),
            Timestamp::from_millis(0),
            Timestamp::from_millis(10_000),
        )
        .await
        .unwrap();
    assert_eq!(none, sentinel_store::SubjectHistory::default());
    let container = store
        .subject_history(
            &Subject::Container("web".into()),
            Timestamp::from_millis(0),
            Timestamp::from_millis(10_000),
        )
        .await
        .unwrap();
    assert_eq!((container.alerts, container.actions), (1, 0));
}

/// A byte bound stops the read itself (a count alone does not bound memory): the row that crosses
/// it is the last one read, the page says it stopped by bytes, and walking on returns every row once.
#[tokio::test]
async fn a_byte_bound_stops_the_read_and_paging_still_returns_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let all: Vec<Alert> = (0..12)
        .map(|n| {
            let mut a = alert(
                20_000 + n,
                "scan",
                Severity::Low,
                ip("192.0.2.1"),
                "t-bytes",
            );
            a.reasons[0].detail = "x".repeat(10_000);
            a
        })
        .collect();
    write_all(&store, all.iter().cloned().map(Record::from).collect()).await;

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut by_bytes = 0;
    loop {
        let page = store
            .list_alerts(&AlertFilter {
                cursor: cursor.clone(),
                limit: 1000,
                max_bytes: 25_000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 3, "{}", page.items.len());
        if page.by_bytes {
            by_bytes += 1;
            assert_eq!(
                page.next_cursor.as_deref(),
                Some(page.items.last().unwrap().id.to_string().as_str())
            );
        }
        seen.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(by_bytes, 3, "12 rows of 10 KB, 3 per 25 KB page");
    let mut expected = all;
    expected.reverse();
    assert_eq!(seen, expected);
}
