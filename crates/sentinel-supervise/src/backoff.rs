//! The restart schedule of one child: exponential backoff with jitter, its reset after a stable
//! period, and crash-loop detection. Pure: the caller passes `now`, so tests drive it with a fake
//! clock; it never sleeps, spawns or reads the time itself.

use crate::config::RestartPolicy;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do after a child failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this wait; `restarts` counts restarts within the crash window,
    /// this one included.
    Restart {
        /// The wait before the restart.
        after: Duration,
        /// Restarts within the crash window, this one included.
        restarts: u32,
    },
    /// Too many restarts within the window: stop restarting.
    CrashLoop {
        /// Restarts within the window.
        restarts: u32,
        /// The window.
        window: Duration,
    },
}

/// One child's restart schedule.
#[derive(Debug)]
pub struct Schedule {
    policy: RestartPolicy,
    /// Failures since the last reset: the exponent of the next wait.
    attempt: u32,
    /// When each restart within the window was decided.
    restarts: VecDeque<Instant>,
    rng: StdRng,
}

impl Schedule {
    /// A schedule with random jitter.
    pub fn new(policy: RestartPolicy) -> Schedule {
        Schedule::with_rng(policy, StdRng::from_entropy())
    }

    /// A schedule whose jitter comes from a seeded generator (tests).
    pub fn seeded(policy: RestartPolicy, seed: u64) -> Schedule {
        Schedule::with_rng(policy, StdRng::seed_from_u64(seed))
    }

    fn with_rng(policy: RestartPolicy, rng: StdRng) -> Schedule {
        Schedule {
            policy,
            attempt: 0,
            restarts: VecDeque::new(),
            rng,
        }
    }

    /// The wait before restart number `n` (0-based since the last reset) without jitter:
    /// `min(cap, base × factor^n)`.
    pub fn delay(&self, n: u32) -> Duration {
        let p = &self.policy;
        let factor = if p.factor.is_finite() && p.factor >= 1.0 {
            p.factor
        } else {
            1.0
        };
        let secs = p.base.as_secs_f64() * factor.powi(n.min(1024) as i32);
        let cap = p.cap.as_secs_f64();
        if !secs.is_finite() || secs >= cap {
            p.cap
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }

    /// Failures since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The child has been healthy (or alive, with no probe) since `stable_since`: when that has
    /// lasted `reset_after` at `now`, the backoff starts again from `base`. Returns whether it reset.
    pub fn settle(&mut self, stable_since: Option<Instant>, now: Instant) -> bool {
        match stable_since {
            Some(s) if now.saturating_duration_since(s) >= self.policy.reset_after => {
                let reset = self.attempt != 0;
                self.attempt = 0;
                reset
            }
            _ => false,
        }
    }

    /// The child failed at `now`: the wait before the next restart, or a crash loop when more
    /// than `crash_max` restarts would fall within `crash_window`.
    pub fn next(&mut self, now: Instant) -> Decision {
        let window = self.policy.crash_window;
        while let Some(first) = self.restarts.front() {
            if now.saturating_duration_since(*first) >= window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if self.restarts.len() >= self.policy.crash_max as usize {
            return Decision::CrashLoop {
                restarts: self.restarts.len() as u32,
                window,
            };
        }
        let base = self.delay(self.attempt);
        let jitter = self.policy.jitter;
        // Jitter is a fraction of the wait (0..=1, as the configuration checks); clamped here too,
        // so a policy built in code with a huge jitter cannot overflow the wait (a panic).
        let extra = if jitter.is_finite() && jitter > 0.0 {
            base.mul_f64(jitter.min(1.0) * self.rng.gen::<f64>())
        } else {
            Duration::ZERO
        };
        self.attempt = self.attempt.saturating_add(1);
        self.restarts.push_back(now);
        Decision::Restart {
            after: base.saturating_add(extra),
            restarts: self.restarts.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RestartPolicy {
        RestartPolicy {
            jitter,
            crash_max: 100,
            ..RestartPolicy::default()
        }
    }

    #[test]
    fn absurd_policies_built_in_code_do_not_panic() {
        let mut s = Schedule::seeded(
            RestartPolicy {
                jitter: 1e300,
                cap: Duration::MAX,
                base: Duration::from_secs(u64::MAX / 2),
                crash_max: 100,
                ..RestartPolicy::default()
            },
            7,
        );
        let now = Instant::now();
        for _ in 0..5 {
            let w = after(s.next(now));
            assert!(w >= Duration::from_secs(u64::MAX / 2));
        }
    }

    fn after(d: Decision) -> Duration {
        match d {
            Decision::Restart { after, .. } => after,
            other => panic!("expected a restart, got {other:?}"),
        }
    }

    #[test]
    fn doubles_from_one_second_to_the_sixty_second_cap_then_resets() {
        let mut s = Schedule::seeded(policy(0.0), 1);
        let t0 = Instant::now();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let w = after(s.next(now));
            waits.push(w.as_secs());
            now += w + Duration::from_millis(10);
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        // Alive for less than reset_after: no reset.
        assert!(!s.settle(Some(now), now + Duration::from_secs(59)));
        assert_eq!(after(s.next(now + Duration::from_secs(59))).as_secs(), 60);
        // Alive for reset_after: back to the base.
        let started = now + Duration::from_secs(120);
        assert!(s.settle(Some(started), started + Duration::from_secs(60)));
        assert_eq!(
            after(s.next(started + Duration::from_secs(61))),
            Duration::from_secs(1)
        );
        // No stable period at all never resets.
        assert!(!s.settle(None, started + Duration::from_secs(10_000)));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_is_seeded() {
        let mut a = Schedule::seeded(policy(0.1), 7);
        let mut b = Schedule::seeded(policy(0.1), 7);
        let now = Instant::now();
        for n in 0..8 {
            let wa = after(a.next(now));
            let wb = after(b.next(now));
            assert_eq!(wa, wb, "same seed, same waits");
            let base = a.delay(n);
            assert!(wa >= base && wa <= base.mul_f64(1.1), "{wa:?} vs {base:?}");
        }
    }

    #[test]
    fn more_than_crash_max_restarts_within_the_window_is_a_crash_loop() {
        let p = RestartPolicy {
            jitter: 0.0,
            crash_max: 3,
            crash_window: Duration::from_secs(300),
            ..RestartPolicy::default()
        };
        let mut s = Schedule::seeded(p.clone(), 1);
        let t0 = Instant::now();
        for i in 1..=3 {
            match s.next(t0 + Duration::from_secs(i)) {
                Decision::Restart { restarts, .. } => assert_eq!(restarts, i as u32),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            s.next(t0 + Duration::from_secs(10)),
            Decision::CrashLoop {
                restarts: 3,
                window: Duration::from_secs(300)
            }
        );
        // Spread over more than the window: never a loop.
        let mut s = Schedule::seeded(p, 1);
        for i in 0..10u64 {
            assert!(matches!(
                s.next(t0 + Duration::from_secs(i * 101)),
                Decision::Restart { .. }
            ));
        }
    }

    #[test]
    fn odd_policies_do_not_panic() {
        let p = RestartPolicy {
            factor: f64::NAN,
            jitter: f64::INFINITY,
            base: Duration::from_secs(5),
            cap: Duration::from_secs(2),
            ..RestartPolicy::default()
        };
        let mut s = Schedule::seeded(p, 3);
        assert_eq!(after(s.next(Instant::now())), Duration::from_secs(2));
        let s = Schedule::seeded(RestartPolicy::default(), 3);
        assert_eq!(s.delay(u32::MAX), Duration::from_secs(60));
    }
}
