//! `notify`: the channels notices are sent to, the routes that pick them, delivery retries and the
//! daily digest, read and checked into the notify crate's own [`NotifyConfig`]. The same reader serves
//! `sentinel.yml` and a standalone `supervise.yml`, so every key is optional here (with the notify
//! crate's defaults) and every key is checked here: channel names are the operator's, so the schema
//! walk leaves this section alone.
//!
//! Secrets (a webhook's HMAC secret, an SMTP password, a Matrix access token, a Slack URL) are given
//! as a value or as `<key>_file`, never both. Their values never appear in a message, and
//! [`to_tree`] renders them as `***` (which is refused as a value, so a shown configuration is never
//! mistaken for a working one). It owns no I/O but reading those secret files.

use crate::intel::read_key_file;
use crate::reader::{Node, Reader};
use crate::validate::http_url;
use sentinel_core::{NoticeKind, Severity};
use sentinel_notify::config::{
    ChannelConfig, DigestConfig, MatrixConfig, NotifyConfig, RetrySettings, Route, Secret,
    SlackConfig, SmtpConfig, SmtpSecurity, WebhookConfig,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// What a rendered configuration shows in place of a secret; refused as a secret.
const MASK: &str = "***";
/// The longest per-attempt timeout of a channel.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest `group_wait`.
const MAX_GROUP_WAIT: Duration = Duration::from_secs(3600);
/// The longest `dedup_window` and throttle window.
const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest wait between two delivery attempts.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The longest `keep_delivered`.
const MAX_KEEP: Duration = Duration::from_secs(366 * 24 * 3600);
/// Channel types as written.
const CHANNEL_TYPES: &str = "webhook, smtp, matrix, slack, log";

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
        &["channels", "routes", "retry", "digest", "keep_delivered"],
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
    })
}

fn channels(r: &mut Reader, n: &Node<'_>) -> Option<BTreeMap<String, ChannelConfig>> {
    let Value::Object(map) = n.value else {
        r.fail(
            &n.path,
            "expected a mapping of channel names to channels, e.g. ops: {type: webhook, url: …}",
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (name, value) in map {
        let node = Node {
            value,
            path: n.child_path(name),
        };
        if !name_ok(name) {
            r.fail(
                &node.path,
                format!("channel name {name:?} must be 1 to 64 characters of a-z, 0-9, `_` and `-`"),
            );
            ok = false;
        }
        match channel(r, &node) {
            Some(c) => {
                out.insert(name.clone(), c);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn channel(r: &mut Reader, c: &Node<'_>) -> Option<ChannelConfig> {
    if !c.value.is_object() {
        r.fail(
            &c.path,
            format!("expected a mapping with a `type` ({CHANNEL_TYPES})"),
        );
        return None;
    }
    let kind = r.get(Some(c), "type").and_then(|t| {
        let v = r.string(&t)?;
        if ["webhook", "smtp", "matrix", "slack", "log"].contains(&v) {
            Some(v)
        } else {
            r.fail(
                &t.path,
                format!("unknown channel type `{v}` ({CHANNEL_TYPES})"),
            );
            None
        }
    })?;
    match kind {
        "webhook" => webhook(r, c).map(ChannelConfig::Webhook),
        "smtp" => smtp(r, c).map(ChannelConfig::Smtp),
        "matrix" => matrix(r, c).map(ChannelConfig::Matrix),
        "slack" => slack(r, c).map(ChannelConfig::Slack),
        _ => r.known_keys(c, &["type"]).then_some(ChannelConfig::Log),
    }
}

fn timeout(r: &mut Reader, c: &Node<'_>, default: u64) -> Option<Duration> {
    or_default(r, c, "timeout", Duration::from_secs(default), |r, n| {
        bounded(r, n, MAX_TIMEOUT, false)
    })
}

/// What a secret must look like beyond being non-empty.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SecretShape {
    /// Any text on one line (an HMAC secret, a password).
    Line,
    /// Printable ASCII without spaces (it goes in a header).
    Token,
    /// An https URL (http only to a loopback host): the URL itself is the credential.
    Url,
}

/// `key` or `key_file` (exactly one when `required`, at most one otherwise), never echoed.
fn secret(
    r: &mut Reader,
    c: &Node<'_>,
    key: &str,
    required: bool,
    shape: SecretShape,
) -> Option<Option<Secret>> {
    let file_key = format!("{key}_file");
    let value = r.optional(c, key);
    let file = r.optional(c, &file_key);
    let (text, path, from) = match (value, file) {
        (Some(v), Some(_)) => {
            r.fail(
                &v.path,
                format!("`{key}` and `{file_key}` are both set: give one (the value, or the file holding it)"),
            );
            return None;
        }
        (None, None) if required => {
            r.fail(
                &c.child_path(key),
                format!("missing: give `{key}` or `{file_key}`"),
            );
            return None;
        }
        (None, None) => return Some(None),
        (Some(v), None) => match v.value {
            Value::String(s) => (s.clone(), v.path, String::new()),
            _ => {
                r.fail(&v.path, "must be a string (the value is not shown)");
                return None;
            }
        },
        (None, Some(f)) => {
            let file = match f.value {
                Value::String(s) if !s.trim().is_empty() => PathBuf::from(s),
                _ => {
                    r.fail(&f.path, "must name a file");
                    return None;
                }
            };
            let text = read_key_file(r, &f.path, &file)?;
            let from = format!(" (in `{}`)", file.display());
            (
                text.trim_end_matches(['\n', '\r']).to_owned(),
                f.path,
                from,
            )
        }
    };
    if text.trim().is_empty() {
        r.fail(&path, format!("the {key} is empty{from}"));
        return None;
    }
    if text.trim() == MASK || text.trim() == "[set]" {
        r.fail(
            &path,
            format!("the {key}{from} is the mask a shown configuration puts in its place, not a {key}"),
        );
        return None;
    }
    let problem = match shape {
        SecretShape::Line if text.contains(['\n', '\r', '\0']) => {
            Some("must be one line (the value is not shown)")
        }
        SecretShape::Token if !text.bytes().all(|b| b.is_ascii_graphic()) => {
            Some("must be one line of printable ASCII without spaces (the value is not shown)")
        }
        SecretShape::Url
            if !http_url(text.trim()).is_some_and(|u| u.https || u.loopback) =>
        {
            Some("must be an https:// URL with a host (http:// only to a loopback host; the value is not shown)")
        }
        _ => None,
    };
    if let Some(problem) = problem {
        r.fail(&path, format!("the {key}{from} {problem}"));
        return None;
    }
    let text = if shape == SecretShape::Line {
        text
    } else {
        text.trim().to_owned()
    };
    Some(Some(Secret::new(text)))
}

/// A URL that is not secret (it is shown): http(s), a host, no `user:password@`. `https_only`: http
/// only to a loopback host (a credential goes with every request).
fn url(r: &mut Reader, n: &Node<'_>, https_only: bool) -> Option<String> {
    let u = r.string(n)?.trim();
    let authority = u
        .split_once("://")
        .map_or(u, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains('@') {
        r.fail(
            &n.path,
            "must not carry user:password@ (it would be shown with the URL; use the channel's secret)",
        );
        return None;
    }
    let Some(parsed) = http_url(u) else {
        r.fail(
            &n.path,
            format!(
                "`{u}` must be an http(s) URL with a host, a port from 1 to 65535 if any, and no \
                 spaces or backslashes"
            ),
        );
        return None;
    };
    if https_only && !parsed.https && !parsed.loopback {
        r.fail(
            &n.path,
            format!(
                "`{u}` must be https://: the access token would cross the network in clear \
                 (http:// only to a loopback host)"
            ),
        );
        return None;
    }
    Some(u.to_owned())
}

fn webhook(r: &mut Reader, c: &Node<'_>) -> Option<WebhookConfig> {
    r.known_keys(c, &["type", "url", "secret", "secret_file", "timeout"]);
    let url = r.get(Some(c), "url").and_then(|n| url(r, &n, false));
    let secret = secret(r, c, "secret", true, SecretShape::Line);
    let timeout = timeout(r, c, 10);
    Some(WebhookConfig {
        url: url?,
        secret: secret??,
        timeout: timeout?,
    })
}

fn matrix(r: &mut Reader, c: &Node<'_>) -> Option<MatrixConfig> {
    r.known_keys(
        c,
        &[
            "type",
            "homeserver",
            "room",
            "access_token",
            "access_token_file",
            "timeout",
        ],
    );
    let homeserver = r.get(Some(c), "homeserver").and_then(|n| {
        let u = url(r, &n, true)?;
        if u.contains(['?', '#']) {
            r.fail(&n.path, format!("`{u}` must have no query or fragment"));
            return None;
        }
        Some(u.trim_end_matches('/').to_owned())
    });
    let room = r.get(Some(c), "room").and_then(|n| {
        let v = r.string(&n)?.trim();
        let good = v.starts_with('!')
            && v.len() <= 255
            && v.split_once(':').is_some_and(|(l, s)| l.len() > 1 && !s.is_empty())
            && v.bytes().all(|b| b.is_ascii_graphic());
        if !good {
            r.fail(
                &n.path,
                format!("{v:?} must be a room id such as \"!abc:example.org\" (Settings → Advanced in most clients)"),
            );
            return None;
        }
        Some(v.to_owned())
    });
    let access_token = secret(r, c, "access_token", true, SecretShape::Token);
    let timeout = timeout(r, c, 10);
    Some(MatrixConfig {
        homeserver: homeserver?,
        room: room?,
        access_token: access_token??,
        timeout: timeout?,
    })
}

fn slack(r: &mut Reader, c: &Node<'_>) -> Option<SlackConfig> {
    r.known_keys(c, &["type", "url", "url_file", "timeout"]);
    let url = secret(r, c, "url", true, SecretShape::Url);
    let timeout = timeout(r, c, 10);
    Some(SlackConfig {
        url: url??,
        timeout: timeout?,
    })
}

/// `local@domain` or `Name <local@domain>`: enough to catch a wrong key or a typo; the server
/// decides the rest.
fn address_ok(s: &str) -> bool {
    let s = s.trim();
    let addr = match s.strip_suffix('>').and_then(|t| t.rsplit_once('<')) {
        Some((name, addr)) => {
            if name.contains(['<', '>', '\r', '\n', '"']) {
                return false;
            }
            addr
        }
        None => s,
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\\\"@".contains(c));
    domain_ok && local_ok
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn smtp(r: &mut Reader, c: &Node<'_>) -> Option<SmtpConfig> {
    r.known_keys(
        c,
        &[
            "type",
            "host",
            "port",
            "security",
            "username",
            "password",
            "password_file",
            "from",
            "to",
            "ca_file",
            "timeout",
        ],
    );
    let host = r.get(Some(c), "host").and_then(|n| {
        let v = r.string(&n)?.trim();
        if v.is_empty() || v.chars().any(|ch| ch.is_whitespace() || ch.is_control() || "/@".contains(ch)) {
            r.fail(&n.path, format!("{v:?} must be a host name or an address"));
            return None;
        }
        Some(v.to_owned())
    });
    let security = or_default(r, c, "security", SmtpSecurity::Starttls, |r, n| {
        match r.string(n)?.trim() {
            "starttls" => Some(SmtpSecurity::Starttls),
            "tls" => Some(SmtpSecurity::Tls),
            "none" => Some(SmtpSecurity::None),
            other => {
                r.fail(
                    &n.path,
                    format!("unknown security `{other}` (starttls, tls, none)"),
                );
                None
            }
        }
    });
    let default_port = match security {
        Some(SmtpSecurity::Tls) => 465,
        Some(SmtpSecurity::None) => 25,
        _ => 587,
    };
    let port = or_default(r, c, "port", default_port, |r, n| r.int(n, 1, 65535));
    let username = or_default(r, c, "username", None, |r, n| {
        let v = r.string(n)?;
        if v.trim().is_empty() || v.contains(['\n', '\r', '\0']) {
            r.fail(&n.path, "must be one non-empty line (write null for no login)");
            return None;
        }
        Some(Some(v.to_owned()))
    });
    let password = secret(r, c, "password", false, SecretShape::Line);
    let from = r.get(Some(c), "from").and_then(|n| {
        let v = r.string(&n)?.trim();
        if !address_ok(v) {
            r.fail(
                &n.path,
                format!("{v:?} is not an email address (user@example.org, or Name <user@example.org>)"),
            );
            return None;
        }
        Some(v.to_owned())
    });
    let to = r.get(Some(c), "to").and_then(|n| {
        let list = r.each(&n, |r, e| {
            let v = r.string(e)?.trim();
            if !address_ok(v) {
                r.fail(
                    &e.path,
                    format!("{v:?} is not an email address (user@example.org)"),
                );
                return None;
            }
            Some(v.to_owned())
        })?;
        if list.is_empty() {
            r.fail(&n.path, "names no recipient: give at least one address");
            return None;
        }
        Some(list)
    });
    let ca_file = or_default(r, c, "ca_file", None, |r, n| r.optional_path(n));
    let timeout = timeout(r, c, 30);
    let (username, password) = (username?, password?);
    match (&username, &password) {
        (Some(_), None) => {
            r.fail(
                &c.child_path("password"),
                "`username` is set: give `password` or `password_file` too",
            );
            return None;
        }
        (None, Some(_)) => {
            r.fail(
                &c.child_path("username"),
                "a password is set: give the `username` it belongs to",
            );
            return None;
        }
        _ => {}
    }
    let (host, security, ca_file) = (host?, security?, ca_file?);
    if security == SmtpSecurity::None {
        if password.is_some() && !is_loopback_host(&host) {
            r.fail(
                &c.child_path("security"),
                format!(
                    "none to `{host}` would send the password in clear: use starttls or tls \
                     (none only to a relay on loopback)"
                ),
            );
            return None;
        }
        if ca_file.is_some() {
            r.fail(
                &c.child_path("ca_file"),
                "is for starttls or tls; security is none",
            );
            return None;
        }
    }
    Some(SmtpConfig {
        host,
        port: port?,
        security,
        username,
        password,
        from: from?,
        to: to?,
        ca_file,
        timeout: timeout?,
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
            r.fail(&format!("{}[{i}]", n.path), format!("`{name}` is listed twice"));
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
            ChannelConfig::Smtp(s) if s.security == SmtpSecurity::None && !is_loopback_host(&s.host) => {
                out.push(format!(
                    "{at}.channels.{name}.security is none: mail to `{}` crosses the network in clear",
                    s.host
                ));
            }
            ChannelConfig::Webhook(w) => {
                if http_url(&w.url).is_some_and(|u| !u.https && !u.loopback) {
                    out.push(format!(
                        "{at}.channels.{name}.url is http:// to a remote host: notices cross the \
                         network in clear (the signature still proves who sent them)"
                    ));
                }
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
        for bad in ["24:00", "8:00", "08:60", "0800", "08:0a", "-1:00", "08:00:00"] {
            assert_eq!(time_of_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn addresses_are_checked_loosely_but_catch_typos() {
        for good in [
            "ops@example.org",
            "root@localhost",
            "Sentinel <sentinel@example.org>",
            "a.b+c@mail.example.org",
        ] {
            assert!(address_ok(good), "{good}");
        }
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.org",
            "ops@exa mple.org",
            "ops@example..org",
            "a,b@example.org",
            "Name <ops@example.org",
            "ops@example.org, dev@example.org",
        ] {
            assert!(!address_ok(bad), "{bad}");
        }
    }
}
