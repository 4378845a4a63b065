//! A caller-given `action_id` tags the one rule of one source, against real nftables in a namespace
//! the test creates: the same tag for another source is refused instead of being taken as "in place"
//! (which recorded an action that changed nothing, and whose revert deleted the first source's rule).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nft_common;

use nft_common::{spec, table};
use sentinel_core::{ActionKind, Actuator};
use sentinel_respond::actuators::nft::{NftHoneypotRedirect, NftRateLimit};
use sentinel_testkit::netns::Netns;
use serde_json::json;

fn rules(ns: &Netns, chain: &str) -> String {
    ns.run("nft", &["list", "chain", "inet", "sentinel", chain])
        .unwrap()
}

#[tokio::test]
async fn a_tag_of_another_source_is_refused() {
    let ns = Netns::new("nfttags").unwrap();
    let rl = NftRateLimit::new(table(&ns));
    let a = spec(
        ActionKind::RateLimit,
        "203.0.113.7".parse().unwrap(),
        600,
        json!({"action_id": "shared-tag"}),
    );
    let b = spec(
        ActionKind::RateLimit,
        "203.0.113.8".parse().unwrap(),
        600,
        json!({"action_id": "shared-tag"}),
    );
    let applied_a = rl.apply(&a).await.unwrap();
    assert_eq!(applied_a.operations.len(), 1);
    // The same action again is in place: nothing to run.
    assert!(rl.apply(&a).await.unwrap().operations.is_empty());
    let e = rl.apply(&b).await.unwrap_err().to_string();
    assert!(e.contains("params.action_id"), "{e}");
    let listed = rules(&ns, "ratelimit");
    assert!(listed.contains("203.0.113.7") && !listed.contains("203.0.113.8"));
    rl.revert(&applied_a).await.unwrap();
    assert!(!rules(&ns, "ratelimit").contains("203.0.113.7"));
    assert_eq!(rl.apply(&b).await.unwrap().operations.len(), 1);
    assert!(rules(&ns, "ratelimit").contains("203.0.113.8"));

    let hp = NftHoneypotRedirect::new(table(&ns));
    let params = json!({"honeypot": "192.0.2.30:2222", "action_id": "hp"});
    let c = spec(
        ActionKind::RedirectToHoneypot,
        "198.51.100.7".parse().unwrap(),
        600,
        params.clone(),
    );
    let d = spec(
        ActionKind::RedirectToHoneypot,
        "198.51.100.8".parse().unwrap(),
        600,
        params,
    );
    hp.apply(&c).await.unwrap();
    assert!(hp.apply(&d).await.is_err());
    assert!(!rules(&ns, "honeypot").contains("198.51.100.8"));
}
