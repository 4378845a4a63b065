//! `api.ui`: the operator's dashboard under `/ui/` (sessions and their cookie).

use crate::reader::{Node, Reader};
use serde::Serialize;
use std::time::Duration;

/// `api.ui`: the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiConfig {
    /// Whether `/ui/` is served at all.
    pub enabled: bool,
    /// A session's absolute lifetime, 1m..=30d.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// A session unused this long ends, 1m..=session_ttl.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Sessions held at once (the least recently used goes past it), 1..=1000000.
    pub max_sessions: usize,
    /// Mark the session cookie `Secure` (named `__Host-sentinel_session`): set it behind a
    /// TLS-terminating proxy; it is on by itself when the API serves TLS.
    pub secure_cookie: bool,
}

/// Reads `api.ui` (every value range-checked, errors naming the key).
pub(crate) fn api_ui(r: &mut Reader, api: Option<&Node<'_>>) -> Option<UiConfig> {
    let n = r.get(api, "ui");
    let n = n.as_ref();
    let enabled = r.get(n, "enabled").and_then(|v| r.boolean(&v));
    let session_ttl = within(r, n, "session_ttl", 60, 30 * 86_400);
    let idle_timeout = within(r, n, "idle_timeout", 60, 30 * 86_400);
    let max_sessions = r
        .get(n, "max_sessions")
        .and_then(|v| r.int(&v, 1, 1_000_000));
    let secure_cookie = r.get(n, "secure_cookie").and_then(|v| r.boolean(&v));
    if let (Some(ttl), Some(idle)) = (session_ttl, idle_timeout) {
        if idle > ttl {
            if let Some(node) = r.get(n, "idle_timeout") {
                r.fail(
                    &node.path,
                    format!(
                        "must not be longer than api.ui.session_ttl ({})",
                        humantime::format_duration(ttl)
                    ),
                );
            }
            return None;
        }
    }
    Some(UiConfig {
        enabled: enabled?,
        session_ttl: session_ttl?,
        idle_timeout: idle_timeout?,
        max_sessions: max_sessions?,
        secure_cookie: secure_cookie?,
    })
}

/// The duration `key` of `n`, within `min..=max` seconds.
fn within(r: &mut Reader, n: Option<&Node<'_>>, key: &str, min: u64, max: u64) -> Option<Duration> {
    let node = r.get(n, key)?;
    let d = r.duration(&node)?;
    let (lo, hi) = (Duration::from_secs(min), Duration::from_secs(max));
    if d < lo || d > hi {
        r.fail(
            &node.path,
            format!(
                "must be between {} and {}",
                humantime::format_duration(lo),
                humantime::format_duration(hi)
            ),
        );
        return None;
    }
    Some(d)
}
