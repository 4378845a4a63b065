//! The router: which routes exist, which role each needs, and the limits every request passes.

mod audit;
mod defend;
mod events;
mod health;
mod intel;
mod notify;
mod query;
pub(crate) mod system;

use crate::auth::{authenticate, require, Role};
use crate::error::ApiError;
use crate::limits;
use crate::state::AppState;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

/// Builds the whole API as a value (testable with `oneshot`, no port needed).
///
/// `/health` and `/ready` need no key; everything under `/v1` and `/metrics` does — including
/// routes that do not exist, so an anonymous caller learns nothing about the API. A request is
/// authenticated once (any role may read); write routes then check the role the key carries.
/// Every request but `/health` and `/ready` counts against the in-flight cap; every one but an NDJSON
/// stream (bounded by a minimum body rate and a cap on streams instead) against the request timeout.
pub fn router(state: AppState) -> Router {
    state.auth.register_metrics(&state.metrics);
    let limit = state.settings.request_timeout;
    let read = Router::new()
        .route("/version", get(health::version))
        .route("/alerts", get(query::alerts))
        .route("/alerts/{id}", get(query::alert))
        .route("/actions", get(query::actions))
        .route("/actions/{id}", get(query::action))
        .route("/events", get(query::events))
        .route("/audit", get(query::audit))
        .route("/audit/records", get(audit::records))
        .route("/audit/proof/{seq}", get(audit::proof))
        .route("/audit/consistency", get(audit::consistency))
        .route("/audit/checkpoint", get(audit::checkpoint))
        .route("/audit/checkpoints", get(audit::checkpoints))
        .route("/decisions", get(crate::decisions::list))
        .route("/intel", get(intel::stats))
        .route("/notify", get(notify::stats))
        .route("/notify/dead-letters", get(notify::dead_letters))
        .route("/system/heartbeat", get(system::heartbeat));
    let read = limits::time_out(read, limit);
    let write = Router::new()
        .route("/defend", post(defend::defend))
        .route("/events", post(events::post_batch))
        .route(
            "/decisions",
            post(crate::decisions::add).delete(crate::decisions::delete),
        )
        // A read, but it spends the providers' quota: operators only.
        .route("/intel/{ip}", get(intel::lookup))
        .route("/notify", post(notify::send))
        .route(
            "/notify/dead-letters/{delivery_id}/retry",
            post(notify::retry),
        );
    // The stream joins after the timeout: it is bounded by a minimum body rate instead, and by a cap
    // of its own on streams at once.
    let stream = limits::cap_streams(
        Router::new().route("/events/stream", post(events::post_stream)),
        state.settings.edge.max_streams,
        limits::StreamLimits::new(&state.settings.edge, &state.metrics),
    );
    let write = limits::time_out(write, limit)
        .merge(stream)
        .route_layer(from_fn_with_state(Role::Operator, require));
    let v1 = read
        .merge(write)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), authenticate));
    let metrics = Router::new()
        .route("/metrics", get(health::metrics))
        .layer(from_fn_with_state(state.clone(), authenticate));
    let app = limits::time_out(metrics, limit)
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Liveness and readiness are routed outside every cap (in flight, timeout, and whatever limits
    // join the rest): under a flood they still answer, so an orchestrator never restarts a healthy
    // daemon. Both are cheap and bounded on their own.
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(limits::cap_in_flight(app, state.settings.max_in_flight))
        .layer(from_fn_with_state(state.clone(), crate::trace::layer))
        .layer(from_fn_with_state(state.clone(), system::track))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
