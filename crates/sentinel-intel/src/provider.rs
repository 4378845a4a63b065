//! The seam between the investigation and one threat-intelligence source: what a provider says about an
//! address ([`Answer`]), how it can fail ([`ProviderError`]), what it told us about its quota
//! ([`RateInfo`]), and the API key that must never be shown ([`ApiKey`]).
//!
//! A [`Provider`] makes exactly one attempt per call and does no caching, waiting or retrying: the
//! resilience layer around it (rate limiter, retries, circuit breaker, cache, coalescing) does that the
//! same way for every provider.

use async_trait::async_trait;
use sentinel_core::Verdict;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// What one provider said about one address: its verdict mapped to a level (safe / suspicious /
/// malicious, or unknown when it has no opinion), a 0–100 score where it gives one, and the raw facts
/// it reported (for the dashboard and the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The provider's verdict as a level.
    pub verdict: Verdict,
    /// Its score, normalised to 0–100, where it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// The facts behind the verdict (`abuseConfidenceScore`, `totalReports`, …), as the provider
    /// named them.
    #[serde(default)]
    pub details: serde_json::Value,
    /// The provider knows nothing about the address (no reports, no pulses, no analysis). Cached for
    /// the shorter negative TTL.
    #[serde(default)]
    pub negative: bool,
}

/// Why a lookup did not produce an answer. Messages never carry the API key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// HTTP 429 (or a quota error): wait before asking again.
    #[error("rate limited by the provider{}", fmt_after(.retry_after))]
    RateLimited {
        /// How long the provider asked us to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// HTTP 401/403: the API key is missing, wrong or lacks permission.
    #[error("the provider refused the API key (HTTP {status}): {message}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The provider's own explanation (never the key).
        message: String,
    },
    /// Any other non-success status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The provider's own explanation, shortened.
        message: String,
    },
    /// The answer could not be understood (not JSON, wrong shape, missing fields).
    #[error("answer malformed: {0}")]
    Malformed(String),
    /// No answer within the attempt's timeout.
    #[error("timed out")]
    Timeout,
    /// Connection refused, reset, TLS failure, DNS…
    #[error("transport: {0}")]
    Transport(String),
    /// The provider does not look up this kind of address.
    #[error("not applicable")]
    NotApplicable,
}

fn fmt_after(after: &Option<Duration>) -> String {
    match after {
        Some(d) => format!(" (retry after {} s)", d.as_secs_f64().ceil()),
        None => String::new(),
    }
}

impl ProviderError {
    /// Whether trying again later may help: 429, 5xx, timeouts and transport failures. A refused key, a
    /// malformed answer or a 4xx will not change by retrying.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. }
            | ProviderError::Timeout
            | ProviderError::Transport(_) => true,
            ProviderError::Status { status, .. } => *status >= 500,
            ProviderError::Unauthorized { .. }
            | ProviderError::Malformed(_)
            | ProviderError::NotApplicable => false,
        }
    }

    /// Whether this failure counts against the provider's health (the circuit breaker). A malformed
    /// answer does (the provider is not working for us); not-applicable does not.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(self, ProviderError::NotApplicable)
    }

    /// The wait the provider asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// What a response said about the provider's quota (`X-RateLimit-Limit`, `X-RateLimit-Remaining`,
/// `X-RateLimit-Reset`, `Retry-After`). Every field is optional: providers send what they send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateInfo {
    /// Requests allowed in the provider's window.
    pub limit: Option<u64>,
    /// Requests left in it.
    pub remaining: Option<u64>,
    /// When the window resets, from now.
    pub reset_after: Option<Duration>,
}

/// One attempt's outcome and whatever the response said about the quota (also on errors: a 429
/// carries the headers too).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The answer, or why there is none.
    pub result: Result<Answer, ProviderError>,
    /// The quota headers of the response, if there was one.
    pub rate: RateInfo,
}

impl Reply {
    /// A reply with no quota information.
    pub fn new(result: Result<Answer, ProviderError>) -> Self {
        Reply {
            result,
            rate: RateInfo::default(),
        }
    }
}

/// The longest a provider can make Sentinel wait (`Retry-After`, `X-RateLimit-Reset`). The daily
/// quotas the providers publish reset within a day; a longer wait is a broken or hostile header, and
/// taken as is it would switch the provider off until a restart (or overflow the clock).
pub const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// A provider's request quota: `requests` per `per`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    #[serde(with = "humantime_serde")]
    pub per: Duration,
    /// Requests that may go at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// One threat-intelligence source: one attempt per call, no caching or retrying of its own.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name (`abuseipdb`, `virustotal`, `otx`, `feed:<name>`…), used in evidence,
    /// metrics and cache keys.
    fn name(&self) -> &str;
    /// Looks the address up, once.
    async fn lookup(&self, ip: IpAddr) -> Reply;
}

/// An API key. Its `Debug` and `Display` show only that it is set, it is never serialised, and it
/// leaves this type only as a header value ([`ApiKey::expose`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key. Surrounding whitespace (a trailing newline from a key file) is dropped.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into().trim().to_owned())
    }

    /// The key itself, for the request header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Removes every occurrence of the key from `text` (for messages built from what a server sent,
    /// which might echo it).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.0, "[key]")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([set])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[set]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_show() {
        let k = ApiKey::new("s3cr3t-key-value\n");
        assert_eq!(k.expose(), "s3cr3t-key-value");
        assert!(!format!("{k:?} {k}").contains("s3cr3t"));
        assert_eq!(
            k.scrub("bad key s3cr3t-key-value given"),
            "bad key [key] given"
        );
    }

    #[test]
    fn which_errors_are_retried() {
        assert!(ProviderError::RateLimited { retry_after: None }.retryable());
        assert!(ProviderError::Status {
            status: 503,
            message: String::new()
        }
        .retryable());
        assert!(!ProviderError::Status {
            status: 404,
            message: String::new()
        }
        .retryable());
        assert!(!ProviderError::Unauthorized {
            status: 401,
            message: String::new()
        }
        .retryable());
        assert!(!ProviderError::Malformed("x".into()).retryable());
        assert_eq!(
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_millis(1500))
            }
            .to_string(),
            "rate limited by the provider (retry after 2 s)"
        );
    }
}
