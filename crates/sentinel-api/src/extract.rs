//! Reading request bodies safely: content type first (415), then size (413), then JSON with the
//! failing field or position named (400).

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

/// Checks that the content type is `expected` (parameters such as `charset` allowed).
pub(crate) fn require_content_type(
    headers: &HeaderMap,
    expected: &'static [&'static str],
    label: &'static str,
) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match ct {
        Some(ct) if expected.contains(&ct.as_str()) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(label)),
    }
}

/// Reads a whole body of at most `limit` bytes.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(ApiError::TooLarge(limit));
        }
    }
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::TooLarge(limit))
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "could not read the body: {e}"
        ))),
    }
}

/// Parses JSON, naming the position of a syntax error.
pub(crate) fn parse_json_value(bytes: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "malformed JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        )
    })
}

/// Deserialises a value into `T`, naming the field that failed (`items[2].src_ip: …`).
pub(crate) fn typed<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("`{path}`: {inner}")
        }
    })
}
