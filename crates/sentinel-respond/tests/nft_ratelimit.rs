//! `rate_limit` against the real kernel, in namespaces: measured throughput drops and recovers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nft_common;

use nft_common::{spec, table};
use sentinel_core::{ActionKind, Actuator, Subject};
use sentinel_respond::actuators::nft::NftRateLimit;
use sentinel_testkit::netns::{measure_throughput, Lan};
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;

#[tokio::test]
async fn rate_limit_cuts_throughput_tenfold_and_revert_restores_it() {
    let lan = Lan::new(&["victim", "attacker"]).unwrap();
    let (victim, attacker) = (lan.hub(), lan.host("attacker").unwrap());
    let dst = victim.sock_v4(8080);
    let l = victim.ns.listen_tcp(dst, "victim").unwrap();
    let dur = Duration::from_millis(1500);
    let act = NftRateLimit::new(table(&victim.ns));

    let before = measure_throughput(attacker, dst, &l, dur).unwrap();
    let s = spec(
        ActionKind::RateLimit,
        IpAddr::V4(attacker.v4),
        60,
        json!({"rate_per_sec": 100}),
    );
    let applied = act.apply(&s).await.unwrap();
    // Applying the same action again adds no second rule, and says it ran nothing.
    assert_eq!(applied.operations.len(), 1);
    let again = act.apply(&s).await.unwrap();
    assert_eq!(
        (&again.token, &again.subject),
        (&applied.token, &applied.subject)
    );
    assert!(again.operations.is_empty(), "{:?}", again.operations);
    let seen = NftRateLimit::new(table(&victim.ns))
        .observe()
        .await
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].subject, Subject::Ip(IpAddr::V4(attacker.v4)));
    assert_eq!(seen[0].token["comment"], applied.token["comment"]);

    let limited = measure_throughput(attacker, dst, &l, dur).unwrap();
    assert!(
        limited * 10.0 <= before,
        "before {before:.0} B/s, limited {limited:.0} B/s"
    );

    // Revert from the observed token, as after a restart.
    NftRateLimit::new(table(&victim.ns))
        .revert(&seen[0])
        .await
        .unwrap();
    act.revert(&applied).await.unwrap();
    assert!(act.observe().await.unwrap().is_empty());
    let after = measure_throughput(attacker, dst, &l, dur).unwrap();
    eprintln!("packets: before {before:.0} B/s, limited {limited:.0} B/s, after {after:.0} B/s");
    assert!(
        after >= limited * 10.0,
        "limited {limited:.0} B/s, after {after:.0} B/s"
    );
}

#[tokio::test]
async fn byte_rate_limit_applies_to_ipv6() {
    let lan = Lan::new(&["victim", "attacker"]).unwrap();
    let (victim, attacker) = (lan.hub(), lan.host("attacker").unwrap());
    let dst = victim.sock_v6(8080);
    let l = victim.ns.listen_tcp(dst, "victim").unwrap();
    let dur = Duration::from_millis(1500);
    let act = NftRateLimit::new(table(&victim.ns));

    let before = measure_throughput(attacker, dst, &l, dur).unwrap();
    let applied = act
        .apply(&spec(
            ActionKind::RateLimit,
            IpAddr::V6(attacker.v6),
            60,
            json!({"rate_bytes_per_sec": 200_000}),
        ))
        .await
        .unwrap();
    let limited = measure_throughput(attacker, dst, &l, dur).unwrap();
    assert!(
        limited * 10.0 <= before,
        "before {before:.0} B/s, limited {limited:.0} B/s"
    );
    act.revert(&applied).await.unwrap();
    act.revert(&applied).await.unwrap();
}
