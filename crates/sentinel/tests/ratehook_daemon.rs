//! The daemon end to end: a signed generic webhook delivery over a real socket becomes a stored
//! event, `/webhook/test` is mounted only with `SENTINEL_ENABLE_WEBHOOK_TEST=true` (and a WARNING),
//! and the per-address limit (keyed on the TCP peer the daemon serves with) refuses with 429 and
//! `Retry-After` while `/health` still answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "daemon-webhook-secret-0123456789";

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhooks_become_events_and_addresses_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("generic.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    // Loopback is exempt by default (a local proxy); this test is the client to limit, so not here.
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "api:\n  rate_limit:\n    per_ip: {{ rate: 1/h, burst: 5 }}\n    exempt: []\n  webhooks:\n    generic: {{ secret_file: \"{}\" }}\n",
            secret_file.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[("SENTINEL_ENABLE_WEBHOOK_TEST", "true")]);
    let c = d.client();

    // 1: a signed delivery, answered once stored.
    let body = br#"{"kind":"deploy","service":"web"}"#;
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = c
        .post(d.url("/webhook/generic"))
        .header("content-type", "application/json")
        .header("x-sentinel-timestamp", ts.to_string())
        .header(
            "x-sentinel-signature",
            sentinel_notify::channels::sign(SECRET.as_bytes(), ts, body),
        )
        .header("x-sentinel-delivery", "daemon-d-1")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", d.output());
    let answer: serde_json::Value = r.json().await.unwrap();
    let trace = answer["trace_id"].as_str().unwrap().to_owned();

    // 2: it is an event of the store.
    let r = c
        .get(d.url(&format!("/v1/events?trace_id={trace}")))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events: serde_json::Value = r.json().await.unwrap();
    let text = events.to_string();
    assert!(text.contains("webhook/generic"), "{text}");
    assert!(text.contains("daemon-d-1"), "{text}");

    // 3: the test route exists because the environment said so, and the start-up said WARN.
    let r = c
        .post(d.url("/webhook/test"))
        .header("content-type", "application/json")
        .body(r#"{"note":"hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = d.output();
    assert!(
        out.lines()
            .any(|l| l.contains("webhook_test_enabled") && l.contains("\"lvl\":\"warn\"")),
        "{out}"
    );

    // 4: counted.
    let r = c
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    let m = r.text().await.unwrap();
    assert_eq!(
        sample(&m, "sentinel_webhook_accepted_total{source=\"generic\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "sentinel_webhook_accepted_total{source=\"test\"}"),
        Some(1.0)
    );

    // 5 is the last of the burst; 6 is refused, whatever the key.
    let r = c
        .get(d.url("/v1/version"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(d.url("/v1/version"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    // Liveness is never limited.
    for _ in 0..5 {
        let r = c.get(d.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    d.stop();
}
