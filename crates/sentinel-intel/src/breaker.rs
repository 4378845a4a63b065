//! The circuit breaker of one provider: after `failures` failures in a row it opens and every request
//! fails fast (the provider is not asked); after `cooldown` it half-opens and lets exactly one trial
//! request through; the trial's success closes it, its failure opens it again for another cooldown.
//!
//! Time is tokio's clock, so tests run on the paused clock.

use crate::config::BreakerSettings;
use serde::Serialize;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// Requests fail fast until the cooldown has passed.
    Open,
    /// One trial request is allowed (or in flight); the others fail fast.
    HalfOpen,
}

impl BreakerState {
    /// The lower-case name (`closed`, `open`, `half_open`).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// A snapshot of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BreakerStats {
    /// Its state now.
    pub state: BreakerState,
    /// Failures in a row so far.
    pub consecutive_failures: u32,
    /// How often it opened (including re-openings after a failed trial).
    pub opens: u64,
    /// Requests it refused.
    pub rejected: u64,
}

/// Why the breaker refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Open: the provider failed `failures` times in a row; the trial comes in `retry_in`.
    Open {
        /// The failures in a row that opened it.
        failures: u32,
        /// Until the cooldown ends.
        retry_in: Duration,
    },
    /// Half-open, and the one trial request is already in flight.
    TrialInFlight,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Open { failures, retry_in } => write!(
                f,
                "circuit open after {failures} failures; next try in {} s",
                crate::limiter::secs_up(*retry_in)
            ),
            Rejected::TrialInFlight => {
                f.write_str("circuit half-open: a trial request is already in flight")
            }
        }
    }
}

impl std::error::Error for Rejected {}

/// How a request went, for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The provider answered.
    Success,
    /// It failed in a way that counts against its health.
    Failure,
    /// Neither (not applicable, or the request was never sent): changes nothing.
    Neutral,
}

struct Inner {
    state: BreakerState,
    consecutive: u32,
    /// Failures in a row when it last opened (for the message).
    opened_after: u32,
    opened_at: Instant,
    trial_in_flight: bool,
    opens: u64,
    rejected: u64,
}

/// One provider's circuit breaker.
pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Permission to send one request. Report how it went with [`Permit::record`]; dropping it unrecorded
/// counts as [`Outcome::Neutral`] (a trial slot is given back).
#[must_use = "report the outcome with Permit::record"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    trial: bool,
    recorded: bool,
}

impl Permit<'_> {
    /// Whether this is the half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// Reports the outcome.
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record(self.trial, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(self.trial, Outcome::Neutral);
        }
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Breaker {
            settings,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive: 0,
                opened_after: 0,
                opened_at: Instant::now(),
                trial_in_flight: false,
                opens: 0,
                rejected: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain assignments only under this lock: a poisoned one is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets a request through, or says why not.
    pub fn admit(&self) -> Result<Permit<'_>, Rejected> {
        let mut s = self.lock();
        let trial = match s.state {
            BreakerState::Closed => false,
            BreakerState::Open => {
                let reopen = s.opened_at + self.settings.cooldown;
                let now = Instant::now();
                if now < reopen {
                    s.rejected += 1;
                    return Err(Rejected::Open {
                        failures: s.opened_after,
                        retry_in: reopen - now,
                    });
                }
                s.state = BreakerState::HalfOpen;
                s.trial_in_flight = true;
                true
            }
            BreakerState::HalfOpen => {
                if s.trial_in_flight {
                    s.rejected += 1;
                    return Err(Rejected::TrialInFlight);
                }
                s.trial_in_flight = true;
                true
            }
        };
        Ok(Permit {
            breaker: self,
            trial,
            recorded: false,
        })
    }

    fn record(&self, trial: bool, outcome: Outcome) {
        let mut s = self.lock();
        if trial {
            s.trial_in_flight = false;
        }
        match outcome {
            Outcome::Success => {
                s.consecutive = 0;
                if trial || s.state == BreakerState::HalfOpen {
                    s.state = BreakerState::Closed;
                }
            }
            Outcome::Failure => {
                s.consecutive = s.consecutive.saturating_add(1);
                let open = match s.state {
                    BreakerState::Closed => s.consecutive >= self.settings.failures.max(1),
                    // Only the trial's failure re-opens; a straggler from before the opening that
                    // fails now changes nothing more.
                    BreakerState::HalfOpen => trial,
                    BreakerState::Open => false,
                };
                if open {
                    s.state = BreakerState::Open;
                    s.opened_at = Instant::now();
                    s.opened_after = s.consecutive;
                    s.opens += 1;
                }
            }
            Outcome::Neutral => {}
        }
    }

    /// Why a request would be refused now, if the breaker is open and cooling down (takes no permit,
    /// counts nothing: for deciding not to wait for a retry that would be refused).
    pub fn refusal(&self) -> Option<Rejected> {
        let s = self.lock();
        let reopen = s.opened_at + self.settings.cooldown;
        let now = Instant::now();
        (s.state == BreakerState::Open && now < reopen).then(|| Rejected::Open {
            failures: s.opened_after,
            retry_in: reopen - now,
        })
    }

    /// Its state now (an open breaker whose cooldown has passed reads as half-open).
    pub fn state(&self) -> BreakerState {
        let s = self.lock();
        match s.state {
            BreakerState::Open if Instant::now() >= s.opened_at + self.settings.cooldown => {
                BreakerState::HalfOpen
            }
            other => other,
        }
    }

    /// A snapshot of its state and counters.
    pub fn stats(&self) -> BreakerStats {
        let state = self.state();
        let s = self.lock();
        BreakerStats {
            state,
            consecutive_failures: s.consecutive,
            opens: s.opens,
            rejected: s.rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            failures: 3,
            cooldown: Duration::from_secs(30),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_half_opens_and_closes() {
        let b = breaker();
        for _ in 0..2 {
            b.admit().unwrap().record(Outcome::Failure);
        }
        // A success in between resets the count.
        b.admit().unwrap().record(Outcome::Success);
        for _ in 0..2 {
            b.admit().unwrap().record(Outcome::Failure);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.admit().unwrap().record(Outcome::Failure);
        assert_eq!(b.state(), BreakerState::Open);
        let e = b.admit().err().unwrap();
        assert_eq!(
            e.to_string(),
            "circuit open after 3 failures; next try in 30 s"
        );
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(b.admit().is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let trial = b.admit().unwrap();
        assert!(trial.is_trial());
        // Exactly one trial.
        assert_eq!(b.admit().err(), Some(Rejected::TrialInFlight));
        trial.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        let s = b.stats();
        assert_eq!((s.opens, s.rejected, s.consecutive_failures), (1, 3, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_trial_reopens_and_dropped_trial_is_given_back() {
        let b = breaker();
        for _ in 0..3 {
            b.admit().unwrap().record(Outcome::Failure);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        // A trial abandoned without an outcome frees the slot for another.
        drop(b.admit().unwrap());
        let trial = b.admit().unwrap();
        trial.record(Outcome::Failure);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.stats().opens, 2);
        assert!(matches!(
            b.admit(),
            Err(Rejected::Open { retry_in, .. }) if retry_in == Duration::from_secs(30)
        ));
    }
}
