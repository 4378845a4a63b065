//! [`Guarded`]: one remote provider behind the resilience layer, as an [`Enricher`].
//!
//! Per call, in this order:
//! 1. the answer cache (memory, then Redis): a hit answers at once;
//! 2. coalescing: one request in flight per address; it runs in its own task, so it completes and
//!    fills the cache even when every caller gave up at its deadline;
//! 3. inside that request, per attempt: the circuit breaker (open: fail fast, the provider is not
//!    asked), then the rate limiter (the provider's quota, and any wait the provider asked for; a wait
//!    longer than the remaining budget fails fast), then the attempt itself;
//! 4. retries of retryable failures (429, 5xx, timeouts, transport) with exponential backoff and full
//!    jitter, honouring `Retry-After`, within `RetrySettings.attempts` and the budget.
//!
//! The budget is the investigation deadline, counted from the call that started the request. Answers
//! are cached for the provider's TTL, "knows nothing" answers for the shorter negative TTL; errors are
//! not cached. A malformed answer is an error (the investigation records it as uncertainty) and counts
//! against the provider's health.

use crate::backoff::Backoff;
use crate::breaker::{Breaker, BreakerState, Outcome};
use crate::cache::{now_ms, AnswerCache};
use crate::coalesce::Coalescer;
use crate::config::{BreakerSettings, IntelConfig, ProviderSettings, RetrySettings};
use crate::limiter::RateLimiter;
use crate::local::AddressClass;
use crate::provider::{Answer, Provider, ProviderError, Quota};
use async_trait::async_trait;
use sentinel_core::{Alert, EnrichError, Enricher, Evidence, Subject};
use serde::Serialize;
use serde_json::json;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How one provider is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardSettings {
    /// The provider's quota.
    pub quota: Quota,
    /// Retries within one call.
    pub retry: RetrySettings,
    /// The circuit breaker.
    pub breaker: BreakerSettings,
    /// How long an answer is cached.
    pub ttl: Duration,
    /// How long a "knows nothing" answer is cached.
    pub negative_ttl: Duration,
    /// The investigation deadline: each call's budget.
    pub deadline: Duration,
}

impl GuardSettings {
    /// The settings of one provider of this configuration.
    pub fn from_config(provider: &ProviderSettings, intel: &IntelConfig) -> Self {
        GuardSettings {
            quota: provider.quota,
            retry: intel.retry,
            breaker: intel.breaker,
            ttl: provider.ttl,
            negative_ttl: provider.negative_ttl,
            deadline: intel.deadline,
        }
    }
}

/// Failures by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FailureCounts {
    /// 429 / quota errors.
    pub rate_limited: u64,
    /// 401/403.
    pub unauthorized: u64,
    /// Other non-success statuses.
    pub status: u64,
    /// Answers that could not be understood.
    pub malformed: u64,
    /// Attempts that timed out.
    pub timeout: u64,
    /// Connection failures.
    pub transport: u64,
    /// Addresses the provider does not look up.
    pub not_applicable: u64,
}

/// A snapshot of a [`Guarded`] provider's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuardStats {
    /// Attempts sent to the provider.
    pub requests: u64,
    /// Attempts that brought an answer.
    pub successes: u64,
    /// Attempts that failed, by kind.
    pub failures: FailureCounts,
    /// Attempts that were retries.
    pub retries: u64,
    /// Times the rate limiter made a request wait.
    pub rate_limited_waits: u64,
    /// Requests refused without asking the provider (circuit open, or a wait beyond the budget).
    pub fast_fails: u64,
    /// Calls answered from the cache.
    pub cache_hits: u64,
    /// Calls the cache could not answer.
    pub cache_misses: u64,
    /// Calls that joined a request already in flight.
    pub coalesced: u64,
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// How often the circuit opened.
    pub breaker_opens: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    successes: AtomicU64,
    rate_limited: AtomicU64,
    unauthorized: AtomicU64,
    status: AtomicU64,
    malformed: AtomicU64,
    timeout: AtomicU64,
    transport: AtomicU64,
    not_applicable: AtomicU64,
    retries: AtomicU64,
    rate_limited_waits: AtomicU64,
    fast_fails: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    coalesced: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Why a request brought no answer, as the callers receive it.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    Timeout(String),
    Malformed(String),
    Refused(String),
    NotApplicable,
}

impl Failure {
    fn into_enrich_error(self) -> EnrichError {
        match self {
            // EnrichError::Timeout carries no text; the attempts are in the warning log.
            Failure::Timeout(_) => EnrichError::Timeout,
            Failure::Malformed(m) => EnrichError::Malformed(m),
            Failure::Refused(m) => EnrichError::Refused(m),
            Failure::NotApplicable => EnrichError::NotApplicable,
        }
    }

    fn from_provider(e: &ProviderError, attempts: u32, note: &str) -> Self {
        let tail = if attempts > 1 {
            format!(" (after {attempts} attempts{note})")
        } else if note.is_empty() {
            String::new()
        } else {
            format!(" ({})", note.trim_start_matches("; "))
        };
        match e {
            ProviderError::Malformed(m) => Failure::Malformed(format!("{m}{tail}")),
            ProviderError::Timeout => Failure::Timeout(format!("timed out{tail}")),
            ProviderError::NotApplicable => Failure::NotApplicable,
            other => Failure::Refused(format!("{other}{tail}")),
        }
    }
}

type Outcome2 = Result<Answer, Failure>;

struct Inner {
    provider: Arc<dyn Provider>,
    name: String,
    settings: GuardSettings,
    backoff: Backoff,
    limiter: RateLimiter,
    breaker: Breaker,
    cache: Arc<AnswerCache>,
    coalescer: Coalescer<IpAddr, Outcome2>,
    counters: Counters,
}

/// A provider behind cache, coalescing, circuit breaker, rate limiter and retries. Clones share
/// everything (one limiter, breaker and set of counters per provider).
#[derive(Clone)]
pub struct Guarded {
    inner: Arc<Inner>,
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("provider", &self.inner.name)
            .field("settings", &self.inner.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Guarded {
    /// Guards `provider` with these settings, caching in `cache` (shared by every provider).
    pub fn new(
        provider: Arc<dyn Provider>,
        settings: GuardSettings,
        cache: Arc<AnswerCache>,
    ) -> Self {
        let name = provider.name().to_owned();
        Guarded {
            inner: Arc::new(Inner {
                provider,
                name,
                settings,
                backoff: Backoff::from_settings(&settings.retry),
                limiter: RateLimiter::new(settings.quota),
                breaker: Breaker::new(settings.breaker),
                cache,
                coalescer: Coalescer::new(),
                counters: Counters::default(),
            }),
        }
    }

    /// The provider's counters now.
    pub fn stats(&self) -> GuardStats {
        let c = &self.inner.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let b = self.inner.breaker.stats();
        GuardStats {
            requests: l(&c.requests),
            successes: l(&c.successes),
            failures: FailureCounts {
                rate_limited: l(&c.rate_limited),
                unauthorized: l(&c.unauthorized),
                status: l(&c.status),
                malformed: l(&c.malformed),
                timeout: l(&c.timeout),
                transport: l(&c.transport),
                not_applicable: l(&c.not_applicable),
            },
            retries: l(&c.retries),
            rate_limited_waits: l(&c.rate_limited_waits),
            fast_fails: l(&c.fast_fails),
            cache_hits: l(&c.cache_hits),
            cache_misses: l(&c.cache_misses),
            coalesced: l(&c.coalesced),
            breaker: b.state,
            breaker_opens: b.opens,
        }
    }

    /// Looks an address up through the whole layer. An IPv4-mapped IPv6 address is its IPv4 address
    /// (one cache entry and one request, whichever spelling the alert used).
    pub async fn lookup(&self, ip: IpAddr) -> Result<Evidence, EnrichError> {
        let ip = ip.to_canonical();
        let inner = &self.inner;
        let deadline = Instant::now() + inner.settings.deadline;
        if let Some(hit) = inner.cache.get(&inner.name, ip).await {
            bump(&inner.counters.cache_hits);
            let age_secs = now_ms().saturating_sub(hit.fetched_at_ms) / 1000;
            return Ok(evidence(
                &inner.name,
                hit.answer,
                true,
                hit.source.as_str(),
                age_secs,
            ));
        }
        bump(&inner.counters.cache_misses);
        let joined = inner
            .coalescer
            .join(ip, || Arc::clone(inner).fetch(ip, deadline));
        if !joined.started() {
            bump(&inner.counters.coalesced);
        }
        match tokio::time::timeout_at(deadline, joined.result()).await {
            Err(_) => Err(EnrichError::Timeout),
            Ok(None) => Err(EnrichError::Refused(
                "the lookup ended without an answer (shutting down?)".into(),
            )),
            Ok(Some(Ok(answer))) => Ok(evidence(&inner.name, answer, false, "provider", 0)),
            Ok(Some(Err(f))) => Err(f.into_enrich_error()),
        }
    }
}

fn evidence(name: &str, answer: Answer, hit: bool, source: &str, age_secs: u64) -> Evidence {
    let mut details = match answer.details {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => serde_json::Map::new(),
        other => {
            let mut m = serde_json::Map::new();
            m.insert("answer".into(), other);
            m
        }
    };
    details.insert(
        "cache".into(),
        json!({"hit": hit, "source": source, "age_secs": age_secs}),
    );
    Evidence {
        provider: name.to_owned(),
        verdict: answer.verdict,
        score: answer.score,
        details: serde_json::Value::Object(details),
    }
}

impl Inner {
    fn count_failure(&self, e: &ProviderError) {
        let c = &self.counters;
        bump(match e {
            ProviderError::RateLimited { .. } => &c.rate_limited,
            ProviderError::Unauthorized { .. } => &c.unauthorized,
            ProviderError::Status { .. } => &c.status,
            ProviderError::Malformed(_) => &c.malformed,
            ProviderError::Timeout => &c.timeout,
            ProviderError::Transport(_) => &c.transport,
            _ => &c.not_applicable,
        });
    }

    /// The request: attempts with breaker, limiter and backoff, then the cache. Runs in its own task.
    async fn fetch(self: Arc<Self>, ip: IpAddr, deadline: Instant) -> Outcome2 {
        let attempts = self.settings.retry.attempts.max(1);
        let mut attempt = 0u32;
        // The previous attempt's failure: a retry that cannot go out reports it, not only why the
        // retry could not go out.
        let mut last: Option<ProviderError> = None;
        let stop = |last: &Option<ProviderError>, attempt: u32, why: String| match last {
            Some(e) => Failure::from_provider(e, attempt - 1, &format!("; no retry: {why}")),
            None => Failure::Refused(why),
        };
        loop {
            attempt += 1;
            let permit = match self.breaker.admit() {
                Ok(p) => p,
                Err(rejected) => {
                    bump(&self.counters.fast_fails);
                    return Err(stop(&last, attempt, rejected.to_string()));
                }
            };
            let budget = deadline.saturating_duration_since(Instant::now());
            match self.limiter.acquire(budget).await {
                Ok(waited) => {
                    if !waited.is_zero() {
                        bump(&self.counters.rate_limited_waits);
                    }
                }
                Err(throttled) => {
                    bump(&self.counters.fast_fails);
                    permit.record(Outcome::Neutral);
                    return Err(stop(&last, attempt, throttled.to_string()));
                }
            }
            bump(&self.counters.requests);
            if attempt > 1 {
                bump(&self.counters.retries);
            }
            let reply = self.provider.lookup(ip).await;
            self.limiter.observe(&reply.rate);
            let e = match reply.result {
                Ok(answer) => {
                    permit.record(Outcome::Success);
                    bump(&self.counters.successes);
                    let ttl = if answer.negative {
                        self.settings.negative_ttl
                    } else {
                        self.settings.ttl
                    };
                    // Memory now, Redis behind the answer: a stalled Redis must not hold it back.
                    self.cache.put_detached(&self.name, ip, &answer, ttl);
                    return Ok(answer);
                }
                Err(e) => e,
            };
            self.count_failure(&e);
            let opens = self.breaker.stats().opens;
            permit.record(if e.counts_as_failure() {
                Outcome::Failure
            } else {
                Outcome::Neutral
            });
            // A provider that stops working is said once per opening of its circuit, not per alert.
            if self.breaker.stats().opens > opens {
                tracing::warn!(
                    evt = "intel_provider_circuit_open",
                    provider = %self.name,
                    error = %e,
                    cooldown_secs = self.settings.breaker.cooldown.as_secs(),
                );
            }
            if matches!(e, ProviderError::Unauthorized { .. }) {
                tracing::error!(evt = "intel_provider_key_refused", provider = %self.name, error = %e);
            }
            if let Some(after) = e.retry_after() {
                self.limiter.block_for(after);
            }
            if !e.retryable() || attempt >= attempts {
                return Err(Failure::from_provider(&e, attempt, ""));
            }
            // The circuit this failure opened would refuse the retry: say so now, not after a backoff.
            if let Some(rejected) = self.breaker.refusal() {
                let note = format!("; no retry: {rejected}");
                return Err(Failure::from_provider(&e, attempt, &note));
            }
            let delay = {
                let mut rng = rand::thread_rng();
                self.backoff.delay(attempt - 1, e.retry_after(), &mut rng)
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if delay > remaining {
                let note = format!(
                    "; no retry: the next would be in {} ms, beyond the remaining budget of {} ms",
                    delay.as_millis(),
                    remaining.as_millis()
                );
                return Err(Failure::from_provider(&e, attempt, &note));
            }
            tracing::debug!(provider = %self.name, %ip, attempt, error = %e, ?delay, "intel: retrying");
            tokio::time::sleep(delay).await;
            last = Some(e);
        }
    }
}

#[async_trait]
impl Enricher for Guarded {
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Loopback, private, link-local and CGNAT addresses are never sent to a provider: they say nothing
    /// about who is behind them, and asking would tell a third party about the inside network.
    async fn enrich(&self, subject: &Subject, _alert: &Alert) -> Result<Evidence, EnrichError> {
        match subject.ip() {
            Some(ip)
                if !matches!(
                    AddressClass::of(ip),
                    AddressClass::Loopback | AddressClass::Private
                ) =>
            {
                self.lookup(ip).await
            }
            _ => Err(EnrichError::NotApplicable),
        }
    }
}
