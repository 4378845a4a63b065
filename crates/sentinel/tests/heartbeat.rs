//! The issue's acceptance line: the heartbeat's task count converges after many short tasks under
//! concurrency. A real daemon gets hundreds of concurrent `/v1/defend` calls that raise alerts (each an
//! HTTP request, an investigation, an action batch, a notice), a third of them abandoned by their
//! client mid-request; afterwards the heartbeat is back to its baseline: the five pipeline stages and
//! the heartbeat request itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use serde_json::Value;
use std::time::{Duration, Instant};

async fn heartbeat(c: &reqwest::Client, d: &Daemon) -> Value {
    let r = c
        .get(d.url("/v1/system/heartbeat"))
        .header("X-API-Key", &d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The value of one sample line of `/metrics` (`name{labels} value`).
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_task_count_converges_after_many_concurrent_alerts() {
    let d = Daemon::start(&[]);
    let c = d.client();
    let base = heartbeat(&c, &d).await;
    assert_eq!(base["tasks"]["active"], 6, "{base}");
    assert_eq!(base["tasks"]["by_kind"]["pipeline_stage"], 5, "{base}");

    // Abandoned calls: the client gives up after a few milliseconds and closes the connection.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(5))
        .build()
        .unwrap();
    let mut calls = Vec::new();
    for i in 0..600u32 {
        let client = if i % 3 == 0 {
            impatient.clone()
        } else {
            c.clone()
        };
        let url = d.url("/v1/defend");
        let key = d.key.clone();
        // Documentation addresses, in the JSON only: no traffic goes to them.
        let body = format!(
            r#"{{"src_ip":"{}.{}","failed_logins":{},"user_agent":"hydra v9","path":"/login"}}"#,
            if i % 2 == 0 {
                "203.0.113"
            } else {
                "198.51.100"
            },
            i % 250 + 1,
            20 + i % 30
        );
        calls.push(tokio::spawn(async move {
            client
                .post(url)
                .header("X-API-Key", key)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    let mut answered = 0;
    for call in calls {
        if let Ok(status) = call.await.unwrap() {
            assert!(status == 200 || status == 429 || status == 503, "{status}");
            answered += 1;
        }
    }
    assert!(answered >= 300, "only {answered} calls were answered");

    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let v = heartbeat(&c, &d).await;
        if v["tasks"]["active"] == 6 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(last["tasks"]["active"], 6, "did not converge: {last}");
    for (kind, want) in [
        ("pipeline_stage", 5),
        ("http_request", 1),
        ("investigation", 0),
        ("action_batch", 0),
        ("notice", 0),
    ] {
        assert_eq!(last["tasks"]["by_kind"][kind], want, "{kind}: {last}");
    }
    let started = last["tasks"]["started"].as_u64().unwrap();
    assert_eq!(
        started - last["tasks"]["finished"].as_u64().unwrap(),
        6,
        "{last}"
    );
    // The short tasks did run: investigations and action batches, one per alert or batch.
    let text = c
        .get(d.url("/metrics"))
        .header("X-API-Key", &d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(
            &text,
            r#"sentinel_tasks_started_total{kind="investigation"}"#
        ) >= 100.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            r#"sentinel_tasks_finished_total{kind="action_batch"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"sentinel_tasks_active{kind="investigation"}"#),
        0.0
    );
    let (_, out) = d.stop();
    assert!(!out.contains("stage_crashed"), "{out}");
}
