//! What the supervisor reports about each child (the heartbeat's `children`), and the shared slot
//! a child's task writes its status into.

use sentinel_core::Timestamp;
use serde::Serialize;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where a child is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Being started.
    Starting,
    /// Up; not (yet) confirmed healthy by a probe, or it has no probe.
    Running,
    /// Up and its probe passes.
    Healthy,
    /// Its probe fails (not yet enough failures to restart it, or being restarted).
    Unhealthy,
    /// Down, waiting for its next restart.
    Backoff,
    /// Restarted too often within the crash window: no more restarts.
    CrashLoop,
    /// Stopped by the supervisor (or the container is gone).
    Stopped,
}

impl ChildState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildState::Starting => "starting",
            ChildState::Running => "running",
            ChildState::Healthy => "healthy",
            ChildState::Unhealthy => "unhealthy",
            ChildState::Backoff => "backoff",
            ChildState::CrashLoop => "crash_loop",
            ChildState::Stopped => "stopped",
        }
    }
}

impl fmt::Display for ChildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a child last went down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LastExit {
    /// It exited with this code.
    Code {
        /// The exit code.
        code: i64,
    },
    /// A signal ended it.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// Its probe failed `failure_threshold` times in a row; the supervisor restarted it.
    Unhealthy {
        /// The last probe failure.
        reason: String,
    },
    /// It could not be started.
    StartFailed {
        /// Why.
        error: String,
    },
}

impl fmt::Display for LastExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LastExit::Code { code } => write!(f, "code {code}"),
            LastExit::Signal { signal } => write!(f, "signal {signal}"),
            LastExit::Unhealthy { reason } => write!(f, "unhealthy: {reason}"),
            LastExit::StartFailed { error } => write!(f, "failed to start: {error}"),
        }
    }
}

/// One child as the heartbeat shows it. A label target shows one entry per matched container,
/// named `<child>/<container name>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildStatus {
    /// The child's name.
    pub name: String,
    /// `process` or `container`.
    pub kind: &'static str,
    /// Where it is.
    pub state: ChildState,
    /// The process id (a process, or a running container's main process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The container id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Restarts since the supervisor started.
    pub restarts: u64,
    /// How it last went down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<LastExit>,
    /// Milliseconds until the next restart (in `backoff`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_restart_in_ms: Option<u64>,
    /// When it entered its state.
    pub since: Timestamp,
}

/// A child's status as its task keeps it; `next_restart_at` becomes `next_restart_in_ms` when read.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub status: ChildStatus,
    pub next_restart_at: Option<Instant>,
}

impl Entry {
    pub fn new(name: String, kind: &'static str) -> Entry {
        Entry {
            status: ChildStatus {
                name,
                kind,
                state: ChildState::Starting,
                pid: None,
                container_id: None,
                restarts: 0,
                last_exit: None,
                next_restart_in_ms: None,
                since: Timestamp::now(),
            },
            next_restart_at: None,
        }
    }

    /// Moves to `state` (and stamps `since` when it changes).
    pub fn set_state(&mut self, state: ChildState) {
        if self.status.state != state {
            self.status.state = state;
            self.status.since = Timestamp::now();
        }
        if state != ChildState::Backoff {
            self.next_restart_at = None;
        }
    }

    pub fn snapshot(&self, now: Instant) -> ChildStatus {
        let mut s = self.status.clone();
        s.next_restart_in_ms = self
            .next_restart_at
            .map(|t| t.saturating_duration_since(now).as_millis() as u64);
        s
    }
}

/// The entries of one configured child (several for a label target), shared with its task.
pub(crate) type Slot = Arc<Mutex<Vec<Entry>>>;

/// Locks a slot, surviving a poisoned lock (a panicked task leaves plain data behind).
pub(crate) fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Vec<Entry>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_heartbeat_shape() {
        let mut e = Entry::new("api".into(), "process");
        e.status.restarts = 2;
        e.status.last_exit = Some(LastExit::Code { code: 1 });
        e.status.since = Timestamp::from_millis(0);
        e.set_state(ChildState::Backoff);
        let now = Instant::now();
        e.next_restart_at = Some(now + Duration::from_millis(1500));
        let mut v = serde_json::to_value(e.snapshot(now)).unwrap();
        v["since"] = serde_json::Value::Null;
        assert_eq!(
            v,
            serde_json::json!({
                "name": "api", "kind": "process", "state": "backoff", "restarts": 2,
                "last_exit": {"type": "code", "code": 1}, "next_restart_in_ms": 1500,
                "since": null
            })
        );
        e.set_state(ChildState::CrashLoop);
        assert_eq!(e.snapshot(now).next_restart_in_ms, None);
        assert_eq!(
            serde_json::to_value(ChildState::CrashLoop).unwrap(),
            serde_json::json!("crash_loop")
        );
        assert_eq!(LastExit::Signal { signal: 9 }.to_string(), "signal 9");
    }
}
