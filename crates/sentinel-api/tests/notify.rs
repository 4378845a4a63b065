//! `/v1/notify` on the router (the 16 KiB body bound is the unit tests' and the daemon test's: this
//! harness's request limit is lower): roles, validation (unknown fields refused, title and body bounds),
//! 202 only with the outbox rows committed, a 200 with a note when no route matches, the counters
//! and an empty dead-letter page, and a 503 where no engine runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::*;
use sentinel_api::AppState;
use sentinel_core::{NoticeKind, Severity};
use sentinel_notify::config::{ChannelConfig, Route};
use sentinel_notify::NotifyConfig;
use serde_json::json;
use std::time::Duration;

async fn with_notify(h: &Harness) -> (axum::Router, sentinel_notify::NotifyTask) {
    let cfg = NotifyConfig {
        channels: [("log".to_owned(), ChannelConfig::Log)].into(),
        routes: vec![Route {
            kinds: vec![NoticeKind::Manual],
            min_severity: Severity::Info,
            channels: vec!["log".into()],
            group_wait: Duration::from_secs(60),
            dedup_window: Duration::ZERO,
            throttle_max: 0,
            throttle_per: Duration::from_secs(60),
        }],
        ..NotifyConfig::default()
    };
    let (n, task) = sentinel_notify::build(&cfg, h.store.clone(), None).unwrap();
    let app = sentinel_api::router(AppState {
        notify: Some(n),
        ..h.state.clone()
    });
    (app, task)
}

fn send_req(key: &str, body: serde_json::Value) -> axum::http::Request<axum::body::Body> {
    post("/v1/notify", key, "application/json", body.to_string())
}

#[tokio::test]
async fn operators_send_and_the_answer_comes_after_the_outbox_commit() {
    let h = harness().await;
    let (app, task) = with_notify(&h).await;
    let r = send(
        &app,
        send_req(&h.admin_key, json!({"title": "hello", "body": "b"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let v = r.json();
    assert_eq!(v["accepted"], true);
    assert_eq!(v["channels"], json!(["log"]));
    assert_eq!(v["rows"].as_array().unwrap().len(), 1);
    // On disk: the outbox counts it (group_wait keeps it pending).
    let counts = h.store.outbox_counts().await.unwrap();
    assert_eq!(
        counts.iter().map(|c| c.rows).sum::<u64>() as usize,
        1,
        "{counts:?}"
    );

    // A test notice matches no route: 200, no channel, a note.
    let r = send(
        &app,
        send_req(&h.admin_key, json!({"title": "t", "kind": "test"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["channels"], json!([]));
    assert!(
        v["note"].as_str().unwrap().contains("no route matches"),
        "{v}"
    );

    // Viewers read, they do not send nor retry.
    let r = send(&app, send_req(&h.viewer_key, json!({"title": "x"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &app,
        post(
            "/v1/notify/dead-letters/x/retry",
            &h.viewer_key,
            "application/json",
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&app, get("/v1/notify", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["accepted"], 1);
    let r = send(
        &app,
        get("/v1/notify/dead-letters?limit=10", Some(&h.viewer_key)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["items"], json!([]));
    let r = send(
        &app,
        get("/v1/notify/dead-letters?page=2", Some(&h.viewer_key)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &app,
        get("/v1/notify/dead-letters?before=nope", Some(&h.viewer_key)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &app,
        post(
            "/v1/notify/dead-letters/nope/retry",
            &h.admin_key,
            "application/json",
            "",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    task.stop().await;
}

#[tokio::test]
async fn bad_requests_are_400s_naming_the_field() {
    let h = harness().await;
    let (app, task) = with_notify(&h).await;
    for (body, field) in [
        (json!({"title": "t", "colour": "red"}), "colour"),
        (json!({"title": ""}), "`title`"),
        (json!({"title": "x".repeat(201)}), "`title`"),
        (json!({"title": "t", "severity": "dire"}), "`severity`"),
        (json!({"title": "t", "kind": "crash"}), "`kind`"),
        (json!({"body": "no title"}), "title"),
    ] {
        let r = send(&app, send_req(&h.admin_key, body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let msg = r.error("bad_request");
        assert!(msg.contains(field), "{body}: {msg}");
    }
    assert!(h.store.outbox_counts().await.unwrap().is_empty());
    task.stop().await;
}

#[tokio::test]
async fn a_node_without_notifications_answers_503() {
    let h = harness().await;
    let r = send(&h.app, send_req(&h.admin_key, json!({"title": "t"}))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = send(&h.app, get("/v1/notify", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}
