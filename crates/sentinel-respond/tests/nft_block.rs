//! `block_ip` against the real kernel, in namespaces: block, revert, expiry, restart, ranges, batches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nft_common;

use nft_common::{spec, table, BLOCKED, OK};
use sentinel_core::{ActionKind, Actuator, Subject};
use sentinel_respond::actuators::nft::NftBlockIp;
use sentinel_testkit::netns::{Host, Lan};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

fn reach(from: &Host, to: SocketAddr) -> bool {
    from.ns.connect_tcp(to, OK).unwrap().is_some()
}

/// Reachable again after a revert, allowing the victim a few tries: while a whole IPv6 /64 was
/// dropped, its neighbour discovery answers were dropped too, and the victim's neighbour entry for the
/// attacker takes a moment to resolve again (about 0.3 s seen here).
fn reach_again(from: &Host, to: SocketAddr) -> bool {
    (0..25).any(|_| reach(from, to))
}

fn blocked(from: &Host, to: SocketAddr) -> bool {
    from.ns.connect_tcp(to, BLOCKED).unwrap().is_none()
}

async fn block_revert_expire(v6: bool) {
    let lan = Lan::new(&["victim", "attacker"]).unwrap();
    let (victim, attacker) = (lan.hub(), lan.host("attacker").unwrap());
    let (dst, src) = if v6 {
        (victim.sock_v6(8080), IpAddr::V6(attacker.v6))
    } else {
        (victim.sock_v4(8080), IpAddr::V4(attacker.v4))
    };
    let _l = victim.ns.listen_tcp(dst, "victim").unwrap();
    let act = NftBlockIp::new(table(&victim.ns));
    assert!(reach(attacker, dst));

    let applied = act
        .apply(&spec(ActionKind::BlockIp, src, 60, Value::Null))
        .await
        .unwrap();
    assert_eq!(applied.subject, Subject::Ip(src));
    assert!(blocked(attacker, dst));
    act.revert(&applied).await.unwrap();
    assert!(reach(attacker, dst));
    act.revert(&applied).await.unwrap(); // already gone is Ok

    // Kernel expiry, and a restarted actuator sees the element with its remaining time.
    act.apply(&spec(ActionKind::BlockIp, src, 2, Value::Null))
        .await
        .unwrap();
    assert!(blocked(attacker, dst));
    let restarted = NftBlockIp::new(table(&victim.ns));
    let seen = restarted.observe().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].subject, Subject::Ip(src));
    assert_eq!(seen[0].token["timeout_secs"], 2);
    assert!(seen[0].token["expires_secs"].as_u64().unwrap() <= 2);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(reach(attacker, dst));
    assert!(restarted.observe().await.unwrap().is_empty());

    // Revert after a restart, from the observed token alone.
    act.apply(&spec(ActionKind::BlockIp, src, 60, Value::Null))
        .await
        .unwrap();
    let token = restarted.observe().await.unwrap().pop().unwrap();
    let token: sentinel_core::Applied =
        serde_json::from_str(&serde_json::to_string(&token).unwrap()).unwrap();
    NftBlockIp::new(table(&victim.ns))
        .revert(&token)
        .await
        .unwrap();
    assert!(reach(attacker, dst));
}

#[tokio::test]
async fn block_ip_v4_blocks_reverts_and_expires() {
    block_revert_expire(false).await;
}

#[tokio::test]
async fn block_ip_v6_blocks_reverts_and_expires() {
    block_revert_expire(true).await;
}

#[tokio::test]
async fn cidr_blocks_cover_whole_ranges() {
    let lan = Lan::new(&["victim", "attacker", "bystander"]).unwrap();
    let (victim, attacker, bystander) = (
        lan.hub(),
        lan.host("attacker").unwrap(),
        lan.host("bystander").unwrap(),
    );
    let _l4 = victim.ns.listen_tcp(victim.sock_v4(8080), "v4").unwrap();
    let _l6 = victim.ns.listen_tcp(victim.sock_v6(8080), "v6").unwrap();
    let act = NftBlockIp::new(table(&victim.ns));

    // IPv6 /64: the attacker's whole link, not the bystander's.
    let a6 = act
        .apply(&spec(
            ActionKind::BlockIp,
            IpAddr::V6(attacker.v6),
            60,
            json!({"cidr": "2001:db8:0:1::/64"}),
        ))
        .await
        .unwrap();
    assert_eq!(a6.token["element"], "2001:db8:0:1::/64");
    assert!(blocked(attacker, victim.sock_v6(8080)));
    assert!(reach(bystander, victim.sock_v6(8080)));
    assert!(reach(attacker, victim.sock_v4(8080)));

    // IPv4 /24: everyone in 192.0.2.0/24.
    let a4 = act
        .apply(&spec(
            ActionKind::BlockIp,
            IpAddr::V4(attacker.v4),
            60,
            json!({"cidr": "192.0.2.0/24"}),
        ))
        .await
        .unwrap();
    assert!(blocked(attacker, victim.sock_v4(8080)));
    assert!(blocked(bystander, victim.sock_v4(8080)));
    let seen = act.observe().await.unwrap();
    let mut elems: Vec<&str> = seen
        .iter()
        .map(|a| a.token["element"].as_str().unwrap())
        .collect();
    elems.sort();
    assert_eq!(elems, ["192.0.2.0/24", "2001:db8:0:1::/64"]);

    act.revert(&a4).await.unwrap();
    act.revert(&a6).await.unwrap();
    assert!(reach(attacker, victim.sock_v4(8080)));
    assert!(reach_again(attacker, victim.sock_v6(8080)));
    assert!(act.observe().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_batch_of_100000_addresses_is_one_transaction() {
    let lan = Lan::new(&["victim", "attacker"]).unwrap();
    let (victim, attacker) = (lan.hub(), lan.host("attacker").unwrap());
    let dst = victim.sock_v6(8080);
    let _l = victim.ns.listen_tcp(dst, "victim").unwrap();
    let act = NftBlockIp::new(table(&victim.ns));

    let mut specs: Vec<_> = (0..99_999u32)
        .map(|i| {
            let ip: IpAddr = format!("2001:db8:ff:{:x}::{:x}", i >> 16, i & 0xffff)
                .parse()
                .unwrap();
            spec(ActionKind::BlockIp, ip, 600, Value::Null)
        })
        .collect();
    specs.push(spec(
        ActionKind::BlockIp,
        IpAddr::V6(attacker.v6),
        600,
        Value::Null,
    ));
    assert!(reach(attacker, dst));
    let results = act.apply_batch(&specs).await;
    assert_eq!(results.len(), 100_000);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(act.observe().await.unwrap().len(), 100_000);
    assert!(blocked(attacker, dst));

    // A range in the interval set, which a later overlapping range will collide with.
    let wide = spec(
        ActionKind::BlockIp,
        "2001:db8:ff::1".parse().unwrap(),
        60,
        json!({"cidr": "2001:db8:ff::/48"}),
    );
    assert!(act.apply(&wide).await.is_ok());
    assert_eq!(act.observe().await.unwrap().len(), 100_001);

    // A bad spec fails alone; a kernel refusal fails the whole transaction, adding nothing.
    let bad = vec![
        spec(
            ActionKind::BlockIp,
            "198.51.100.9".parse().unwrap(),
            60,
            json!({"cidr": "203.0.113.0/24"}),
        ),
        spec(
            ActionKind::BlockIp,
            "198.51.100.10".parse().unwrap(),
            60,
            Value::Null,
        ),
        spec(
            ActionKind::BlockIp,
            "2001:db8:ff:0::5".parse().unwrap(),
            60,
            json!({"cidr": "2001:db8:ff::/64"}),
        ),
    ];
    let results = act.apply_batch(&bad).await;
    assert!(matches!(
        results[0],
        Err(sentinel_core::ActError::Refused(_))
    ));
    assert!(matches!(
        results[1],
        Err(sentinel_core::ActError::Backend(_))
    ));
    assert!(matches!(
        results[2],
        Err(sentinel_core::ActError::Backend(_))
    ));
    assert_eq!(act.observe().await.unwrap().len(), 100_001);
}

/// The fail2ban pitfall: Docker DNATs published ports in prerouting, so the traffic never reaches input.
/// With only an input chain configured, Sentinel's prerouting chain (-150) still drops it.
#[tokio::test]
async fn dnat_to_a_container_is_dropped_before_docker_rewrites_it() {
    use sentinel_respond::actuators::nft::{FilterHook, NftTable};
    let lan = Lan::new(&["victim", "attacker", "container"]).unwrap();
    let (victim, attacker, container) = (
        lan.hub(),
        lan.host("attacker").unwrap(),
        lan.host("container").unwrap(),
    );
    let _l = container
        .ns
        .listen_tcp(container.sock_v4(80), "container")
        .unwrap();
    // A stand-in for Docker's own chains: DNAT of a published port at priority -100.
    victim
        .ns
        .nft_script(&format!(
            "add table ip dockerish\n\
             add chain ip dockerish prerouting {{ type nat hook prerouting priority -100; policy accept; }}\n\
             add rule ip dockerish prerouting tcp dport 8081 dnat to {}:80\n",
            container.v4
        ))
        .unwrap();
    let published = victim.sock_v4(8081);
    assert_eq!(
        attacker.ns.connect_tcp(published, OK).unwrap().as_deref(),
        Some("container")
    );
    let t = NftTable::default()
        .in_netns(victim.ns.name())
        .unwrap()
        .with_hooks(&[FilterHook::Input])
        .unwrap();
    let act = NftBlockIp::new(t);
    let applied = act
        .apply(&spec(
            ActionKind::BlockIp,
            IpAddr::V4(attacker.v4),
            60,
            Value::Null,
        ))
        .await
        .unwrap();
    assert!(blocked(attacker, published));
    act.revert(&applied).await.unwrap();
    assert!(reach(attacker, published));
}
