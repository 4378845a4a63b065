//! `notify.channels`: each named channel (webhook, SMTP, Matrix, Slack, the log) read and checked
//! into the notify crate's [`ChannelConfig`], with its secrets. A secret is given as a value or as
//! `<key>_file` (read here, the one I/O of this module), never both; its value never appears in a
//! message, and `***` (what a rendering shows in its place) is refused as one.

use crate::intel::read_key_file;
use crate::notify::{bounded, name_ok, or_default};
use crate::reader::{Node, Reader};
use crate::validate::http_url;
use sentinel_notify::config::{
    ChannelConfig, MatrixConfig, Secret, SlackConfig, SmtpConfig, SmtpSecurity, WebhookConfig,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What a rendered configuration shows in place of a secret; refused as a secret.
pub(crate) const MASK: &str = "***";
/// The longest per-attempt timeout of a channel.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Channel types as written.
const CHANNEL_TYPES: &str = "webhook, smtp, matrix, slack, log";

pub(crate) fn channels(r: &mut Reader, n: &Node<'_>) -> Option<BTreeMap<String, ChannelConfig>> {
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
                format!(
                    "channel name {name:?} must be 1 to 64 characters of a-z, 0-9, `_` and `-`"
                ),
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
    if c.value.get("type").is_none_or(Value::is_null) {
        r.fail(
            &c.child_path("type"),
            format!("missing: every channel has a `type` ({CHANNEL_TYPES})"),
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
pub(crate) enum SecretShape {
    /// Any text on one line (an HMAC secret, a password).
    Line,
    /// Printable ASCII without spaces (it goes in a header).
    Token,
    /// An https URL (http only to a loopback host): the URL itself is the credential.
    Url,
}

/// `key` or `key_file` (exactly one when `required`, at most one otherwise), never echoed.
pub(crate) fn secret(
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
            (text.trim_end_matches(['\n', '\r']).to_owned(), f.path, from)
        }
    };
    if text.trim().is_empty() {
        r.fail(&path, format!("the {key} is empty{from}"));
        return None;
    }
    if text.trim() == MASK || text.trim() == "[set]" {
        r.fail(
            &path,
            format!(
                "the {key}{from} is the mask a shown configuration puts in its place, not a {key}"
            ),
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

pub(crate) fn is_loopback_host(host: &str) -> bool {
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
        if v.is_empty()
            || v.chars()
                .any(|ch| ch.is_whitespace() || ch.is_control() || "/@".contains(ch))
        {
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
            r.fail(
                &n.path,
                "must be one non-empty line (write null for no login)",
            );
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
                format!(
                    "{v:?} is not an email address (user@example.org, or Name <user@example.org>)"
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

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
