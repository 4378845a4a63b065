//! `notify`: the channels notices are sent to, the routes that pick them, delivery retries and the
//! daily digest, read and checked into the notify crate's own [`NotifyConfig`]. The same reader serves
//! `sentinel.yml` and a standalone `supervise.yml`, so every key is optional here (with the notify
//! crate's defaults) and every key is checked here: channel names are the operator's, so the schema
//! walk leaves this section alone.
//!
//! The channels themselves (and their secrets) are read in `channels.rs`; [`to_tree`] renders secrets
//! as `***` (which is refused as a value, so a shown configuration is never mistaken for a working
//! one).

use crate::channels::{channels, is_loopback_host, MASK};
use crate::reader::{Node, Reader};
use crate::validate::http_url;
use sentinel_core::{NoticeKind, Severity};
use sentinel_notify::config::{
    ChannelConfig, DigestConfig, NotifyConfig, RetrySettings, Route, SmtpSecurity,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The longest `group_wait`.
const MAX_GROUP_WAIT: Duration = Duration::from_secs(3600);
/// The longest `dedup_window` and throttle window.
const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest wait between two delivery attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The longest `keep_delivered`.
const MAX_KEEP: Duration = Duration::from_secs(366 * 24 * 3600);

/// Reads a duration bounded by `max`; `zero_ok` lets `0s` through (a setting that can be off).
pub(crate) fn bounded(
    r: &mut Reader,
    n: &Node<'_>,
    max: Duration,
    zero_ok: bool,
) -> Option<Duration> {
    let d = if zero_ok {
        let s = r.string(n)?;
        match humantime::parse_duration(s.trim()) {
            Ok(d) => d,
            Err(_) => {
                r.fail(
                    &n.path,
                    format!("not a duration: {s:?} (write e.g. 50ms, 10s, 4h, 7d)"),
                );
                return None;
            }
        }
    } else {
        r.duration(n)?
    };
    if d > max {
        r.fail(
            &n.path,
            format!(
                "must be at most {}, got {}",
                humantime::format_duration(max),
                humantime::format_duration(d)
            ),
        );
        return None;
    }
    Some(d)
}

/// `key` of `n` read with `f`, or `default` when absent or null.
pub(crate) fn or_default<'t, T>(
    r: &mut Reader,
    n: &Node<'t>,
    key: &str,
    default: T,
    f: impl FnOnce(&mut Reader, &Node<'t>) -> Option<T>,
) -> Option<T> {
    match r.optional(n, key) {
        None => Some(default),
        Some(v) => f(r, &v),
    }
}

/// A name of 1 to 64 characters of a-z, 0-9, `_` and `-`.
pub(crate) fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The `notify` section (`None` node: absent, the defaults).
pub(crate) fn notify(r: &mut Reader, s: Option<&Node<'_>>) -> Option<NotifyConfig> {
    let d = NotifyConfig::default();
    let Some(s) = s.filter(|s| !s.value.is_null()) else {
        return Some(d);
    };
    if !r.known_keys(
        s,
        &[
            "channels",
            "routes",
            "retry",
            "digest",
            "keep_delivered",
            "max_pending",
        ],
    ) {
        return None;
    }
    // Routes and the digest are checked against every name written, even a channel that is itself
    // bad, so one mistake is reported once.
    let names: BTreeSet<String> = match s.value.get("channels") {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let channels = or_default(r, s, "channels", BTreeMap::new(), channels);
    let routes = or_default(r, s, "routes", Vec::new(), |r, n| {
        r.each(n, |r, e| route(r, e, &names))
    });
    let retry = or_default(r, s, "retry", d.retry.clone(), retry);
    let digest = or_default(r, s, "digest", None, |r, n| digest(r, n, &names).map(Some));
    let keep = match r.optional(s, "keep_delivered") {
        None => Some((d.keep_delivered, format!("{}.keep_delivered", s.path))),
        Some(n) => bounded(r, &n, MAX_KEEP, false).map(|k| (k, n.path)),
    };
    let max_pending = match r.optional(s, "max_pending") {
        None => Some(d.max_pending),
        Some(n) => r.int(&n, 1, 10_000_000),
    };
    let (routes, (keep_delivered, keep_path)) = (routes?, keep?);
    if let Some(longest) = routes.iter().map(|rt| rt.dedup_window).max() {
        if keep_delivered < longest {
            r.fail(
                &keep_path,
                format!(
                    "{} is shorter than the longest route dedup_window ({}): delivered rows are \
                     what de-duplication is decided from, so they must outlive the window",
                    humantime::format_duration(keep_delivered),
                    humantime::format_duration(longest)
                ),
            );
            return None;
        }
    }
    Some(NotifyConfig {
        channels: channels?,
        routes,
        retry: retry?,
        digest: digest?,
        keep_delivered,
        max_pending: max_pending?,
    })
}

/// A list of channel names, each one of `names`, none twice, at least one.
fn channel_list(r: &mut Reader, n: &Node<'_>, names: &BTreeSet<String>) -> Option<Vec<String>> {
    let list = r.each(n, |r, e| {
        let v = r.string(e)?;
        if !names.contains(v) {
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            r.fail(
                &e.path,
                format!(
                    "no channel is named `{v}` (notify.channels has: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            return None;
        }
        Some(v.to_owned())
    })?;
    if list.is_empty() {
        r.fail(&n.path, "names no channel");
        return None;
    }
    let mut seen = BTreeSet::new();
    for (i, name) in list.iter().enumerate() {
        if !seen.insert(name) {
            r.fail(
                &format!("{}[{i}]", n.path),
                format!("`{name}` is listed twice"),
            );
            return None;
        }
    }
    Some(list)
}

fn route(r: &mut Reader, e: &Node<'_>, names: &BTreeSet<String>) -> Option<Route> {
    if !r.known_keys(
        e,
        &[
            "kinds",
            "min_severity",
            "channels",
            "group_wait",
            "dedup_window",
            "throttle",
        ],
    ) {
        return None;
    }
    let kinds = or_default(r, e, "kinds", Vec::new(), |r, n| {
        r.each(n, |r, k| {
            let v = r.string(k)?;
            NoticeKind::parse(v.trim()).or_else(|| {
                let all: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.as_str()).collect();
                r.fail(
                    &k.path,
                    format!("unknown notice kind `{v}` ({})", all.join(", ")),
                );
                None
            })
        })
    });
    let min_severity = or_default(r, e, "min_severity", Severity::Info, |r, n| {
        r.named::<Severity>(n)
    });
    let channels = r
        .get(Some(e), "channels")
        .and_then(|n| channel_list(r, &n, names));
    let group_wait = or_default(r, e, "group_wait", Duration::from_secs(10), |r, n| {
        bounded(r, n, MAX_GROUP_WAIT, true)
    });
    let dedup_window = or_default(r, e, "dedup_window", Duration::from_secs(300), |r, n| {
        bounded(r, n, MAX_WINDOW, true)
    });
    let throttle = or_default(r, e, "throttle", (20, Duration::from_secs(60)), |r, t| {
        if !r.known_keys(t, &["max", "per"]) {
            return None;
        }
        let max = or_default(r, t, "max", 20, |r, n| r.int::<u32>(n, 1, 1_000_000));
        let per = or_default(r, t, "per", Duration::from_secs(60), |r, n| {
            bounded(r, n, MAX_WINDOW, false)
        });
        Some((max?, per?))
    });
    let (throttle_max, throttle_per) = throttle?;
    Some(Route {
        kinds: kinds?,
        min_severity: min_severity?,
        channels: channels?,
        group_wait: group_wait?,
        dedup_window: dedup_window?,
        throttle_max,
        throttle_per,
    })
}

fn retry(r: &mut Reader, n: &Node<'_>) -> Option<RetrySettings> {
    let d = RetrySettings::default();
    if !r.known_keys(n, &["base", "factor", "cap", "max_attempts"]) {
        return None;
    }
    let base = or_default(r, n, "base", d.base, |r, b| {
        bounded(r, b, MAX_RETRY_WAIT, false)
    });
    let factor = or_default(r, n, "factor", d.factor, factor);
    let cap = match r.optional(n, "cap") {
        None => Some((d.cap, n.child_path("cap"))),
        Some(c) => bounded(r, &c, MAX_RETRY_WAIT, false).map(|v| (v, c.path)),
    };
    let max_attempts = or_default(r, n, "max_attempts", d.max_attempts, |r, m| {
        r.int(m, 1, 1000)
    });
    let (base, (cap, cap_path)) = (base?, cap?);
    if cap < base {
        r.fail(
            &cap_path,
            format!(
                "must be at least base ({}), got {}",
                humantime::format_duration(base),
                humantime::format_duration(cap)
            ),
        );
        return None;
    }
    Some(RetrySettings {
        base,
        factor: factor?,
        cap,
        max_attempts: max_attempts?,
    })
}

/// A backoff growth factor, 1 to 10.
pub(crate) fn factor(r: &mut Reader, n: &Node<'_>) -> Option<f64> {
    let f = r.float(n)?;
    if !(1.0..=10.0).contains(&f) {
        r.fail(
            &n.path,
            format!("must be between 1 and 10 (each wait is the last one times this), got {f}"),
        );
        return None;
    }
    Some(f)
}

fn digest(r: &mut Reader, n: &Node<'_>, names: &BTreeSet<String>) -> Option<DigestConfig> {
    if !r.known_keys(n, &["at", "channels", "top"]) {
        return None;
    }
    let at = r.get(Some(n), "at").and_then(|a| {
        let parsed = match a.value {
            Value::String(s) => time_of_day(s.trim()),
            _ => None,
        };
        if parsed.is_none() {
            r.fail(
                &a.path,
                "must be a time of day, UTC, written \"HH:MM\" from \"00:00\" to \"23:59\" (quoted)",
            );
        }
        parsed
    });
    let channels = r
        .get(Some(n), "channels")
        .and_then(|c| channel_list(r, &c, names));
    let top = or_default(r, n, "top", 10, |r, t| r.int(t, 1, 1000));
    Some(DigestConfig {
        at: at?,
        channels: channels?,
        top: top?,
    })
}

/// `HH:MM`, two digits each, 00:00 to 23:59.
fn time_of_day(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

/// Start-up warnings about `notify` (`at` names the section: `notify`).
pub(crate) fn warnings(c: &NotifyConfig, at: &str, out: &mut Vec<String>) {
    for (name, ch) in &c.channels {
        match ch {
            ChannelConfig::Smtp(s)
                if s.security == SmtpSecurity::None && !is_loopback_host(&s.host) =>
            {
                out.push(format!(
                    "{at}.channels.{name}.security is none: mail to `{}` crosses the network in clear",
                    s.host
                ));
            }
            ChannelConfig::Webhook(w)
                if http_url(&w.url).is_some_and(|u| !u.https && !u.loopback) =>
            {
                out.push(format!(
                    "{at}.channels.{name}.url is http:// to a remote host: notices cross the \
                     network in clear (the signature still proves who sent them)"
                ));
            }
            _ => {}
        }
        let used = c.routes.iter().any(|rt| rt.channels.contains(name))
            || c.digest.as_ref().is_some_and(|d| d.channels.contains(name));
        if !used {
            out.push(format!(
                "{at}.channels.{name} is named by no route and not by the digest: nothing is sent to it"
            ));
        }
    }
}

/// A warning when supervised children exist but no route takes their crash notices (kind `crash`,
/// severity High; a crash loop is Critical): those notices would reach the JSON log only.
pub(crate) fn crash_route_warnings(
    c: &NotifyConfig,
    at: &str,
    children: usize,
    out: &mut Vec<String>,
) {
    if children == 0 {
        return;
    }
    let takes = |sev: Severity| c.routes.iter().any(|rt| rt.matches(NoticeKind::Crash, sev));
    if !takes(Severity::Critical) {
        out.push(format!(
            "{children} supervised child(ren) but no {at}.routes entry takes kind `crash`: crash and \
             crash-loop notices go to the JSON log only (evt=notice); add a route with `kinds: [crash]`"
        ));
    } else if !takes(Severity::High) {
        out.push(format!(
            "no {at}.routes entry takes kind `crash` at severity high: a child's crashes go to the JSON \
             log only, only crash loops (critical) are sent"
        ));
    }
}

fn dur(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

/// `notify` as written in a configuration file (secrets as `***`), so the effective configuration
/// reads back as configuration.
pub(crate) fn to_tree(c: &NotifyConfig) -> Value {
    let channels: Map<String, Value> = c
        .channels
        .iter()
        .map(|(name, ch)| {
            let v = match ch {
                ChannelConfig::Webhook(w) => json!({
                    "type": "webhook", "url": w.url, "secret": MASK, "timeout": dur(w.timeout),
                }),
                ChannelConfig::Smtp(s) => json!({
                    "type": "smtp",
                    "host": s.host,
                    "port": s.port,
                    "security": match s.security {
                        SmtpSecurity::Starttls => "starttls",
                        SmtpSecurity::Tls => "tls",
                        SmtpSecurity::None => "none",
                    },
                    "username": s.username,
                    "password": s.password.as_ref().map(|_| MASK),
                    "from": s.from,
                    "to": s.to,
                    "ca_file": s.ca_file.as_ref().map(|p| p.display().to_string()),
                    "timeout": dur(s.timeout),
                }),
                ChannelConfig::Matrix(m) => json!({
                    "type": "matrix",
                    "homeserver": m.homeserver,
                    "room": m.room,
                    "access_token": MASK,
                    "timeout": dur(m.timeout),
                }),
                ChannelConfig::Slack(s) => json!({
                    "type": "slack", "url": MASK, "timeout": dur(s.timeout),
                }),
                // A channel type added to the notify crate shows by its name until it is read here.
                other => json!({"type": other.kind()}),
            };
            (name.clone(), v)
        })
        .collect();
    let routes: Vec<Value> = c
        .routes
        .iter()
        .map(|rt| {
            json!({
                "kinds": rt.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                "min_severity": rt.min_severity.as_str(),
                "channels": rt.channels,
                "group_wait": dur(rt.group_wait),
                "dedup_window": dur(rt.dedup_window),
                "throttle": {"max": rt.throttle_max, "per": dur(rt.throttle_per)},
            })
        })
        .collect();
    json!({
        "channels": channels,
        "routes": routes,
        "retry": {
            "base": dur(c.retry.base),
            "factor": c.retry.factor,
            "cap": dur(c.retry.cap),
            "max_attempts": c.retry.max_attempts,
        },
        "digest": c.digest.as_ref().map(|d| json!({
            "at": format!("{:02}:{:02}", d.at.0, d.at.1),
            "channels": d.channels,
            "top": d.top,
        })),
        "keep_delivered": dur(c.keep_delivered),
        "max_pending": c.max_pending,
    })
}

/// Serialises `ValidatedConfig.notify` in the configuration's own shape ([`to_tree`]).
pub(crate) fn serialize<S: serde::Serializer>(c: &NotifyConfig, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&to_tree(c), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day_are_two_digits_each_and_in_range() {
        assert_eq!(time_of_day("08:00"), Some((8, 0)));
        assert_eq!(time_of_day("23:59"), Some((23, 59)));
        assert_eq!(time_of_day("00:00"), Some((0, 0)));
        for bad in [
            "24:00", "8:00", "08:60", "0800", "08:0a", "-1:00", "08:00:00",
        ] {
            assert_eq!(time_of_day(bad), None, "{bad}");
        }
    }
}
