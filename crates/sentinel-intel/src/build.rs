//! [`build`]: the validated [`IntelConfig`] turned into the running investigation — the local
//! enrichers, the local feeds, and each remote provider with a key behind its cache, rate limiter,
//! retries and circuit breaker — and [`Intel`], the handle the daemon, the API and the command line
//! share: the investigator the pipeline runs, one-off lookups, and the parts' counters.

use crate::cache::AnswerCache;
use crate::config::{IntelConfig, ProviderSettings};
use crate::feeds::{FeedReport, FeedStats, Feeds};
use crate::guarded::{GuardSettings, GuardStats, Guarded};
use crate::history::History;
use crate::investigator::Investigator;
use crate::local::LocalContext;
use crate::provider::Provider;
use crate::providers::{http_client_via, AbuseIpDb, EnvProxy, Otx, VirusTotal};
use crate::CacheStats;
use sentinel_core::{
    Alert, AlertId, Contribution, Enricher, Evidence, Severity, Subject, Timestamp, TraceId,
};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// The investigation as configured. Clones share everything.
#[derive(Clone)]
pub struct Intel {
    investigator: Arc<Investigator>,
    providers: Vec<Guarded>,
    feeds: Feeds,
    cache: Arc<AnswerCache>,
    offline: bool,
    proxy: Option<String>,
}

impl std::fmt::Debug for Intel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intel")
            .field("offline", &self.offline)
            .field("providers", &self.provider_names())
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// Builds the investigation, with the source's history from `history` (the store) when given. Feeds
/// that did not load are in the reports (loud, not fatal: the file may appear later and is picked up
/// by the watcher); a provider that cannot be built (a bad base URL), an unusable `HTTPS_PROXY` or a
/// Redis URL that cannot be used is an error.
pub fn build(
    cfg: &IntelConfig,
    history: Option<Arc<dyn History>>,
) -> Result<(Intel, Vec<FeedReport>), String> {
    let cache = Arc::new(match &cfg.cache.redis {
        Some(url) => AnswerCache::with_redis(cfg.cache.max_entries, url, &cfg.cache.prefix)?,
        None => AnswerCache::memory(cfg.cache.max_entries),
    });
    let offline = cfg.is_offline();
    let mut providers = Vec::new();
    let mut proxy = None;
    if !offline {
        let via = EnvProxy::from_env()?;
        let client = http_client_via(via.as_ref())?;
        proxy = via.map(|p| p.shown());
        let remote: [(&str, &ProviderSettings); 3] = [
            ("abuseipdb", &cfg.abuseipdb),
            ("virustotal", &cfg.virustotal),
            ("otx", &cfg.otx),
        ];
        for (name, settings) in remote {
            if settings.key.is_none() {
                continue;
            }
            let provider: Arc<dyn Provider> = match name {
                "abuseipdb" => Arc::new(AbuseIpDb::new(settings, client.clone())?),
                "virustotal" => Arc::new(VirusTotal::new(settings, client.clone())?),
                _ => Arc::new(Otx::new(settings, client.clone())?),
            };
            providers.push(Guarded::new(
                provider,
                GuardSettings::from_config(settings, cfg),
                cache.clone(),
            ));
        }
    }
    let (feeds, reports) = Feeds::load(&cfg.feeds);
    // With the store's history, local context only classifies addresses (the store counts
    // offences, and a one-off lookup must not count as one); without it, it remembers alerts itself.
    let local = match &history {
        Some(_) => LocalContext::addresses_only(),
        None => LocalContext::new(
            i64::try_from(cfg.history_window.as_millis()).unwrap_or(i64::MAX),
            100_000,
        ),
    };
    let mut enrichers: Vec<Box<dyn Enricher>> = vec![Box::new(local), Box::new(feeds.clone())];
    enrichers.extend(
        providers
            .iter()
            .map(|g| Box::new(g.clone()) as Box<dyn Enricher>),
    );
    let remote = providers.len();
    let mut investigator = Investigator::new(enrichers, cfg.deadline)
        .offline(offline)
        .remote_providers(remote)
        .with_assets(cfg.assets.clone(), cfg.default_criticality)
        .with_concurrency(cfg.concurrency);
    if let Some(h) = history {
        investigator = investigator.with_history(h, cfg.history_window);
    }
    Ok((
        Intel {
            investigator: Arc::new(investigator),
            providers,
            feeds,
            cache,
            offline,
            proxy,
        },
        reports,
    ))
}

impl Intel {
    /// The proxy the providers are reached through (`scheme://host:port (VAR)`, no credentials), read
    /// from the environment when the investigation was built; `None`: direct, or offline.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// The investigator the pipeline's investigate stage runs.
    pub fn investigator(&self) -> Arc<Investigator> {
        self.investigator.clone()
    }

    /// The local feeds (for the reload watcher).
    pub fn feeds(&self) -> &Feeds {
        &self.feeds
    }

    /// Whether only local feeds and history are used.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// The remote providers in use, in the order they are asked.
    pub fn provider_names(&self) -> Vec<String> {
        self.providers.iter().map(|g| g.name().to_owned()).collect()
    }

    /// Every part's counters now.
    pub fn stats(&self) -> IntelStats {
        IntelStats {
            providers: self
                .providers
                .iter()
                .map(|g| ProviderStats {
                    name: g.name().to_owned(),
                    stats: g.stats(),
                })
                .collect(),
            cache: self.cache.stats(),
            feeds: self.feeds.stats(),
        }
    }

    /// What every provider says about `ip` and the risk an alert of `severity` from it would get: one
    /// investigation of a made-up alert (detector `lookup`), through the same cache, limits and
    /// correlation as the pipeline's, so the answer shows the cache state too.
    pub async fn lookup(&self, ip: IpAddr, severity: Severity) -> LookupReport {
        let score = severity_score(severity);
        let alert = Alert {
            id: AlertId::new(),
            ts: Timestamp::now(),
            detector: "lookup".into(),
            scenario: "intel_lookup".into(),
            severity,
            score,
            confidence: 0.5,
            subject: Subject::Ip(ip),
            reasons: Vec::new(),
            evidence: Vec::new(),
            trace_id: TraceId::new(),
        };
        let inv = self.investigator.investigate(alert).await;
        LookupReport {
            ip,
            offline: self.offline,
            assumed_alert: AssumedAlert {
                severity,
                score,
                confidence: 0.5,
            },
            evidence: inv.evidence,
            uncertainty: inv.uncertainty,
            risk_score: inv.risk_score,
            confidence: inv.confidence,
            contributions: inv.contributions,
        }
    }
}

/// The detector score a made-up alert of this severity carries (the middle of the severity's band).
fn severity_score(s: Severity) -> u8 {
    match s {
        Severity::Info => 10,
        Severity::Low => 30,
        Severity::Medium => 50,
        Severity::High => 70,
        Severity::Critical => 90,
    }
}

/// Every part's counters.
#[derive(Debug, Clone, Serialize)]
pub struct IntelStats {
    /// Each remote provider's.
    pub providers: Vec<ProviderStats>,
    /// The answer cache's.
    pub cache: CacheStats,
    /// Each local feed's.
    pub feeds: Vec<FeedStats>,
}

/// One remote provider's counters.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStats {
    /// The provider.
    pub name: String,
    /// Its counters.
    #[serde(flatten)]
    pub stats: GuardStats,
}

/// `sentinel intel lookup`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct LookupReport {
    /// The address looked up.
    pub ip: IpAddr,
    /// Only local feeds and history were asked.
    pub offline: bool,
    /// The alert the score assumes.
    pub assumed_alert: AssumedAlert,
    /// What each enricher said (remote providers' `details.cache` tells the cache state).
    pub evidence: Vec<Evidence>,
    /// Providers that did not answer, and why.
    pub uncertainty: Vec<String>,
    /// The risk score.
    pub risk_score: u8,
    /// The confidence.
    pub confidence: f32,
    /// How the score was made.
    pub contributions: Vec<Contribution>,
}

/// The made-up alert a lookup scores.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AssumedAlert {
    /// Its severity.
    pub severity: Severity,
    /// Its detector score.
    pub score: u8,
    /// Its detector confidence.
    pub confidence: f32,
}
