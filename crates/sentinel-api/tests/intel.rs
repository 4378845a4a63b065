//! The investigation through the API, over a real provider client against a fake AbuseIPDB: a lookup
//! answers what the provider said, the cache state and the explained score; only operators may look
//! up (it spends quota), viewers read the counters; bad input is a 400 naming the field; a node
//! without the investigation answers 503; the provider's key is in no answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::*;
use sentinel_api::AppState;
use sentinel_intel::{ApiKey, IntelConfig};
use sentinel_testkit::ti::{Behaviour, FakeProvider, TiKind};
use std::net::IpAddr;

async fn with_intel(h: &Harness, fake: &FakeProvider) -> axum::Router {
    let mut cfg = IntelConfig::default();
    cfg.abuseipdb.key = Some(ApiKey::new(fake.key()));
    cfg.abuseipdb.base_url = fake.base_url();
    cfg.retry.attempts = 1;
    let (intel, _) = sentinel_intel::build(&cfg, None).unwrap();
    sentinel_api::router(AppState {
        intel: Some(intel),
        ..h.state.clone()
    })
}

fn abuseipdb(v: &serde_json::Value) -> &serde_json::Value {
    v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["provider"] == "abuseipdb")
        .unwrap_or_else(|| panic!("no abuseipdb evidence: {v}"))
}

#[tokio::test]
async fn a_lookup_answers_the_provider_the_cache_state_and_the_score() {
    let h = harness().await;
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    fake.set(ip, Behaviour::listed(95, 120));
    let app = with_intel(&h, &fake).await;

    let first = send(
        &app,
        get("/v1/intel/203.0.113.7?severity=high", Some(&h.admin_key)),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.json());
    let v = first.json();
    assert_eq!(v["ip"], "203.0.113.7");
    assert_eq!(v["offline"], false);
    assert_eq!(v["assumed_alert"]["severity"], "high");
    let e = abuseipdb(&v);
    assert_eq!(e["verdict"], "malicious", "{v}");
    assert_eq!(e["details"]["cache"]["hit"], false, "{v}");
    assert!(v["risk_score"].as_u64().unwrap() >= 70, "{v}");
    assert!(!v["contributions"].as_array().unwrap().is_empty(), "{v}");

    let second = send(&app, get("/v1/intel/203.0.113.7", Some(&h.admin_key))).await;
    assert_eq!(second.status, StatusCode::OK);
    let v = second.json();
    assert_eq!(v["assumed_alert"]["severity"], "medium");
    let e = abuseipdb(&v);
    assert_eq!(e["details"]["cache"]["hit"], true, "{v}");
    assert_eq!(e["details"]["cache"]["source"], "memory", "{v}");
    assert_eq!(fake.hits(ip), 1, "the second lookup came from the cache");

    let stats = send(&app, get("/v1/intel", Some(&h.viewer_key))).await;
    assert_eq!(stats.status, StatusCode::OK);
    let s = stats.json();
    assert_eq!(s["offline"], false);
    assert_eq!(s["provider_names"], serde_json::json!(["abuseipdb"]));
    assert_eq!(s["providers"][0]["name"], "abuseipdb");
    assert_eq!(s["providers"][0]["requests"], 1, "{s}");
    assert_eq!(s["providers"][0]["cache_hits"], 1, "{s}");
    assert_eq!(s["cache"]["memory_hits"], 1, "{s}");
    assert!(s["feeds"].is_array(), "{s}");
}

#[tokio::test]
async fn only_operators_look_up_and_viewers_read_the_counters() {
    let h = harness().await;
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    let app = with_intel(&h, &fake).await;
    let r = send(&app, get("/v1/intel/203.0.113.8", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(fake.requests().is_empty(), "a refused lookup asks nothing");
    let r = send(&app, get("/v1/intel/203.0.113.8", None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&app, get("/v1/intel", None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&app, get("/v1/intel", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_addresses_and_severities_are_400s_naming_the_field() {
    let h = harness().await;
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    let app = with_intel(&h, &fake).await;
    let r = send(&app, get("/v1/intel/not-an-ip", Some(&h.admin_key))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let m = r.error("bad_request");
    assert!(m.contains("`ip`") && m.contains("not-an-ip"), "{m}");
    let r = send(
        &app,
        get("/v1/intel/203.0.113.7?severity=extreme", Some(&h.admin_key)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let m = r.error("bad_request");
    assert!(m.contains("`severity`") && m.contains("extreme"), "{m}");
    let r = send(
        &app,
        get("/v1/intel/203.0.113.7?sevrity=high", Some(&h.admin_key)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error("bad_request").contains("sevrity"));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_node_without_the_investigation_answers_503() {
    let h = harness().await;
    for path in ["/v1/intel/203.0.113.7", "/v1/intel"] {
        let r = send(&h.app, get(path, Some(&h.admin_key))).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(r.error("unavailable").contains("investigation"));
    }
}

#[tokio::test]
async fn the_provider_key_is_in_no_answer() {
    let h = harness().await;
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    // The fake quotes the key it was sent in its error bodies, as a careless server might.
    fake.echo_key_in_errors(true);
    let refused: IpAddr = "198.51.100.9".parse().unwrap();
    let broken: IpAddr = "198.51.100.10".parse().unwrap();
    fake.set(refused, Behaviour::Status(401));
    fake.set(broken, Behaviour::Status(500));
    let app = with_intel(&h, &fake).await;
    let mut bodies = Vec::new();
    for path in [
        "/v1/intel/198.51.100.9",
        "/v1/intel/198.51.100.10",
        "/v1/intel/203.0.113.7",
        "/v1/intel",
    ] {
        let r = send(&app, get(path, Some(&h.admin_key))).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        bodies.push(String::from_utf8(r.body).unwrap());
    }
    assert!(fake.hits(refused) >= 1 && fake.hits(broken) >= 1);
    // The failures are reported (so the server's words did reach the answer's making)…
    for b in &bodies[..2] {
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        assert!(
            v["uncertainty"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u.as_str().unwrap().starts_with("abuseipdb:")),
            "{b}"
        );
    }
    // …and the key is in none of them.
    for b in &bodies {
        assert!(!b.contains(fake.key()), "key leaked: {b}");
    }
    let metrics = send(&app, get("/metrics", Some(&h.admin_key))).await;
    assert!(!String::from_utf8(metrics.body)
        .unwrap()
        .contains(fake.key()));
}
