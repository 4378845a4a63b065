//! `api.rate_limit` (GCRA limits per client address and per key) and `api.webhooks` (signed webhook
//! routes and their secrets). A webhook secret is given as `secret` or `secret_file` (read here),
//! never both; it is never shown (`***`), and `***` is refused as one.

use crate::channels::MASK;
use crate::intel::read_key_file;
use crate::reader::{Node, Reader};
use ipnet::IpNet;
use sentinel_notify::config::Secret;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The most requests or burst a limit may name.
const MAX_COUNT: u64 = 1_000_000;

/// One GCRA limit: `count` requests per `per`, bursts of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Requests per `per` (written `rate: <count>/<period>`).
    #[serde(skip)]
    pub count: u32,
    /// The period of `count`.
    #[serde(skip)]
    pub per: Duration,
    /// As written, e.g. `50/s`.
    pub rate: RateText,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

/// A rate as shown: `<count>/<period>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateText(u32, Duration);

impl Serialize for RateText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let per = match self.1.as_secs() {
            1 if self.1.subsec_nanos() == 0 => "s".to_string(),
            60 if self.1.subsec_nanos() == 0 => "m".to_string(),
            3600 if self.1.subsec_nanos() == 0 => "h".to_string(),
            _ => humantime::format_duration(self.1).to_string(),
        };
        s.serialize_str(&format!("{}/{per}", self.0))
    }
}

/// `api.rate_limit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitConfig {
    /// Per client address (IPv6 per /64), checked before the key; `None`: off (written `off`).
    #[serde(serialize_with = "off_or")]
    pub per_ip: Option<RateLimit>,
    /// Per API key; `None`: off (written `off`).
    #[serde(serialize_with = "off_or")]
    pub per_key: Option<RateLimit>,
    /// Client networks never limited per address.
    pub exempt: Vec<IpNet>,
    /// Addresses (and keys) tracked at once.
    pub max_tracked: usize,
}

/// A limit as written, `off` when there is none (a null would not read back: the key has a
/// default).
fn off_or<S: Serializer>(l: &Option<RateLimit>, s: S) -> Result<S::Ok, S::Error> {
    match l {
        Some(l) => l.serialize(s),
        None => s.serialize_str("off"),
    }
}

/// `api.webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhooksConfig {
    /// `/webhook/github`'s secret (`None`: no such route).
    pub github: Option<Secret>,
    /// `/webhook/gitea`'s secret (`None`: no such route).
    pub gitea: Option<Secret>,
    /// `/webhook/generic`'s secret (`None`: no such route).
    pub generic: Option<Secret>,
    /// How far a generic timestamp may be from now; how long delivery ids are remembered.
    #[serde(with = "humantime_serde")]
    pub replay_window: Duration,
    /// Delivery ids remembered at once.
    pub max_deliveries: usize,
}

/// `api.rate_limit` under `api`.
pub(crate) fn rate_limit(r: &mut Reader, api: Option<&Node<'_>>) -> Option<RateLimitConfig> {
    let n = r.get(api, "rate_limit")?;
    if !r.known_keys(&n, &["per_ip", "per_key", "exempt", "max_tracked"]) {
        return None;
    }
    let per_ip = limit(r, &n, "per_ip");
    let per_key = limit(r, &n, "per_key");
    let exempt = r.get(Some(&n), "exempt").and_then(|e| {
        r.each(&e, |r, p| {
            let v = r.string(p)?.trim();
            match v
                .parse::<IpNet>()
                .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
            {
                Ok(net) => Some(net),
                Err(_) => {
                    r.fail(&p.path, format!("not a CIDR or an address: {v:?}"));
                    None
                }
            }
        })
    });
    let max_tracked = r
        .get(Some(&n), "max_tracked")
        .and_then(|m| r.int(&m, 1, 10_000_000));
    Some(RateLimitConfig {
        per_ip: per_ip?,
        per_key: per_key?,
        exempt: exempt?,
        max_tracked: max_tracked?,
    })
}

/// A limit (`{rate: 50/s, burst: 100}`) or `off`.
fn limit(r: &mut Reader, parent: &Node<'_>, key: &str) -> Option<Option<RateLimit>> {
    let n = r.get(Some(parent), key)?;
    match n.value {
        Value::String(s) if s.trim() == "off" => return Some(None),
        Value::Bool(false) => return Some(None),
        Value::Object(_) => {}
        _ => {
            r.fail(
                &n.path,
                "expected `off` or a mapping {rate: <count>/<period>, burst: <n>}",
            );
            return None;
        }
    }
    if !r.known_keys(&n, &["rate", "burst"]) {
        return None;
    }
    let rate = r.get(Some(&n), "rate").and_then(|t| {
        let text = r.string(&t)?.trim();
        match parse_rate(text) {
            Some(v) => Some(v),
            None => {
                r.fail(
                    &t.path,
                    format!(
                        "not a rate: {text:?} (write <count>/<period>, e.g. 50/s, 600/m, 100/10s; count 1..={MAX_COUNT})"
                    ),
                );
                None
            }
        }
    });
    let burst = r
        .get(Some(&n), "burst")
        .and_then(|b| r.int::<u32>(&b, 1, MAX_COUNT));
    let ((count, per), burst) = (rate?, burst?);
    Some(Some(RateLimit {
        count,
        per,
        rate: RateText(count, per),
        burst,
    }))
}

/// `<count>/<period>`: the period `s`, `m`, `h` or a duration (`10s`).
fn parse_rate(text: &str) -> Option<(u32, Duration)> {
    let (count, per) = text.split_once('/')?;
    let count: u32 = count.trim().parse().ok()?;
    if count == 0 || u64::from(count) > MAX_COUNT {
        return None;
    }
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => humantime::parse_duration(other).ok()?,
    };
    // The period between two requests must be at least a nanosecond, and a day is the longest
    // period that still limits a flood in any useful way.
    if per.is_zero() || per > Duration::from_secs(86_400) || per.as_nanos() < u128::from(count) {
        return None;
    }
    Some((count, per))
}

/// `api.webhooks` under `api`.
pub(crate) fn webhooks(r: &mut Reader, api: Option<&Node<'_>>) -> Option<WebhooksConfig> {
    let n = r.get(api, "webhooks")?;
    if !r.known_keys(
        &n,
        &[
            "github",
            "gitea",
            "generic",
            "replay_window",
            "max_deliveries",
        ],
    ) {
        return None;
    }
    let github = hook(r, &n, "github");
    let gitea = hook(r, &n, "gitea");
    let generic = hook(r, &n, "generic");
    let replay_window = r.get(Some(&n), "replay_window").and_then(|w| {
        let d = r.duration(&w)?;
        if d > Duration::from_secs(86_400) {
            r.fail(&w.path, "at most 24h");
            return None;
        }
        Some(d)
    });
    let max_deliveries = r
        .get(Some(&n), "max_deliveries")
        .and_then(|m| r.int(&m, 1, 10_000_000));
    Some(WebhooksConfig {
        github: github?,
        gitea: gitea?,
        generic: generic?,
        replay_window: replay_window?,
        max_deliveries: max_deliveries?,
    })
}

/// One webhook: null (no route) or `{secret: …}` / `{secret_file: …}`.
fn hook(r: &mut Reader, parent: &Node<'_>, key: &str) -> Option<Option<Secret>> {
    let Some(n) = r.optional(parent, key) else {
        return Some(None);
    };
    if !r.known_keys(&n, &["secret", "secret_file"]) {
        return None;
    }
    let value = r.optional(&n, "secret");
    let file = r.optional(&n, "secret_file");
    let (text, path, from) = match (value, file) {
        (Some(v), Some(_)) => {
            r.fail(
                &v.path,
                "`secret` and `secret_file` are both set: give one (the value, or the file holding it)",
            );
            return None;
        }
        (None, None) => {
            r.fail(
                &n.child_path("secret"),
                "missing: give `secret` or `secret_file` (or set the webhook to null: no route)",
            );
            return None;
        }
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
    let t = text.trim();
    if t.is_empty() {
        r.fail(&path, format!("the secret is empty{from}"));
        return None;
    }
    if t == MASK || t == "[set]" {
        r.fail(
            &path,
            format!("the secret{from} is the mask a shown configuration puts in its place, not a secret"),
        );
        return None;
    }
    if text.contains(['\n', '\r', '\0']) {
        r.fail(
            &path,
            format!("the secret{from} must be one line (the value is not shown)"),
        );
        return None;
    }
    // A short HMAC secret can be guessed offline from one signed delivery.
    if text.len() < 16 {
        r.fail(
            &path,
            format!("the secret{from} is shorter than 16 characters (the value is not shown)"),
        );
        return None;
    }
    Some(Some(Secret::new(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_count_per_period() {
        assert_eq!(parse_rate("50/s"), Some((50, Duration::from_secs(1))));
        assert_eq!(parse_rate("600/m"), Some((600, Duration::from_secs(60))));
        assert_eq!(parse_rate("100/10s"), Some((100, Duration::from_secs(10))));
        assert_eq!(parse_rate("0/s"), None);
        assert_eq!(parse_rate("50"), None);
        assert_eq!(parse_rate("50/fortnight"), None);
        assert_eq!(parse_rate("2000000/s"), None);
    }
}
