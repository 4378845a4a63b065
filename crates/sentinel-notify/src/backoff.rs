//! Retry waits: `base × factor^(n-1)` after the n-th failed attempt, capped, with jitter, and never
//! shorter than a receiver's `Retry-After`.
//!
//! Pure arithmetic: the caller supplies the randomness, so the schedule is tested without a clock.

use crate::config::RetrySettings;
use rand::Rng;
use std::time::Duration;

/// The longest `Retry-After` honoured; a receiver asking for more is waited on this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How a wait is spread so that many senders do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Exactly the ceiling.
    None,
    /// Uniform in `[0, ceiling]`.
    Full,
    /// Uniform in `[ceiling × (1 − f), ceiling]`, `f` in `[0, 1]`.
    Partial(f64),
}

/// A retry schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The first wait.
    pub base: Duration,
    /// The growth of each next wait.
    pub factor: f64,
    /// The longest wait (before a `Retry-After` floor).
    pub cap: Duration,
    /// The spread.
    pub jitter: Jitter,
}

impl Backoff {
    /// The delivery schedule from the configured retries, with half-partial jitter (each wait is
    /// between half and all of its ceiling, so waits still grow).
    pub fn from_settings(r: &RetrySettings) -> Backoff {
        Backoff {
            base: r.base,
            factor: r.factor,
            cap: r.cap,
            jitter: Jitter::Partial(0.5),
        }
    }

    /// The wait before the attempt after the `failures`-th failure, without jitter:
    /// `base × factor^(failures − 1)`, at most `cap` (`failures` of 0 counts as 1).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let n = failures.max(1) - 1;
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exp = i32::try_from(n).unwrap_or(i32::MAX);
        let secs = self.base.as_secs_f64() * factor.powi(exp);
        let cap = self.cap.as_secs_f64();
        if !secs.is_finite() || secs >= cap {
            self.cap
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }

    /// The wait after the `failures`-th failure: the ceiling with jitter, raised to
    /// `retry_after` (itself at most [`MAX_RETRY_AFTER`]) when the receiver gave one.
    pub fn delay<R: Rng + ?Sized>(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let ceiling = self.ceiling(failures);
        let low = match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => Duration::ZERO,
            Jitter::Partial(f) => ceiling.mul_f64(1.0 - f.clamp(0.0, 1.0)),
        };
        let wait = if low >= ceiling {
            ceiling
        } else {
            rng.gen_range(low..=ceiling)
        };
        match retry_after {
            Some(ra) => wait.max(ra.min(MAX_RETRY_AFTER)),
            None => wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn schedule(jitter: Jitter) -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(60),
            jitter,
        }
    }

    #[test]
    fn ceiling_doubles_to_the_cap() {
        let b = schedule(Jitter::None);
        let got: Vec<u64> = (1..=9).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60));
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(b.delay(3, None, &mut rng), Duration::from_secs(4));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let mut rng = StdRng::seed_from_u64(1);
        let partial = schedule(Jitter::Partial(0.5));
        let full = schedule(Jitter::Full);
        for n in 1..=10 {
            let c = partial.ceiling(n);
            for _ in 0..50 {
                let d = partial.delay(n, None, &mut rng);
                assert!(
                    d >= c / 2 && d <= c,
                    "{n}: {d:?} not in [{:?}, {c:?}]",
                    c / 2
                );
                let d = full.delay(n, None, &mut rng);
                assert!(d <= c);
            }
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_bounded() {
        let mut rng = StdRng::seed_from_u64(2);
        let b = schedule(Jitter::Full);
        let d = b.delay(1, Some(Duration::from_secs(30)), &mut rng);
        assert_eq!(d, Duration::from_secs(30));
        let d = b.delay(7, Some(Duration::from_millis(10)), &mut rng);
        assert!(d <= Duration::from_secs(60));
        let d = b.delay(1, Some(Duration::from_secs(10 * 24 * 3600)), &mut rng);
        assert_eq!(d, MAX_RETRY_AFTER);
    }

    #[test]
    fn odd_settings_do_not_panic() {
        let b = Backoff {
            base: Duration::from_secs(1),
            factor: f64::NAN,
            cap: Duration::from_secs(5),
            jitter: Jitter::Partial(7.0),
        };
        assert_eq!(b.ceiling(10), Duration::from_secs(1));
        let mut rng = StdRng::seed_from_u64(3);
        assert!(b.delay(10, None, &mut rng) <= Duration::from_secs(1));
        let huge = Backoff { factor: 1e300, ..b };
        assert_eq!(huge.ceiling(1000), Duration::from_secs(5));
    }
}
