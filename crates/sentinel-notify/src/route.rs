//! Routing: which channels a notice goes to, and the de-duplication and throttle settings that apply
//! to it there.
//!
//! A notice goes to the union of the channels of every route that matches its kind and severity; on
//! each channel the first matching route (in configuration order) that names the channel gives its
//! `group_wait` and `dedup_window`. A channel's throttle is the strictest of the routes naming it.
//! Pure: no I/O, no clock.

use crate::config::Route;
use sentinel_core::{NoticeKind, Severity};
use std::time::Duration;

/// One channel a notice goes to, with the windows that apply to it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The channel name.
    pub channel: String,
    /// How long the first notice of a key is held for others to fold in.
    pub group_wait: Duration,
    /// The quiet time after a delivery of the key.
    pub dedup_window: Duration,
}

/// At most `max` messages per `per` on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Messages allowed per window.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

/// The configured routes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Routes in configuration order.
    pub fn new(routes: Vec<Route>) -> Router {
        Router { routes }
    }

    /// Every channel a notice of `kind` at `severity` goes to, each once, in the order the routes
    /// name them; empty when no route matches.
    pub fn targets(&self, kind: NoticeKind, severity: Severity) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        for r in self.routes.iter().filter(|r| r.matches(kind, severity)) {
            for c in &r.channels {
                if !out.iter().any(|t| &t.channel == c) {
                    out.push(Target {
                        channel: c.clone(),
                        group_wait: r.group_wait,
                        dedup_window: r.dedup_window,
                    });
                }
            }
        }
        out
    }

    /// The target for `channel` of a notice of `kind` at `severity`, if a route still sends it
    /// there.
    pub fn target(&self, channel: &str, kind: NoticeKind, severity: Severity) -> Option<Target> {
        self.targets(kind, severity)
            .into_iter()
            .find(|t| t.channel == channel)
    }

    /// The strictest throttle of the routes naming `channel` (lowest rate); `None` when none of
    /// them throttles (`throttle_max` or `throttle_per` zero).
    pub fn throttle(&self, channel: &str) -> Option<Throttle> {
        self.routes
            .iter()
            .filter(|r| r.channels.iter().any(|c| c == channel))
            .filter(|r| r.throttle_max > 0 && !r.throttle_per.is_zero())
            .map(|r| Throttle {
                max: r.throttle_max,
                per: r.throttle_per,
            })
            .min_by(|a, b| {
                let ra = f64::from(a.max) / a.per.as_secs_f64();
                let rb = f64::from(b.max) / b.per.as_secs_f64();
                ra.total_cmp(&rb)
            })
    }

    /// Every channel some route names, each once.
    pub fn channels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in self.routes.iter().flat_map(|r| r.channels.iter()) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(kinds: &[NoticeKind], min: Severity, channels: &[&str], wait: u64) -> Route {
        Route {
            kinds: kinds.to_vec(),
            min_severity: min,
            channels: channels.iter().map(|c| c.to_string()).collect(),
            group_wait: Duration::from_secs(wait),
            dedup_window: Duration::from_secs(wait * 10),
            throttle_max: 0,
            throttle_per: Duration::ZERO,
        }
    }

    #[test]
    fn union_of_matching_routes_first_route_gives_windows() {
        let r = Router::new(vec![
            route(&[NoticeKind::Alert], Severity::High, &["pager", "mail"], 1),
            route(&[], Severity::Info, &["mail", "log"], 2),
            route(&[NoticeKind::Crash], Severity::Info, &["ops"], 3),
        ]);
        let t = r.targets(NoticeKind::Alert, Severity::Critical);
        let names: Vec<_> = t.iter().map(|t| t.channel.as_str()).collect();
        assert_eq!(names, vec!["pager", "mail", "log"]);
        assert_eq!(t[1].group_wait, Duration::from_secs(1));
        assert_eq!(t[2].group_wait, Duration::from_secs(2));
        let t = r.targets(NoticeKind::Alert, Severity::Low);
        let names: Vec<_> = t.iter().map(|t| t.channel.as_str()).collect();
        assert_eq!(names, vec!["mail", "log"]);
        assert_eq!(t[0].group_wait, Duration::from_secs(2));
        assert!(
            Router::new(vec![route(&[NoticeKind::Crash], Severity::High, &["x"], 0)])
                .targets(NoticeKind::Crash, Severity::Medium)
                .is_empty()
        );
        assert_eq!(r.channels(), vec!["pager", "mail", "log", "ops"]);
        assert!(r.target("ops", NoticeKind::Alert, Severity::High).is_none());
    }

    #[test]
    fn throttle_is_the_strictest() {
        let mut a = route(&[], Severity::Info, &["x"], 0);
        a.throttle_max = 10;
        a.throttle_per = Duration::from_secs(60);
        let mut b = route(&[], Severity::Info, &["x", "y"], 0);
        b.throttle_max = 1;
        b.throttle_per = Duration::from_secs(10);
        let r = Router::new(vec![a, b]);
        assert_eq!(
            r.throttle("x"),
            Some(Throttle {
                max: 1,
                per: Duration::from_secs(10)
            })
        );
        assert_eq!(r.throttle("z"), None);
    }
}
