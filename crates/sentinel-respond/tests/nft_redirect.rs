//! `redirect_to_honeypot` against the real kernel, in namespaces: the attacker lands on the honeypot,
//! a bystander still reaches the real service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nft_common;

use nft_common::{spec, table, OK};
use sentinel_core::{ActionKind, Actuator, Subject};
use sentinel_respond::actuators::nft::NftHoneypotRedirect;
use sentinel_testkit::netns::Lan;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;

async fn redirect(v6: bool) {
    let lan = Lan::new(&["victim", "attacker", "honeypot", "bystander"]).unwrap();
    let victim = lan.hub();
    let attacker = lan.host("attacker").unwrap();
    let honeypot = lan.host("honeypot").unwrap();
    let bystander = lan.host("bystander").unwrap();
    let (service, trap, src, by_src) = if v6 {
        (
            victim.sock_v6(22),
            honeypot.sock_v6(2222),
            IpAddr::V6(attacker.v6),
            IpAddr::V6(bystander.v6),
        )
    } else {
        (
            victim.sock_v4(22),
            honeypot.sock_v4(2222),
            IpAddr::V4(attacker.v4),
            IpAddr::V4(bystander.v4),
        )
    };
    let real = victim.ns.listen_tcp(service, "victim").unwrap();
    let pot = honeypot.ns.listen_tcp(trap, "honeypot").unwrap();
    let act = NftHoneypotRedirect::new(table(&victim.ns));
    let banner = |h: &sentinel_testkit::netns::Host| h.ns.connect_tcp(service, OK).unwrap();

    assert_eq!(banner(attacker).as_deref(), Some("victim"));
    let applied = act
        .apply(&spec(
            ActionKind::RedirectToHoneypot,
            src,
            60,
            json!({"honeypot": trap.to_string(), "ports": [22, 2022]}),
        ))
        .await
        .unwrap();
    assert_eq!(banner(attacker).as_deref(), Some("honeypot"));
    assert!(
        pot.wait_accepted(src, Duration::from_secs(5)),
        "honeypot saw {:?}",
        pot.peers()
    );
    assert_eq!(banner(bystander).as_deref(), Some("victim"));
    assert!(
        real.wait_accepted(by_src, Duration::from_secs(5)),
        "victim saw {:?}",
        real.peers()
    );

    let seen = NftHoneypotRedirect::new(table(&victim.ns))
        .observe()
        .await
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].subject, Subject::Ip(src));
    act.revert(&seen[0]).await.unwrap();
    act.revert(&applied).await.unwrap();
    assert_eq!(banner(attacker).as_deref(), Some("victim"));
}

#[tokio::test]
async fn redirect_sends_the_attacker_to_the_honeypot_v4() {
    redirect(false).await;
}

#[tokio::test]
async fn redirect_sends_the_attacker_to_the_honeypot_v6() {
    redirect(true).await;
}
