//! Trace ids: every request gets one (the caller's `X-Trace-Id` if well formed, else a new one), it is
//! in the response header, in the request's log span, and in every record the request causes. When
//! OTLP export is on, the request is the trace's root span (`sentinel_pipeline::otel`), whose OTel
//! trace id is this trace id's 128 bits.

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use sentinel_core::TraceId;
use std::time::Instant;
use tracing::Instrument;

/// The header that carries trace ids.
pub const HEADER: &str = "x-trace-id";

/// Middleware: assigns the trace id, logs the request, counts it.
pub(crate) async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let trace = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceId::parse)
        .unwrap_or_default();
    req.extensions_mut().insert(trace.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let span = tracing::info_span!("request", trace = %trace);
    // Probes are not traced (as they are not logged): they would bury the traces that matter.
    let probe = path == "/health" || path == "/ready";
    let mut root = (!probe).then(|| {
        state
            .metrics
            .otel
            .request_span(&trace, method.as_str(), &path)
    });
    let mut resp = next.run(req).instrument(span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(trace.as_str()) {
        resp.headers_mut().insert(HEADER, v);
    }
    state.metrics.http_requests.inc();
    let status = resp.status().as_u16();
    if let Some(root) = &mut root {
        root.attr_int("http.response.status_code", i64::from(status));
    }
    drop(root);
    let _g = span.enter();
    if !probe {
        tracing::info!(
            evt = "http_request",
            method = %method,
            path = %path,
            status,
            dur_us = started.elapsed().as_micros() as u64,
        );
    }
    resp
}
