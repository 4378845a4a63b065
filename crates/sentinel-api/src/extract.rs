//! Reading request bodies safely: content type first (415), then size (413), then JSON with the
//! failing field or position named (400).

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use futures::StreamExt;
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

/// Oversized bodies up to this size are read and discarded so the client sees the 413 instead of a
/// reset connection; anything larger is cut off at once.
const DRAIN_MAX: usize = 8 << 20;

/// Reads a whole body of at most `limit` bytes.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > DRAIN_MAX as u64) {
        return Err(ApiError::TooLarge(limit));
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    let mut over = declared.is_some_and(|len| len > limit as u64);
    let mut seen = 0usize;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await;
        match next {
            Ok(Some(Ok(chunk))) => {
                seen += chunk.len();
                if seen > limit {
                    over = true;
                }
                if over {
                    buf.clear();
                    if seen > DRAIN_MAX {
                        break;
                    }
                } else {
                    buf.extend_from_slice(&chunk);
                }
            }
            Ok(Some(Err(e))) => {
                return Err(ApiError::BadRequest(format!(
                    "could not read the body: {e}"
                )))
            }
            Ok(None) => break,
            Err(_) => return Err(ApiError::BadRequest("timed out reading the body".into())),
        }
    }
    if over {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(buf.freeze())
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
