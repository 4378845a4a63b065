//! The webhook witness: every new signed checkpoint is sent to an outside receiver, so the log's
//! history cannot be rewritten even by someone who owns the host (the receiver keeps what it was sent;
//! a later rewrite no longer matches).
//!
//! The request: `POST <url>`, body = the signed note text exactly as kept
//! (`Content-Type: text/plain; charset=utf-8`), with headers
//! - `X-Sentinel-Timestamp: <unix seconds>`
//! - `X-Sentinel-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`
//! - `X-Sentinel-Origin: <checkpoint origin>`, `X-Sentinel-Tree-Size: <checkpoint size>`
//!
//! A receiver recomputes the HMAC over the timestamp and the raw body, compares in constant time, and
//! refuses old timestamps (replays). The note itself is also verifiable with the log's public key
//! (`audit/key.pub`), which is what makes it a witness rather than a notification.
//!
//! Delivery: any 2xx is success. 5xx, 429, timeouts and connection errors are retried with exponential
//! backoff and jitter; other 4xx (and 3xx: redirects are not followed) are not retried. The latest
//! checkpoint wins: if newer ones arrive while the receiver is down, only the newest is sent (it covers
//! the older ones). A failed round counts in [`WitnessCounters::failed`], logs
//! `evt="audit_witness_failed"` at error level, and the newest checkpoint is tried again after
//! `retry_after_failure` (or as soon as a newer one arrives).
//!
//! Email and Matrix witnesses belong with the notification channels (the notifications issue); they
//! would follow the same `watch` receiver of signed checkpoints.

use crate::note::SignedCheckpoint;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Settings of the webhook witness.
#[derive(Clone)]
pub struct WitnessSettings {
    /// Where to POST. `https://` required, except to a loopback host (a local relay).
    pub url: String,
    /// The shared HMAC secret (non-empty).
    pub secret: String,
    /// Timeout of one request (connect included).
    pub timeout: Duration,
    /// Attempts per round before the round counts as failed (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled each retry (with jitter), up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
    /// After a failed round, when to try the newest checkpoint again (sooner when a newer one arrives).
    pub retry_after_failure: Duration,
}

impl std::fmt::Debug for WitnessSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessSettings")
            .field("url", &redacted_url(&self.url))
            .field("secret", &"***")
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("retry_after_failure", &self.retry_after_failure)
            .finish()
    }
}

impl WitnessSettings {
    /// Settings with the defaults: 10 s timeout, 5 attempts, backoff 1 s doubling to 60 s, another
    /// round 5 minutes after a failed one.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WitnessSettings {
            url: url.into(),
            secret: secret.into(),
            timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            retry_after_failure: Duration::from_secs(300),
        }
    }

    /// Checks the settings; every problem is named.
    pub fn validate(&self) -> Result<reqwest::Url, WitnessError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| WitnessError::Settings(format!("url: not a URL ({e})")))?;
        let Some(host) = url.host_str() else {
            return Err(WitnessError::Settings("url: no host".into()));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(WitnessError::Settings(
                    "url: https required (plain http only to a loopback host)".into(),
                ))
            }
            other => {
                return Err(WitnessError::Settings(format!(
                    "url: scheme {other:?} not supported (https)"
                )))
            }
        }
        if self.secret.trim().is_empty() {
            return Err(WitnessError::Settings("secret: must not be empty".into()));
        }
        if self.timeout.is_zero() {
            return Err(WitnessError::Settings("timeout: must be above 0".into()));
        }
        if self.max_attempts == 0 {
            return Err(WitnessError::Settings("max_attempts: at least 1".into()));
        }
        Ok(url)
    }
}

/// Only scheme, host and port of a URL (a path or query may hold a token).
fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<not a URL>".into(),
    }
}

/// Why the witness cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// Bad settings.
    #[error("audit witness: {0}")]
    Settings(String),
    /// The HTTP client could not be built.
    #[error("audit witness: cannot build the HTTP client: {0}")]
    Client(String),
}

/// What the witness did, for metrics and tests.
#[derive(Debug, Default)]
pub struct WitnessCounters {
    /// Checkpoints the receiver accepted.
    pub sent: AtomicU64,
    /// Rounds that ended without delivery (each also logged as `audit_witness_failed`).
    pub failed: AtomicU64,
    /// HTTP requests made (first tries and retries).
    pub requests: AtomicU64,
    /// Checkpoints never sent because a newer one replaced them while waiting.
    pub superseded: AtomicU64,
}

impl WitnessCounters {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    /// Accepted checkpoints.
    pub fn sent(&self) -> u64 {
        Self::get(&self.sent)
    }
    /// Failed rounds.
    pub fn failed(&self) -> u64 {
        Self::get(&self.failed)
    }
    /// Requests made.
    pub fn requests(&self) -> u64 {
        Self::get(&self.requests)
    }
    /// Checkpoints replaced by newer ones before being sent.
    pub fn superseded(&self) -> u64 {
        Self::get(&self.superseded)
    }
}

/// The `X-Sentinel-Signature` value for a body sent at `timestamp` (unix seconds).
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook witness, ready to run.
pub struct Witness {
    settings: WitnessSettings,
    url: reqwest::Url,
    client: reqwest::Client,
    counters: Arc<WitnessCounters>,
}

/// How one request ended.
enum Outcome {
    Accepted,
    /// Worth retrying (5xx, 429, timeout, connection error).
    Transient(String),
    /// Not worth retrying (other 4xx, 3xx).
    Permanent(String),
}

impl Witness {
    /// Validates the settings and builds the client.
    pub fn new(settings: WitnessSettings) -> Result<Self, WitnessError> {
        let url = settings.validate()?;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WitnessError::Client(e.to_string()))?;
        Ok(Witness {
            settings,
            url,
            client,
            counters: Arc::new(WitnessCounters::default()),
        })
    }

    /// The counters (shared; they keep moving while [`Witness::run`] runs).
    pub fn counters(&self) -> Arc<WitnessCounters> {
        self.counters.clone()
    }

    async fn post(&self, cp: &SignedCheckpoint) -> Outcome {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let sig = signature(self.settings.secret.as_bytes(), ts, cp.text.as_bytes());
        let resp = self
            .client
            .post(self.url.clone())
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("X-Sentinel-Timestamp", ts.to_string())
            .header("X-Sentinel-Signature", sig)
            .header("X-Sentinel-Origin", cp.checkpoint.origin.as_str())
            .header("X-Sentinel-Tree-Size", cp.checkpoint.size.to_string())
            .body(cp.text.clone())
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => Outcome::Accepted,
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                Outcome::Transient(format!("HTTP {}", r.status()))
            }
            Ok(r) => Outcome::Permanent(format!("HTTP {}", r.status())),
            // Timeouts, refused or reset connections, TLS handshakes that did not finish: all retried.
            // The URL is left out of the message (its path or query may hold a token).
            Err(e) => Outcome::Transient(error_chain(&e.without_url())),
        }
    }

    /// Sends checkpoints from `rx` until `shutdown` resolves or the sender is gone; the newest one
    /// wins. At shutdown, a newest checkpoint not yet delivered gets one last attempt.
    pub async fn run(
        self,
        mut rx: watch::Receiver<SignedCheckpoint>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut delivered: Option<String> = None;
        let mut sender_gone = false;
        loop {
            let cp = rx.borrow_and_update().clone();
            if delivered.as_deref() != Some(cp.text.as_str()) {
                tokio::select! {
                    biased;
                    _ = &mut shutdown => {
                        self.last_try(&rx, &delivered).await;
                        return;
                    }
                    ok = self.round(cp, &mut rx) => {
                        match ok {
                            Some(text) => delivered = Some(text),
                            None if !sender_gone => {
                                // Wait before another round, unless something newer comes.
                                tokio::select! {
                                    _ = &mut shutdown => {
                                        self.last_try(&rx, &delivered).await;
                                        return;
                                    }
                                    c = rx.changed() => sender_gone = c.is_err(),
                                    _ = tokio::time::sleep(self.settings.retry_after_failure) => {}
                                }
                                continue;
                            }
                            None => return,
                        }
                    }
                }
            }
            if sender_gone {
                return;
            }
            tokio::select! {
                // A checkpoint published just before the shutdown still gets its last try.
                _ = &mut shutdown => {
                    self.last_try(&rx, &delivered).await;
                    return;
                }
                c = rx.changed() => {
                    if c.is_err() {
                        // The log is closed: deliver its last checkpoint, then stop.
                        sender_gone = true;
                    }
                }
            }
        }
    }

    async fn last_try(&self, rx: &watch::Receiver<SignedCheckpoint>, delivered: &Option<String>) {
        let cp = rx.borrow().clone();
        if delivered.as_deref() == Some(cp.text.as_str()) {
            return;
        }
        match self.post(&cp).await {
            Outcome::Accepted => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Transient(why) | Outcome::Permanent(why) => self.failed(&cp, 1, &why),
        }
    }

    /// One delivery round for the newest checkpoint (switching to a newer one if it arrives while
    /// waiting to retry). Returns the text delivered, or None when the round failed.
    async fn round(
        &self,
        mut cp: SignedCheckpoint,
        rx: &mut watch::Receiver<SignedCheckpoint>,
    ) -> Option<String> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            match self.post(&cp).await {
                Outcome::Accepted => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        evt = "audit_witness_sent",
                        size = cp.checkpoint.size,
                        attempts = attempt
                    );
                    return Some(cp.text);
                }
                Outcome::Permanent(why) => {
                    self.failed(&cp, attempt, &why);
                    return None;
                }
                Outcome::Transient(why) if attempt >= self.settings.max_attempts => {
                    self.failed(&cp, attempt, &why);
                    return None;
                }
                Outcome::Transient(why) => {
                    tracing::warn!(
                        evt = "audit_witness_retry",
                        size = cp.checkpoint.size,
                        attempt,
                        error = why
                    );
                    let delay = backoff(
                        self.settings.backoff_initial,
                        self.settings.backoff_max,
                        attempt,
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        c = rx.changed() => {
                            if c.is_ok() {
                                // A newer checkpoint covers this one: send it instead, right away.
                                cp = rx.borrow_and_update().clone();
                                self.counters.superseded.fetch_add(1, Ordering::Relaxed);
                                attempt = 0;
                            } else {
                                tokio::time::sleep(delay).await;
                            }
                        }
                    }
                }
            }
        }
    }

    fn failed(&self, cp: &SignedCheckpoint, attempts: u32, why: &str) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            evt = "audit_witness_failed",
            url = redacted_url(&self.settings.url),
            origin = cp.checkpoint.origin.as_str(),
            size = cp.checkpoint.size,
            attempts,
            failures = self.counters.failed(),
            error = why,
            "the audit witness did not accept the checkpoint"
        );
    }
}

/// Sends every new checkpoint from `rx` to the webhook until `shutdown` (see [`Witness::run`]).
pub async fn run(
    settings: WitnessSettings,
    rx: watch::Receiver<SignedCheckpoint>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WitnessError> {
    Witness::new(settings)?.run(rx, shutdown).await;
    Ok(())
}

/// Delay before retry `attempt` (1-based): initial·2^(attempt-1), capped, then a random point in its
/// upper half (jitter, so many daemons do not retry in step).
fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let d = exp.min(max);
    let half = d / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
