//! The router: which routes exist, and which auth each needs.

mod defend;
mod events;
mod health;
mod query;

use crate::auth::{require, Role};
use crate::error::ApiError;
use crate::state::AppState;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

/// Builds the whole API as a value (testable with `oneshot`, no port needed).
///
/// `/health` and `/ready` need no key; everything under `/v1` and `/metrics` does — including
/// routes that do not exist, so an anonymous caller learns nothing about the API.
pub fn router(state: AppState) -> Router {
    let read = Router::new()
        .route("/version", get(health::version))
        .route("/alerts", get(query::alerts))
        .route("/alerts/{id}", get(query::alert))
        .route("/actions", get(query::actions))
        .route("/actions/{id}", get(query::action))
        .route("/events", get(query::events))
        .route("/audit", get(query::audit))
        .route("/decisions", get(crate::decisions::list))
        .layer(from_fn_with_state((state.clone(), Role::Viewer), require));
    let write = Router::new()
        .route("/defend", post(defend::defend))
        .route("/events", post(events::post_batch))
        .route("/events/stream", post(events::post_stream))
        .route(
            "/decisions",
            post(crate::decisions::add).delete(crate::decisions::delete),
        )
        .layer(from_fn_with_state((state.clone(), Role::Operator), require));
    let v1 = read
        .merge(write)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state((state.clone(), Role::Viewer), require));
    let metrics = Router::new()
        .route("/metrics", get(health::metrics))
        .layer(from_fn_with_state((state.clone(), Role::Viewer), require));
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(metrics)
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(
            crate::limits::Limits::new(&state.settings),
            crate::limits::guard,
        ))
        .layer(from_fn_with_state(state.clone(), crate::trace::layer))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
