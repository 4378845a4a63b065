//! The shared store suite: every case runs once on SQLite (a temp file) and once on a real PostgreSQL
//! (a throw-away cluster from `sentinel_testkit::postgres`), and must pass on both. A case is an async
//! fn taking a [`Case`]; [`on_both_engines!`] makes the two tests of each. The expectations are
//! computed from the records written, never from one engine's answer, so the engines agree because
//! each is right. One test (`schema`) opens both and compares their schemas from their catalogs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

#[macro_use]
#[path = "backends/case.rs"]
mod case;
#[path = "backends/feed.rs"]
mod feed;
#[path = "backends/keys.rs"]
mod keys;
#[path = "backends/listings.rs"]
mod listings;
#[path = "backends/outage.rs"]
mod outage;
#[path = "backends/outbox.rs"]
mod outbox;
#[path = "backends/overview.rs"]
mod overview;
#[path = "backends/schema.rs"]
mod schema;

use case::*;
use common::*;
use feed::*;
use keys::*;
use listings::*;
use outbox::*;
use overview::*;
use sentinel_core::{ActionKind, ActionState, AuditKind, Severity, Timestamp};
use sentinel_store::{AckGroup, AuditRow, EventFilter, Record, Store, StoreError, WriterOptions};
use std::time::Duration;

/// Makes `#[tokio::test]`s `sqlite::<case>` and `postgres::<case>` for each case fn.
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Case::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::Case::postgres().await).await;
            })*
        }
    };
}

on_both_engines!(
    every_record_kind_round_trips,
    filters_and_paging_agree,
    an_ack_is_given_only_after_commit,
    a_failed_record_is_reported_and_the_rest_stored,
    pruning_keeps_the_newest_event,
    the_feed_follows_commit_order,
    two_writers_feed_every_event_once,
    a_slow_commit_is_not_overtaken_in_the_feed,
    rollups_equal_the_tables_and_count_an_action_once,
    api_keys_are_kept_and_the_last_admin_is_never_revoked,
    outbox_rows_are_grouped_delivered_and_retried,
    outbox_dead_letters_requeue_and_prune,
    calls_not_ported_fail_clearly,
    text_with_nul_bytes_is_stored,
);

/// Text with NUL bytes (PostgreSQL's `text` holds none) in an event's kind, source and target, and
/// in a filter: stored on both engines (the body keeps it exactly; the indexed columns hold U+FFFD
/// in its place on PostgreSQL), and a filter with one is answered, not an error.
async fn text_with_nul_bytes_is_stored(c: Case) {
    let s = &c.store;
    let mut ev = event(T0, "203.0.113.8", "auth\0failure", "t-nul");
    ev.source = "file:/var/log/a\0b".into();
    ev.target = Some("ssh\0d".into());
    store_all(s, vec![ev.clone().into()]).await;
    let got = s.list_events(&EventFilter::default()).await.unwrap();
    assert_eq!(got.items.len(), 1);
    assert_eq!(got.items[0], ev, "the body keeps the text exactly");
    let none = s
        .list_events(&EventFilter {
            kind: Some("no\0such".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

/// An alert id no stored alert has.
fn unknown_alert_id() -> sentinel_core::AlertId {
    alert(T0, "none", Severity::Low, ip("192.0.2.1"), "t-none").id
}

async fn every_record_kind_round_trips(c: Case) {
    let s = &c.store;
    let ev = event(T0 - 5, "203.0.113.7", "auth_failure", "t-round");
    let a = alert(
        T0,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.7"),
        "t-round",
    );
    let i = investigation(&a);
    let p = plan(&a, &i);
    let planned = action(&p, ActionKind::BlockIp, ActionState::Planned, T0 + 3);
    let mut applied = planned.clone();
    applied.state = ActionState::Applied;
    applied.updated = Timestamp::from_millis(T0 + 9);
    let (ra, rp) = (Record::Alert(a.clone()), Record::Plan(p.clone()));
    let ra_audit = noted(
        Some(1),
        AuditKind::AlertRaised,
        &a.id.to_string(),
        "t-round",
        &ra,
    );
    let rp_audit = noted(
        Some(2),
        AuditKind::PlanDecided,
        &p.id.to_string(),
        "t-round",
        &rp,
    );
    let applied_rec = Record::Action(applied.clone());
    let act_id = applied.id.to_string();
    // An operator's action: no plan, no alert (NULL columns).
    let mut op = action(&p, ActionKind::RateLimit, ActionState::Applied, T0 + 20);
    op.origin = sentinel_core::Origin::Operator;
    let act_audit = noted(
        None,
        AuditKind::ActionChanged,
        &act_id,
        "t-round",
        &applied_rec,
    );
    // The action is written twice in one batch: the later state wins.
    store_all(
        s,
        vec![
            act_audit.clone(),
            ev.clone().into(),
            ra,
            i.clone().into(),
            rp,
            planned.clone().into(),
            applied_rec.clone(),
            op.clone().into(),
            rp_audit.clone(),
            ra_audit.clone(),
        ],
    )
    .await;

    let d = s.get_alert(a.id).await.unwrap().unwrap();
    assert_eq!(d.alert, a);
    assert_eq!(d.investigation, Some(i));
    assert_eq!(d.plans, vec![p.clone()]);
    assert_eq!(d.actions, vec![applied.clone()]);
    assert_eq!(
        s.get_action(applied.id).await.unwrap(),
        Some(applied.clone())
    );
    assert_eq!(s.get_action(op.id).await.unwrap(), Some(op.clone()));
    let by_trace = sentinel_store::ActionFilter {
        trace_id: Some("t-round".into()),
        ..Default::default()
    };
    // Newest first: the operator's action was created last.
    assert_eq!(
        s.list_actions(&by_trace).await.unwrap().items,
        vec![op, applied]
    );
    let events = s
        .list_events(&EventFilter {
            trace_id: Some("t-round".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.items, vec![ev]);
    assert_eq!(s.count_events().await.unwrap(), 1);

    // The audit trail in log order, the unlogged row last; each noted record's hash recomputes.
    let rows = |r: &Record| match r {
        Record::Audit(row) => row.clone(),
        _ => unreachable!(),
    };
    let trail = s.audit_for_trace(&trace("t-round")).await.unwrap();
    assert_eq!(
        trail,
        vec![rows(&ra_audit), rows(&rp_audit), rows(&act_audit)]
    );
    for row in &trail {
        let stored = s
            .stored_content_hash(row.record.kind, &row.record.subject_id)
            .await
            .unwrap();
        assert_eq!(stored, row.record.content_hash, "{row:?}");
    }
    let page = s.audit_trail(&trace("t-round"), 2).await.unwrap();
    assert_eq!((page.rows, page.more), (trail[..2].to_vec(), true));
    // The dashboard's action states of a page of alerts.
    let states = s
        .alert_action_states(&[a.id, unknown_alert_id()])
        .await
        .unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(
        states[&a.id].actions,
        vec![(ActionKind::BlockIp, ActionState::Applied)]
    );
    assert_eq!(s.max_audit_log_seq().await.unwrap(), Some(2));
    assert_eq!(s.audit_log_seq_gaps(1, 5).await.unwrap(), vec![3..5]);
    // Catching the index up again: seq 2 is kept as it was, seq 3 is added.
    let again = vec![
        AuditRow::logged(2, audit(T0 + 99, AuditKind::Started, "x", "t-other")),
        AuditRow::logged(3, audit(T0 + 99, AuditKind::Stopped, "y", "t-other")),
    ];
    assert_eq!(s.insert_audit_index_batch(&again).await.unwrap(), 1);
    let index = s.audit_index_from(2, 10).await.unwrap();
    assert_eq!(index, vec![rows(&rp_audit), again[1].clone()]);

    let h = s
        .subject_history(
            &ip("203.0.113.7"),
            Timestamp::from_millis(T0 - 1000),
            Timestamp::from_millis(T0 + 1000),
        )
        .await
        .unwrap();
    // Both actions are against the subject, the operator's too.
    assert_eq!((h.alerts, h.actions), (1, 2));
    assert_eq!(h.last_alert, Some(a.ts));
    assert_eq!(s.get_alert(unknown_alert_id()).await.unwrap(), None);
}

async fn an_ack_is_given_only_after_commit(c: Case) {
    let s = &c.store;
    let (writer, task) = s.writer(WriterOptions::default());
    let blocker = c.hold_event_writes().await;
    let group = AckGroup::new();
    let ev = event(T0, "192.0.2.10", "flow", "t-ack");
    writer
        .write_acked(ev.clone().into(), group.token(0))
        .await
        .unwrap();
    // The writer has the record but cannot commit it: no acknowledgement, nothing visible.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pending = group.summary();
    assert_eq!(
        (pending.outstanding, pending.committed, pending.failed),
        (1, 0, 0)
    );
    assert_eq!(s.count_events().await.unwrap(), 0);
    blocker.release().await;
    let done = tokio::time::timeout(Duration::from_secs(20), group.settled())
        .await
        .unwrap();
    assert_eq!((done.committed, done.failed), (1, 0));
    // Acknowledged means readable by anyone, at once.
    let other = Store::open_url(&c.url()).await.unwrap();
    let page = other.list_events(&EventFilter::default()).await.unwrap();
    assert_eq!(page.items, vec![ev]);
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!((stats.records, stats.dropped), (1, 0));
}

async fn a_failed_record_is_reported_and_the_rest_stored(c: Case) {
    c.exec(
        "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.source = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned record'); END",
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.source = 'poison' THEN RAISE EXCEPTION 'poisoned record'; END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison();",
    )
    .await;
    let s = &c.store;
    let (writer, task) = s.writer(WriterOptions::default());
    let group = AckGroup::new();
    let mut kept = Vec::new();
    for n in 0..10 {
        let mut ev = event(T0 + n, "192.0.2.5", "flow", "t-poison");
        if n == 4 {
            ev.source = "poison".into();
        } else {
            kept.push(ev.id.to_string());
        }
        writer
            .write_acked(ev.into(), group.token(n as u64))
            .await
            .unwrap();
    }
    let summary = group.settled().await;
    assert_eq!((summary.committed, summary.failed), (9, 1));
    let failures = group.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].item, 4);
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert!(stats.failed_batches >= 1, "{stats:?}");
    assert_eq!((stats.records, stats.dropped), (9, 1), "{stats:?}");
    assert_eq!(s.count_events().await.unwrap(), 9);
    let f = EventFilter {
        limit: 100,
        ..Default::default()
    };
    let mut stored = all_pages!(s, list_events, f);
    stored.reverse();
    assert_eq!(stored, kept);
}

async fn calls_not_ported_fail_clearly(c: Case) {
    let s = &c.store;
    let results = [s.scenario_window_plan().await.map(|_| ())];
    for r in results {
        if c.is_postgres() {
            let e = r.unwrap_err();
            assert!(matches!(e, StoreError::Unsupported(_)), "{e:?}");
            assert!(
                e.to_string()
                    .starts_with("not supported on PostgreSQL yet: Store::"),
                "{e}"
            );
        } else {
            r.unwrap();
        }
    }
    // The health check works on both.
    s.ping().await.unwrap();
}
