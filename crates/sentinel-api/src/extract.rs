//! Reading request bodies safely: content type first (415), then size (413), then JSON with the
//! failing field or position named (400).

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::time::timeout;

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

/// Oversized bodies that declare their length up to this size are read and discarded so the client
/// sees the 413 instead of a reset connection; anything larger is cut off at once.
const DRAIN_MAX: usize = 8 << 20;

/// How long reading a body may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    match declared {
        Some(len) if len > DRAIN_MAX as u64 => return Err(ApiError::TooLarge(limit)),
        Some(len) if len > limit as u64 => {
            // Whatever happens while discarding, the answer is the same 413.
            let _ = timeout(READ_TIMEOUT, Limited::new(body, DRAIN_MAX).collect()).await;
            return Err(ApiError::TooLarge(limit));
        }
        _ => {}
    }
    match timeout(READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(ApiError::TooLarge(limit)),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!(
            "could not read the body: {e}"
        ))),
        Err(_) => Err(ApiError::BadRequest("timed out reading the body".into())),
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

/// The query string of a request, strictly: every parameter at most once.
///
/// `Query<HashMap<…>>` keeps one value of a repeated parameter silently (`?limit=1&limit=1000`), and a
/// cache, proxy or log in front may read the other one: a name given twice has no one meaning, so it is
/// a 400 naming it. A query string that does not decode is a 400 as well (never axum's plain-text
/// rejection). Unknown names are refused by the handler ([`crate::routes`]' `Checked`), which knows its
/// own list.
#[derive(Debug, Clone, Default)]
pub(crate) struct StrictQuery(pub(crate) std::collections::HashMap<String, String>);

impl StrictQuery {
    /// Parses a query string (without the `?`).
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let Some(q) = query.filter(|q| !q.is_empty()) else {
            return Ok(Self::default());
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
            .map_err(|e| ApiError::BadRequest(format!("the query string does not decode: {e}")))?;
        let mut map = std::collections::HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            if map.contains_key(&k) {
                return Err(ApiError::BadRequest(format!(
                    "`{k}`: given more than once (each query parameter at most once)"
                )));
            }
            map.insert(k, v);
        }
        Ok(Self(map))
    }

    /// The first key (in sorted order) not in `allowed`, if any ([`first_unknown`]).
    pub(crate) fn unknown_key(&self, allowed: &[&str]) -> Option<&str> {
        first_unknown(&self.0, allowed)
    }
}

/// The first key of `params` (in sorted order, so the same one whatever the map's order) that is not
/// in `allowed`: the parameter a refusal names.
pub(crate) fn first_unknown<'a>(
    params: &'a std::collections::HashMap<String, String>,
    allowed: &[&str],
) -> Option<&'a str> {
    params
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .min()
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for StrictQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::parse(parts.uri.query())
    }
}
