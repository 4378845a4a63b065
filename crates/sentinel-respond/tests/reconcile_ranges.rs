//! Ranges through the ledger, against real nftables in a namespace the test creates. A range is one
//! set element, listed under its network address whatever address inside it was the subject: a
//! restart must find it (not re-add it and then remove it as an orphan), and a second block of the same
//! range is the same target (it must not share the element, so that reverting one lifts the other).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nft_common;

use nft_common::table;
use sentinel_core::{
    ActionKind, ActionParams, ActionSpec, ActionState, AlertId, InvestigationId, Mode, Plan,
    PlanId, Severity, Subject, Timestamp, TraceId,
};
use sentinel_respond::actuators::nft::NftBlockIp;
use sentinel_respond::{Allowlist, Ledger, LedgerConfig, Responder};
use sentinel_testkit::netns::Netns;
use serde_json::json;

fn plan(ip: &str, cidr: &str, ttl: u64) -> Plan {
    let params = ActionParams::parse(ActionKind::BlockIp, &json!({ "cidr": cidr })).unwrap();
    Plan {
        id: PlanId::new(),
        ts: Timestamp::now(),
        alert_id: AlertId::new(),
        investigation_id: InvestigationId::new(),
        mode: Mode::Enforce,
        severity: Severity::High,
        risk_band: "high".into(),
        confidence_band: "high".into(),
        actions: vec![ActionSpec::new(
            ActionKind::BlockIp,
            Subject::Ip(ip.parse().unwrap()),
            ttl,
            params,
        )
        .unwrap()],
        reason: "test".into(),
        trace_id: TraceId::new(),
        scope: sentinel_core::Scope::Global,
    }
}

fn ledger(ns: &Netns) -> Ledger {
    let r = Responder::new(Allowlist::new([])).with_actuator(Box::new(NftBlockIp::new(table(ns))));
    Ledger::new(r, LedgerConfig::default())
}

fn elements(ns: &Netns) -> String {
    ns.run(
        "nft",
        &["list", "set", "inet", "sentinel", "blocked_net_v4"],
    )
    .unwrap()
}

#[tokio::test]
async fn a_range_survives_a_restart_and_is_one_target() {
    let ns = Netns::new("rngrec").unwrap();
    let l = ledger(&ns);
    let rec = l
        .execute(&plan("203.0.113.7", "203.0.113.0/24", 600))
        .await
        .remove(0);
    assert_eq!(rec.state, ActionState::Applied, "{:?}", rec.error);
    assert!(elements(&ns).contains("203.0.113.0/24"));

    // Another address of the same range, for no longer: the same target, already in force.
    let again = l
        .execute(&plan("203.0.113.200", "203.0.113.0/24", 300))
        .await
        .remove(0);
    assert_eq!(again.state, ActionState::Refused, "{again:?}");
    assert!(again.error.unwrap().contains("already in force"));

    // "Restart": a new ledger over the same kernel, given the stored record.
    let l2 = ledger(&ns);
    let fixes = l2.reconcile(vec![rec.clone()]).await.unwrap();
    let notes: Vec<&str> = fixes.iter().map(|c| c.note.as_str()).collect();
    assert!(fixes.is_empty(), "nothing to correct: {notes:?}");
    assert!(
        elements(&ns).contains("203.0.113.0/24"),
        "the range is still blocked after the restart"
    );
    assert_eq!(l2.live().len(), 1);

    // A longer block of the same range from another address supersedes it; reverting it lifts it.
    let longer = l2
        .execute(&plan("203.0.113.9", "203.0.113.0/24", 1200))
        .await;
    let applied = longer
        .iter()
        .find(|r| r.state == ActionState::Applied)
        .expect("applied");
    assert!(longer
        .iter()
        .any(|r| r.id == rec.id && r.state == ActionState::Reverted));
    assert!(elements(&ns).contains("203.0.113.0/24"));
    l2.revert(applied.id, ActionState::Reverted).await.unwrap();
    assert!(!elements(&ns).contains("203.0.113.0/24"));

    // Overlapping ranges: nftables refuses them ("conflicting intervals"), so the ledger refuses the
    // second one before applying, live or in the same batch, and the rest of the batch still applies.
    let wide = l2
        .execute(&plan("198.51.100.7", "198.51.100.0/24", 600))
        .await
        .remove(0);
    assert_eq!(wide.state, ActionState::Applied, "{:?}", wide.error);
    let narrow = l2
        .execute(&plan("198.51.100.8", "198.51.100.0/25", 600))
        .await
        .remove(0);
    assert_eq!(narrow.state, ActionState::Refused, "{narrow:?}");
    assert!(narrow
        .error
        .unwrap()
        .contains("overlaps range 198.51.100.0/24"));
    let batch = l2
        .execute_many(&[
            plan("192.0.2.130", "192.0.2.128/25", 600),
            plan("192.0.2.7", "192.0.2.0/24", 600),
            plan("203.0.113.9", "203.0.113.8/29", 600),
        ])
        .await;
    assert_eq!(batch[0][0].state, ActionState::Applied, "{:?}", batch[0][0]);
    assert_eq!(batch[1][0].state, ActionState::Refused, "{:?}", batch[1][0]);
    assert_eq!(batch[2][0].state, ActionState::Applied, "{:?}", batch[2][0]);
    let listed = elements(&ns);
    assert!(listed.contains("192.0.2.128/25") && listed.contains("203.0.113.8/29"));
    assert!(!listed.contains("192.0.2.0/24"));
}
