//! Request limits: at most `max_in_flight` requests at once (more get 503 with `Retry-After`), and
//! each bounded by `request_timeout` — except NDJSON streams, which are bounded per line instead.

use crate::error::ApiError;
use crate::state::ApiSettings;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The shared state of the guard.
#[derive(Clone)]
pub(crate) struct Limits {
    in_flight: Arc<Semaphore>,
    timeout: Duration,
}

impl Limits {
    pub(crate) fn new(s: &ApiSettings) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(s.max_in_flight.max(1))),
            timeout: s.request_timeout,
        }
    }
}

/// Middleware: refuses past the in-flight cap, and times requests out.
pub(crate) async fn guard(State(l): State<Limits>, req: Request, next: Next) -> Response {
    let Ok(_permit) = l.in_flight.clone().try_acquire_owned() else {
        return ApiError::Unavailable("too many requests in flight".into()).into_response();
    };
    if req.uri().path() == "/v1/events/stream" {
        return next.run(req).await;
    }
    match tokio::time::timeout(l.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Unavailable(format!("the request took longer than {:?}", l.timeout))
            .into_response(),
    }
}
