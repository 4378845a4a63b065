//! The resident `nft -i` session against the real kernel, in a namespace the test creates: a refused
//! transaction changes nothing and leaves the session in step, a killed session is restarted (and
//! counted) and the transaction goes through, clones of a table share one session, and scripts too long
//! for the session still run as one transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nft_common;

use nft_common::{spec, table};
use sentinel_core::{ActionKind, ActionSpec, Actuator};
use sentinel_respond::actuators::nft::{NftBlockIp, SESSION_MAX_SCRIPT};
use sentinel_testkit::netns::Netns;
use serde_json::Value;
use std::net::IpAddr;

fn set_has(ns: &Netns, set: &str, addr: &str) -> bool {
    let out = ns
        .run("nft", &["-j", "list", "set", "inet", "sentinel", set])
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["set"]["elem"].as_array())
        .flatten()
        .any(|e| e == addr || e["elem"]["val"] == addr)
}

#[tokio::test]
async fn a_refused_transaction_changes_nothing_and_the_session_stays_in_step() {
    let ns = Netns::new("sessfail").unwrap();
    let t = table(&ns);
    t.ensure().await.unwrap();
    let pid = t
        .session_pid()
        .await
        .expect("ensure ran through the session");

    // The first command is fine, the second names a set that does not exist: neither happens.
    let err = t
        .run("add element inet sentinel blocked_v4 { 192.0.2.71 timeout 60s }\nadd element inet sentinel no_such_set { 192.0.2.72 }\n")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Error:"), "{err}");
    assert!(err.is_absent(), "{err}");
    assert!(
        !set_has(&ns, "blocked_v4", "192.0.2.71"),
        "one transaction: all or nothing"
    );

    // A syntax error, then a good transaction: each answer belongs to its own transaction.
    let err = t
        .run("add element inet sentinel blocked_v4 { not-an-address }\n")
        .await
        .unwrap_err();
    assert!(!err.is_absent(), "{err}");
    t.run("add element inet sentinel blocked_v4 { 192.0.2.73 timeout 60s }\n")
        .await
        .unwrap();
    assert!(set_has(&ns, "blocked_v4", "192.0.2.73"));
    assert_eq!(
        t.session_pid().await,
        Some(pid),
        "errors do not restart the session"
    );
    assert_eq!(t.session_restarts(), 0);
}

#[tokio::test]
async fn a_killed_session_is_restarted_counted_and_the_action_applied() {
    let ns = Netns::new("sesskill").unwrap();
    let t = table(&ns);
    let act = NftBlockIp::new(t.clone());
    let ip: IpAddr = "203.0.113.81".parse().unwrap();
    act.apply(&spec(ActionKind::BlockIp, ip, 60, Value::Null))
        .await
        .unwrap();
    let pid = t.session_pid().await.unwrap();
    assert_eq!(t.session_restarts(), 0);

    let st = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let next: IpAddr = "203.0.113.82".parse().unwrap();
    let applied = act
        .apply(&spec(ActionKind::BlockIp, next, 60, Value::Null))
        .await
        .unwrap();
    assert!(set_has(&ns, "blocked_v4", "203.0.113.82"));
    assert_eq!(t.session_restarts(), 1, "the restart is counted");
    let new_pid = t.session_pid().await.unwrap();
    assert_ne!(new_pid, pid);

    // Killed again while idle; revert goes through the next session.
    let st = std::process::Command::new("kill")
        .args(["-KILL", &new_pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    act.revert(&applied).await.unwrap();
    assert!(!set_has(&ns, "blocked_v4", "203.0.113.82"));
    assert!(set_has(&ns, "blocked_v4", "203.0.113.81"));
    assert_eq!(t.session_restarts(), 2);
}

#[tokio::test]
async fn clones_of_a_table_share_one_session() {
    let ns = Netns::new("sessshare").unwrap();
    let t = table(&ns);
    let a = NftBlockIp::new(t.clone());
    let b = NftBlockIp::new(t.clone());
    a.apply(&spec(
        ActionKind::BlockIp,
        "203.0.113.91".parse().unwrap(),
        60,
        Value::Null,
    ))
    .await
    .unwrap();
    let pid = t.session_pid().await.unwrap();
    b.apply(&spec(
        ActionKind::BlockIp,
        "203.0.113.92".parse().unwrap(),
        60,
        Value::Null,
    ))
    .await
    .unwrap();
    assert_eq!(a.table().session_pid().await, Some(pid));
    assert_eq!(b.table().session_pid().await, Some(pid));
}

#[tokio::test]
async fn a_batch_too_long_for_the_session_is_still_one_transaction() {
    let ns = Netns::new("sesslong").unwrap();
    let t = table(&ns);
    let act = NftBlockIp::new(t.clone());
    let specs: Vec<ActionSpec> = (0..2000u32)
        .map(|i| {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001, 0xdb8, 0x55, 0, 0, 0, 0, i as u16,
            ));
            spec(ActionKind::BlockIp, ip, 60, Value::Null)
        })
        .collect();
    let preview_len: usize = specs.len() * "2001:db8:55::7d0 timeout 60s, ".len();
    assert!(preview_len > SESSION_MAX_SCRIPT);
    let res = act.apply_batch(&specs).await;
    assert!(res.iter().all(|r| r.is_ok()));
    assert!(set_has(&ns, "blocked_v6", "2001:db8:55::7cf"));
    assert_eq!(act.observe().await.unwrap().len(), 2000);
}
