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

/// The random-kill test kills every resident `nft -i` of this test process, which would also kill the
/// sessions of tests running beside it in other threads: it runs alone (write), the others together
/// (read).
static SESSIONS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

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
    let _beside = SESSIONS.read().await;
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
    let _beside = SESSIONS.read().await;
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
    let _beside = SESSIONS.read().await;
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
    let _beside = SESSIONS.read().await;
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

/// The ids of this test process's `nft -i` children (the resident sessions it started), from
/// `/proc/self/task/*/children`: only processes this test started are ever killed.
fn own_nft_children() -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for t in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(t.path().join("children")) else {
            continue;
        };
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            // The session is `nft -j -a -i`; the listings `set_has` runs are left alone.
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
            if args.first().is_some_and(|a| a.ends_with(b"nft")) && args.last() == Some(&&b"-i"[..])
            {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Applies and reverts while the resident `nft -i` is killed at scattered moments (during writes,
/// listings and idle time). An apply or revert that reports success must be true of the kernel; one
/// that reports an error may leave either state (it says the outcome is unknown), and observe() must
/// then show what is really there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_killed_at_random_moments_never_make_a_success_untrue() {
    let _alone = SESSIONS.write().await;
    let ns = Netns::new("sessrand").unwrap();
    let t = table(&ns);
    let act = NftBlockIp::new(t.clone());
    t.ensure().await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // A fixed pseudo-random sequence of pauses between 0 and ~3 ms.
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut kills = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::thread::sleep(std::time::Duration::from_micros(x % 3000));
                for pid in own_nft_children() {
                    let st = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .stderr(std::process::Stdio::null())
                        .status();
                    if st.is_ok_and(|s| s.success()) {
                        kills += 1;
                    }
                }
            }
            kills
        })
    };
    let (mut ok_applies, mut failed_applies, mut ok_reverts) = (0, 0, 0);
    let mut present_after_error = 0;
    for i in 0..200u32 {
        let ip: IpAddr = format!("198.51.100.{}", i % 250 + 1).parse().unwrap();
        let addr = ip.to_string();
        match act
            .apply(&spec(ActionKind::BlockIp, ip, 600, Value::Null))
            .await
        {
            Ok(applied) => {
                ok_applies += 1;
                assert!(
                    set_has(&ns, "blocked_v4", &addr),
                    "apply {i}: reported applied, absent"
                );
                if i % 2 == 0 && act.revert(&applied).await.is_ok() {
                    ok_reverts += 1;
                    assert!(
                        !set_has(&ns, "blocked_v4", &addr),
                        "revert {i}: reported, present"
                    );
                }
            }
            Err(e) => {
                failed_applies += 1;
                // An error may leave the element in place only if it says the outcome is unknown.
                if set_has(&ns, "blocked_v4", &addr) {
                    present_after_error += 1;
                    let e = e.to_string();
                    assert!(
                        e.contains("may or may not"),
                        "apply {i}: the element is in place, the error says otherwise: {e}"
                    );
                }
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let kills = killer.join().unwrap();
    // What observe() reports is exactly what the kernel holds.
    let seen: std::collections::BTreeSet<String> = act
        .observe()
        .await
        .unwrap()
        .iter()
        .map(|a| a.token["element"].as_str().unwrap().to_owned())
        .collect();
    let out = ns
        .run(
            "nft",
            &["-j", "list", "set", "inet", "sentinel", "blocked_v4"],
        )
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let kernel: std::collections::BTreeSet<String> = v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["set"]["elem"].as_array())
        .flatten()
        .map(|e| e["elem"]["val"].as_str().or(e.as_str()).unwrap().to_owned())
        .collect();
    assert_eq!(seen, kernel);
    eprintln!(
        "kills {kills}, restarts {}, applies ok {ok_applies} failed {failed_applies} \
         (in place after the error: {present_after_error}), reverts ok {ok_reverts}",
        t.session_restarts()
    );
    assert!(
        kills > 0 && t.session_restarts() > 0,
        "the sessions were killed"
    );
}
