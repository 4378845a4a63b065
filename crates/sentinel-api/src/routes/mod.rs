//! The router: which routes exist, which role each needs, and the limits every request passes.

mod audit;
mod defend;
mod events;
mod health;
pub mod identity;
mod intel;
mod keys;
mod notify;
mod query;
pub(crate) mod system;
mod table;

pub use table::{route_table, ui_table, webhook_table, WebhookAuth};

use crate::auth::{audit_admin, authenticate, require, Role};
use crate::error::ApiError;
use crate::limits;
use crate::state::AppState;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum::Router;

/// Builds the whole API as a value (testable with `oneshot`, no port needed).
///
/// `/health` and `/ready` need no key; everything under `/v1` and `/metrics` does — including
/// routes that do not exist, so an anonymous caller learns nothing about the API. A request is
/// authenticated once (any role may read); write routes then check the role the key carries.
/// Every request but `/health` and `/ready` counts against the in-flight cap; every one but an NDJSON
/// stream (bounded by a minimum body rate and a cap on streams instead) against the request timeout.
pub fn router(state: AppState) -> Router {
    let rate = crate::ratelimit::RateLimits::new(&state.settings.rate, &state.metrics);
    router_with_limits(state, rate)
}

/// [`router`] with rate limits made by the caller: the daemon makes one [`RateLimits`] and gives it
/// to every front end (this router on TCP and on the Unix socket, and gRPC), so a client has one
/// budget whichever door it uses.
///
/// [`RateLimits`]: crate::ratelimit::RateLimits
pub fn router_with_limits(
    state: AppState,
    rate: std::sync::Arc<crate::ratelimit::RateLimits>,
) -> Router {
    state.auth.register_metrics(&state.metrics);
    crate::paging::register_metrics(&state.metrics);
    let limit = state.settings.request_timeout;
    let read = Router::new()
        .route("/version", get(health::version))
        .route("/openapi.json", get(openapi::openapi_json))
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
    // Admin only; every admin action is noted in the audit trail.
    let admin = limits::time_out(
        Router::new()
            .route("/keys", get(keys::list).post(keys::create))
            .route("/keys/{id}", delete(keys::revoke)),
        limit,
    )
    .route_layer(from_fn_with_state(state.clone(), audit_admin))
    .route_layer(from_fn_with_state(Role::Admin, require));
    // The live stream (a WebSocket) also lives long: no request timeout, a cap of its own.
    let live = Router::new()
        .route("/stream", get(crate::stream::stream))
        .route_layer(axum::Extension(crate::stream::Hub::new(
            &state.settings.edge,
            &state.metrics,
        )));
    let v1 = read
        .merge(live)
        .merge(write)
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(rate.clone(), crate::ratelimit::per_key))
        .layer(from_fn_with_state(state.clone(), authenticate));
    let metrics = Router::new()
        .route("/metrics", get(health::metrics))
        // `/v1/` is not inside the nest below (an empty rest matches none of its routes): without
        // this it would answer 404 to anyone, unlike every other path under `/v1`.
        .route("/v1/", axum::routing::any(not_found))
        .layer(from_fn_with_state(rate.clone(), crate::ratelimit::per_key))
        .layer(from_fn_with_state(state.clone(), authenticate));
    let top = Router::new()
        // No key: the daemon proves who it is before a client sends one (see identity.rs).
        .route("/v1/identity", post(identity::challenge))
        .merge(metrics)
        .merge(crate::webhook::routes(&state))
        .merge(crate::ui::routes(&state));
    let app = limits::time_out(top, limit)
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Liveness and readiness are routed outside every cap (in flight, timeout, rate limits): under a
    // flood they still answer, so an orchestrator never restarts a healthy daemon. Both are cheap and
    // bounded on their own. The per-address limit sits outside the in-flight cap, so a limited client
    // never holds a slot.
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(
            limits::cap_in_flight(app, state.settings.max_in_flight)
                .layer(from_fn_with_state(rate, crate::ratelimit::per_ip)),
        )
        .layer(from_fn_with_state(state.clone(), crate::trace::layer))
        .layer(from_fn_with_state(state.clone(), system::track))
        .layer(axum::middleware::from_fn(crate::ui::ui_paths_headers))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

// Declared here so it can name the handler modules above (they are private to `routes`).
#[path = "../openapi.rs"]
pub(crate) mod openapi;
