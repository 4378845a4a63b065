//! A running daemon's `/metrics` shows its pipeline at work: after one `/v1/defend` attack has gone through
//! every stage, each stage's latency histogram has counted it, and each queue's depth and capacity are there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use std::time::Duration;

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.9","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

async fn metrics(d: &Daemon) -> String {
    let r = d
        .client()
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of the sample `series` (`name{labels}` as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_stage_is_timed_and_every_queue_is_gauged() {
    let d = Daemon::start(&[]);
    let before = metrics(&d).await;
    for stage in ["detect", "investigate", "decide", "act", "notify"] {
        let series = format!("sentinel_stage_latency_seconds_count{{stage=\"{stage}\"}}");
        assert_eq!(sample(&before, &series), Some(0.0), "{before}");
    }
    let r = d
        .client()
        .post(d.url("/v1/defend"))
        .bearer_auth(&d.key)
        .header("content-type", "application/json")
        .body(ATTACK)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The answer comes from decide; act and notify follow: wait for the notice.
    let text = eventually(Duration::from_secs(10), || async {
        let text = metrics(&d).await;
        (sample(&text, "sentinel_notices_sent_total") >= Some(1.0)).then_some(text)
    })
    .await;
    for stage in ["detect", "investigate", "decide", "act", "notify"] {
        let series = format!("sentinel_stage_latency_seconds_count{{stage=\"{stage}\"}}");
        assert!(sample(&text, &series) >= Some(1.0), "{series}: {text}");
    }
    assert!(text.contains("# TYPE sentinel_stage_latency_seconds histogram\n"));
    assert!(text.contains("# TYPE sentinel_queue_depth gauge\n"));
    for queue in ["intake", "alerts", "investigations", "plans", "notices"] {
        let depth = format!("sentinel_queue_depth{{queue=\"{queue}\"}}");
        let cap = format!("sentinel_queue_capacity{{queue=\"{queue}\"}}");
        assert!(sample(&text, &depth).is_some(), "{depth}: {text}");
        assert!(sample(&text, &cap) >= Some(1.0), "{cap}: {text}");
    }
    assert_eq!(sample(&text, "sentinel_intake_queue_depth"), Some(0.0));
}
