//! Feed cases of the shared store suite: commit order, and concurrent writers.

use crate::case::*;
use crate::common::*;
use sentinel_core::{ActionKind, ActionState, AuditKind, Severity};
use sentinel_store::{AckGroup, FeedCursor, FeedFilter, FeedKind, Record, Store, WriterOptions};
use std::time::Duration;

pub async fn the_feed_follows_commit_order(c: Case) {
    let s = &c.store;
    let e1 = event(T0, "203.0.113.7", "auth_failure", "t-feed");
    let a = alert(
        T0 + 1,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.7"),
        "t-feed",
    );
    let low = alert(
        T0 + 2,
        "http_scan",
        Severity::Low,
        ip("198.51.100.9"),
        "t-low",
    );
    let i = investigation(&a);
    let p = plan(&a, &i);
    let act = action(&p, ActionKind::BlockIp, ActionState::Applied, T0 + 5);
    let e2 = event(T0 + 6, "198.51.100.9", "flow", "t-feed");
    let note = |kind, id: String, r: Record| noted(None, kind, &id, "t-feed", &r);
    let ghost = alert(T0 + 7, "ghost", Severity::High, ip("192.0.2.99"), "t-feed");
    // Three commits; within one, records land before the audit rows noting them.
    store_all(
        s,
        vec![
            e1.clone().into(),
            a.clone().into(),
            note(AuditKind::AlertRaised, a.id.to_string(), a.clone().into()),
        ],
    )
    .await;
    store_all(
        s,
        vec![
            low.clone().into(),
            note(
                AuditKind::AlertRaised,
                low.id.to_string(),
                low.clone().into(),
            ),
        ],
    )
    .await;
    store_all(
        s,
        vec![
            i.clone().into(),
            note(
                AuditKind::InvestigationConcluded,
                i.id.to_string(),
                i.clone().into(),
            ),
            p.clone().into(),
            note(AuditKind::PlanDecided, p.id.to_string(), p.clone().into()),
            // Noted but never stored (its write failed for good): skipped and counted.
            note(
                AuditKind::AlertRaised,
                ghost.id.to_string(),
                ghost.clone().into(),
            ),
            act.clone().into(),
            note(
                AuditKind::ActionChanged,
                act.id.to_string(),
                act.clone().into(),
            ),
            e2.clone().into(),
        ],
    )
    .await;
    let want: Vec<(FeedKind, String)> = vec![
        (FeedKind::Alert, a.id.to_string()),
        (FeedKind::Alert, low.id.to_string()),
        (FeedKind::Investigation, i.id.to_string()),
        (FeedKind::Plan, p.id.to_string()),
        (FeedKind::Action, act.id.to_string()),
        (FeedKind::Event, e1.id.to_string()),
        (FeedKind::Event, e2.id.to_string()),
    ];
    let items = |page: &sentinel_store::FeedPage| -> Vec<(FeedKind, String)> {
        page.items
            .iter()
            .map(|i| (i.kind, i.data["id"].as_str().unwrap().to_owned()))
            .collect()
    };
    let head = s.feed_head().await.unwrap();
    let all = s
        .feed_after(FeedCursor::default(), &all_kinds(), 100)
        .await
        .unwrap();
    assert_eq!(items(&all), want);
    assert_eq!((all.next, all.more, all.missing), (head, false, 1));
    // Small pages read the same items, in the same order per part, and end at the head.
    let (mut cursor, mut paged, mut reads) = (FeedCursor::default(), Vec::new(), 0);
    loop {
        let page = s.feed_after(cursor, &all_kinds(), 2).await.unwrap();
        paged.extend(items(&page));
        cursor = page.next;
        reads += 1;
        if !page.more {
            break;
        }
        assert!(reads < 20);
    }
    assert_eq!(cursor, head);
    let part = |v: &[(FeedKind, String)], events: bool| -> Vec<(FeedKind, String)> {
        v.iter()
            .filter(|x| (x.0 == FeedKind::Event) == events)
            .cloned()
            .collect()
    };
    assert_eq!(part(&paged, false), part(&want, false));
    assert_eq!(part(&paged, true), part(&want, true));
    // Filters: severity follows the alert to its investigation, plan and action; events have none.
    let high = FeedFilter {
        severities: vec!["high".into()],
        ..all_kinds()
    };
    assert_eq!(
        items(
            &s.feed_after(FeedCursor::default(), &high, 100)
                .await
                .unwrap()
        ),
        vec![
            want[0].clone(),
            want[2].clone(),
            want[3].clone(),
            want[4].clone()
        ]
    );
    let subject = FeedFilter {
        subject: Some("198.51.100.9".into()),
        ..all_kinds()
    };
    assert_eq!(
        items(
            &s.feed_after(FeedCursor::default(), &subject, 100)
                .await
                .unwrap()
        ),
        vec![want[1].clone(), want[6].clone()]
    );
    // Nothing after the head.
    let after = s.feed_after(head, &all_kinds(), 100).await.unwrap();
    assert!(after.items.is_empty() && !after.more);
}

pub async fn two_writers_feed_every_event_once(c: Case) {
    // Two handles on one database, as two processes would have, each with its own writer.
    let other = Store::open_url(&c.url()).await.unwrap();
    let mut tasks = Vec::new();
    for (w, store) in [c.store.clone(), other].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (writer, task) = store.writer(WriterOptions {
                batch_size: 16,
                ..Default::default()
            });
            for n in 0..150 {
                let ev = event(T0 + n, "192.0.2.20", "flow", &format!("t-w{w}"));
                writer.write(ev.into()).await.unwrap();
                if n % 20 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            drop(writer);
            task.finish().await.unwrap()
        }));
    }
    // A reader follows the feed while both write: every event exactly once.
    let (mut cursor, mut seen) = (FeedCursor::default(), std::collections::HashSet::new());
    let mut read = 0;
    loop {
        let done = tasks.iter().all(|t| t.is_finished());
        let page = c.store.feed_after(cursor, &all_kinds(), 25).await.unwrap();
        for item in &page.items {
            assert!(
                seen.insert(item.data["id"].as_str().unwrap().to_owned()),
                "{item:?} read twice"
            );
        }
        read += page.items.len();
        cursor = page.next;
        if done && !page.more {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().records, 150);
    }
    assert_eq!(read, 300);
    assert_eq!(c.store.count_events().await.unwrap(), 300);
}

/// A transaction that drew its row id first but commits last must not be overtaken: a reader that
/// read past a later id would never see it. On PostgreSQL a trigger holds the first transaction open
/// for a second after it drew its id; SQLite's single writer needs no such help.
pub async fn a_slow_commit_is_not_overtaken_in_the_feed(c: Case) {
    c.exec(
        "SELECT 1",
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.source = 'slow' THEN PERFORM pg_sleep(1); END IF; RETURN NEW; END $$; \
         CREATE TRIGGER slow BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION slow();",
    )
    .await;
    // Two handles on one database, as two processes would have, each with its own writer.
    let other = Store::open_url(&c.url()).await.unwrap();
    let (wa, ta) = c.store.writer(WriterOptions::default());
    let (wb, tb) = other.writer(WriterOptions::default());
    let (ga, gb) = (AckGroup::new(), AckGroup::new());
    let mut slow = event(T0, "192.0.2.30", "flow", "t-slow");
    slow.source = "slow".into();
    wa.write_acked(slow.clone().into(), ga.token(0))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fast = event(T0 + 1, "192.0.2.31", "flow", "t-fast");
    wb.write_acked(fast.clone().into(), gb.token(0))
        .await
        .unwrap();
    let wait = Duration::from_secs(20);
    assert_eq!(
        tokio::time::timeout(wait, gb.settled())
            .await
            .unwrap()
            .committed,
        1
    );
    // Read as soon as the second event is acknowledged, then again once the first is.
    let first = c
        .store
        .feed_after(FeedCursor::default(), &all_kinds(), 100)
        .await
        .unwrap();
    assert_eq!(
        tokio::time::timeout(wait, ga.settled())
            .await
            .unwrap()
            .committed,
        1
    );
    let second = c
        .store
        .feed_after(first.next, &all_kinds(), 100)
        .await
        .unwrap();
    let mut read: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|i| i.data["id"].as_str().unwrap().to_owned())
        .collect();
    read.sort();
    let mut want = vec![slow.id.to_string(), fast.id.to_string()];
    want.sort();
    assert_eq!(read, want, "every event read once, the slow one too");
    drop((wa, wb));
    ta.finish().await.unwrap();
    tb.finish().await.unwrap();
}

/// On PostgreSQL, sensors and the API are separate processes: a follower of one store handle wakes
/// when another handle (another process) commits, and reads what it committed.
#[tokio::test]
async fn postgres_wakes_a_follower_on_another_handles_commit() {
    let c = Case::postgres().await;
    let other = Store::open_url(&c.url()).await.unwrap();
    let mut follower = c.store.commits();
    follower.borrow_and_update();
    let ev = event(T0, "192.0.2.40", "flow", "t-wake");
    store_all(&other, vec![ev.clone().into()]).await;
    tokio::time::timeout(Duration::from_secs(10), follower.changed())
        .await
        .expect("woken within 10 s")
        .unwrap();
    let page = c
        .store
        .feed_after(FeedCursor::default(), &all_kinds(), 10)
        .await
        .unwrap();
    let ids: Vec<_> = page.items.iter().map(|i| i.data["id"].clone()).collect();
    assert_eq!(ids, vec![serde_json::json!(ev.id.to_string())]);
    // Closed, the store stops listening: nothing is left running for it.
    c.store.close().await;
    other.close().await;
}
