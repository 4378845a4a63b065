//! Sentinel's HTTP API: the edge where untrusted requests meet the pipeline.
//!
//! This crate owns the axum router: health and readiness, `/v1/defend`, event intake (JSON and NDJSON),
//! queries over alerts, actions, events and the audit trail, fail-closed API-key auth, body limits,
//! trace ids, one error type, and metrics. It hands events to the pipeline through a bounded queue and
//! never blocks on a full one: a full queue is a 429 with `Retry-After`. It does not run the pipeline.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod decisions;
mod error;
mod extract;
pub mod front;
pub mod jwt;
pub mod keys;
mod limits;
mod paging;
pub mod ratelimit;
mod routes;
pub mod serve;
mod state;
pub mod stream;
mod telemetry;
pub mod tls;
mod trace;
pub mod ui;
pub mod webhook;

pub use error::ApiError;
pub use paging::{DEFAULT_MAX_PAGE_BYTES, MIN_PAGE_BYTES};
pub use routes::identity::ServerId;
pub use routes::system::{JsonHook, SystemInfo, HTTP_REQUEST_TASK};
pub use routes::{route_table, router, router_with_limits, ui_table, webhook_table, WebhookAuth};
pub use state::{ApiSettings, AppState, PagingSettings, DEFAULT_MAX_NOTIFY_PENDING};
pub use telemetry::TelemetryError;
