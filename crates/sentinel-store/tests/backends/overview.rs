//! Overview cases of the shared store suite: the rollups (kept by the writer and by each engine's
//! triggers), the counts the dashboard reads, the daily digest and the scenario window.

use crate::case::*;
use crate::common::*;
use sentinel_core::{ActionKind, ActionState, Severity, Timestamp};
use sentinel_store::{Record, RollupSeries, Store, BUCKET_MS};

/// Events of three kinds over two hours, alerts of two scenarios, their investigations, and an action
/// per alert written twice (planned, then applied: the second write updates the same row).
fn records() -> Vec<Record> {
    let mut out = Vec::new();
    for i in 0..120i64 {
        let kind = ["auth_failure", "http_request", "port_probe"][(i % 3) as usize];
        let src = format!("198.51.100.{}", i % 9 + 1);
        out.push(event(T0 + i * 60_000, &src, kind, "t-roll").into());
    }
    for i in 0..12i64 {
        let sev = if i % 4 == 0 {
            Severity::Critical
        } else {
            Severity::Medium
        };
        let scenario = if i % 3 == 0 {
            "ssh_bruteforce"
        } else {
            "http_scan"
        };
        let a = alert(
            T0 + i * 600_000,
            scenario,
            sev,
            ip(&format!("203.0.113.{}", i % 5 + 1)),
            "t-roll",
        );
        let inv = investigation(&a);
        let p = plan(&a, &inv);
        let kind = if i % 3 == 0 {
            ActionKind::RateLimit
        } else {
            ActionKind::BlockIp
        };
        let mut act = action(&p, kind, ActionState::Planned, a.ts.as_millis() + 3);
        out.push(a.into());
        out.push(inv.into());
        out.push(act.clone().into());
        act.state = ActionState::Applied;
        act.updated = Timestamp::from_millis(act.updated.as_millis() + 5);
        out.push(act.into());
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

pub async fn rollups_equal_the_tables_and_count_an_action_once(c: Case) {
    let s = &c.store;
    let all = records();
    store_all(s, all.clone()).await;
    assert_consistent(s).await;
    let (since, until) = (
        Timestamp::from_millis(T0),
        Timestamp::from_millis(T0 + 86_400_000),
    );
    let t = s.rollup_totals(since, until).await.unwrap();
    assert_eq!((t.events, t.alerts, t.actions), (120, 12, 12));
    // Alerts and actions stored again (a retried write, an action changing state) are not counted
    // again; the rows are updated.
    let again: Vec<Record> = all
        .into_iter()
        .filter(|r| matches!(r, Record::Alert(_) | Record::Action(_)))
        .collect();
    store_all(s, again).await;
    assert_consistent(s).await;
    let t = s.rollup_totals(since, until).await.unwrap();
    assert_eq!((t.events, t.alerts, t.actions), (120, 12, 12));

    // One-hour steps: 60 events of each hour, 20 of each kind.
    let pts = s
        .rollup_series(
            RollupSeries::EventKind,
            since,
            Timestamp::from_millis(T0 + 7_200_000),
            3_600_000,
        )
        .await
        .unwrap();
    let per_step: Vec<(i64, String, u64)> =
        pts.into_iter().map(|p| (p.bucket, p.key, p.n)).collect();
    let hour0 = T0 - T0.rem_euclid(3_600_000);
    let mut want = Vec::new();
    for step in 0..3 {
        for kind in ["auth_failure", "http_request", "port_probe"] {
            let n = (0..120i64)
                .filter(|i| {
                    ["auth_failure", "http_request", "port_probe"][(i % 3) as usize] == kind
                })
                .filter(|i| (T0 + i * 60_000 - hour0) / 3_600_000 == step)
                .count() as u64;
            if n > 0 {
                want.push((hour0 + step * 3_600_000, kind.to_owned(), n));
            }
        }
    }
    assert_eq!(per_step, want);
    let top = s
        .rollup_top(RollupSeries::AlertScenario, since, until, 1)
        .await
        .unwrap();
    assert_eq!(top, vec![("http_scan".to_owned(), 8)]);
    let top = s
        .rollup_top(RollupSeries::AlertSeverity, since, until, 5)
        .await
        .unwrap();
    assert_eq!(
        top,
        vec![("medium".to_owned(), 9), ("critical".to_owned(), 3)]
    );

    // Decisions in force: every action is applied for an hour from its creation.
    let at = Timestamp::from_millis(T0 + 5 * 600_000 + 10);
    assert_eq!(s.count_active_actions(at).await.unwrap(), 12);
    assert_eq!(s.count_active_subjects(at).await.unwrap(), 5);
    let later = Timestamp::from_millis(T0 + 11 * 600_000 + 3_600_000);
    assert_eq!(s.count_active_actions(later).await.unwrap(), 1);
    let since_6 = Timestamp::from_millis(T0 + 6 * 600_000);
    assert_eq!(s.count_investigations_since(since_6).await.unwrap(), 6);

    // The daily digest and the sources page's window, from the record tables.
    let d = s.digest(since, until, 2).await.unwrap();
    assert_eq!((d.events, d.alerts, d.reverted), (120, 12, 0));
    let pairs = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    };
    assert_eq!(
        d.alerts_by_scenario,
        pairs(&[("http_scan", 8), ("ssh_bruteforce", 4)])
    );
    let (block, rate) = (ActionKind::BlockIp.as_str(), ActionKind::RateLimit.as_str());
    assert_eq!(d.actions_by_kind, pairs(&[(block, 8), (rate, 4)]));
    assert_eq!(
        d.top_sources,
        pairs(&[("ip:203.0.113.1", 3), ("ip:203.0.113.2", 3)])
    );
    assert!(d.reverted_recent.is_empty());
    let w = s.alerts_by_scenario_since(since, 100).await.unwrap();
    let got: Vec<(String, u64, i64)> = w
        .scenarios
        .iter()
        .map(|x| (x.scenario.clone(), x.alerts, x.last.as_millis()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("http_scan".to_owned(), 8, T0 + 11 * 600_000),
            ("ssh_bruteforce".to_owned(), 4, T0 + 9 * 600_000)
        ]
    );
    assert_eq!(w.truncated_at, None);
    // Capped at the newest five alerts (7 to 11): the figures say from when.
    let w = s.alerts_by_scenario_since(since, 5).await.unwrap();
    let got: Vec<(String, u64)> = w
        .scenarios
        .iter()
        .map(|x| (x.scenario.clone(), x.alerts))
        .collect();
    assert_eq!(
        got,
        vec![
            ("http_scan".to_owned(), 4),
            ("ssh_bruteforce".to_owned(), 1)
        ]
    );
    assert_eq!(
        w.truncated_at,
        Some(Timestamp::from_millis(T0 + 7 * 600_000))
    );

    // Pruning events by age takes their buckets too; the rest stay equal to the tables.
    let cut = Timestamp::from_millis(T0 + 3_600_000);
    s.prune_events(cut, 1_000).await.unwrap();
    let kept = s.rollup_buckets(RollupSeries::EventKind).await.unwrap();
    assert!(
        kept.iter().all(|p| p.bucket + BUCKET_MS > cut.as_millis()),
        "{kept:?}"
    );
    assert_eq!(
        kept,
        s.rollup_recount(RollupSeries::EventKind).await.unwrap()
    );
}
