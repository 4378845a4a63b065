//! One action path, for every nftables actuator: the dry run that observe mode records (the real
//! actuator behind `PlanOnly`, in a role that may not enforce) is exactly what enforce runs.
//!
//! In two namespaces the test creates: in `a` the actuator applies the spec for real; in `b` the
//! preview's operations are run by hand, as an operator reading the record would, on the same table
//! skeleton. `apply()` must report having run exactly the preview's operations, and the two kernels must
//! then hold the same table (`nft -j list table`, handles, counters and remaining times aside), which is
//! not the bare skeleton. Malformed values never get that far: they are not parameters at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nft_common;

use nft_common::{spec, table};
use sentinel_core::{ActionKind, ActionParams, ActionSpec, Actuator};
use sentinel_respond::actuators::nft::{NftBlockIp, NftHoneypotRedirect, NftRateLimit, NftTable};
use sentinel_respond::PlanOnly;
use sentinel_testkit::netns::Netns;
use serde_json::{json, Value};

/// `nft -j list table inet sentinel`, without what differs between two equal tables: handles,
/// counters' values and elements' remaining times.
fn listed(ns: &Netns) -> Value {
    let out = ns
        .run("nft", &["-j", "list", "table", "inet", "sentinel"])
        .unwrap();
    let mut v: Value = serde_json::from_str(&out).unwrap();
    fn scrub(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("handle");
                m.remove("expires");
                if let Some(Value::Object(c)) = m.get_mut("counter") {
                    c.insert("packets".into(), json!(0));
                    c.insert("bytes".into(), json!(0));
                }
                m.values_mut().for_each(scrub);
            }
            Value::Array(a) => a.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    scrub(&mut v);
    v
}

/// Observe in `a`, enforce in `a`, the preview by hand in `b`; returns the enforced table.
async fn same_path(make: impl Fn(NftTable) -> Box<dyn Actuator>, specs: &[ActionSpec]) -> Value {
    let a = Netns::new("onepatha").unwrap();
    let b = Netns::new("onepathb").unwrap();
    let observe = PlanOnly::new(make(table(&a)));
    let enforce = make(table(&a));
    let mut previews = Vec::new();
    for s in specs {
        let preview = observe.plan(s).await.unwrap();
        assert!(!preview.operations.is_empty());
        let err = observe.apply(s).await.unwrap_err().to_string();
        assert!(err.contains("no enforcing actuator"), "{err}");
        previews.push(preview);
    }
    assert!(
        a.exec("nft", &["list", "table", "inet", "sentinel"])
            .unwrap()
            .status
            .code()
            != Some(0),
        "observe mode created nothing in the kernel"
    );
    for (s, preview) in specs.iter().zip(&previews) {
        let applied = enforce.apply(s).await.unwrap();
        assert_eq!(
            applied.operations, preview.operations,
            "apply ran exactly what the dry run showed"
        );
    }
    let by_hand = table(&b);
    by_hand.ensure().await.unwrap();
    let skeleton = listed(&b);
    for preview in &previews {
        b.nft_script(&format!("{}\n", preview.operations.join("\n")))
            .unwrap();
    }
    let enforced = listed(&a);
    assert_eq!(
        enforced,
        listed(&b),
        "the kernel holds what the preview says"
    );
    assert_ne!(enforced, skeleton, "the action is really there");
    enforced
}

#[tokio::test]
async fn block_ip_preview_is_what_enforce_applies() {
    let specs = [
        spec(
            ActionKind::BlockIp,
            "203.0.113.7".parse().unwrap(),
            600,
            Value::Null,
        ),
        spec(
            ActionKind::BlockIp,
            "2001:db8:1::9".parse().unwrap(),
            900,
            json!({"cidr": "2001:db8:1::/48"}),
        ),
        spec(
            ActionKind::BlockIp,
            "198.51.100.77".parse().unwrap(),
            300,
            json!({"cidr": "198.51.100.64/26"}),
        ),
    ];
    let t = same_path(|t| Box::new(NftBlockIp::new(t)), &specs).await;
    let text = t.to_string();
    assert!(
        text.contains(r#""val":"203.0.113.7""#) && text.contains(r#""timeout":600"#),
        "{text}"
    );
    assert!(text.contains(r#""addr":"2001:db8:1::","len":48"#), "{text}");
    assert!(
        text.contains(r#""addr":"198.51.100.64","len":26"#),
        "{text}"
    );
}

#[tokio::test]
async fn rate_limit_preview_is_what_enforce_applies() {
    let specs = [
        spec(
            ActionKind::RateLimit,
            "192.0.2.18".parse().unwrap(),
            600,
            json!({"rate_per_sec": 50, "burst": 7}),
        ),
        spec(
            ActionKind::RateLimit,
            "2001:db8::7".parse().unwrap(),
            600,
            json!({"rate_bytes_per_sec": 10000}),
        ),
        spec(
            ActionKind::RateLimit,
            "192.0.2.19".parse().unwrap(),
            600,
            Value::Null,
        ),
    ];
    let t = same_path(|t| Box::new(NftRateLimit::new(t)), &specs).await;
    let text = t.to_string();
    assert!(
        text.contains(r#""rate":50"#) && text.contains(r#""burst":7"#),
        "{text}"
    );
    assert!(text.contains(r#""right":"2001:db8::7""#), "{text}");
    assert!(text.contains(r#""right":"192.0.2.19""#), "{text}");
}

#[tokio::test]
async fn honeypot_redirect_preview_is_what_enforce_applies() {
    let specs = [
        spec(
            ActionKind::RedirectToHoneypot,
            "192.0.2.18".parse().unwrap(),
            600,
            json!({"honeypot": "192.0.2.30:2222", "ports": [22, "8000-8010"]}),
        ),
        spec(
            ActionKind::RedirectToHoneypot,
            "2001:db8::18".parse().unwrap(),
            600,
            json!({"honeypot": "[2001:db8::30]:2222"}),
        ),
    ];
    let t = same_path(|t| Box::new(NftHoneypotRedirect::new(t)), &specs).await;
    let text = t.to_string();
    assert!(text.contains(r#""range":[8000,8010]"#), "{text}");
    assert!(text.contains(r#""addr":"192.0.2.30""#), "{text}");
    assert!(text.contains(r#""addr":"2001:db8::30""#), "{text}");
    assert!(text.contains(r#""port":2222"#), "{text}");
}

/// The values that once reached "the exact nft operation" verbatim are not parameters at all now.
#[test]
fn hostile_values_never_become_parameters() {
    for (kind, params) in [
        (ActionKind::BlockIp, json!({"cidr": "127.0.0.0/8 "})),
        (
            ActionKind::BlockIp,
            json!({"cidr": "203.0.113.0/24 } ; flush ruleset ; add element inet sentinel blocked_v4 { 192.0.2.1"}),
        ),
        (ActionKind::BlockIp, json!({"cidr": "128.0.0.0/1"})),
        (
            ActionKind::RedirectToHoneypot,
            json!({"honeypot": "192.0.2.30:22 ; flush ruleset"}),
        ),
        (ActionKind::RateLimit, json!({"rate_per_sec": -1})),
        (
            ActionKind::IsolateContainer,
            json!({"quarantine_network": "x/../../images/y?force=1"}),
        ),
    ] {
        let e = ActionParams::parse(kind, &params).unwrap_err().to_string();
        assert!(e.starts_with("params."), "{e}");
        assert!(!e.contains("flush") && !e.contains("images"), "{e}");
    }
}
