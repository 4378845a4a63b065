//! Listing cases of the shared store suite: filters and paging, and pruning.

use crate::case::*;
use crate::common::*;
use sentinel_core::{ActionKind, ActionState, Alert, Event, Severity, Timestamp};
use sentinel_store::{ActionFilter, AlertFilter, EventFilter, Record, StoreError};

pub async fn filters_and_paging_agree(c: Case) {
    let s = &c.store;
    let scenarios = ["ssh_bruteforce", "http_scan", "port_scan"];
    let severities = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let subjects = ["203.0.113.7", "198.51.100.9"];
    let alerts: Vec<Alert> = (0..24)
        .map(|n| {
            let t = if n < 12 { "t-a" } else { "t-b" };
            alert(
                T0 + n * 1000,
                scenarios[n as usize % 3],
                severities[n as usize % 4],
                ip(subjects[n as usize % 2]),
                t,
            )
        })
        .collect();
    let events: Vec<Event> = (0..30)
        .map(|n| {
            event(
                T0 + n * 500,
                subjects[n as usize % 2],
                ["flow", "auth_failure"][n as usize % 3 / 2],
                "t-ev",
            )
        })
        .collect();
    let kinds = [ActionKind::BlockIp, ActionKind::RateLimit];
    let states = [
        ActionState::Applied,
        ActionState::Reverted,
        ActionState::Failed,
    ];
    let actions: Vec<_> = alerts
        .iter()
        .enumerate()
        .map(|(n, a)| {
            let p = plan(a, &investigation(a));
            action(&p, kinds[n % 2], states[n % 3], a.ts.as_millis() + 3)
        })
        .collect();
    let mut records: Vec<Record> = alerts.iter().cloned().map(Record::from).collect();
    records.extend(events.iter().cloned().map(Record::from));
    records.extend(actions.iter().cloned().map(Record::from));
    store_all(s, records).await;

    let by_id = |a: &Alert| a.id.to_string();
    let window = (T0 + 5_000, T0 + 17_000);
    let alert_cases: Vec<(AlertFilter, Vec<String>)> = vec![
        (AlertFilter::default(), expected(&alerts, by_id, |_| true)),
        (
            AlertFilter {
                min_severity: Some(Severity::High),
                ..Default::default()
            },
            expected(&alerts, by_id, |a| rank(a.severity) >= 3),
        ),
        (
            AlertFilter {
                severity: Some(Severity::Medium),
                ..Default::default()
            },
            expected(&alerts, by_id, |a| a.severity == Severity::Medium),
        ),
        (
            AlertFilter {
                scenario: Some("http_scan".into()),
                ..Default::default()
            },
            expected(&alerts, by_id, |a| a.scenario == "http_scan"),
        ),
        (
            AlertFilter {
                subject: Some("198.51.100.9".into()),
                ..Default::default()
            },
            expected(&alerts, by_id, |a| a.subject == ip("198.51.100.9")),
        ),
        (
            AlertFilter {
                trace_id: Some("t-b".into()),
                ..Default::default()
            },
            expected(&alerts, by_id, |a| a.trace_id.as_str() == "t-b"),
        ),
        (
            AlertFilter {
                scenario: Some("ssh_bruteforce".into()),
                min_severity: Some(Severity::Medium),
                since: Some(Timestamp::from_millis(window.0)),
                until: Some(Timestamp::from_millis(window.1)),
                ..Default::default()
            },
            expected(&alerts, by_id, |a| {
                a.scenario == "ssh_bruteforce"
                    && rank(a.severity) >= 2
                    && (window.0..=window.1).contains(&a.ts.as_millis())
            }),
        ),
    ];
    for (f, want) in alert_cases {
        assert!(!want.is_empty(), "{f:?} selects something");
        for limit in [1, 5, 1000] {
            let f = AlertFilter { limit, ..f.clone() };
            assert_eq!(all_pages!(s, list_alerts, f), want, "{f:?}");
        }
        // A byte bound of one row per page pages through the same rows.
        let f = AlertFilter {
            limit: 10,
            max_bytes: 1,
            ..f.clone()
        };
        assert_eq!(all_pages!(s, list_alerts, f), want, "{f:?}");
    }
    let first = s
        .list_alerts(&AlertFilter {
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 5);
    assert!(!first.by_bytes);

    let by_id = |e: &Event| e.id.to_string();
    let event_cases: Vec<(EventFilter, Vec<String>)> = vec![
        (EventFilter::default(), expected(&events, by_id, |_| true)),
        (
            EventFilter {
                src_ip: Some("203.0.113.7".into()),
                ..Default::default()
            },
            expected(&events, by_id, |e| {
                e.src_ip == Some("203.0.113.7".parse().unwrap())
            }),
        ),
        (
            EventFilter {
                kind: Some("auth_failure".into()),
                since: Some(Timestamp::from_millis(T0 + 2_000)),
                until: Some(Timestamp::from_millis(T0 + 9_000)),
                ..Default::default()
            },
            expected(&events, by_id, |e| {
                e.kind.0 == "auth_failure" && (T0 + 2_000..=T0 + 9_000).contains(&e.ts.as_millis())
            }),
        ),
    ];
    for (f, want) in event_cases {
        assert!(!want.is_empty(), "{f:?} selects something");
        let f = EventFilter { limit: 4, ..f };
        assert_eq!(all_pages!(s, list_events, f), want, "{f:?}");
    }

    let by_id = |a: &sentinel_core::ActionRecord| a.id.to_string();
    let action_cases: Vec<(ActionFilter, Vec<String>)> = vec![
        (
            ActionFilter {
                state: Some(ActionState::Applied),
                ..Default::default()
            },
            expected(&actions, by_id, |a| a.state == ActionState::Applied),
        ),
        (
            ActionFilter {
                kind: Some(ActionKind::RateLimit),
                subject: Some("ip:198.51.100.9".into()),
                since: Some(Timestamp::from_millis(T0 + 3_000)),
                ..Default::default()
            },
            expected(&actions, by_id, |a| {
                a.spec.kind == ActionKind::RateLimit
                    && a.spec.subject == ip("198.51.100.9")
                    && a.created.as_millis() >= T0 + 3_000
            }),
        ),
    ];
    for (f, want) in action_cases {
        assert!(!want.is_empty(), "{f:?} selects something");
        let f = ActionFilter { limit: 3, ..f };
        assert_eq!(all_pages!(s, list_actions, f), want, "{f:?}");
    }

    let bad = AlertFilter {
        cursor: Some("nope".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.list_alerts(&bad).await,
        Err(StoreError::BadCursor)
    ));
}

pub async fn pruning_keeps_the_newest_event(c: Case) {
    let s = &c.store;
    let minute = 60_000;
    let events: Vec<Event> = (0..10)
        .map(|n| event(T0 + n * minute, "192.0.2.7", "flow", "t-prune"))
        .collect();
    let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    store_all(s, events.into_iter().map(Record::from).collect()).await;
    let remaining = || async {
        let f = EventFilter {
            limit: 100,
            ..Default::default()
        };
        let mut r = all_pages!(s, list_events, f);
        r.reverse();
        r
    };
    // By age: the five older than T0 + 5 minutes.
    let by_age = s
        .prune_events(Timestamp::from_millis(T0 + 5 * minute), 100)
        .await
        .unwrap();
    assert_eq!(by_age, 5);
    assert_eq!(remaining().await, ids[5..].to_vec());
    // By count: the oldest beyond two.
    let by_count = s.prune_events(Timestamp::from_millis(T0), 2).await.unwrap();
    assert_eq!(by_count, 3);
    assert_eq!(remaining().await, ids[8..].to_vec());
    // Everything is old, and none may stay: the newest stays all the same.
    let head = s.feed_head().await.unwrap();
    assert_eq!(
        s.prune_events(Timestamp::from_millis(T0 + 99 * minute), 0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(remaining().await, ids[9..].to_vec());
    assert_eq!(s.count_events().await.unwrap(), 1);
    // A cursor taken before pruning still sees the next event: row ids are never reused.
    let next = event(T0 + 100 * minute, "192.0.2.7", "flow", "t-prune");
    store_all(s, vec![next.clone().into()]).await;
    let feed = s.feed_after(head, &all_kinds(), 100).await.unwrap();
    let got: Vec<_> = feed.items.iter().map(|i| i.data["id"].clone()).collect();
    assert_eq!(got, vec![serde_json::json!(next.id.to_string())]);
}
