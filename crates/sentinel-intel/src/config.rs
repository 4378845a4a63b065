//! The investigation's own configuration type (`intel:` in `sentinel.yml`). The configuration crate reads
//! and validates the YAML into these values; [`crate::build`] turns them into the running investigator.
//! `Default` is the embedded default (offline: no provider has a key).

use crate::provider::{ApiKey, Quota};
use ipnet::IpNet;
use sentinel_core::Verdict;
use serde::{Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `intel`: how alerts are investigated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntelConfig {
    /// `intel.offline`: never ask a remote provider, even when keys are set. Offline is also what
    /// happens when no provider has a key ([`IntelConfig::is_offline`]).
    pub offline: bool,
    /// The longest one investigation may take; providers that have not answered by then become
    /// uncertainty flags.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Investigations in flight at once in the investigate stage.
    pub concurrency: usize,
    /// AbuseIPDB v2.
    pub abuseipdb: ProviderSettings,
    /// VirusTotal v3.
    pub virustotal: ProviderSettings,
    /// AlienVault OTX.
    pub otx: ProviderSettings,
    /// Retries of one provider within one investigation.
    pub retry: RetrySettings,
    /// The circuit breaker of each provider.
    pub breaker: BreakerSettings,
    /// The answer cache.
    pub cache: CacheSettings,
    /// Local feeds (IP/CIDR lists, netsets, CSV).
    pub feeds: Vec<FeedConfig>,
    /// How often feed files are checked for changes.
    #[serde(with = "humantime_serde")]
    pub feed_poll: Duration,
    /// Asset criticality by the alert's target.
    pub assets: Vec<AssetRule>,
    /// The criticality of a target no asset rule names.
    pub default_criticality: Criticality,
    /// How far back the source's history in the store counts.
    #[serde(with = "humantime_serde")]
    pub history_window: Duration,
}

impl IntelConfig {
    /// Offline: local feeds and history only. True when `offline` is set or no provider has a key.
    pub fn is_offline(&self) -> bool {
        self.offline
            || [&self.abuseipdb, &self.virustotal, &self.otx]
                .iter()
                .all(|p| p.key.is_none())
    }
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig {
            offline: false,
            deadline: Duration::from_millis(1500),
            concurrency: 64,
            abuseipdb: ProviderSettings {
                key: None,
                base_url: "https://api.abuseipdb.com".into(),
                timeout: Duration::from_secs(5),
                // The free plan: 1,000 checks a day.
                quota: Quota {
                    requests: 1000,
                    per: Duration::from_secs(86_400),
                    burst: 10,
                },
                ttl: Duration::from_secs(6 * 3600),
                negative_ttl: Duration::from_secs(3600),
                max_age_days: 90,
            },
            virustotal: ProviderSettings {
                key: None,
                base_url: "https://www.virustotal.com".into(),
                timeout: Duration::from_secs(5),
                // The public API: 4 lookups a minute.
                quota: Quota {
                    requests: 4,
                    per: Duration::from_secs(60),
                    burst: 4,
                },
                ttl: Duration::from_secs(24 * 3600),
                negative_ttl: Duration::from_secs(3600),
                max_age_days: 90,
            },
            otx: ProviderSettings {
                key: None,
                base_url: "https://otx.alienvault.com".into(),
                timeout: Duration::from_secs(5),
                // OTX: 10,000 requests an hour.
                quota: Quota {
                    requests: 10_000,
                    per: Duration::from_secs(3600),
                    burst: 20,
                },
                ttl: Duration::from_secs(6 * 3600),
                negative_ttl: Duration::from_secs(3600),
                max_age_days: 90,
            },
            retry: RetrySettings {
                attempts: 3,
                base: Duration::from_millis(200),
                max: Duration::from_secs(5),
            },
            breaker: BreakerSettings {
                failures: 5,
                cooldown: Duration::from_secs(30),
            },
            cache: CacheSettings {
                max_entries: 100_000,
                redis: None,
                prefix: "sentinel:intel:".into(),
            },
            feeds: Vec::new(),
            feed_poll: Duration::from_secs(30),
            assets: Vec::new(),
            default_criticality: Criticality::Medium,
            history_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// One remote provider's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderSettings {
    /// The API key; `None` leaves the provider off.
    pub key: Option<ApiKey>,
    /// Scheme, host and port (tests point it at a local server).
    pub base_url: String,
    /// One attempt's timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The provider's quota (the client never sends faster).
    pub quota: Quota,
    /// How long an answer is cached.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long a "knows nothing" answer is cached.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// AbuseIPDB's `maxAgeInDays` (reports older than this are not counted); unused by the others.
    pub max_age_days: u32,
}

/// Retries within one investigation: exponential backoff with full jitter, `Retry-After` honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetrySettings {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// The first backoff.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// The longest backoff.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

/// The circuit breaker: opens after `failures` failures in a row, half-opens after `cooldown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BreakerSettings {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before one trial request.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

/// The answer cache: bounded in memory, and Redis (shared by every node) when configured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheSettings {
    /// Entries kept in memory (least recently used forgotten first).
    pub max_entries: usize,
    /// `redis://…` of a shared cache.
    pub redis: Option<RedisUrl>,
    /// Prefix of every Redis key.
    pub prefix: String,
}

/// A Redis URL; its password never shows (`Debug`, `Display`, serialisation).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Wraps a URL (checked by the configuration: `redis://`; `rediss://` is refused, the client has no TLS).
    pub fn new(url: impl Into<String>) -> Self {
        RedisUrl(url.into())
    }

    /// The URL itself, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn masked(&self) -> String {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(s), Some(at)) if at > s + 3 => {
                let userinfo = &self.0[s + 3..at];
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{}{user}:***{}", &self.0[..s + 3], &self.0[at..])
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.masked())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

impl Serialize for ApiKey {
    /// Only that a key is set, never the key.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[set]")
    }
}

/// One local feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedConfig {
    /// Its name (evidence shows `feed:<name>`).
    pub name: String,
    /// The file (reloaded when it changes).
    pub path: PathBuf,
    /// How the file is written.
    pub format: FeedFormat,
    /// What being listed means.
    pub verdict: Verdict,
    /// The score a listed address gets, 0–100.
    pub score: u8,
}

/// How a feed file is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FeedFormat {
    /// One IP or CIDR per line; `#` and `;` start comments (FireHOL netsets, Spamhaus DROP/EDROP text,
    /// the Tor bulk exit list and most blocklists are this).
    List,
    /// Spamhaus DROP/EDROP in JSON lines (`{"cidr":"…","sblid":"…","rir":"…"}`, then a metadata line).
    SpamhausJson,
    /// Tor's exit-addresses document (`ExitAddress <ip> <date> <time>` lines).
    TorExitAddresses,
    /// Delimited text with a column mapping (CrowdSec `cscli decisions list -o csv`, blocklist exports).
    Csv(CsvMapping),
}

/// Which columns of a CSV feed mean what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CsvMapping {
    /// The column holding the IP or CIDR: a header name, or a 0-based index when there is no header.
    pub ip_column: String,
    /// A column holding a 0–100 score for the row, if any (overrides the feed's score).
    pub score_column: Option<String>,
    /// A column holding a reason or category, shown in the evidence.
    pub reason_column: Option<String>,
    /// The field separator.
    pub delimiter: char,
    /// Whether the first line names the columns.
    pub header: bool,
}

/// How much an asset matters: more critical targets raise the risk of an attack on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    /// A lab box, a test service.
    Low,
    /// The default.
    Medium,
    /// Production.
    High,
    /// The crown jewels.
    Critical,
}

impl Criticality {
    /// All levels, least critical first.
    pub const ALL: [Criticality; 4] = [
        Criticality::Low,
        Criticality::Medium,
        Criticality::High,
        Criticality::Critical,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Criticality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Criticality::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown criticality `{s}` (low, medium, high, critical)"))
    }
}

/// An asset: the targets (service or host names as events carry them in `target`) and addresses it is
/// known by, and how critical it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetRule {
    /// A name for the dashboard.
    pub name: String,
    /// Target names (exact, or a `*` glob) that are this asset.
    pub targets: Vec<String>,
    /// Addresses of this asset (an alert's target address inside one of them).
    pub nets: Vec<IpNet>,
    /// How critical it is.
    pub criticality: Criticality,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_passwords_do_not_show() {
        let u = RedisUrl::new("redis://:hunter2@127.0.0.1:6379/0");
        assert_eq!(u.masked(), "redis://:***@127.0.0.1:6379/0");
        assert!(!format!("{u:?} {u}").contains("hunter2"));
        let u = RedisUrl::new("redis://default:hunter2@h/1");
        assert_eq!(u.masked(), "redis://default:***@h/1");
        assert_eq!(
            RedisUrl::new("redis://127.0.0.1/").masked(),
            "redis://127.0.0.1/"
        );
    }

    #[test]
    fn offline_without_keys() {
        let mut c = IntelConfig::default();
        assert!(c.is_offline());
        c.otx.key = Some(ApiKey::new("k"));
        assert!(!c.is_offline());
        c.offline = true;
        assert!(c.is_offline());
        assert!(!serde_json::to_string(&c).unwrap().contains("\"k\""));
    }
}
