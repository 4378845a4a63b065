//! Retry delays: exponential backoff with full jitter, and the provider's `Retry-After` when it asks
//! for longer.
//!
//! Retry `n` (0-based) waits a uniformly random time in `[0, min(base × 2ⁿ, max)]` ("full jitter"): many
//! clients that failed together do not come back together. A `Retry-After` longer than that wins, since
//! asking earlier would only be refused again.

use crate::config::RetrySettings;
use rand::Rng;
use std::time::Duration;

/// The backoff schedule of one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// A schedule starting at `base` and never above `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// The schedule of these retry settings.
    pub fn from_settings(s: &RetrySettings) -> Self {
        Backoff::new(s.base, s.max)
    }

    /// The longest wait before retry `n` (0-based): `base × 2ⁿ`, capped at `max`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry `n`: uniform in `[0, ceiling(n)]`, or `retry_after` when that is longer.
    pub fn delay<R: Rng + ?Sized>(
        &self,
        n: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let ceiling = self.ceiling(n);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(rng.gen_range(0..=nanos));
        match retry_after {
            Some(after) if after > jittered => after,
            _ => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_and_caps() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let c: Vec<u128> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(c, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(200), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_within_bounds_and_spread() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(7);
        let mut means = Vec::new();
        for n in 0..5 {
            let ceiling = b.ceiling(n);
            let samples: Vec<Duration> = (0..2000).map(|_| b.delay(n, None, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d <= ceiling));
            let min = samples.iter().min().unwrap();
            let max = samples.iter().max().unwrap();
            // Spread over the whole range, not a fixed delay.
            assert!(
                *min < ceiling / 10 && *max > ceiling * 9 / 10,
                "{min:?} {max:?}"
            );
            let mean = samples.iter().sum::<Duration>() / 2000;
            assert!(
                mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10,
                "{mean:?}"
            );
            means.push(mean);
        }
        // The delays grow with the retry number.
        assert!(means.windows(2).all(|w| w[1] > w[0]), "{means:?}");
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(
                b.delay(0, Some(Duration::from_secs(3)), &mut rng),
                Duration::from_secs(3)
            );
            // A shorter Retry-After is a floor, not a cap.
            let d = b.delay(3, Some(Duration::from_millis(10)), &mut rng);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_secs(1));
        }
    }
}
