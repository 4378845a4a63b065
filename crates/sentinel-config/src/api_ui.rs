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
    /// Origins (`http[s]://host[:port]`, lower case) a proxy that rewrites `Host` serves the
    /// dashboard at: form posts and the live stream whose `Origin` is one of them are accepted.
    pub public_origins: Vec<String>,
}

/// Most origins `api.ui.public_origins` may list.
pub const MAX_PUBLIC_ORIGINS: usize = 16;

/// An origin as a browser sends it in `Origin`: `http://` or `https://`, a host name, IPv4 or
/// bracketed IPv6 address, an optional port; no path, query, user or trailing slash. Lower-cased.
fn origin(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return Err("must start with http:// or https://".into());
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !host_ok {
        return Err(
            "must be scheme://host[:port] with a host name or address, and nothing after it (no path, no trailing slash)"
                .into(),
        );
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err("has a port that is not 1..=65535".into());
        }
    }
    Ok(lower)
}

/// Reads `api.ui.public_origins`: a list of at most [`MAX_PUBLIC_ORIGINS`] origins.
fn public_origins(r: &mut Reader, n: Option<&Node<'_>>) -> Option<Vec<String>> {
    let node = r.get(n, "public_origins")?;
    let items = r.list(&node)?;
    if items.len() > MAX_PUBLIC_ORIGINS {
        r.fail(&node.path, format!("at most {MAX_PUBLIC_ORIGINS} origins"));
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in &items {
        let Some(s) = r.string(item) else {
            ok = false;
            continue;
        };
        match origin(s) {
            Ok(o) => out.push(o),
            Err(why) => {
                r.fail(&item.path, format!("{s:?} {why}"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
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
    let public_origins = public_origins(r, n);
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
        public_origins: public_origins?,
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
