//! The per-provider rate limiter: never sends faster than the provider's [`Quota`], and stops sending
//! altogether while the provider has asked us to wait (`Retry-After`, or `X-RateLimit-Remaining: 0` with
//! a reset time).
//!
//! Two rules hold at once, so the quota is never exceeded even after a burst:
//! - a GCRA token bucket: `requests` per `per`, with bursts of up to `burst` after a quiet spell;
//! - a sliding window: at most `requests` grants in any window of length `per` (a bucket alone would
//!   allow `burst + requests` in one window, which a provider counting per window would refuse).
//!
//! A caller reserves its slot when it asks ([`RateLimiter::acquire`]): slots are handed out in order,
//! and a caller whose wait would not fit its remaining budget takes no slot and is told how long it
//! would have been. All time is tokio's clock, so tests run on the paused clock.

use crate::provider::{Quota, RateInfo, MAX_PROVIDER_WAIT};
use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Why a request could not be sent within the caller's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleCause {
    /// Our own quota: the next slot is later than the budget allows.
    Quota,
    /// The provider asked us to wait (`Retry-After`, or no requests remaining until its reset).
    Provider,
}

/// A request that would have had to wait longer than its budget; nothing was reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// How long it would have had to wait.
    pub wait: Duration,
    /// The budget it had.
    pub budget: Duration,
    /// Who imposed the wait.
    pub cause: ThrottleCause,
    /// The quota in force.
    pub quota: Quota,
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wait = secs_up(self.wait);
        match self.cause {
            ThrottleCause::Provider => write!(
                f,
                "rate limited by the provider (retry after {wait} s); not waiting beyond the remaining budget of {} ms",
                self.budget.as_millis()
            ),
            ThrottleCause::Quota => write!(
                f,
                "local rate limit ({} requests per {} s): next slot in {wait} s, beyond the remaining budget of {} ms",
                self.quota.requests,
                self.quota.per.as_secs_f64(),
                self.budget.as_millis()
            ),
        }
    }
}

impl std::error::Error for Throttled {}

/// Whole seconds, rounded up (a 0.2 s wait is "1 s", never "0 s").
pub(crate) fn secs_up(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s + 1
    } else {
        s
    }
}

struct State {
    /// GCRA's theoretical arrival time: the bucket is empty until `tat - tolerance`.
    tat: Instant,
    /// The times of the last `requests` grants, oldest first (non-decreasing).
    window: VecDeque<Instant>,
    /// The provider asked for no request before this.
    blocked_until: Option<Instant>,
}

/// One provider's rate limiter. Cheap to share (`&self` everywhere).
pub struct RateLimiter {
    quota: Quota,
    /// Time between two requests at the sustained rate.
    interval: Duration,
    /// How far ahead of the sustained rate a burst may run.
    tolerance: Duration,
    state: Mutex<State>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quota", &self.quota)
            .field("blocked_for", &self.blocked_for())
            .finish()
    }
}

impl RateLimiter {
    /// A limiter for `quota`. A quota of 0 requests or 0 burst is read as 1 (the configuration refuses
    /// them; this only keeps the arithmetic sane).
    pub fn new(quota: Quota) -> Self {
        let requests = quota.requests.max(1);
        let burst = quota.burst.max(1);
        let interval = quota.per / requests;
        let tolerance = interval.saturating_mul(burst - 1);
        let now = Instant::now();
        RateLimiter {
            quota,
            interval,
            tolerance,
            state: Mutex::new(State {
                tat: now,
                window: VecDeque::with_capacity(requests.min(4096) as usize),
                blocked_until: None,
            }),
        }
    }

    /// The quota it enforces.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (plain assignments), so
        // a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot and takes it, when the wait fits in `budget`; returns how long it waited.
    /// When it would not fit, takes nothing and says how long it would have been.
    pub async fn acquire(&self, budget: Duration) -> Result<Duration, Throttled> {
        let now = Instant::now();
        let at = {
            let mut s = self.lock();
            let requests = self.quota.requests.max(1) as usize;
            let mut at = now;
            let mut cause = ThrottleCause::Quota;
            if let Some(b) = s.blocked_until {
                if b > at {
                    at = b;
                    cause = ThrottleCause::Provider;
                }
            }
            let bucket = s.tat.checked_sub(self.tolerance).unwrap_or(now);
            if bucket > at {
                at = bucket;
                cause = ThrottleCause::Quota;
            }
            if s.window.len() >= requests {
                if let Some(&oldest) = s.window.front() {
                    let free = oldest + self.quota.per;
                    if free > at {
                        at = free;
                        cause = ThrottleCause::Quota;
                    }
                }
            }
            let wait = at - now;
            if wait > budget {
                return Err(Throttled {
                    wait,
                    budget,
                    cause,
                    quota: self.quota,
                });
            }
            s.tat = s.tat.max(at) + self.interval;
            s.window.push_back(at);
            while s.window.len() > requests {
                s.window.pop_front();
            }
            at
        };
        if at > now {
            tokio::time::sleep_until(at).await;
        }
        Ok(at - now)
    }

    /// No request before `until` (the provider's `Retry-After`). Only ever moves the block later.
    pub fn block_until(&self, until: Instant) {
        let mut s = self.lock();
        if s.blocked_until.is_none_or(|b| b < until) {
            s.blocked_until = Some(until);
        }
    }

    /// No request for `wait` from now (the provider's `Retry-After`), at most [`MAX_PROVIDER_WAIT`]:
    /// whatever a provider answers, it can neither switch itself off for good nor overflow the clock.
    pub fn block_for(&self, wait: Duration) {
        let now = Instant::now();
        let until = now.checked_add(wait.min(MAX_PROVIDER_WAIT)).unwrap_or(now);
        self.block_until(until);
    }

    /// Reads a response's quota headers: no requests remaining and a reset time block the provider
    /// until that reset (at most [`MAX_PROVIDER_WAIT`]).
    pub fn observe(&self, rate: &RateInfo) {
        if rate.remaining == Some(0) {
            if let Some(reset) = rate.reset_after {
                self.block_for(reset);
            }
        }
    }

    /// How long the provider has asked us to wait from now, if it has.
    pub fn blocked_for(&self) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .blocked_until
            .filter(|b| *b > now)
            .map(|b| b - now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn quota(requests: u32, per_secs: u64, burst: u32) -> Quota {
        Quota {
            requests,
            per: Duration::from_secs(per_secs),
            burst,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_sustained_rate() {
        let l = RateLimiter::new(quota(10, 10, 3));
        let big = Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(l.acquire(big).await.unwrap(), Duration::ZERO);
        }
        // The fourth waits one interval (1 s).
        let t = Instant::now();
        l.acquire(big).await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn window_caps_burst_plus_rate() {
        // 4 per minute with a burst of 4: the fifth request waits for the first to leave the window,
        // not just for one refill interval.
        let l = RateLimiter::new(quota(4, 60, 4));
        let start = Instant::now();
        for _ in 0..4 {
            l.acquire(Duration::from_secs(600)).await.unwrap();
        }
        l.acquire(Duration::from_secs(600)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn fails_fast_without_reserving() {
        let l = RateLimiter::new(quota(1, 60, 1));
        l.acquire(Duration::ZERO).await.unwrap();
        let e = l.acquire(Duration::from_secs(2)).await.unwrap_err();
        assert_eq!(e.cause, ThrottleCause::Quota);
        assert_eq!(e.wait, Duration::from_secs(60));
        assert!(e.to_string().contains("next slot in 60 s"), "{e}");
        // Nothing was reserved: a caller with enough budget gets the same slot.
        let t = Instant::now();
        l.acquire(Duration::from_secs(60)).await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn provider_block_and_reset_headers() {
        let l = RateLimiter::new(quota(100, 1, 100));
        l.observe(&RateInfo {
            limit: Some(100),
            remaining: Some(0),
            reset_after: Some(Duration::from_secs(5)),
        });
        assert_eq!(l.blocked_for(), Some(Duration::from_secs(5)));
        let e = l.acquire(Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.cause, ThrottleCause::Provider);
        assert!(e.to_string().contains("retry after 5 s"), "{e}");
        // An earlier block does not shorten a later one.
        l.block_until(Instant::now() + Duration::from_secs(1));
        assert_eq!(l.blocked_for(), Some(Duration::from_secs(5)));
        let t = Instant::now();
        l.acquire(Duration::from_secs(10)).await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_secs(5));
        // Remaining > 0 blocks nothing.
        l.observe(&RateInfo {
            limit: None,
            remaining: Some(3),
            reset_after: Some(Duration::from_secs(50)),
        });
        assert_eq!(l.blocked_for(), None);
    }

    /// Many callers at random times with random budgets, the provider asking for waits now and then:
    /// no window of `per` ever holds more than `requests` grants.
    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_never_exceed_the_quota() {
        use rand::{Rng, SeedableRng};
        for seed in 0..60u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let q = quota(
                rng.gen_range(1..6),
                rng.gen_range(1..5),
                rng.gen_range(1..8),
            );
            let l = std::sync::Arc::new(RateLimiter::new(q));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..80 {
                let l = std::sync::Arc::clone(&l);
                let at = Duration::from_millis(rng.gen_range(0..8000));
                let budget = Duration::from_millis(rng.gen_range(0..6000));
                let block = rng
                    .gen_bool(0.1)
                    .then(|| Duration::from_millis(rng.gen_range(0..3000)));
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep_until(start + at).await;
                    if let Some(b) = block {
                        l.block_for(b);
                    }
                    l.acquire(budget).await.ok().map(|_| Instant::now())
                }));
            }
            let mut grants: Vec<Instant> = Vec::new();
            for t in tasks {
                if let Some(at) = t.await.unwrap() {
                    grants.push(at);
                }
            }
            grants.sort();
            for (i, &g) in grants.iter().enumerate() {
                let within = grants[i..].iter().take_while(|&&x| x < g + q.per).count();
                assert!(
                    within <= q.requests as usize,
                    "seed {seed}, {q:?}: {within} grants in one window from {:?}",
                    g - start
                );
            }
        }
    }
}
