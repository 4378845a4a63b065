//! The webhook channel: each message is POSTed as JSON to a URL, signed with HMAC-SHA256, and this
//! module's [`sign`] and [`verify`] are the scheme for anyone writing a receiver.
//!
//! # The request
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! User-Agent: sentinel/<version>
//! X-Sentinel-Delivery: <delivery id>      same on every retry of the message: de-duplicate on it
//! X-Sentinel-Timestamp: <unix seconds>    when this attempt was signed
//! X-Sentinel-Signature: sha256=<hex>      HMAC-SHA256(secret, "<timestamp>.<body bytes>")
//!
//! {"delivery_id": "...", "kind": "alert", "severity": "high", "title": "...", "body": "...",
//!  "trace_id": "...", "count": 1, "first_seen": "<RFC 3339>", "last_seen": "<RFC 3339>",
//!  "sent_at": "<RFC 3339>"}
//! ```
//!
//! # Verifying it (receiver side)
//!
//! 1. Take the raw body bytes as received (before any JSON parsing) and the two headers.
//! 2. Check that the timestamp is within a few minutes of your clock (5 minutes is usual): this
//!    bounds how long a captured request can be replayed.
//! 3. Compute `HMAC-SHA256(secret, timestamp + "." + body)`, hex-encode it (lower case) and compare
//!    it with the part of `X-Sentinel-Signature` after `sha256=`, in constant time.
//! 4. Answer 2xx once the message is stored; remember `X-Sentinel-Delivery` ids you have accepted
//!    and answer 2xx without acting again to a repeat (a retry after a lost answer).
//!
//! [`verify`] does steps 2 and 3. Any answer other than 2xx is a failure: 408, 429 (with
//! `Retry-After` in seconds or as an HTTP date) and 5xx are retried later; other statuses (e.g. 401
//! for a bad signature) make the message a dead letter at once. Redirects are not followed.

use super::http;
use crate::channel::{Channel, Message, SendError};
use crate::config::{Secret, WebhookConfig};
use hmac::{Hmac, Mac};
use sentinel_core::Timestamp;
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// The header carrying the delivery id.
pub const HEADER_DELIVERY: &str = "X-Sentinel-Delivery";
/// The header carrying the signing time (unix seconds).
pub const HEADER_TIMESTAMP: &str = "X-Sentinel-Timestamp";
/// The header carrying `sha256=<hex>`.
pub const HEADER_SIGNATURE: &str = "X-Sentinel-Signature";

/// The `X-Sentinel-Signature` value for `body` signed at `ts`: `sha256=<hex HMAC-SHA256(secret,
/// "<ts>.<body>")>`.
pub fn sign(secret: &[u8], ts: u64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, ts, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], ts: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this constructor cannot fail; the fallback keeps it total.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => <HmacSha256 as Mac>::new(&Default::default()),
    };
    m.update(ts.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Why a signed request was refused by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `X-Sentinel-Timestamp` is not a number of seconds.
    #[error("malformed timestamp header")]
    BadTimestamp,
    /// The timestamp is further than the tolerance from now (a replay, or a skewed clock).
    #[error("timestamp outside the tolerance window ({skew_secs}s from now)")]
    Stale {
        /// How far the timestamp is from now, in seconds.
        skew_secs: u64,
    },
    /// `X-Sentinel-Signature` is not `sha256=<64 hex digits>`.
    #[error("malformed signature header")]
    BadSignatureHeader,
    /// The signature does not match the body and timestamp under this secret.
    #[error("signature mismatch")]
    Mismatch,
}

/// Checks a received webhook: the timestamp header is within `tolerance_secs` of `now_unix`, and
/// the signature header matches `body` under `secret` (compared in constant time).
pub fn verify(
    secret: &[u8],
    ts_header: &str,
    sig_header: &str,
    body: &[u8],
    now_unix: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let ts_text = ts_header.trim();
    if ts_text.is_empty() || !ts_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadTimestamp);
    }
    let ts: u64 = ts_text.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = ts.abs_diff(now_unix);
    if skew > tolerance_secs {
        return Err(VerifyError::Stale { skew_secs: skew });
    }
    let hex_sig = sig_header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::BadSignatureHeader)?;
    let given = hex::decode(hex_sig).map_err(|_| VerifyError::BadSignatureHeader)?;
    if given.len() != 32 {
        return Err(VerifyError::BadSignatureHeader);
    }
    mac(secret, ts, body)
        .verify_slice(&given)
        .map_err(|_| VerifyError::Mismatch)
}

/// `type: webhook`: signed JSON POSTs.
pub struct WebhookChannel {
    name: String,
    url: reqwest::Url,
    secret: Secret,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("name", &self.name)
            .field("url", &http::origin(&self.url))
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookChannel {
    /// Builds the channel; fails on a URL that is not http(s) or an empty secret.
    pub fn new(name: &str, cfg: &WebhookConfig) -> Result<WebhookChannel, String> {
        let url = http::check_url(&cfg.url, &format!("channel {name}: webhook url"))?;
        if cfg.secret.expose().is_empty() {
            return Err(format!("channel {name}: the webhook secret is empty"));
        }
        Ok(WebhookChannel {
            name: name.to_string(),
            url,
            secret: cfg.secret.clone(),
            timeout: cfg.timeout,
            client: http::client(cfg.timeout)?,
        })
    }

    /// The JSON body: the message's fields plus `sent_at`.
    fn body(m: &Message) -> Result<Vec<u8>, SendError> {
        let mut value = serde_json::to_value(m).map_err(|e| {
            SendError::Permanent(format!("webhook: cannot encode the message: {e}"))
        })?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert(
                "sent_at".to_string(),
                serde_json::Value::String(Timestamp::now().to_rfc3339()),
            );
        }
        serde_json::to_vec(&value)
            .map_err(|e| SendError::Permanent(format!("webhook: cannot encode the message: {e}")))
    }
}

#[async_trait::async_trait]
impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        let body = Self::body(m)?;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signature = sign(self.secret.expose().as_bytes(), ts, &body);
        let req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_DELIVERY, &m.delivery_id)
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body);
        let secrets = [self.secret.expose(), self.url.as_str()];
        let reply = http::execute(req, "webhook", self.timeout, &secrets).await?;
        http::classify(&reply, "webhook", &secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_a_known_vector() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let sig = sign(b"s3cret", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
        assert_eq!(
            verify(
                b"s3cret",
                "1700000000",
                &sig,
                br#"{"a":1}"#,
                1_700_000_010,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn verify_refuses_what_it_should() {
        let body = b"{}";
        let sig = sign(b"k", 1000, body);
        assert_eq!(
            verify(b"other", "1000", &sig, body, 1000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"k", "1000", &sig, b"{ }", 1000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"k", "1001", &sig, body, 1000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"k", "1000", &sig, body, 1400, 300),
            Err(VerifyError::Stale { skew_secs: 400 })
        );
        assert_eq!(
            verify(b"k", "x", &sig, body, 1000, 300),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(b"k", "-5", &sig, body, 1000, 300),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(b"k", "1000", &sig[7..], body, 1000, 300),
            Err(VerifyError::BadSignatureHeader)
        );
        assert_eq!(
            verify(b"k", "1000", "sha256=abcd", body, 1000, 300),
            Err(VerifyError::BadSignatureHeader)
        );
    }
}
