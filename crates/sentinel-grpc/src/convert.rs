//! Records to messages, and the REST edge's errors to gRPC statuses.

use crate::proto;
use sentinel_api::ApiError;
use sentinel_core::{ActionRecord, Alert};
use serde_json::Value;
use tonic::{Code, Status};

/// A field of a record's JSON as text: a string as it is, anything else as JSON.
fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The record's JSON (as REST answers it) and its value, or an internal error.
fn json_of<T: serde::Serialize>(r: &T) -> Result<(String, Value), Status> {
    // Written as text first, as REST writes its answers: `to_value` would widen an `f32` (0.89 as
    // 0.8899999856948853) and the two APIs would differ.
    let json = serde_json::to_string(r).map_err(|e| internal(&e.to_string()))?;
    let v = serde_json::from_str(&json).map_err(|e| internal(&e.to_string()))?;
    Ok((json, v))
}

/// An alert as a message: its main fields typed, the whole in `json`.
pub(crate) fn alert(a: &Alert) -> Result<proto::Alert, Status> {
    let (json, v) = json_of(a)?;
    Ok(proto::Alert {
        id: text(&v, "id"),
        trace_id: text(&v, "trace_id"),
        ts: text(&v, "ts"),
        severity: text(&v, "severity"),
        scenario: text(&v, "scenario"),
        subject: a.subject.to_string(),
        json,
    })
}

/// An action record as a message: its main fields typed, the whole in `json`.
pub(crate) fn action(r: &ActionRecord) -> Result<proto::Action, Status> {
    let (json, v) = json_of(r)?;
    Ok(proto::Action {
        id: text(&v, "id"),
        trace_id: text(&v, "trace_id"),
        kind: r.spec.kind.as_str().to_owned(),
        state: r.state.as_str().to_owned(),
        subject: r.spec.subject.to_string(),
        mode: text(&v, "mode"),
        json,
    })
}

/// Action records as a list message.
pub(crate) fn actions(rs: &[ActionRecord]) -> Result<proto::ActionList, Status> {
    Ok(proto::ActionList {
        items: rs.iter().map(action).collect::<Result<_, _>>()?,
    })
}

fn internal(detail: &str) -> Status {
    tracing::error!(evt = "internal_error", api = "grpc", detail = %detail);
    Status::internal("internal error")
}

/// The gRPC status for what REST answers with `e`: the same words, the matching code.
pub(crate) fn status(e: ApiError) -> Status {
    let code = match &e {
        ApiError::BadRequest(_) => Code::InvalidArgument,
        ApiError::Unauthorized => return unauthenticated(),
        ApiError::Forbidden => return Status::permission_denied("forbidden"),
        ApiError::NotFound => Code::NotFound,
        ApiError::Gone(_) => Code::NotFound,
        ApiError::TooLarge(_) => Code::ResourceExhausted,
        ApiError::Busy { .. } => Code::ResourceExhausted,
        ApiError::Unavailable(_) => Code::Unavailable,
        ApiError::Internal(detail) => return internal(detail),
        _ => Code::InvalidArgument,
    };
    // Messages may quote what the caller sent: no secret goes back (or into a log) in clear.
    let message = sentinel_core::redact::builtin()
        .redact_text(&e.to_string())
        .into_owned();
    Status::new(code, message)
}

/// The one answer for a missing and a wrong key (as REST's single 401).
pub(crate) fn unauthenticated() -> Status {
    Status::unauthenticated("missing or invalid API key")
}
