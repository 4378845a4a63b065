//! The one error type at the HTTP edge: a stable code and a short message for the client, the detail
//! in the log with the trace id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Malformed input; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// No key, or a wrong one. Always the same body.
    #[error("unauthorized")]
    Unauthorized,
    /// A valid key without the needed role.
    #[error("forbidden")]
    Forbidden,
    /// No such record.
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state (e.g. revoking the last admin key).
    #[error("{0}")]
    Conflict(String),
    /// The record exists but is no longer served here (its segment was archived).
    #[error("{0}")]
    Gone(String),
    /// Wrong method on a route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Body over the limit.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// Wrong content type.
    #[error("content type must be {0}")]
    UnsupportedMediaType(&'static str),
    /// The pipeline's queue is full; retry after the given seconds.
    #[error("the pipeline is busy; retry later")]
    Busy {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A rate limit refused the request; retry after the given seconds.
    #[error("too many requests; retry after {retry_after}s")]
    TooManyRequests {
        /// Seconds to wait (whole, at least 1).
        retry_after: u64,
    },
    /// Not ready, shutting down, or the pipeline did not answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// Something broke inside; details are only in the log.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Gone(_) => (StatusCode::GONE, "gone"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "busy"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<sentinel_store::StoreError> for ApiError {
    fn from(e: sentinel_store::StoreError) -> Self {
        match e {
            sentinel_store::StoreError::BadCursor => {
                ApiError::BadRequest("`cursor`: not a cursor this API gave out".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let message = match &self {
            ApiError::Unauthorized => "missing or invalid API key".to_string(),
            ApiError::Internal(detail) => {
                tracing::error!(evt = "internal_error", detail = %detail);
                "internal error".to_string()
            }
            // Messages may quote what the caller sent: no secret goes back (or into a log) in clear.
            other => sentinel_core::redact::builtin()
                .redact_text(&other.to_string())
                .into_owned(),
        };
        let mut resp = (
            status,
            axum::Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response();
        match &self {
            ApiError::Busy { retry_after } | ApiError::TooManyRequests { retry_after } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::Unavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            ApiError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}
