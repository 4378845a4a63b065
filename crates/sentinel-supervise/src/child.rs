//! What every child task shares: its configuration, the notifier, its status slot, the stop
//! signal, and the handling of a failure (backoff or crash loop, notice, log).

use crate::backoff::{Decision, Schedule};
use crate::config::ChildConfig;
use crate::notice;
use crate::status::{lock, ChildState, Entry, LastExit, Slot};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One child task's fixed context.
pub(crate) struct ChildCtx {
    pub cfg: ChildConfig,
    pub grace: Duration,
    pub output_lines: usize,
    pub notifier: notice::Notices,
    pub slot: Slot,
    pub stop: watch::Receiver<bool>,
}

impl ChildCtx {
    /// Resolves when the supervisor stops (or is dropped).
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|s| *s).await;
    }

    /// Whether the supervisor is stopping.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Updates entry `i` of the slot (if there).
    pub fn update(&self, i: usize, f: impl FnOnce(&mut Entry)) {
        let mut s = lock(&self.slot);
        if let Some(e) = s.get_mut(i) {
            f(e);
        }
    }
}

/// What to do after a failure.
pub(crate) enum AfterFailure {
    /// Wait this long, then start again.
    RestartAfter(Duration),
    /// No more restarts.
    CrashLoop,
}

/// A child (its status `entry`, shown as `name`) went down with `exit`: decide, update its
/// status, log and notify.
#[allow(clippy::too_many_arguments)]
pub(crate) fn on_failure(
    notifier: &notice::Notices,
    entry: &mut Entry,
    name: &str,
    schedule: &mut Schedule,
    stable_since: Option<Instant>,
    exit: LastExit,
    restarts: u64,
    lines: &[String],
) -> AfterFailure {
    let now = Instant::now();
    if schedule.settle(stable_since, now) {
        tracing::info!(evt = "child_backoff_reset", child = %name);
    }
    match &exit {
        LastExit::Unhealthy { reason } => {
            tracing::warn!(evt = "child_unhealthy", child = %name, reason = %reason, restarts)
        }
        other => tracing::warn!(evt = "child_exited", child = %name, exit = %other, restarts),
    }
    match schedule.next(now) {
        Decision::CrashLoop {
            restarts: n,
            window,
        } => {
            tracing::error!(
                evt = "child_crash_loop",
                child = %name,
                restarts = n,
                window_secs = window.as_secs(),
                exit = %exit,
                "stopped restarting"
            );
            notifier.send(notice::crash_loop(name, &exit, n, window, lines));
            entry.status.pid = None;
            entry.status.last_exit = Some(exit);
            entry.set_state(ChildState::CrashLoop);
            AfterFailure::CrashLoop
        }
        Decision::Restart { after, .. } => {
            notifier.send(notice::crash(name, &exit, restarts, after, lines));
            entry.status.pid = None;
            entry.status.last_exit = Some(exit);
            entry.set_state(ChildState::Backoff);
            entry.next_restart_at = Some(now + after);
            AfterFailure::RestartAfter(after)
        }
    }
}
