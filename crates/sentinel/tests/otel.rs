//! OpenTelemetry export through a real daemon: a fake OTLP/HTTP collector on 127.0.0.1 (an axum
//! server decoding the real protobuf `ExportTraceServiceRequest` with `opentelemetry-proto`'s types)
//! receives the spans of one `/v1/defend` request: the HTTP request as the root span and one span per
//! pipeline stage under it, all with the OTel trace id equal to the answer's `X-Trace-Id` (a ULID's
//! 128 bits). A collector that never answers, or is not there, costs spans (counted), never answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{eventually, Daemon};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

/// The pipeline's stages, as the spans name them.
const STAGES: [&str; 5] = ["detect", "investigate", "decide", "act", "notify"];

/// What the fake collector received: each span with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// A fake OTLP/HTTP collector on 127.0.0.1: `POST /v1/traces` with a protobuf body.
async fn collector() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                // OTLP/HTTP protobuf: the content type is part of the protocol.
                if headers.get("content-type").and_then(|v| v.to_str().ok())
                    != Some("application/x-protobuf")
                {
                    return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                }
                let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                    return (StatusCode::BAD_REQUEST, Vec::new());
                };
                let mut out = sink.lock().unwrap();
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            AnyValue::StringValue(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            out.push((service.clone(), span));
                        }
                    }
                }
                (
                    StatusCode::OK,
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), got)
}

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

async fn defend(d: &Daemon) -> String {
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
    r.headers()["x-trace-id"].to_str().unwrap().to_owned()
}

fn int_attr(span: &Span, key: &str) -> Option<i64> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::IntValue(i) => Some(*i),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn one_defend_request_is_one_trace_with_a_span_per_stage() {
    let (url, got) = collector().await;
    let d = Daemon::start(&[("SENTINEL__TRACING__OTLP_ENDPOINT", url.as_str())]);
    // The daemon makes the trace id (no X-Trace-Id sent): a ULID.
    let trace = defend(&d).await;
    let want: [u8; 16] = ulid::Ulid::from_string(&trace)
        .unwrap_or_else(|e| panic!("X-Trace-Id {trace} is not a ULID: {e}"))
        .0
        .to_be_bytes();
    // act and notify run after the answer: wait until every stage's span has arrived.
    let spans: Vec<(String, Span)> = eventually(Duration::from_secs(60), || {
        let got = got.clone();
        async move {
            let got = got.lock().unwrap();
            let mine: Vec<(String, Span)> = got
                .iter()
                .filter(|(_, s)| s.trace_id == want)
                .cloned()
                .collect();
            let has = |name: &str| mine.iter().any(|(_, s)| s.name == name);
            (has("POST /v1/defend") && STAGES.iter().all(|s| has(s))).then_some(mine)
        }
    })
    .await;
    let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
    // The root: the HTTP request, a server span without a parent, with the answer's status.
    let roots: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "POST /v1/defend")
        .collect();
    assert_eq!(roots.len(), 1, "{names:?}");
    let root = roots[0];
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.span_id.len(), 8);
    assert_eq!(int_attr(root, "http.response.status_code"), Some(200));
    assert!(root.end_time_unix_nano >= root.start_time_unix_nano);
    // One span per stage, each a child of the root.
    for stage in STAGES {
        let of_stage: Vec<&Span> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.name == stage)
            .collect();
        assert_eq!(of_stage.len(), 1, "{stage}: {names:?}");
        let s = of_stage[0];
        assert_eq!(s.parent_span_id, root.span_id, "{stage}");
        assert_eq!(s.kind, SpanKind::Internal as i32, "{stage}");
        assert_eq!(s.span_id.len(), 8);
        assert_ne!(s.span_id, root.span_id);
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano, "{stage}");
    }
    // Nothing else in this trace, and every span under the configured service name.
    assert_eq!(spans.len(), 1 + STAGES.len(), "{names:?}");
    assert!(spans.iter().all(|(svc, _)| svc == "sentinel"));
    // The stages ran in order: each starts no earlier than the one before it.
    let start = |name: &str| {
        spans
            .iter()
            .find(|(_, s)| s.name == name)
            .map(|(_, s)| s.start_time_unix_nano)
            .unwrap()
    };
    for w in STAGES.windows(2) {
        assert!(start(w[0]) <= start(w[1]), "{} before {}", w[0], w[1]);
    }
    let text = metrics(&d).await;
    assert!(
        sample(&text, "sentinel_otel_spans_exported_total").unwrap() >= 6.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "sentinel_otel_spans_dropped_total"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "sentinel_otel_export_failures_total"),
        Some(0.0)
    );
    assert!(d.output().contains("otel_export_on"), "{}", d.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn export_is_off_by_default() {
    let d = Daemon::start(&[]);
    defend(&d).await;
    let text = metrics(&d).await;
    // The counters are there at zero, and nothing was exported nor dropped.
    assert_eq!(
        sample(&text, "sentinel_otel_spans_exported_total"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "sentinel_otel_spans_dropped_total"),
        Some(0.0)
    );
    assert!(!d.output().contains("otel_export_on"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_never_answers_costs_spans_not_answers() {
    // Accepts connections and reads nothing back: every export waits for its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let url = format!("http://{addr}");
    let d = Daemon::start(&[
        ("SENTINEL__TRACING__OTLP_ENDPOINT", url.as_str()),
        ("SENTINEL__TRACING__QUEUE", "1"),
    ]);
    // Each request makes six spans; the queue holds one while the exporter waits on the collector.
    for _ in 0..5 {
        defend(&d).await;
    }
    let dropped = eventually(Duration::from_secs(60), || {
        let d = &d;
        async move {
            let text = metrics(d).await;
            sample(&text, "sentinel_otel_spans_dropped_total").filter(|n| *n > 0.0)
        }
    })
    .await;
    assert!(dropped >= 1.0);
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absent_collector_is_counted_and_logged() {
    // A port that was free a moment ago: connections to it are refused.
    let url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let d = Daemon::start(&[("SENTINEL__TRACING__OTLP_ENDPOINT", url.as_str())]);
    defend(&d).await;
    let failures = eventually(Duration::from_secs(60), || {
        let d = &d;
        async move {
            let text = metrics(d).await;
            let f = sample(&text, "sentinel_otel_export_failures_total")?;
            let dropped = sample(&text, "sentinel_otel_spans_dropped_total")?;
            (f > 0.0 && dropped > 0.0).then_some(f)
        }
    })
    .await;
    assert!(failures >= 1.0);
    eventually(Duration::from_secs(10), || {
        let out = d.output();
        async move { out.contains("otel_export_failed").then_some(()) }
    })
    .await;
    // The daemon answers as before.
    defend(&d).await;
}
