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

/// The NDJSON streams' limits and counters, handed to the stream handler as an extension.
#[derive(Debug, Clone)]
pub(crate) struct StreamLimits {
    /// Least bytes a stream must send per `window`.
    pub(crate) min_bytes: u64,
    /// The window its rate is measured over.
    pub(crate) window: Duration,
    /// Streams closed for sending too slowly (`sentinel_api_streams_stalled_total`).
    pub(crate) stalled: prometheus_client::metrics::counter::Counter,
    /// Streams refused at the stream cap (`sentinel_api_streams_refused_total`).
    pub(crate) refused: prometheus_client::metrics::counter::Counter,
}

impl StreamLimits {
    /// The limits of `settings`, their counters registered on `metrics`.
    pub(crate) fn new(
        settings: &crate::serve::EdgeSettings,
        metrics: &sentinel_pipeline::metrics::Metrics,
    ) -> Self {
        let me = Self {
            min_bytes: settings.stream_min_bytes,
            window: settings.stream_window,
            stalled: Default::default(),
            refused: Default::default(),
        };
        metrics.register(|r| {
            r.register(
                "sentinel_api_streams_stalled",
                "NDJSON streams closed for sending less than the minimum body rate.",
                me.stalled.clone(),
            );
            r.register(
                "sentinel_api_streams_refused",
                "NDJSON streams refused because the most streams at once were running.",
                me.refused.clone(),
            );
        });
        me
    }
}

/// Caps the NDJSON streams served at once at `max`, apart from the in-flight cap: a stream lives long,
/// and slow streams must never hold every in-flight slot. One more is refused with a 503 and
/// `Retry-After`, counted and logged.
pub(crate) fn cap_streams<S>(router: Router<S>, max: usize, limits: StreamLimits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let refused = limits.refused.clone();
    router.route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(move |e: BoxError| {
                let refused = refused.clone();
                async move {
                    if e.is::<Overloaded>() {
                        refused.inc();
                        tracing::warn!(evt = "stream_refused", max, reason = "too many streams");
                        ApiError::Unavailable(format!(
                            "too many NDJSON streams at once (at most {max}); retry later"
                        ))
                        .into_response()
                    } else {
                        ApiError::Internal(e.to_string()).into_response()
                    }
                }
            }))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(max.max(1)))
            .layer(axum::Extension(limits)),
    )
}
