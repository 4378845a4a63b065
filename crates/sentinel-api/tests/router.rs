//! The router end to end, without ports: auth, readiness, trace ids, bad input, back pressure, event
//! intake (JSON and NDJSON), redaction, and alert queries over a real store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use common::*;
use sentinel_core::{Alert, AlertId, Reason, Severity, Subject, Timestamp, TraceId};
use sentinel_pipeline::intake::Submission;
use sentinel_store::{Record, WriterOptions};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

const GOOD: &str = r#"{"src_ip":"203.0.113.7","failed_logins":3}"#;

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn missing_and_wrong_keys_get_the_same_401() {
    let h = harness().await;
    let none = send(&h.app, get("/v1/version", None)).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.error("unauthorized"), "missing or invalid API key");
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));

    let wrong = send(&h.app, get("/v1/version", Some("snl_not-a-real-key"))).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, none.body, "auth failures must look the same");
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));

    let bad_bearer = Request::get("/v1/version")
        .header("authorization", "Bearer snl_wrong")
        .body(Body::empty())
        .unwrap();
    let r = send(&h.app, bad_bearer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, none.body);
    assert_eq!(h.state.metrics.auth_failures.get(), 3);
}

#[tokio::test]
async fn admin_key_works_in_both_headers() {
    let h = harness().await;
    let via_x_api_key = send(&h.app, get("/v1/version", Some(&h.admin_key))).await;
    assert_eq!(via_x_api_key.status, StatusCode::OK);
    let v = via_x_api_key.json();
    assert_eq!(v["name"], "sentinel");
    assert_eq!(v["api"], "v1");

    let req = Request::get("/v1/version")
        .header("authorization", format!("Bearer {}", h.admin_key))
        .body(Body::empty())
        .unwrap();
    let via_bearer = send(&h.app, req).await;
    assert_eq!(via_bearer.status, StatusCode::OK);
    assert_eq!(via_bearer.json(), v);
}

#[tokio::test]
async fn unknown_v1_routes_are_401_without_a_key_and_404_with_one() {
    let h = harness().await;
    let anon = send(&h.app, get("/v1/nope", None)).await;
    assert_eq!(
        anon.status,
        StatusCode::UNAUTHORIZED,
        "anonymous callers learn nothing"
    );
    assert_eq!(anon.error("unauthorized"), "missing or invalid API key");

    let keyed = send(&h.app, get("/v1/nope", Some(&h.admin_key))).await;
    assert_eq!(keyed.status, StatusCode::NOT_FOUND);
    assert_eq!(keyed.error("not_found"), "not found");
    assert!(keyed
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));

    let wrong_method = send(&h.app, get("/v1/defend", Some(&h.admin_key))).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        wrong_method.error("method_not_allowed"),
        "method not allowed"
    );

    let metrics = send(&h.app, get("/metrics", None)).await;
    assert_eq!(metrics.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_needs_no_key() {
    let h = harness().await;
    let r = send(&h.app, get("/health", None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn bypass_lets_requests_in_without_a_key() {
    let h = harness_with(Setup {
        bypass: true,
        ..Setup::default()
    })
    .await;
    let r = send(&h.app, get("/v1/version", None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["name"], "sentinel");
}

#[tokio::test]
async fn a_viewer_may_read_but_not_write() {
    let h = harness().await;
    let r = send(&h.app, post_json("/v1/defend", &h.viewer_key, GOOD)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error("forbidden"), "forbidden");
    let r = send(&h.app, post_json("/v1/events", &h.viewer_key, "[]")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = send(&h.app, get("/v1/alerts", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"items": [], "next_cursor": null, "truncated_by": null})
    );
    assert_eq!(
        h.state.metrics.auth_failures.get(),
        0,
        "403 is not an auth failure"
    );
}

#[tokio::test]
async fn every_request_is_authenticated_exactly_once() {
    let h = harness().await;
    let cases = [
        (get("/v1/alerts", Some(&h.viewer_key)), StatusCode::OK),
        (get("/v1/version", Some(&h.admin_key)), StatusCode::OK),
        (post_json("/v1/events", &h.admin_key, "[]"), StatusCode::OK),
        (
            post_json("/v1/defend", &h.viewer_key, GOOD),
            StatusCode::FORBIDDEN,
        ),
        (get("/v1/nope", Some(&h.admin_key)), StatusCode::NOT_FOUND),
        (get("/v1/nope", None), StatusCode::UNAUTHORIZED),
        (
            get("/v1/defend", Some(&h.admin_key)),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (get("/metrics", Some(&h.viewer_key)), StatusCode::OK),
    ];
    for (req, status) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let before = h.state.auth.checks();
        let r = send(&h.app, req).await;
        assert_eq!(r.status, status, "{what}");
        assert_eq!(h.state.auth.checks() - before, 1, "{what}: auth checks");
    }
    let r = send(&h.app, get("/metrics", Some(&h.viewer_key))).await;
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains(&format!(
            "sentinel_auth_checks_total {}",
            h.state.auth.checks()
        )),
        "{text}"
    );
}

// ---------------------------------------------------------------- readiness

#[tokio::test]
async fn ready_is_503_until_the_pipeline_runs() {
    let h = harness().await;
    let r = send(&h.app, get("/ready", None)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json(), json!({"status": "starting"}));
    assert_eq!(
        r.header("retry-after"),
        Some("1"),
        "every 503 says when to retry"
    );

    h.state.ready.store(true, Ordering::Release);
    let r = send(&h.app, get("/ready", None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "ready"}));
}

// ---------------------------------------------------------------- trace ids

async fn defend_with_trace(trace: &str) -> (Reply, sentinel_core::Event) {
    let h = harness().await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let req = Request::post("/v1/defend")
        .header("x-api-key", &h.admin_key)
        .header("content-type", "application/json")
        .header("x-trace-id", trace)
        .body(Body::from(GOOD))
        .unwrap();
    let r = send(&h.app, req).await;
    let ev = seen.recv().await.unwrap();
    (r, ev)
}

#[tokio::test]
async fn a_valid_trace_id_is_kept() {
    let (r, ev) = defend_with_trace("req-42_a.b").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-trace-id"), Some("req-42_a.b"));
    assert_eq!(ev.trace_id.as_str(), "req-42_a.b");
    assert_eq!(r.json()["trace_id"], "req-42_a.b");
}

#[tokio::test]
async fn invalid_trace_ids_are_replaced() {
    for bad in ["has spaces in it".to_string(), "a".repeat(100)] {
        let (r, ev) = defend_with_trace(&bad).await;
        assert_eq!(r.status, StatusCode::OK);
        let echoed = r.header("x-trace-id").unwrap().to_owned();
        assert_ne!(echoed, bad);
        assert!(TraceId::parse(&echoed).is_some(), "{echoed}");
        assert_eq!(ev.trace_id.as_str(), echoed);
    }
}

#[tokio::test]
async fn every_answer_carries_a_trace_id() {
    let h = harness().await;
    for r in [
        send(&h.app, get("/health", None)).await,
        send(&h.app, get("/v1/version", None)).await,
        send(&h.app, get("/nope", None)).await,
    ] {
        assert!(TraceId::parse(r.header("x-trace-id").unwrap()).is_some());
    }
}

// ---------------------------------------------------------------- /v1/defend

#[tokio::test]
async fn defend_answers_with_the_pipeline_outcome() {
    let h = harness().await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let r = send(&h.app, post_json("/v1/defend", &h.admin_key, GOOD)).await;
    assert_eq!(r.status, StatusCode::OK);
    let ev = seen.recv().await.unwrap();
    let v = r.json();
    assert_eq!(v["event_id"], ev.id.to_string());
    assert_eq!(v["scenario"], "none");
    assert_eq!(v["alerted"], false);
    assert_eq!(ev.src_ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(ev.attrs["failed_logins"], 3);
    assert_eq!(h.state.metrics.defend_requests.get(), 1);
}

#[tokio::test]
async fn bad_defend_input_is_refused_and_the_router_keeps_serving() {
    let h = harness().await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let key = h.admin_key.clone();

    let r = send(
        &h.app,
        post_json("/v1/defend", &key, "{\"src_ip\":\n  nope"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let m = r.error("bad_request");
    assert!(m.contains("line 2") && m.contains("column"), "{m}");

    let r = send(
        &h.app,
        post_json("/v1/defend", &key, r#"{"src_ip":"nope"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let m = r.error("bad_request");
    assert!(m.contains("`src_ip`"), "{m}");

    let body = r#"{"src_ip":"203.0.113.7","failed_logins":"x"}"#;
    let r = send(&h.app, post_json("/v1/defend", &key, body)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let m = r.error("bad_request");
    assert!(m.contains("`failed_logins`"), "{m}");

    let r = send(
        &h.app,
        post_json("/v1/defend", &key, r#"{"failed_logins":3}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error("bad_request"), "`src_ip`: missing field");

    let r = send(&h.app, post_json("/v1/defend", &key, "[1,2]")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error("bad_request").contains("expected a JSON object"));

    // Over the limit, with and without a Content-Length header.
    let big = format!(r#"{{"src_ip":"203.0.113.7","pad":"{}"}}"#, "a".repeat(2000));
    let r = send(&h.app, post_json("/v1/defend", &key, big.clone())).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.error("payload_too_large"),
        "request body is larger than 1024 bytes"
    );
    let req = Request::post("/v1/defend")
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .header("content-length", big.len())
        .body(Body::from(big))
        .unwrap();
    let r = send(&h.app, req).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    let r = send(&h.app, post("/v1/defend", &key, "text/plain", GOOD)).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.error("unsupported_media_type"),
        "content type must be application/json"
    );
    let no_ct = Request::post("/v1/defend")
        .header("x-api-key", &key)
        .body(Body::from(GOOD))
        .unwrap();
    assert_eq!(
        send(&h.app, no_ct).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    assert!(seen.try_recv().is_err(), "nothing bad reached the pipeline");

    let ok = send(
        &h.app,
        post("/v1/defend", &key, "application/json; charset=utf-8", GOOD),
    )
    .await;
    assert_eq!(
        ok.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&ok.body)
    );
    assert_eq!(
        seen.recv().await.unwrap().src_ip,
        Some("203.0.113.7".parse().unwrap())
    );
    assert_eq!(h.state.metrics.events_invalid.get(), 5);
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let mut h = harness_with(Setup {
        intake_capacity: 1,
        ..Setup::default()
    })
    .await;
    h.state
        .intake
        .try_send(Submission::telemetry(filler_event(), None, None, None))
        .unwrap();

    let r = send(&h.app, post_json("/v1/defend", &h.admin_key, GOOD)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.error("busy"), "the pipeline is busy; retry later");
    assert_eq!(h.state.metrics.events_rejected_busy.get(), 1);

    // Event intake waits `intake_wait`, then answers 429 with what it accepted so far.
    let r = send(
        &h.app,
        post_json("/v1/events", &h.admin_key, format!("[{GOOD}]")),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("1"));
    let v = r.json();
    assert_eq!(v["error"]["code"], "busy");
    assert_eq!(v["report"]["accepted"], 0);

    assert_eq!(drain(&mut h.rx).len(), 1, "only the filler is queued");
}

// ---------------------------------------------------------------- /v1/events

#[tokio::test]
async fn a_batch_keeps_good_items_and_reports_bad_ones_by_index() {
    let h = harness().await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let batch = json!([
        {"src_ip": "203.0.113.7", "kind": "login"},
        {"src_ip": "not-an-ip"},
        {"src_ip": "198.51.100.9", "failed_logins": 2},
        "just a string",
        {"path": "/admin"},
    ]);
    let r = send(
        &h.app,
        post_json("/v1/events", &h.admin_key, batch.to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["accepted"], 3, "{v}");
    assert_eq!(v["rejected"], 2, "{v}");
    assert_eq!(v["trace_id"], r.header("x-trace-id").unwrap());
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["index"], 1);
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("`[1].src_ip`"),
        "{v}"
    );
    assert_eq!(errors[1]["index"], 3);
    assert!(errors[1]["error"]
        .as_str()
        .unwrap()
        .contains("expected a JSON object"));

    let subs = received(&mut seen);
    assert_eq!(subs.len(), 3);
    assert_eq!(subs[0].kind.0, "login");
    assert_eq!(subs[2].attrs["path"], "/admin");
    // Accepted means stored: the three are committed before the answer.
    let kept = stored(&h.store, v["trace_id"].as_str().unwrap()).await;
    let ids: HashSet<_> = kept.iter().map(|e| e.id).collect();
    assert_eq!(kept.len(), 3);
    assert_eq!(ids, subs.iter().map(|e| e.id).collect::<HashSet<_>>());

    let r = send(&h.app, post_json("/v1/events", &h.admin_key, GOOD)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error("bad_request"), "expected a JSON array of events");
}

fn ndjson(req_body: impl Into<Body>, key: &str) -> Request<Body> {
    post("/v1/events/stream", key, "application/x-ndjson", req_body)
}

#[tokio::test]
async fn a_stream_reports_bad_lines_by_number() {
    let h = harness().await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let bad: [(usize, &str); 3] = [
        (7, r#"{"src_ip": "203.0.113.7", oops}"#),
        (42, r#"{"src_ip": "999.1.1.1"}"#),
        (99, "[1, 2, 3]"),
    ];
    let mut body = String::new();
    for line in 1..=100 {
        match bad.iter().find(|(n, _)| *n == line) {
            Some((_, text)) => body.push_str(text),
            None => body.push_str(&format!(r#"{{"src_ip":"203.0.113.7","seq":{line}}}"#)),
        }
        body.push_str(if line % 2 == 0 { "\r\n" } else { "\n" });
    }
    let r = send(&h.app, ndjson(body, &h.admin_key)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["accepted"], 97, "{v}");
    assert_eq!(v["rejected"], 3, "{v}");
    let lines: Vec<u64> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [7, 42, 99]);
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "{v}"
    );
    assert!(
        errors[1]["error"].as_str().unwrap().contains("`src_ip`"),
        "{v}"
    );
    assert!(
        errors[2]["error"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object"),
        "{v}"
    );

    let subs = received(&mut seen);
    assert_eq!(subs.len(), 97);
    let seqs: Vec<u64> = subs
        .iter()
        .map(|e| e.attrs["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=100).filter(|n| ![7, 42, 99].contains(n)).collect();
    assert_eq!(seqs, expected, "good lines keep their order");
    let kept = stored(&h.store, v["trace_id"].as_str().unwrap()).await;
    assert_eq!(kept.len(), 97, "accepted means stored before the answer");
}

fn stream_with_long_line(max: usize) -> String {
    // Line 2 is valid JSON, only too long.
    let long = format!(
        r#"{{"src_ip":"203.0.113.7","pad":"{}"}}"#,
        "a".repeat(max + 100)
    );
    let body = format!(
        "{{\"src_ip\":\"203.0.113.7\",\"seq\":1}}\n{long}\n{{\"src_ip\":\"203.0.113.7\",\"seq\":3}}\n{{\"src_ip\":\"203.0.113.7\",\"seq\":4}}"
    );
    body
}

async fn check_long_line_rejected(h: Harness, body: Body) {
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let r = send(&h.app, ndjson(body, &h.admin_key)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["accepted"], 3, "{v}");
    assert_eq!(v["rejected"], 1, "{v}");
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    assert_eq!(
        v["errors"][0]["error"], "line longer than 1024 bytes",
        "{v}"
    );
    let seqs: Vec<u64> = received(&mut seen)
        .iter()
        .map(|e| e.attrs["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 3, 4]);
    let kept = stored(&h.store, v["trace_id"].as_str().unwrap()).await;
    assert_eq!(kept.len(), 3, "accepted means stored before the answer");
}

#[tokio::test]
async fn a_stream_rejects_an_overlong_line_in_one_chunk() {
    let h = harness().await;
    let body = stream_with_long_line(1024);
    check_long_line_rejected(h, Body::from(body)).await;
}

#[tokio::test]
async fn a_stream_rejects_an_overlong_line_across_chunks() {
    let body = stream_with_long_line(1024);
    for chunk_size in [1, 7, 100, 1000, 1030, 4096] {
        let h = harness().await;
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .as_bytes()
            .chunks(chunk_size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        check_long_line_rejected(h, Body::from_stream(futures::stream::iter(chunks))).await;
    }
}

#[tokio::test]
async fn a_line_of_exactly_the_limit_is_accepted() {
    let h = harness().await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let prefix = r#"{"src_ip":"203.0.113.7","pad":""#;
    let pad = 1024 - prefix.len() - 2;
    let line = format!(r#"{prefix}{}"}}"#, "a".repeat(pad));
    assert_eq!(line.len(), 1024);
    let r = send(&h.app, ndjson(format!("{line}\n{line}"), &h.admin_key)).await;
    let v = r.json();
    assert_eq!(v["accepted"], 2, "{v}");
    assert_eq!(received(&mut seen).len(), 2);
}

#[tokio::test]
async fn a_stream_needs_an_ndjson_content_type() {
    let mut h = harness().await;
    let req = post("/v1/events/stream", &h.admin_key, "application/json", GOOD);
    let r = send(&h.app, req).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.error("unsupported_media_type"),
        "content type must be application/x-ndjson"
    );
    assert!(drain(&mut h.rx).is_empty());
}

// ---------------------------------------------------------------- redaction

#[tokio::test]
async fn secrets_are_masked_before_the_pipeline_sees_them() {
    let h = harness().await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let body = r#"{"src_ip":"203.0.113.7","password":"hunter2","nested":{"api_key":"k"}}"#;
    let r = send(&h.app, post_json("/v1/defend", &h.admin_key, body)).await;
    assert_eq!(r.status, StatusCode::OK);
    let ev = seen.recv().await.unwrap();
    assert_eq!(ev.attrs["password"], "***");
    assert_eq!(ev.attrs["nested"]["api_key"], "***");
    let text = serde_json::to_string(&ev).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!String::from_utf8_lossy(&r.body).contains("hunter2"));
    assert_eq!(h.state.metrics.secrets_redacted.get(), 2);
}

// ---------------------------------------------------------------- queries

fn alert(scenario: &str, severity: Severity, subject: Subject) -> Alert {
    Alert {
        id: AlertId::new(),
        ts: Timestamp::now(),
        detector: "test".into(),
        scenario: scenario.into(),
        severity,
        score: 50,
        confidence: 0.9,
        subject,
        reasons: vec![Reason {
            code: "test".into(),
            detail: "written by the test".into(),
            weight: 50,
        }],
        evidence: vec![],
        trace_id: TraceId::new(),
    }
}

/// Writes four alerts through the store writer and returns them.
async fn seed_alerts(h: &Harness) -> Vec<Alert> {
    let ip7 = Subject::Ip("203.0.113.7".parse().unwrap());
    let alerts = vec![
        alert("ssh_bruteforce", Severity::High, ip7.clone()),
        alert("http_attack", Severity::Critical, ip7),
        alert(
            "ssh_bruteforce",
            Severity::Low,
            Subject::Ip("198.51.100.9".parse().unwrap()),
        ),
        alert(
            "port_scan",
            Severity::High,
            Subject::Container("web".into()),
        ),
    ];
    let (writer, task) = h.store.writer(WriterOptions::default());
    for a in &alerts {
        writer.write(Record::Alert(a.clone())).await.unwrap();
    }
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.records, 4);
    alerts
}

async fn list(h: &Harness, query: &str) -> Value {
    let r = send(
        &h.app,
        get(&format!("/v1/alerts{query}"), Some(&h.viewer_key)),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{query}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

fn ids(page: &Value) -> HashSet<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

fn ids_of<'a>(alerts: impl IntoIterator<Item = &'a Alert>) -> HashSet<String> {
    alerts.into_iter().map(|a| a.id.to_string()).collect()
}

#[tokio::test]
async fn alerts_are_filtered() {
    let h = harness().await;
    let a = seed_alerts(&h).await;

    let all = list(&h, "").await;
    assert_eq!(ids(&all), ids_of(&a));
    assert_eq!(all["next_cursor"], Value::Null);

    assert_eq!(
        ids(&list(&h, "?severity=high").await),
        ids_of([&a[0], &a[3]])
    );
    assert_eq!(
        ids(&list(&h, "?severity=HIGH").await),
        ids_of([&a[0], &a[3]])
    );
    assert_eq!(
        ids(&list(&h, "?min_severity=high").await),
        ids_of([&a[0], &a[1], &a[3]])
    );
    assert_eq!(
        ids(&list(&h, "?scenario=ssh_bruteforce").await),
        ids_of([&a[0], &a[2]])
    );
    assert_eq!(
        ids(&list(&h, "?subject=203.0.113.7").await),
        ids_of([&a[0], &a[1]])
    );
    assert_eq!(
        ids(&list(&h, "?subject=container:web").await),
        ids_of([&a[3]])
    );
    assert_eq!(
        ids(&list(&h, "?scenario=ssh_bruteforce&subject=203.0.113.7").await),
        ids_of([&a[0]])
    );
    let t = a[2].trace_id.as_str();
    assert_eq!(
        ids(&list(&h, &format!("?trace_id={t}")).await),
        ids_of([&a[2]])
    );
    assert!(ids(&list(&h, "?scenario=nothing_like_it").await).is_empty());

    // The body round-trips whole.
    let one = list(&h, "?scenario=http_attack").await;
    let got: Alert = serde_json::from_value(one["items"][0].clone()).unwrap();
    assert_eq!(got, a[1]);
}

#[tokio::test]
async fn alerts_page_by_cursor() {
    let h = harness().await;
    let a = seed_alerts(&h).await;
    let mut seen: Vec<String> = Vec::new();
    let mut query = "?limit=1".to_string();
    for _ in 0..10 {
        let page = list(&h, &query).await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{page}");
        seen.push(items[0]["id"].as_str().unwrap().to_owned());
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "every alert once: {seen:?}");
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique, ids_of(&a));
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(seen, sorted, "newest (largest id) first");

    // Paging composes with a filter.
    let p1 = list(&h, "?severity=high&limit=1").await;
    let c = p1["next_cursor"].as_str().unwrap();
    let p2 = list(&h, &format!("?severity=high&limit=1&cursor={c}")).await;
    assert_eq!(p2["next_cursor"], Value::Null);
    let both: HashSet<String> = ids(&p1).union(&ids(&p2)).cloned().collect();
    assert_eq!(both, ids_of([&a[0], &a[3]]));
}

#[tokio::test]
async fn bad_alert_queries_name_the_parameter() {
    let h = harness().await;
    seed_alerts(&h).await;
    let bad = |q: &'static str| {
        let h = &h;
        async move {
            let r = send(&h.app, get(&format!("/v1/alerts{q}"), Some(&h.viewer_key))).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
            r.error("bad_request")
        }
    };
    let m = bad("?severity=bogus").await;
    assert!(m.starts_with("`severity`:") && m.contains("bogus"), "{m}");
    let m = bad("?foo=1").await;
    assert!(m.starts_with("`foo`: unknown query parameter"), "{m}");
    let m = bad("?cursor=garbage").await;
    assert!(m.starts_with("`cursor`:"), "{m}");
    let m = bad("?limit=0").await;
    assert!(m.starts_with("`limit`:"), "{m}");
    let m = bad("?limit=lots").await;
    assert!(m.starts_with("`limit`:"), "{m}");
    let m = bad("?since=yesterday").await;
    assert!(m.starts_with("`since`:"), "{m}");
}

#[tokio::test]
async fn an_alert_is_found_by_id() {
    let h = harness().await;
    let a = seed_alerts(&h).await;
    let r = send(
        &h.app,
        get(&format!("/v1/alerts/{}", a[1].id), Some(&h.viewer_key)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let got: Alert = serde_json::from_value(v["alert"].clone()).unwrap();
    assert_eq!(got, a[1]);
    assert_eq!(v["investigation"], Value::Null);
    assert_eq!(v["plans"], json!([]));
    assert_eq!(v["actions"], json!([]));

    let unknown = AlertId::new();
    let r = send(
        &h.app,
        get(&format!("/v1/alerts/{unknown}"), Some(&h.viewer_key)),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error("not_found"), "not found");

    let r = send(&h.app, get("/v1/alerts/not-an-id", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error("bad_request"), "`id`: not an alert id");

    let r = send(&h.app, get(&format!("/v1/alerts/{unknown}"), None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn requests_past_the_in_flight_cap_get_503() {
    // One request may be in flight; a /v1/defend waiting on a pipeline that never answers holds it.
    let mut setup = common::Setup::default();
    setup.settings.max_in_flight = 1;
    let h = common::harness_with(setup).await;
    let app = h.app.clone();
    let key = h.admin_key.clone();
    let first = tokio::spawn(async move {
        common::send(
            &app,
            common::post_json("/v1/defend", &key, r#"{"src_ip":"203.0.113.7"}"#),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = common::send(&h.app, common::get("/v1/version", Some(&h.viewer_key))).await;
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), Some("1"));
    // Liveness and readiness are outside the cap: they answer while it is full.
    let health = common::send(&h.app, common::get("/health", None)).await;
    assert_eq!(health.status, 200);
    h.state
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    let ready = common::send(&h.app, common::get("/ready", None)).await;
    assert_eq!(ready.status, 200);
    first.abort();
}

#[tokio::test]
async fn slow_requests_time_out_with_503() {
    let mut setup = common::Setup::default();
    setup.settings.request_timeout = std::time::Duration::from_millis(100);
    let h = common::harness_with(setup).await;
    // Nobody answers the defend reply: the request timeout (100 ms) fires before defend_timeout (5 s).
    let r = common::send(
        &h.app,
        common::post_json("/v1/defend", &h.admin_key, r#"{"src_ip":"203.0.113.7"}"#),
    )
    .await;
    assert_eq!(r.status, 503);
    assert!(
        r.error("unavailable").contains("longer than"),
        "{:?}",
        r.json()
    );
}

// ---------------------------------------------------------------- accepted means stored

#[tokio::test]
async fn items_the_store_cannot_write_are_rejected_not_accepted() {
    let h = harness().await;
    let store = h.store.clone();
    let _seen = spawn_pipeline(h.rx, &h.store);
    store.close().await; // every transaction now fails
    let batch = format!(r#"[{GOOD}, {{"src_ip":"nope"}}, {GOOD}]"#);
    let r = send(&h.app, post_json("/v1/events", &h.admin_key, batch)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["accepted"], 0, "{v}");
    assert_eq!(v["rejected"], 3, "{v}");
    let errors = v["errors"].as_array().unwrap();
    let indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2], "{v}");
    assert_eq!(
        errors[0]["error"], "not stored: the store could not write it",
        "{v}"
    );
    assert_eq!(errors[2]["error"], errors[0]["error"], "{v}");
    assert_eq!(h.state.metrics.events_not_stored.get(), 2);

    let r = send(&h.app, post_json("/v1/defend", &h.admin_key, GOOD)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let m = r.error("unavailable");
    assert!(m.contains("could not be stored"), "{m}");
    assert_eq!(h.state.metrics.defend_requests.get(), 0);
}

#[tokio::test]
async fn a_submission_dropped_by_the_pipeline_is_reported_as_not_stored() {
    let h = harness().await;
    let mut rx = h.rx;
    // A stage that ends (or throws the event away) without storing it.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let body = format!("{GOOD}\n{GOOD}\n");
    let r = send(&h.app, ndjson(body, &h.admin_key)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["accepted"], 0, "{v}");
    assert_eq!(v["rejected"], 2, "{v}");
    let lines: Vec<u64> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1, 2], "{v}");
    assert!(
        v["errors"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("not stored: dropped before it was stored"),
        "{v}"
    );
}

#[tokio::test]
async fn unconfirmed_items_get_a_503_never_a_2xx() {
    let mut setup = Setup::default();
    setup.settings.defend_timeout = std::time::Duration::from_millis(300);
    let h = harness_with(setup).await;
    let mut rx = h.rx;
    // A pipeline that answers the plan but never gets the records committed (a stuck store).
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(mut sub) = rx.recv().await {
            if let Some(reply) = sub.reply.take() {
                let _ = reply.send(outcome_for(&sub.event));
            }
            held.push(sub);
        }
        held.len()
    });
    let r = send(
        &h.app,
        post_json("/v1/events", &h.admin_key, format!("[{GOOD},{GOOD}]")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let m = r.error("unavailable");
    assert!(m.contains("0 stored, 0 not stored, 2 unconfirmed"), "{m}");
    let r = send(&h.app, ndjson(format!("{GOOD}\n"), &h.admin_key)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = send(&h.app, post_json("/v1/defend", &h.admin_key, GOOD)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let m = r.error("unavailable");
    assert!(m.contains("did not confirm"), "{m}");
    assert_eq!(h.state.metrics.events_store_unconfirmed.get(), 4);
    drop(h.app);
    drop(h.state);
    assert_eq!(held.await.unwrap(), 4);
}

#[tokio::test]
async fn a_partial_429_answers_after_the_items_it_counts_are_stored() {
    let h = harness_with(Setup {
        intake_capacity: 1,
        ..Setup::default()
    })
    .await;
    let mut rx = h.rx;
    let (writer, _task) = h.store.writer(WriterOptions::default());
    // A slow pipeline: one event every 300 ms, each stored with its token.
    tokio::spawn(async move {
        while let Some(sub) = rx.recv().await {
            let record = Record::Event(sub.event);
            match sub.ack {
                Some(t) => writer.write_acked(record, t).await.unwrap(),
                None => writer.write(record).await.unwrap(),
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"src_ip": "203.0.113.7", "seq": i}))
        .collect();
    let r = send(
        &h.app,
        post_json("/v1/events", &h.admin_key, Value::Array(batch).to_string()),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let v = r.json();
    let report = &v["report"];
    // The first is taken at once, the second waits in the queue (capacity 1), the third finds it
    // full for longer than intake_wait. The answer waits until the second is stored too.
    assert_eq!(report["accepted"], 2, "{v}");
    let kept = stored(&h.store, report["trace_id"].as_str().unwrap()).await;
    let mut seqs: Vec<u64> = kept
        .iter()
        .map(|e| e.attrs["seq"].as_u64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [0, 1], "exactly the accepted items are stored");
}

/// A stream whose body breaks after some lines is answered with what it stored (the lines before
/// the break are committed and counted), not with a bare 400 that reads as "nothing kept".
#[tokio::test]
async fn a_stream_that_breaks_reports_the_lines_it_stored() {
    let h = harness().await;
    let _seen = spawn_pipeline(h.rx, &h.store);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(
            b"{\"src_ip\":\"203.0.113.7\",\"seq\":1}\n{\"src_ip\":\"203.0.113.7\",\"seq\":2}\n",
        )),
        Ok(Bytes::from_static(
            b"{\"src_ip\":\"203.0.113.7\",\"seq\":3}\n{\"src_ip\"",
        )),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer went away",
        )),
    ];
    let r = send(
        &h.app,
        ndjson(
            Body::from_stream(futures::stream::iter(chunks)),
            &h.admin_key,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["accepted"], 3, "{v}");
    assert_eq!(v["rejected"], 1, "{v}");
    assert_eq!(v["errors"][0]["line"], 4, "{v}");
    assert!(
        v["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("could not read the body"),
        "{v}"
    );
    let kept = stored(&h.store, v["trace_id"].as_str().unwrap()).await;
    assert_eq!(kept.len(), 3);
}

// ---------------------------------------------------------------- over a real socket

/// Sends `head` and then `body` over one TCP connection to `addr` (a client still writing when the
/// server answers), and returns what it reads back, or the error that ended the exchange.
fn raw_exchange(addr: std::net::SocketAddr, head: String, body: Vec<u8>) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(head.as_bytes())
        .map_err(|e| format!("write head: {e}"))?;
    // A write error (the server stopped reading) is not the end: the answer may be there to read.
    let wrote = s.write_all(&body).map_err(|e| format!("write body: {e}"));
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) if !got.is_empty() => Ok(String::from_utf8_lossy(&got).into_owned()),
        Ok(_) => Err(format!("no answer ({wrote:?})")),
        Err(e) if !got.is_empty() => Ok(format!("{}[then {e}]", String::from_utf8_lossy(&got))),
        Err(e) => Err(format!("read: {e} ({wrote:?})")),
    }
}

/// A chunked body (no Content-Length) over the limit gets its 413, like a declared one: the server
/// discards the rest instead of closing on a client still sending (the client would see a reset).
#[tokio::test]
async fn an_oversized_chunked_body_gets_a_413_not_a_reset() {
    let h = harness().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    // 1 MiB in 4 KiB chunks against a 1 KiB limit: far more than the sockets' buffers hold.
    let mut body = Vec::new();
    for _ in 0..256 {
        body.extend_from_slice(format!("{:x}\r\n", 4096).as_bytes());
        body.extend_from_slice(&[b' '; 4096]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    for path in ["/v1/events", "/v1/defend"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            h.admin_key
        );
        let b = body.clone();
        let answer = tokio::task::spawn_blocking(move || raw_exchange(addr, head, b))
            .await
            .unwrap();
        let answer = answer.unwrap_or_else(|e| panic!("{path}: no answer, {e}"));
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }
    server.abort();
}
