//! `POST /v1/defend`: telemetry in, the mitigation plan out, synchronously.
//!
//! The answer is sent only after the event and the records it promises (alert, investigation, plan,
//! when present) are committed: the event goes in with a token of the request's [`AckGroup`], the
//! stages store those records with siblings of it, and the handler waits for the plan and then for
//! the group. Anything short of that is a 503 saying what is known, never a 2xx.

use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type};
use crate::state::AppState;
use crate::telemetry::to_event;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use sentinel_core::TraceId;
use sentinel_pipeline::intake::{Outcome, Submission};
use sentinel_store::AckGroup;
use tokio::sync::{mpsc::error::TrySendError, oneshot};
use tokio::time::Instant;

#[utoipa::path(post, path = "/v1/defend", tag = "intake",
    request_body(content = super::openapi::DefendTelemetry, content_type = "application/json"),
    responses((status = 200, description = "The detection and the plan, once stored. Role: operator.", body = super::openapi::Outcome)))]
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
    let posted = to_event(value, &trace, &s.redactor, true, "").map_err(|e| {
        s.metrics.events_invalid.inc();
        ApiError::BadRequest(e.0)
    })?;
    s.metrics.secrets_redacted.add(posted.masked as u64);
    let (tx, rx) = oneshot::channel();
    let group = AckGroup::new();
    let deadline = Instant::now() + s.settings.defend_timeout;
    // Marked as telemetry: scored and answered whatever `source` the caller set.
    match s.intake.try_send(Submission::telemetry(
        posted.event,
        posted.raw,
        Some(tx),
        Some(group.token(0)),
    )) {
        Ok(()) => s.metrics.events_accepted.inc(),
        Err(TrySendError::Full(sub)) => {
            if let Some(t) = sub.ack {
                t.withdraw();
            }
            s.metrics.events_rejected_busy.inc();
            return Err(ApiError::Busy { retry_after: 1 });
        }
        Err(TrySendError::Closed(sub)) => {
            if let Some(t) = sub.ack {
                t.withdraw();
            }
            return Err(ApiError::Unavailable(s.settings.intake_closed("")));
        }
    }
    let outcome = match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => {
            return Err(ApiError::Unavailable(
                "the pipeline dropped the request; the event may not be stored".into(),
            ))
        }
        Err(_) => {
            s.metrics.defend_timeouts.inc();
            return Err(ApiError::Unavailable(format!(
                "no plan within {:?}; the event was queued but is not confirmed stored",
                s.settings.defend_timeout
            )));
        }
    };
    // Every token was made before the reply was sent: waiting now covers all of them.
    match tokio::time::timeout_at(deadline, group.settled()).await {
        Ok(summary) if summary.failed == 0 => {
            s.metrics.defend_requests.inc();
            Ok(Json(outcome))
        }
        Ok(summary) => {
            s.metrics.events_not_stored.inc();
            let why = group
                .failures()
                .first()
                .map(|f| f.error.clone())
                .unwrap_or_default();
            tracing::error!(evt = "defend_not_stored", trace = %trace, failed = summary.failed, error = %why);
            Err(ApiError::Unavailable(format!(
                "a plan was made but {} of its records could not be stored ({why}); resend the event",
                summary.failed
            )))
        }
        Err(_) => {
            s.metrics.defend_timeouts.inc();
            let now = group.summary();
            s.metrics.events_store_unconfirmed.inc();
            Err(ApiError::Unavailable(format!(
                "a plan was made but the store did not confirm it within {:?} ({} record(s) stored, \
                 {} unconfirmed); it may or may not be kept",
                s.settings.defend_timeout, now.committed, now.outstanding
            )))
        }
    }
}
