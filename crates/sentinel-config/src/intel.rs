//! `intel`: how alerts are investigated (remote providers, resilience, the answer cache, local feeds,
//! asset criticality), read and checked into the investigation crate's own [`IntelConfig`].
//!
//! Two things here are secrets, and no message, rendering or `Debug` output may show them: the
//! providers' API keys and a Redis URL's password. Values under those keys are therefore never echoed
//! in errors (not even "expected a string, found …"), and [`to_tree`] renders keys as `***`.
//!
//! The one read this crate does beyond its two files: `intel.<provider>.key_file`, a file holding a
//! key (a container secret, a file only the daemon's user can read), read while validating so a
//! missing or empty key file stops the start-up with its path named. Feed files, by contrast, are not
//! looked at here: they may appear after the daemon starts, and the feed loader reports them loudly.

use crate::reader::{Node, Reader};
use crate::validate::http_url;
use ipnet::IpNet;
use sentinel_core::Verdict;
use sentinel_intel::config::{
    AssetRule, BreakerSettings, CacheSettings, Criticality, CsvMapping, FeedConfig, FeedFormat,
    ProviderSettings, RedisUrl, RetrySettings,
};
use sentinel_intel::{ApiKey, IntelConfig, Quota};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest investigation deadline: a decision never waits longer than this for intelligence.
const MAX_DEADLINE: Duration = Duration::from_secs(60);
/// Local feeds at most (the prefix table marks each address with a bitmask of feeds).
const MAX_FEEDS: usize = 64;
/// A key file larger than this is not a key file (and `/dev/zero` must not hang the start-up).
pub(crate) const MAX_KEY_FILE: u64 = 4096;
/// What a rendered configuration shows in place of a key; refused as a key.
const KEY_MASK: &str = "***";
/// The longest any other intel duration may be (TTLs, timeouts, quota windows, cooldowns, polls,
/// the history window). Far beyond any use, and far below what added to "now" would overflow the
/// clock (humantime reads up to ~584 billion years).
const MAX_SPAN: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// A duration of at most [`MAX_SPAN`].
fn span(r: &mut Reader, n: &Node<'_>) -> Option<Duration> {
    let d = r.duration(n)?;
    if d > MAX_SPAN {
        r.fail(
            &n.path,
            format!(
                "must be at most 366d, got {}",
                humantime::format_duration(d)
            ),
        );
        return None;
    }
    Some(d)
}

/// Feed formats as written in the configuration.
const FEED_FORMATS: &str = "list, spamhaus_json, tor_exit_addresses, csv";

pub(crate) fn intel(r: &mut Reader, s: Option<&Node<'_>>) -> Option<IntelConfig> {
    let defaults = IntelConfig::default();
    let offline = r.get(s, "offline").and_then(|n| r.boolean(&n));
    let deadline = r.get(s, "deadline").and_then(|n| {
        let d = r.duration(&n)?;
        if d > MAX_DEADLINE {
            r.fail(
                &n.path,
                format!(
                    "must be at most 60s, got {}: a decision never waits longer than that for intelligence",
                    humantime::format_duration(d)
                ),
            );
            return None;
        }
        Some(d)
    });
    let concurrency = r.get(s, "concurrency").and_then(|n| r.int(&n, 1, 4096));
    let abuseipdb = provider(r, s, "abuseipdb", &defaults.abuseipdb, true);
    let virustotal = provider(r, s, "virustotal", &defaults.virustotal, false);
    let otx = provider(r, s, "otx", &defaults.otx, false);
    let retry = retry(r, s);
    let breaker = breaker(r, s);
    let cache = cache(r, s);
    let feeds = r.get(s, "feeds").and_then(|n| feeds(r, &n));
    let feed_poll = r.get(s, "feed_poll").and_then(|n| span(r, &n));
    let assets = r.get(s, "assets").and_then(|n| assets(r, &n));
    let default_criticality = r
        .get(s, "default_criticality")
        .and_then(|n| r.named::<Criticality>(&n));
    let history_window = r.get(s, "history_window").and_then(|n| span(r, &n));
    Some(IntelConfig {
        offline: offline?,
        deadline: deadline?,
        concurrency: concurrency?,
        abuseipdb: abuseipdb?,
        virustotal: virustotal?,
        otx: otx?,
        retry: retry?,
        breaker: breaker?,
        cache: cache?,
        feeds: feeds?,
        feed_poll: feed_poll?,
        assets: assets?,
        default_criticality: default_criticality?,
        history_window: history_window?,
    })
}

/// A string that may be a secret: `Some(None)` for null; the value is never put in a message.
fn secret_string<'t>(r: &mut Reader, n: &Node<'t>, none: &str) -> Option<Option<&'t str>> {
    match n.value {
        Value::Null => Some(None),
        Value::String(s) if s.trim().is_empty() => {
            r.fail(
                &n.path,
                format!("must not be empty (write null for {none})"),
            );
            None
        }
        Value::String(s) => Some(Some(s.as_str())),
        _ => {
            r.fail(&n.path, "must be a string (the value is not shown)");
            None
        }
    }
}

/// One provider's block. `max_age_days` is AbuseIPDB's alone; the others keep the default.
fn provider(
    r: &mut Reader,
    s: Option<&Node<'_>>,
    name: &str,
    defaults: &ProviderSettings,
    has_max_age: bool,
) -> Option<ProviderSettings> {
    let p = r.get(s, name);
    let p = p.as_ref();
    let key = api_key(r, p);
    let base_url = r.get(p, "base_url").and_then(|n| base_url(r, &n));
    let timeout = r.get(p, "timeout").and_then(|n| span(r, &n));
    let rate = r.get(p, "rate");
    let requests = r
        .get(rate.as_ref(), "requests")
        .and_then(|n| r.int::<u32>(&n, 1, u64::from(u32::MAX)));
    let per = r.get(rate.as_ref(), "per").and_then(|n| span(r, &n));
    let burst = r
        .get(rate.as_ref(), "burst")
        .and_then(|n| Some((r.int::<u32>(&n, 1, u64::from(u32::MAX))?, n.path)));
    if let (Some(requests), Some((burst, path))) = (requests, &burst) {
        if *burst > requests {
            r.fail(
                path,
                format!(
                    "must not exceed rate.requests ({requests}), got {burst}: a burst past the \
                     quota would be refused by the provider"
                ),
            );
        }
    }
    let ttl = r.get(p, "ttl").and_then(|n| span(r, &n));
    let negative_ttl = r
        .get(p, "negative_ttl")
        .and_then(|n| Some((span(r, &n)?, n.path)));
    if let (Some(ttl), Some((neg, path))) = (ttl, &negative_ttl) {
        if *neg > ttl {
            r.fail(
                path,
                format!(
                    "must not exceed ttl ({}), got {}: an answer that knows nothing is kept shorter, \
                     never longer",
                    humantime::format_duration(ttl),
                    humantime::format_duration(*neg)
                ),
            );
        }
    }
    let max_age_days = if has_max_age {
        r.get(p, "max_age_days").and_then(|n| r.int(&n, 1, 365))
    } else {
        Some(defaults.max_age_days)
    };
    let (burst, negative_ttl) = (burst?.0, negative_ttl?.0);
    if burst > requests? || negative_ttl > ttl? {
        return None;
    }
    Some(ProviderSettings {
        key: key?,
        base_url: base_url?,
        timeout: timeout?,
        quota: Quota {
            requests: requests?,
            per: per?,
            burst,
        },
        ttl: ttl?,
        negative_ttl,
        max_age_days: max_age_days?,
    })
}

/// `key` or `key_file` (not both): the key, checked, never shown.
fn api_key(r: &mut Reader, p: Option<&Node<'_>>) -> Option<Option<ApiKey>> {
    let key = r
        .get(p, "key")
        .and_then(|n| Some((secret_string(r, &n, "no key")?, n.path)));
    let file = r
        .get(p, "key_file")
        .and_then(|n| Some((r.optional_path(&n)?, n.path)));
    match (key?, file?) {
        ((None, _), (None, _)) => Some(None),
        ((Some(_), path), (Some(_), _)) => {
            r.fail(
                &path,
                "`key` and `key_file` are both set: give one (the key, or the file holding it)",
            );
            None
        }
        ((Some(k), path), (None, _)) => checked_key(r, &path, k, "").map(Some),
        ((None, _), (Some(file), path)) => {
            let text = read_key_file(r, &path, &file)?;
            let from = format!(" (in `{}`)", file.display());
            checked_key(r, &path, &text, &from).map(Some)
        }
    }
}

/// A key as a header value: one line of printable ASCII. Messages never include it.
fn checked_key(r: &mut Reader, path: &str, key: &str, from: &str) -> Option<ApiKey> {
    let key = key.trim();
    if key.is_empty() {
        r.fail(path, format!("the key is empty{from}"));
        return None;
    }
    if key == KEY_MASK || key == "[set]" {
        r.fail(
            path,
            format!("the key{from} is the mask a shown configuration puts in its place, not a key"),
        );
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        r.fail(
            path,
            format!(
                "the key{from} must be one line of printable ASCII without spaces (the value is not shown)"
            ),
        );
        return None;
    }
    Some(ApiKey::new(key))
}

/// The text of a key file, bounded. Errors name the file, never its contents. Only a regular file
/// is read: opening a FIFO blocks until a writer comes (the daemon would never start), and a device
/// is no key file.
pub(crate) fn read_key_file(r: &mut Reader, path: &str, file: &Path) -> Option<String> {
    let shown = file.display();
    let mut bytes = Vec::new();
    let regular = |m: std::fs::Metadata| {
        if m.is_file() {
            Ok(())
        } else {
            Err(std::io::Error::other("not a regular file"))
        }
    };
    let read = std::fs::metadata(file).and_then(regular).and_then(|()| {
        let f = std::fs::File::open(file)?;
        regular(f.metadata()?)?;
        f.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes)
    });
    if let Err(e) = read {
        r.fail(path, format!("cannot read `{shown}`: {e}"));
        return None;
    }
    if bytes.len() as u64 > MAX_KEY_FILE {
        r.fail(
            path,
            format!("`{shown}` is larger than {MAX_KEY_FILE} bytes: not a key file"),
        );
        return None;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(_) => {
            r.fail(path, format!("`{shown}` is not text"));
            None
        }
    }
}

/// A provider's base URL: https, or http to a loopback host (a local test server or proxy). Trailing
/// slashes are dropped so the clients can append their paths.
fn base_url(r: &mut Reader, n: &Node<'_>) -> Option<String> {
    let url = r.string(n)?.trim();
    if url.contains('@') {
        // Credentials in the URL would be shown wherever the URL is; the key goes in a header.
        r.fail(
            &n.path,
            format!(
                "`{}` must not carry user:password@ (the API key is sent in a header)",
                RedisUrl::new(url).masked()
            ),
        );
        return None;
    }
    let Some(parsed) = http_url(url).filter(|_| !url.contains(['?', '#'])) else {
        r.fail(
            &n.path,
            format!(
                "`{url}` must be an http(s) URL with a host, a port from 1 to 65535 if any, no \
                 query or fragment, and no spaces or backslashes"
            ),
        );
        return None;
    };
    if !parsed.https && !parsed.loopback {
        r.fail(
            &n.path,
            format!(
                "`{url}` must be https://: the API key would cross the network in clear (http:// \
                 only to a loopback host)"
            ),
        );
        return None;
    }
    Some(url.trim_end_matches('/').to_owned())
}

fn retry(r: &mut Reader, s: Option<&Node<'_>>) -> Option<RetrySettings> {
    let n = r.get(s, "retry");
    let n = n.as_ref();
    let attempts = r.get(n, "attempts").and_then(|a| r.int(&a, 1, 10));
    let base = r.get(n, "base").and_then(|b| span(r, &b));
    let max = r.get(n, "max").and_then(|m| Some((span(r, &m)?, m.path)));
    let (base, (max, path)) = (base?, max?);
    if base > max {
        r.fail(
            &path,
            format!(
                "must be at least retry.base ({}), got {}",
                humantime::format_duration(base),
                humantime::format_duration(max)
            ),
        );
        return None;
    }
    Some(RetrySettings {
        attempts: attempts?,
        base,
        max,
    })
}

fn breaker(r: &mut Reader, s: Option<&Node<'_>>) -> Option<BreakerSettings> {
    let n = r.get(s, "breaker");
    let n = n.as_ref();
    let failures = r.get(n, "failures").and_then(|f| r.int(&f, 1, 1000));
    let cooldown = r.get(n, "cooldown").and_then(|c| span(r, &c));
    Some(BreakerSettings {
        failures: failures?,
        cooldown: cooldown?,
    })
}

fn cache(r: &mut Reader, s: Option<&Node<'_>>) -> Option<CacheSettings> {
    let n = r.get(s, "cache");
    let n = n.as_ref();
    let max_entries = r
        .get(n, "max_entries")
        .and_then(|m| r.int(&m, 1, 100_000_000));
    let redis = r.get(n, "redis").and_then(|u| {
        let Some(url) = secret_string(r, &u, "no Redis")? else {
            return Some(None);
        };
        let url = RedisUrl::new(url.trim());
        if !redis_url_ok(url.expose()) {
            r.fail(
                &u.path,
                format!("`{}` must be a redis:// URL with a host", url.masked()),
            );
            return None;
        }
        if url.expose().starts_with("rediss://") {
            r.fail(
                &u.path,
                format!(
                    "`{}`: TLS to Redis (rediss://) is not built into Sentinel; use redis:// on a \
                     trusted network or through a TLS tunnel",
                    url.masked()
                ),
            );
            return None;
        }
        Some(Some(url))
    });
    let prefix = r.get(n, "prefix").and_then(|p| {
        let v = r.string(&p)?;
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            r.fail(
                &p.path,
                "must be a non-empty prefix without spaces (it keeps Sentinel's keys apart in a shared Redis)",
            );
            return None;
        }
        Some(v.to_owned())
    });
    Some(CacheSettings {
        max_entries: max_entries?,
        redis: redis?,
        prefix: prefix?,
    })
}

/// `redis://` or `rediss://` with a host (after any `user:password@`), nothing URL parsers disagree on
/// (`rediss://` is then refused with its own message: the client is built without TLS).
pub(crate) fn redis_url_ok(url: &str) -> bool {
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return false;
    }
    let Some(rest) = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    !host_port.is_empty() && !host_port.starts_with(':')
}

fn feeds(r: &mut Reader, n: &Node<'_>) -> Option<Vec<FeedConfig>> {
    let items = r.list(n)?;
    let mut ok = true;
    if items.len() > MAX_FEEDS {
        r.fail(
            &n.path,
            format!("lists {} feeds; at most {MAX_FEEDS}", items.len()),
        );
        ok = false;
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        // Names are checked for repeats even when the rest of the element is bad.
        if let Some(Value::String(name)) = item.value.get("name") {
            let path = format!("{}.name", item.path);
            if let Some(first) = seen.get(name) {
                r.fail(
                    &path,
                    format!("`{name}` is also the name of {first}: feed names must be unique"),
                );
                ok = false;
            } else {
                seen.insert(name.clone(), item.path.clone());
            }
        }
        match feed(r, item) {
            Some(f) => out.push(f),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn feed(r: &mut Reader, e: &Node<'_>) -> Option<FeedConfig> {
    let e = Some(e);
    let name = r.get(e, "name").and_then(|n| {
        let v = r.string(&n)?;
        let good = !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !good {
            r.fail(
                &n.path,
                format!("{v:?} must be 1 to 64 characters of a-z, 0-9, `_` and `-`"),
            );
            return None;
        }
        Some(v.to_owned())
    });
    let path = r.get(e, "path").and_then(|n| {
        let v = r.string(&n)?;
        if v.trim().is_empty() {
            r.fail(&n.path, "must name the feed's file");
            return None;
        }
        Some(PathBuf::from(v))
    });
    let format_node = r.get(e, "format");
    let format_name = format_node.as_ref().and_then(|n| r.string(n));
    let csv = e.and_then(|e| r.optional(e, "csv"));
    let format = match (format_name, format_node.as_ref()) {
        (Some(f), Some(fnode)) => {
            let plain = match f {
                "list" => Some(FeedFormat::List),
                "spamhaus_json" => Some(FeedFormat::SpamhausJson),
                "tor_exit_addresses" => Some(FeedFormat::TorExitAddresses),
                _ => None,
            };
            match (plain, f, &csv) {
                (Some(p), _, None) => Some(p),
                (Some(_), _, Some(c)) => {
                    r.fail(
                        &c.path,
                        format!("is only for format csv (this feed's format is {f})"),
                    );
                    None
                }
                (None, "csv", Some(c)) => csv_mapping(r, c).map(FeedFormat::Csv),
                (None, "csv", None) => {
                    r.fail(
                        &fnode.path,
                        "format csv needs a `csv` mapping (at least ip_column)",
                    );
                    None
                }
                (None, other, _) => {
                    r.fail(
                        &fnode.path,
                        format!("unknown feed format `{other}` ({FEED_FORMATS})"),
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let verdict = r.get(e, "verdict").and_then(|n| {
        let v = r.string(&n)?;
        match v {
            "malicious" => Some(Verdict::Malicious),
            "suspicious" => Some(Verdict::Suspicious),
            "benign" => Some(Verdict::Benign),
            other => {
                r.fail(
                    &n.path,
                    format!(
                        "unknown verdict `{other}` (malicious, suspicious, benign: what being listed means)"
                    ),
                );
                None
            }
        }
    });
    let score = r.get(e, "score").and_then(|n| r.int(&n, 0, 100));
    Some(FeedConfig {
        name: name?,
        path: path?,
        format: format?,
        verdict: verdict?,
        score: score?,
    })
}

fn csv_mapping(r: &mut Reader, c: &Node<'_>) -> Option<CsvMapping> {
    let header = match r.optional(c, "header") {
        None => Some(true),
        Some(n) => r.boolean(&n),
    };
    let column = |r: &mut Reader, n: &Node<'_>| -> Option<String> {
        match n.value {
            Value::Number(_) => r.int::<u32>(n, 0, 1023).map(|i| i.to_string()),
            Value::String(s) if !s.trim().is_empty() => {
                if header == Some(false) && s.trim().parse::<u32>().is_err() {
                    r.fail(
                        &n.path,
                        format!(
                            "{s:?} is a column name but `header` is false: give a 0-based index"
                        ),
                    );
                    return None;
                }
                Some(s.trim().to_owned())
            }
            _ => {
                r.fail(&n.path, "must be a column name or a 0-based column index");
                None
            }
        }
    };
    let ip_column = r.get(Some(c), "ip_column").and_then(|n| column(r, &n));
    let score_column = match r.optional(c, "score_column") {
        None => Some(None),
        Some(n) => column(r, &n).map(Some),
    };
    let reason_column = match r.optional(c, "reason_column") {
        None => Some(None),
        Some(n) => column(r, &n).map(Some),
    };
    let delimiter = match r.optional(c, "delimiter") {
        None => Some(','),
        Some(n) => {
            let v = r.string(&n)?;
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(d), None) if !matches!(d, '"' | '\n' | '\r') => Some(d),
                _ => {
                    r.fail(
                        &n.path,
                        format!(
                            "{v:?} must be one character (not a quote or a line break), e.g. \",\" or \"\\t\""
                        ),
                    );
                    None
                }
            }
        }
    };
    Some(CsvMapping {
        ip_column: ip_column?,
        score_column: score_column?,
        reason_column: reason_column?,
        delimiter: delimiter?,
        header: header?,
    })
}

fn assets(r: &mut Reader, n: &Node<'_>) -> Option<Vec<AssetRule>> {
    let items = r.list(n)?;
    r.unique_named(&items, "asset", asset)
}

fn asset(r: &mut Reader, e: &Node<'_>) -> Option<AssetRule> {
    let name = r.get(Some(e), "name").and_then(|n| {
        let v = r.string(&n)?.trim();
        if v.is_empty() {
            r.fail(&n.path, "must not be empty");
            return None;
        }
        Some(v.to_owned())
    });
    let targets = match r.optional(e, "targets") {
        None => Some(Vec::new()),
        Some(n) => r.each(&n, |r, t| {
            let v = r.string(t)?.trim();
            if v.is_empty() {
                r.fail(&t.path, "must not be empty");
                return None;
            }
            Some(v.to_owned())
        }),
    };
    let nets = match r.optional(e, "nets") {
        None => Some(Vec::new()),
        Some(n) => r.each(&n, |r, p| {
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
        }),
    };
    let criticality = r
        .get(Some(e), "criticality")
        .and_then(|n| r.named::<Criticality>(&n));
    if let (Some(t), Some(n)) = (&targets, &nets) {
        if t.is_empty() && n.is_empty() {
            r.fail(
                &e.path,
                "names no target and no net: it would never match (give `targets`, `nets` or both)",
            );
            return None;
        }
    }
    Some(AssetRule {
        name: name?,
        targets: targets?,
        nets: nets?,
        criticality: criticality?,
    })
}

/// `intel` as written in `sentinel.yml` (keys shown as `***`, a Redis password masked), so the
/// effective configuration reads back as configuration.
pub(crate) fn to_tree(c: &IntelConfig) -> Value {
    let d = |d: Duration| Value::String(humantime::format_duration(d).to_string());
    let provider = |p: &ProviderSettings, max_age: bool| {
        let mut m = Map::new();
        m.insert("key".into(), json!(p.key.as_ref().map(|_| KEY_MASK)));
        m.insert("key_file".into(), Value::Null);
        m.insert("base_url".into(), json!(p.base_url));
        m.insert("timeout".into(), d(p.timeout));
        m.insert(
            "rate".into(),
            json!({"requests": p.quota.requests, "per": d(p.quota.per), "burst": p.quota.burst}),
        );
        m.insert("ttl".into(), d(p.ttl));
        m.insert("negative_ttl".into(), d(p.negative_ttl));
        if max_age {
            m.insert("max_age_days".into(), json!(p.max_age_days));
        }
        Value::Object(m)
    };
    let feeds: Vec<Value> = c
        .feeds
        .iter()
        .map(|f| {
            let verdict = match f.verdict {
                Verdict::Malicious => "malicious",
                Verdict::Suspicious => "suspicious",
                Verdict::Benign => "benign",
                Verdict::Unknown => "unknown",
            };
            let mut m = Map::new();
            m.insert("name".into(), json!(f.name));
            m.insert("path".into(), json!(f.path.display().to_string()));
            let format = match &f.format {
                FeedFormat::List => "list",
                FeedFormat::SpamhausJson => "spamhaus_json",
                FeedFormat::TorExitAddresses => "tor_exit_addresses",
                FeedFormat::Csv(csv) => {
                    m.insert(
                        "csv".into(),
                        json!({
                            "ip_column": csv.ip_column,
                            "score_column": csv.score_column,
                            "reason_column": csv.reason_column,
                            "delimiter": csv.delimiter.to_string(),
                            "header": csv.header,
                        }),
                    );
                    "csv"
                }
            };
            m.insert("format".into(), json!(format));
            m.insert("verdict".into(), json!(verdict));
            m.insert("score".into(), json!(f.score));
            Value::Object(m)
        })
        .collect();
    let assets: Vec<Value> = c
        .assets
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "targets": a.targets,
                "nets": a.nets.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "criticality": a.criticality.as_str(),
            })
        })
        .collect();
    json!({
        "offline": c.offline,
        "deadline": d(c.deadline),
        "concurrency": c.concurrency,
        "abuseipdb": provider(&c.abuseipdb, true),
        "virustotal": provider(&c.virustotal, false),
        "otx": provider(&c.otx, false),
        "retry": {"attempts": c.retry.attempts, "base": d(c.retry.base), "max": d(c.retry.max)},
        "breaker": {"failures": c.breaker.failures, "cooldown": d(c.breaker.cooldown)},
        "cache": {
            "max_entries": c.cache.max_entries,
            "redis": c.cache.redis.as_ref().map(RedisUrl::masked),
            "prefix": c.cache.prefix,
        },
        "feeds": feeds,
        "feed_poll": d(c.feed_poll),
        "assets": assets,
        "default_criticality": c.default_criticality.as_str(),
        "history_window": d(c.history_window),
    })
}

/// Serialises `ValidatedConfig.intel` in the configuration's own shape ([`to_tree`]).
pub(crate) fn serialize<S: serde::Serializer>(c: &IntelConfig, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&to_tree(c), s)
}
