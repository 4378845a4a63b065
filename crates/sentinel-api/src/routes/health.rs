//! Liveness, readiness, version and metrics.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// `GET /health`: the process answers.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "The process answers.", body = super::openapi::Object)))]
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long `/ready` waits for the store to answer.
const READY_STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /ready`: the store answers and the pipeline runs. Not ready is a 503 with `Retry-After`, as
/// every 503 of the API.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses(
        (status = 200, description = "The store answers and the pipeline runs.", body = super::openapi::Object),
        (status = 503, description = "Not ready (starting, audit log refusing appends, store unreachable); `Retry-After`.", body = super::openapi::Object),
    ))]
pub(crate) async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let not_ready = |status: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(json!({"status": status})),
        )
            .into_response()
    };
    if !s.ready.load(Ordering::Acquire) {
        return not_ready("starting");
    }
    if s.audit.as_ref().is_some_and(|l| l.refuses_appends()) {
        // A write to the audit log failed (a full disk, an I/O error): nothing Sentinel does is
        // recorded from here on, until the daemon is restarted with the cause fixed.
        return not_ready("audit log refuses appends after a failed write");
    }
    // Served outside the request timeout (and every cap): bounded here instead, so a jammed store
    // makes the probe answer "not ready" rather than hang.
    match tokio::time::timeout(READY_STORE_WAIT, s.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(evt = "ready_store_unreachable", error = %e);
            not_ready("store unreachable")
        }
        Err(_) => {
            tracing::warn!(
                evt = "ready_store_slow",
                wait_ms = READY_STORE_WAIT.as_millis() as u64
            );
            not_ready("store did not answer in time")
        }
    }
}

/// `GET /v1/version`.
#[utoipa::path(get, path = "/v1/version", tag = "health",
    responses((status = 200, description = "Name, version and API version. Role: viewer.", body = super::openapi::Object)))]
pub(crate) async fn version() -> Json<Value> {
    Json(json!({"name": "sentinel", "version": env!("CARGO_PKG_VERSION"), "api": "v1"}))
}

/// `GET /metrics`, Prometheus text format: every metric in the one registry, the intake queue's depth
/// included (registered by whoever made the queue).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Every metric, Prometheus text format 0.0.4. Role: viewer.", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok((
        [(
            header::CONTENT_TYPE,
            sentinel_pipeline::metrics::CONTENT_TYPE,
        )],
        s.metrics.render(),
    ))
}
