//! `GET /v1/system/heartbeat` and the middleware counting each HTTP request as a task.
//!
//! The heartbeat is what an operator (or a supervisor, or a monitoring probe) reads to see that the
//! daemon is alive and not leaking: its uptime, its work in flight by kind ([`sentinel_core::tasks`]),
//! the depth of its queues, and the children a supervisor runs for it. It reads counters only: no
//! store query, no lock held across an await, so it answers even when the pipeline is wedged.

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use sentinel_core::Timestamp;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The task kind of one HTTP request, from its arrival until its response head is sent (or until the
/// client goes away and the request's future is dropped).
pub const HTTP_REQUEST_TASK: &str = "http_request";

/// A hook the heartbeat calls for a part of its answer that another component owns (the supervisor's
/// children, the notification outbox). It must be cheap and must not block: it runs on the request.
pub type JsonHook = Arc<dyn Fn() -> Value + Send + Sync>;

/// Facts about the process and hooks for the heartbeat. `Default` is "started now, no hooks".
#[derive(Clone)]
pub struct SystemInfo {
    /// When the daemon started (wall clock).
    pub started_at: Timestamp,
    /// When the daemon started (monotonic, for the uptime).
    pub started: Instant,
    /// The store writer, for the records waiting to be committed (`None` where there is none).
    pub store_writer: Option<sentinel_store::StoreWriter>,
    /// The supervised children (`children` in the heartbeat, a JSON array of the supervisor's
    /// `ChildStatus`): set by whoever runs a supervisor in this process; without it the heartbeat
    /// answers `[]`.
    pub children: Option<JsonHook>,
    /// The notification engine's queue (`queues.notify` in the heartbeat, e.g. outbox pending and
    /// dead counts): set by whoever runs the engine; without it the heartbeat answers `null`.
    pub notify: Option<JsonHook>,
}

impl Default for SystemInfo {
    fn default() -> Self {
        Self {
            started_at: Timestamp::now(),
            started: Instant::now(),
            store_writer: None,
            children: None,
            notify: None,
        }
    }
}

impl std::fmt::Debug for SystemInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemInfo")
            .field("started_at", &self.started_at)
            .field("children", &self.children.is_some())
            .field("notify", &self.notify.is_some())
            .finish_non_exhaustive()
    }
}

/// Middleware: every request counts as an [`HTTP_REQUEST_TASK`] while it is served. The guard is
/// dropped with the request's future, so a request whose client disconnects leaves the count too.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let _task = state.metrics.tasks.track(HTTP_REQUEST_TASK);
    next.run(req).await
}

/// `GET /v1/system/heartbeat` (any role): liveness with the numbers that show a leak or a jam.
#[utoipa::path(get, path = "/v1/system/heartbeat", tag = "system",
    responses((status = 200, description = "Uptime, tasks, queues and children. Role: viewer.", body = super::openapi::Object)))]
pub(crate) async fn heartbeat(State(s): State<AppState>) -> Json<Value> {
    let sys = &s.system;
    let intake_capacity = s.intake.max_capacity();
    let pipeline: serde_json::Map<String, Value> = s
        .metrics
        .queues
        .read()
        .into_iter()
        .map(|(name, (depth, capacity))| (name, json!({"depth": depth, "capacity": capacity})))
        .collect();
    let audit = s.audit.as_ref().map(|log| {
        let size = log.size();
        let signed = log.latest_checkpoint().checkpoint.size;
        json!({
            "size": size,
            "unsigned": size.saturating_sub(signed),
            "refuses_appends": log.refuses_appends(),
        })
    });
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "started_at": sys.started_at,
        "uptime_secs": sys.started.elapsed().as_secs(),
        "ready": s.ready.load(Ordering::Acquire),
        "tasks": s.metrics.tasks.snapshot(),
        "queues": {
            "intake": {
                "depth": intake_capacity.saturating_sub(s.intake.capacity()),
                "capacity": intake_capacity,
            },
            "store_writer": sys.store_writer.as_ref().map(|w| json!({"pending": w.queued()})),
            "audit": audit,
            "notify": sys.notify.as_ref().map_or(Value::Null, |f| f()),
            "pipeline": pipeline,
        },
        "children": sys.children.as_ref().map_or_else(|| json!([]), |f| f()),
    }))
}
