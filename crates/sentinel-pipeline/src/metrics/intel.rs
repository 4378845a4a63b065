//! The investigation's counters (`sentinel_intel_*`): each remote provider's (requests, failures by
//! kind, retries, waits, cache and breaker), the answer cache's and each local feed's. They are read
//! from [`sentinel_intel::Intel::stats`] at each scrape once the daemon has built the investigation
//! ([`IntelMetrics::set`]); nothing is rendered before. Labels are provider and feed names from the
//! configuration and the code's failure kinds (bounded), never input.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use sentinel_intel::{BreakerState, FeedStats, GuardStats, Intel};
use std::sync::{Arc, OnceLock};

/// Renders the investigation's counters once set.
#[derive(Debug, Clone, Default)]
pub struct IntelMetrics(Arc<OnceLock<Intel>>);

impl IntelMetrics {
    /// Renders `intel`'s counters from now on (the first one set stays).
    pub fn set(&self, intel: Intel) {
        let _ = self.0.set(intel);
    }
}

/// The breaker gauge's value: 0 closed, 1 half-open, 2 open.
fn breaker_value(s: BreakerState) -> i64 {
    match s {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

type ProviderPick = fn(&GuardStats) -> u64;

/// Per-provider counters: name without `_total`, help, value.
const PROVIDER_COUNTERS: [(&str, &str, ProviderPick); 9] = [
    (
        "sentinel_intel_provider_requests",
        "Requests sent to a threat-intelligence provider (retries included), per provider.",
        |s| s.requests,
    ),
    (
        "sentinel_intel_provider_successes",
        "Provider requests that brought an answer, per provider.",
        |s| s.successes,
    ),
    (
        "sentinel_intel_provider_retries",
        "Provider requests that were retries, per provider.",
        |s| s.retries,
    ),
    (
        "sentinel_intel_provider_rate_limited_waits",
        "Times a provider's rate limit made a request wait, per provider.",
        |s| s.rate_limited_waits,
    ),
    (
        "sentinel_intel_provider_fast_fails",
        "Lookups refused without asking the provider (circuit open, or a wait beyond the deadline), per provider.",
        |s| s.fast_fails,
    ),
    (
        "sentinel_intel_provider_cache_hits",
        "Lookups answered from the cache, per provider.",
        |s| s.cache_hits,
    ),
    (
        "sentinel_intel_provider_cache_misses",
        "Lookups the cache could not answer, per provider.",
        |s| s.cache_misses,
    ),
    (
        "sentinel_intel_provider_coalesced",
        "Lookups that joined a request already in flight for the same address, per provider.",
        |s| s.coalesced,
    ),
    (
        "sentinel_intel_provider_breaker_opens",
        "Times a provider's circuit breaker opened, per provider.",
        |s| s.breaker_opens,
    ),
];

/// Failures by kind, as labelled.
fn failure_kinds(s: &GuardStats) -> [(&'static str, u64); 7] {
    let f = s.failures;
    [
        ("rate_limited", f.rate_limited),
        ("unauthorized", f.unauthorized),
        ("status", f.status),
        ("malformed", f.malformed),
        ("timeout", f.timeout),
        ("transport", f.transport),
        ("not_applicable", f.not_applicable),
    ]
}

type FeedPick = fn(&FeedStats) -> u64;

impl Collector for IntelMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(intel) = self.0.get() else {
            return Ok(());
        };
        let stats = intel.stats();

        for (name, help, pick) in PROVIDER_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in &stats.providers {
                let labels = [("provider", p.name.as_str())];
                ConstCounter::new(pick(&p.stats)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "sentinel_intel_provider_failures",
            "Provider requests that failed, per provider and kind (rate_limited, unauthorized, status, malformed, timeout, transport, not_applicable).",
            None,
            MetricType::Counter,
        )?;
        for p in &stats.providers {
            for (kind, v) in failure_kinds(&p.stats) {
                let labels = [("provider", p.name.as_str()), ("kind", kind)];
                ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "sentinel_intel_provider_breaker_state",
            "A provider's circuit breaker now: 0 closed, 1 half-open, 2 open.",
            None,
            MetricType::Gauge,
        )?;
        for p in &stats.providers {
            let labels = [("provider", p.name.as_str())];
            ConstGauge::new(breaker_value(p.stats.breaker))
                .encode(family.encode_family(&labels)?)?;
        }

        let c = &stats.cache;
        let entries = ConstGauge::new(c.entries as i64);
        entries.encode(encoder.encode_descriptor(
            "sentinel_intel_cache_entries",
            "Provider answers held in the in-memory cache (expired ones until looked up or evicted).",
            None,
            entries.metric_type(),
        )?)?;
        let cache: [(&str, &str, u64); 5] = [
            (
                "sentinel_intel_cache_memory_hits",
                "Cache lookups answered from memory.",
                c.memory_hits,
            ),
            (
                "sentinel_intel_cache_redis_hits",
                "Cache lookups answered from Redis after a memory miss.",
                c.redis_hits,
            ),
            (
                "sentinel_intel_cache_misses",
                "Cache lookups answered nowhere.",
                c.misses,
            ),
            (
                "sentinel_intel_cache_redis_errors",
                "Redis operations of the cache that failed (a failed read counts as a miss).",
                c.redis_errors,
            ),
            (
                "sentinel_intel_cache_evictions",
                "Cached answers forgotten to stay within cache.max_entries.",
                c.evictions,
            ),
        ];
        for (name, help, v) in cache {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }

        // Malformed lines describe the file served now (a fixed file brings them down): a gauge.
        let feed_gauges: [(&str, &str, FeedPick); 2] = [
            (
                "sentinel_intel_feed_entries",
                "Addresses and networks a local feed serves now, per feed.",
                |f| f.entries as u64,
            ),
            (
                "sentinel_intel_feed_malformed_lines",
                "Lines of a local feed's served file that could not be read, per feed.",
                |f| f.malformed,
            ),
        ];
        let feed_counters: [(&str, &str, FeedPick); 2] = [
            (
                "sentinel_intel_feed_load_errors",
                "Loads and reloads of a local feed that failed (unreadable, nothing listed), per feed.",
                |f| f.load_errors,
            ),
            (
                "sentinel_intel_feed_reloads",
                "Successful reloads of a local feed after its first load, per feed.",
                |f| f.reloads,
            ),
        ];
        for (name, help, pick) in feed_gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for f in &stats.feeds {
                let labels = [("feed", f.name.as_str())];
                ConstGauge::new(pick(f) as i64).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, pick) in feed_counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for f in &stats.feeds {
                let labels = [("feed", f.name.as_str())];
                ConstCounter::new(pick(f)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "sentinel_intel_feed_loaded_timestamp_seconds",
            "When a local feed's served contents were loaded (Unix seconds), per feed; absent until it first loads.",
            None,
            MetricType::Gauge,
        )?;
        for f in &stats.feeds {
            if let Some(ms) = f.loaded_at_ms {
                let labels = [("feed", f.name.as_str())];
                ConstGauge::new(ms as f64 / 1000.0).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "sentinel_intel_feed_load_duration_seconds",
            "How long a local feed's last successful load took (reading, parsing, indexing), per feed.",
            None,
            MetricType::Gauge,
        )?;
        for f in &stats.feeds {
            let labels = [("feed", f.name.as_str())];
            ConstGauge::new(f.last_load_ms as f64 / 1000.0)
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::tests::{parse, sample};
    use crate::metrics::Metrics;
    use sentinel_core::Severity;
    use sentinel_intel::{ApiKey, IntelConfig};
    use sentinel_testkit::ti::{Behaviour, FakeProvider, TiKind};
    use std::net::IpAddr;

    /// The counters are read from the real investigation: nothing before it is set, then lookups
    /// through a real provider client against a fake AbuseIPDB move requests, successes, cache misses
    /// and hits, a 401 counts as an unauthorized failure, and a feed file shows its entries and
    /// malformed lines.
    #[tokio::test]
    async fn intel_counters_follow_real_lookups() {
        let m = Metrics::new();
        assert!(!m.render().contains("sentinel_intel_"), "{}", m.render());

        let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
        let listed: IpAddr = "203.0.113.7".parse().unwrap();
        let refused: IpAddr = "198.51.100.9".parse().unwrap();
        fake.set(listed, Behaviour::listed(90, 40));
        fake.set(refused, Behaviour::Status(401));
        let dir = tempfile::tempdir().unwrap();
        let feed = dir.path().join("level1.netset");
        std::fs::write(&feed, "# FireHOL level1\n203.0.113.0/24\nnot-an-address\n").unwrap();

        let mut cfg = IntelConfig::default();
        cfg.abuseipdb.key = Some(ApiKey::new(fake.key()));
        cfg.abuseipdb.base_url = fake.base_url();
        cfg.retry.attempts = 1;
        cfg.feeds = vec![sentinel_intel::config::FeedConfig {
            name: "firehol_level1".into(),
            path: feed,
            format: sentinel_intel::config::FeedFormat::List,
            verdict: sentinel_core::Verdict::Malicious,
            score: 90,
        }];
        let (intel, _) = sentinel_intel::build(&cfg, None).unwrap();
        m.intel.set(intel.clone());

        let e = parse(&m.render());
        let p = [("provider", "abuseipdb")];
        assert_eq!(
            sample(&e, "sentinel_intel_provider_requests_total", &p),
            Some(0.0)
        );
        assert_eq!(
            sample(&e, "sentinel_intel_provider_breaker_state", &p),
            Some(0.0)
        );

        intel.lookup(listed, Severity::High).await;
        intel.lookup(listed, Severity::High).await;
        intel.lookup(refused, Severity::High).await;
        let text = m.render();
        let e = parse(&text);
        let want = [
            ("sentinel_intel_provider_requests_total", 2.0),
            ("sentinel_intel_provider_successes_total", 1.0),
            ("sentinel_intel_provider_cache_hits_total", 1.0),
            ("sentinel_intel_provider_cache_misses_total", 2.0),
        ];
        for (family, v) in want {
            assert_eq!(sample(&e, family, &p), Some(v), "{family}: {text}");
        }
        assert_eq!(
            sample(
                &e,
                "sentinel_intel_provider_failures_total",
                &[("provider", "abuseipdb"), ("kind", "unauthorized")]
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &e,
                "sentinel_intel_provider_failures_total",
                &[("provider", "abuseipdb"), ("kind", "timeout")]
            ),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&e, "sentinel_intel_cache_memory_hits_total", &[]),
            Some(1.0)
        );
        assert_eq!(sample(&e, "sentinel_intel_cache_entries", &[]), Some(1.0));
        let f = [("feed", "firehol_level1")];
        assert_eq!(
            sample(&e, "sentinel_intel_feed_entries", &f),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&e, "sentinel_intel_feed_malformed_lines", &f),
            Some(1.0),
            "{text}"
        );
        assert!(
            sample(&e, "sentinel_intel_feed_loaded_timestamp_seconds", &f).unwrap() > 1.0e9,
            "{text}"
        );
        assert!(
            text.contains("# HELP sentinel_intel_provider_breaker_state A provider's circuit breaker now: 0 closed, 1 half-open, 2 open.\n"),
            "{text}"
        );
        assert!(!text.contains(fake.key()), "{text}");
        assert_eq!(fake.hits(listed), 1);
    }
}
