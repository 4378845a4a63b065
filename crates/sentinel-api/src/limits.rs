//! Request limits, from tower: at most `max_in_flight` requests at once (more are shed at once with a
//! 503 and `Retry-After`, never queued), and each bounded by `request_timeout` (also a 503). Bodies are
//! bounded where they are read ([`crate::extract`]).

use crate::error::ApiError;
use axum::error_handling::HandleErrorLayer;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::time::Duration;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::error::Overloaded;
use tower::timeout::error::Elapsed;
use tower::{BoxError, ServiceBuilder};

/// Caps the requests `router` serves at once at `max`: one semaphore shared by every route (hence the
/// global layer: `ConcurrencyLimitLayer` would give each route its own), and a request that finds it
/// full is shed with a 503 instead of waiting.
pub(crate) fn cap_in_flight<S>(router: Router<S>, max: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(refused))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(max.max(1))),
    )
}

/// Answers with a 503 every request of `router` (as built so far) that takes longer than `limit`.
pub(crate) fn time_out<S>(router: Router<S>, limit: Duration) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |e: BoxError| async move {
                if e.is::<Elapsed>() {
                    ApiError::Unavailable(format!("the request took longer than {limit:?}"))
                        .into_response()
                } else {
                    refused(e).await
                }
            }))
            .timeout(limit),
    )
}

async fn refused(e: BoxError) -> Response {
    if e.is::<Overloaded>() {
        ApiError::Unavailable("too many requests in flight".into()).into_response()
    } else {
        ApiError::Internal(e.to_string()).into_response()
    }
}
