//! The notices the supervisor raises (kind Crash): one per unexpected exit or unhealthy restart,
//! and a critical one when a child is crash-looping. Sending never blocks a child's restart.

use crate::status::LastExit;
use sentinel_core::{Notice, NoticeKind, Notifier, Severity, TraceId};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Formats a duration the way people read it (`1s`, `250ms`, `5m`).
pub(crate) fn human(d: Duration) -> String {
    let d = if d >= Duration::from_secs(1) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(d.as_millis() as u64)
    };
    humantime::format_duration(d).to_string()
}

fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        "(no output)".to_string()
    } else {
        lines.join("\n")
    }
}

/// `<name> exited (code 1)` / `<name> is unhealthy`, with the restart and the last output lines.
pub(crate) fn crash(
    name: &str,
    exit: &LastExit,
    restarts: u64,
    next_in: Duration,
    lines: &[String],
) -> Notice {
    let title = match exit {
        LastExit::Unhealthy { .. } => format!("{name} is unhealthy"),
        LastExit::StartFailed { .. } => format!("{name} failed to start"),
        other => format!("{name} exited ({other})"),
    };
    let what = match exit {
        LastExit::Unhealthy { reason } => {
            format!("{name} failed its health probe ({reason}) and is being restarted.")
        }
        LastExit::StartFailed { error } => format!("{name} could not be started: {error}."),
        other => format!("{name} exited unexpectedly ({other})."),
    };
    let body = format!(
        "{what}\nRestarts so far: {restarts}. Next restart in {}.\n\nLast output:\n{}",
        human(next_in),
        tail(lines)
    );
    Notice::new(
        NoticeKind::Crash,
        Severity::High,
        title,
        body,
        TraceId::new(),
    )
    .with_key(format!("crash:{name}"))
}

/// `<name> is crash-looping: stopped restarting after N restarts in W`.
pub(crate) fn crash_loop(
    name: &str,
    exit: &LastExit,
    restarts: u32,
    window: Duration,
    lines: &[String],
) -> Notice {
    let title = format!(
        "{name} is crash-looping: stopped restarting after {restarts} restarts in {}",
        human(window)
    );
    let body = format!(
        "{name} went down again ({exit}) after {restarts} restarts within {}; the supervisor \
         no longer restarts it. Fix the cause, then restart the supervisor (`sentinel supervise`, or \
         `sentinel run` for a child of sentinel.yml's `supervise:`).\n\nLast output:\n{}",
        human(window),
        tail(lines)
    );
    Notice::new(
        NoticeKind::Crash,
        Severity::Critical,
        title,
        body,
        TraceId::new(),
    )
    // Its own key: folded with the crashes before it, it would wait out their `dedup_window` and
    // go out under the first crash's title.
    .with_key(format!("crash_loop:{name}"))
}

/// `<name>: the Docker engine is unreachable`: the container is not watched until it is back.
pub(crate) fn docker_unavailable(name: &str, error: &str) -> Notice {
    Notice::new(
        NoticeKind::Crash,
        Severity::High,
        format!("{name}: the Docker engine is unreachable"),
        format!(
            "The supervisor cannot reach the Docker engine ({error}), so the container {name} is \
             not watched, probed or restarted. It keeps trying every few seconds."
        ),
        TraceId::new(),
    )
    .with_key(format!("docker:{name}"))
}

/// The notifier with a count of the notices being handed to it, so that a stopping supervisor can
/// wait until every notice it raised is accepted (queued) before the notification engine stops.
#[derive(Clone)]
pub(crate) struct Notices {
    notifier: Arc<dyn Notifier>,
    in_flight: Arc<(AtomicUsize, tokio::sync::Notify)>,
}

/// Decrements the in-flight count when a send ends (or its task is dropped).
struct InFlight(Arc<(AtomicUsize, tokio::sync::Notify)>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0 .0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .1.notify_waiters();
        }
    }
}

impl Notices {
    /// Sends through `notifier`.
    pub fn new(notifier: Arc<dyn Notifier>) -> Notices {
        Notices {
            notifier,
            in_flight: Arc::new((AtomicUsize::new(0), tokio::sync::Notify::new())),
        }
    }

    /// Sends a notice in the background (a slow notifier never delays a restart); a failure is
    /// loud. It counts as in flight from this call on, until the notifier answers.
    pub fn send(&self, notice: Notice) {
        self.in_flight.0.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(Arc::clone(&self.in_flight));
        let notifier = Arc::clone(&self.notifier);
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = notifier.notify(&notice).await {
                tracing::error!(evt = "crash_notice_failed", title = %notice.title, error = %e);
            }
        });
    }

    /// Waits until no notice is in flight, at most `limit`; answers how many still are.
    pub async fn settle(&self, limit: Duration) -> usize {
        let wait = async {
            loop {
                let notified = self.in_flight.1.notified();
                if self.in_flight.0.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.in_flight.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_bodies() {
        let n = crash(
            "api",
            &LastExit::Code { code: 1 },
            2,
            Duration::from_millis(2100),
            &["boom".into()],
        );
        assert_eq!(n.title, "api exited (code 1)");
        assert_eq!(n.severity, Severity::High);
        assert_eq!(n.key.as_deref(), Some("crash:api"));
        assert!(n.body.contains("Restarts so far: 2. Next restart in 2s."));
        assert!(n.body.ends_with("boom"));
        let n = crash(
            "api",
            &LastExit::Signal { signal: 9 },
            0,
            Duration::ZERO,
            &[],
        );
        assert_eq!(n.title, "api exited (signal 9)");
        let n = crash_loop(
            "api",
            &LastExit::Code { code: 3 },
            5,
            Duration::from_secs(300),
            &["x".into()],
        );
        assert_eq!(
            n.title,
            "api is crash-looping: stopped restarting after 5 restarts in 5m"
        );
        assert_eq!(n.severity, Severity::Critical);
        assert_eq!(n.key.as_deref(), Some("crash_loop:api"));
    }
}
