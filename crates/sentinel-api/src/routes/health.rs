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
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: the store answers and the pipeline runs.
pub(crate) async fn ready(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    if !s.ready.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting"})),
        );
    }
    match s.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(evt = "ready_store_unreachable", error = %e);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store unreachable"})),
            )
        }
    }
}

/// `GET /v1/version`.
pub(crate) async fn version() -> Json<Value> {
    Json(json!({"name": "sentinel", "version": env!("CARGO_PKG_VERSION"), "api": "v1"}))
}

/// `GET /metrics`, Prometheus text format.
pub(crate) async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut text = s.metrics.render();
    let queued = s.intake.max_capacity() - s.intake.capacity();
    text.push_str(&format!(
        "# HELP sentinel_intake_queue_depth Events waiting in the intake queue.\n# TYPE sentinel_intake_queue_depth gauge\nsentinel_intake_queue_depth {queued}\n"
    ));
    text.push_str(&format!(
        "# HELP sentinel_auth_checks_total API keys checked (one per authenticated request).\n# TYPE sentinel_auth_checks_total counter\nsentinel_auth_checks_total {}\n",
        s.auth.checks()
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
