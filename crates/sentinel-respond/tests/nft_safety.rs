//! What Sentinel must not do with nftables: touch anything outside its own table, or change anything in
//! a dry run. Real kernel, in a namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nft_common;

use nft_common::{spec, table};
use sentinel_core::{ActionKind, Actuator};
use sentinel_respond::actuators::nft::{NftBlockIp, NftHoneypotRedirect, NftRateLimit};
use sentinel_testkit::netns::Netns;
use serde_json::{json, Value};
use std::net::IpAddr;

const FOREIGN: &str = r#"
table inet other {
    set blocked_v4 { type ipv4_addr; flags interval, timeout; elements = { 203.0.113.9 timeout 1h } }
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr 198.51.100.7 counter drop comment "sentinel:not-ours"
    }
    chain ratelimit {
        ip saddr 192.0.2.18 limit rate over 5/second drop comment "sentinel:deadbeef"
    }
}
"#;

fn list_other(ns: &Netns) -> String {
    let s = ns.run("nft", &["list", "table", "inet", "other"]).unwrap();
    // Drop the element's remaining time, which moves on by itself.
    s.lines()
        .map(|l| l.split(" expires ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn foreign_tables_and_rules_are_untouched() {
    let ns = Netns::new("foreign").unwrap();
    ns.nft_script(FOREIGN).unwrap();
    let before = list_other(&ns);
    let ip: IpAddr = "192.0.2.18".parse().unwrap();
    let block = NftBlockIp::new(table(&ns));
    let limit = NftRateLimit::new(table(&ns));
    let redirect = NftHoneypotRedirect::new(table(&ns));

    let b = block
        .apply(&spec(ActionKind::BlockIp, ip, 60, Value::Null))
        .await
        .unwrap();
    let l = limit
        .apply(&spec(
            ActionKind::RateLimit,
            ip,
            60,
            json!({"rate_per_sec": 5}),
        ))
        .await
        .unwrap();
    let r = redirect
        .apply(&spec(
            ActionKind::RedirectToHoneypot,
            ip,
            60,
            json!({"honeypot": "192.0.2.34:2222"}),
        ))
        .await
        .unwrap();
    assert_eq!(list_other(&ns), before);
    // Observe sees only Sentinel's own table.
    assert_eq!(block.observe().await.unwrap().len(), 1);
    assert_eq!(limit.observe().await.unwrap().len(), 1);
    assert_eq!(redirect.observe().await.unwrap().len(), 1);

    block.revert(&b).await.unwrap();
    limit.revert(&l).await.unwrap();
    redirect.revert(&r).await.unwrap();
    // A forged token naming the foreign rule's comment finds nothing in Sentinel's chain.
    let mut forged = l.clone();
    forged.token["comment"] = json!("sentinel:deadbeef");
    limit.revert(&forged).await.unwrap();
    assert_eq!(list_other(&ns), before);

    table(&ns).remove().await.unwrap();
    table(&ns).remove().await.unwrap();
    assert_eq!(list_other(&ns), before);
    let tables = ns.run("nft", &["list", "tables"]).unwrap();
    assert_eq!(tables.trim(), "table inet other");
}

#[tokio::test]
async fn plan_is_the_exact_script_and_changes_nothing() {
    let ns = Netns::new("plan").unwrap();
    let t = table(&ns);
    let block = NftBlockIp::new(t.clone());
    let limit = NftRateLimit::new(t.clone());
    let redirect = NftHoneypotRedirect::new(t.clone());
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let b = spec(
        ActionKind::BlockIp,
        ip,
        60,
        json!({"cidr": "203.0.113.0/24"}),
    );
    let l = spec(
        ActionKind::RateLimit,
        ip,
        60,
        json!({"rate_per_sec": 50, "action_id": "act1"}),
    );
    let r = spec(
        ActionKind::RedirectToHoneypot,
        ip,
        60,
        json!({"honeypot": "192.0.2.30:2222", "ports": [22], "action_id": "act2"}),
    );

    for setup in [false, true] {
        if setup {
            t.ensure().await.unwrap();
        }
        let before = ns.nft_ruleset().unwrap();
        assert_eq!(
            block.plan(&b).await.unwrap().operations,
            ["add element inet sentinel blocked_net_v4 { 203.0.113.0/24 timeout 60s }"]
        );
        assert_eq!(
            limit.plan(&l).await.unwrap().operations,
            ["add rule inet sentinel ratelimit ip saddr 203.0.113.7 limit rate over 50/second burst 5 packets counter drop comment \"sentinel:act1\""]
        );
        assert_eq!(
            redirect.plan(&r).await.unwrap().operations,
            ["add rule inet sentinel honeypot ip saddr 203.0.113.7 tcp dport { 22 } counter dnat ip to 192.0.2.30:2222 comment \"sentinel:act2\""]
        );
        assert_eq!(ns.nft_ruleset().unwrap(), before);
    }

    // The planned script, run by hand, is what apply does: observe sees the same action.
    for op in block.plan(&b).await.unwrap().operations {
        ns.nft_script(&op).unwrap();
    }
    for op in limit.plan(&l).await.unwrap().operations {
        ns.nft_script(&op).unwrap();
    }
    let seen = block.observe().await.unwrap();
    assert_eq!(seen[0].token["element"], "203.0.113.0/24");
    let applied = limit.apply(&l).await.unwrap();
    assert_eq!(limit.observe().await.unwrap().len(), 1);
    assert_eq!(
        limit.observe().await.unwrap()[0].token["comment"],
        applied.token["comment"]
    );
}
