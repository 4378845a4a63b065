//! `POST /v1/defend`: telemetry in, the mitigation plan out, synchronously.

use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type};
use crate::state::AppState;
use crate::submit::{Outcome, Submission};
use crate::telemetry::to_event;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use sentinel_core::TraceId;
use tokio::sync::{mpsc::error::TrySendError, oneshot};

pub(crate) async fn defend(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Outcome>, ApiError> {
    require_content_type(&headers, &["application/json"], "application/json")?;
    let bytes = read_limited(&headers, body, s.settings.max_body_bytes).await?;
    let value = parse_json_value(&bytes).map_err(|e| {
        s.metrics.events_invalid.inc();
        ApiError::BadRequest(e)
    })?;
    let (event, masked) = to_event(value, &trace, &s.redactor, true, "").map_err(|e| {
        s.metrics.events_invalid.inc();
        ApiError::BadRequest(e.0)
    })?;
    s.metrics.secrets_redacted.add(masked as u64);
    let (tx, rx) = oneshot::channel();
    match s.intake.try_send(Submission {
        event,
        reply: Some(tx),
    }) {
        Ok(()) => s.metrics.events_accepted.inc(),
        Err(TrySendError::Full(_)) => {
            s.metrics.events_rejected_busy.inc();
            return Err(ApiError::Busy { retry_after: 1 });
        }
        Err(TrySendError::Closed(_)) => {
            return Err(ApiError::Unavailable("Sentinel is shutting down".into()));
        }
    }
    match tokio::time::timeout(s.settings.defend_timeout, rx).await {
        Ok(Ok(outcome)) => {
            s.metrics.defend_requests.inc();
            Ok(Json(outcome))
        }
        Ok(Err(_)) => Err(ApiError::Unavailable(
            "the pipeline dropped the request".into(),
        )),
        Err(_) => {
            s.metrics.defend_timeouts.inc();
            Err(ApiError::Unavailable(format!(
                "no plan within {:?}; the event was accepted and will still be processed",
                s.settings.defend_timeout
            )))
        }
    }
}
