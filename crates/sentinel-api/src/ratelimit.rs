//! GCRA rate limits (`governor`): one keyed limiter per client address, checked before
//! authentication (a flood of bad keys costs the flooder a 429, not us an HMAC each), and one per API
//! key, checked after it (one busy key cannot starve the others). A refusal is a 429 with
//! `Retry-After` in whole seconds (at least 1), counted in `sentinel_api_rate_limited_total{by}` and
//! logged with `evt=rate_limited`.
//!
//! `/health` and `/ready` are never limited: an orchestrator's probe must not be refused because
//! someone else on its address is noisy. The client address is the TCP peer (`ConnectInfo`); a request
//! without one (a Unix-socket request, whose peer is checked by its credentials instead, or a router
//! driven in-process) is exempt from the per-address limit, as are the configured exempt networks.
//!
//! The keyed state is bounded: at most `max_tracked` addresses (or keys) are tracked; keys idle long
//! enough to be indistinguishable from fresh ones are swept every [`SWEEP_EVERY`] (and at once when
//! the table is full), and while it stays full a key not tracked yet shares one overflow bucket with
//! every other such key (counted in `sentinel_api_rate_overflow_total{by}`): memory cannot grow with
//! the number of addresses an attacker owns, and they cannot gain rate by spreading over more of them.

use crate::auth::Principal;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use ipnet::IpNet;
use sentinel_pipeline::metrics::Metrics;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// How often idle keys are swept from the keyed state.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A GCRA limit: `count` requests per `per`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed per `per` (sustained rate).
    pub count: u32,
    /// The period `count` is counted over.
    pub per: Duration,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

impl Limit {
    /// `count` per second with bursts of `burst`.
    pub fn per_second(count: u32, burst: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(1),
            burst,
        }
    }

    /// The governor quota (`None` for a zero count or period: such a limit is not applied).
    fn quota(&self) -> Option<Quota> {
        let count = self.count.max(1);
        let period = self.per.checked_div(count)?;
        let burst = NonZeroU32::new(self.burst.max(1))?;
        Some(Quota::with_period(period)?.allow_burst(burst))
    }
}

/// `api.rate_limit`: the limits per client address and per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSettings {
    /// The limit per client address (`None`: off). IPv6 addresses are limited per /64 (what one
    /// host or site usually gets), IPv4-mapped IPv6 as IPv4.
    pub per_ip: Option<Limit>,
    /// The limit per API key (`None`: off).
    pub per_key: Option<Limit>,
    /// Client networks never limited per address (their keys still are).
    pub exempt: Vec<IpNet>,
    /// The most addresses (and, separately, keys) tracked at once.
    pub max_tracked: usize,
}

impl Default for RateSettings {
    /// Off: the library default, so routers built in-process (tests, tools) are not throttled. The
    /// daemon sets the limits from its configuration (`api.rate_limit`, on by default there).
    fn default() -> Self {
        Self {
            per_ip: None,
            per_key: None,
            exempt: Vec::new(),
            max_tracked: 100_000,
        }
    }
}

/// A keyed state store with a cap on its keys: when full, keys not tracked yet share one overflow
/// bucket (see the module doc).
struct Bounded<K: Hash + Eq + Clone> {
    map: DashMapStateStore<K>,
    overflow: InMemoryState,
    cap: usize,
    /// Counts an overflow in the registry (`sentinel_api_rate_overflow_total`).
    on_overflow: Box<dyn Fn() + Send + Sync>,
}

impl<K: Hash + Eq + Clone> StateStore for Bounded<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // `len` and the insert are not atomic together: the cap may be passed by the requests racing
        // at the moment it is reached, a bound of the concurrency, not of the input.
        if self.map.len() < self.cap || self.map.contains_key(key) {
            self.map.measure_and_replace(key, f)
        } else {
            (self.on_overflow)();
            self.overflow.measure_and_replace(&NotKeyed::NonKey, f)
        }
    }
}

impl<K: Hash + Eq + Clone> governor::state::keyed::ShrinkableKeyedStateStore<K> for Bounded<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        governor::state::keyed::ShrinkableKeyedStateStore::retain_recent(&self.map, drop_below);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// One keyed limiter with its housekeeping.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, Bounded<K>, DefaultClock>,
    cap: usize,
    start: Instant,
    /// Milliseconds since `start` of the last sweep.
    last_sweep: AtomicU64,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(limit: Limit, cap: usize, on_overflow: Box<dyn Fn() + Send + Sync>) -> Option<Self> {
        let quota = limit.quota()?;
        let cap = cap.max(1);
        let store = Bounded {
            map: DashMapStateStore::default(),
            overflow: InMemoryState::default(),
            cap,
            on_overflow,
        };
        Some(Self {
            limiter: RateLimiter::new(quota, store, DefaultClock::default()),
            cap,
            start: Instant::now(),
            last_sweep: AtomicU64::new(0),
        })
    }

    /// `Ok` or the time to wait.
    fn check(&self, key: &K) -> Result<(), Duration> {
        self.sweep();
        let clock = self.limiter.clock();
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(clock.now()))
    }

    /// Drops idle keys every [`SWEEP_EVERY`], or every second while the table is full. One request
    /// does it (the one that wins the swap); the others go on.
    fn sweep(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep.load(Ordering::Relaxed);
        let every = if self.limiter.len() >= self.cap {
            1_000
        } else {
            u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(u64::MAX)
        };
        if now.saturating_sub(last) < every {
            return;
        }
        if self
            .last_sweep
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

/// The limiters of the API: one instance per daemon, shared by every front end (the REST router on
/// TCP and on the Unix socket, and the gRPC service), so a client's budget is the same whichever door
/// it uses — a flooder cannot double its rate by splitting it over REST and gRPC.
pub struct RateLimits {
    per_ip: Option<Keyed<IpAddr>>,
    per_key: Option<Keyed<String>>,
    exempt: Vec<IpNet>,
    counters: Arc<EdgeCounters>,
}

impl RateLimits {
    /// The limiters of `s`, counting refusals in `metrics` (`sentinel_api_rate_limited_total{by}`,
    /// `sentinel_api_rate_overflow_total{by}`). Make one per daemon and hand it to every front end
    /// ([`crate::router_with_limits`], the gRPC service).
    pub fn new(s: &RateSettings, metrics: &Arc<Metrics>) -> Arc<Self> {
        let counters = EdgeCounters::of(metrics);
        let overflow = |by: &'static str| -> Box<dyn Fn() + Send + Sync> {
            let c = counters.clone();
            Box::new(move || c.add(&c.rate_overflow, &[by], 1))
        };
        let per_ip = s
            .per_ip
            .and_then(|l| Keyed::new(l, s.max_tracked, overflow("ip")));
        let per_key = s
            .per_key
            .and_then(|l| Keyed::new(l, s.max_tracked, overflow("key")));
        Arc::new(Self {
            per_ip,
            per_key,
            exempt: s.exempt.clone(),
            counters,
        })
    }

    /// The limit per client address for a request from `ip`: `Ok` when it may go on (no limit
    /// configured, an exempt network, or within its budget), else the refusal (`TooManyRequests`
    /// with the whole seconds to wait), already counted and logged.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Some(keyed) = &self.per_ip else {
            return Ok(());
        };
        if self.exempt.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        let key = ip_key(ip);
        keyed
            .check(&key)
            .map_err(|wait| self.refuse("ip", &key.to_string(), wait))
    }

    /// The limit per API key for a request authenticated as `key_id` (the key's id, never the key):
    /// as [`RateLimits::check_ip`].
    pub fn check_key(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(keyed) = &self.per_key else {
            return Ok(());
        };
        // The map is keyed by owned strings; governor's `check_key` takes `&K`.
        let key = key_id.to_owned();
        keyed
            .check(&key)
            .map_err(|wait| self.refuse("key", key_id, wait))
    }

    fn refuse(&self, by: &'static str, who: &str, wait: Duration) -> ApiError {
        // Whole seconds, rounded up, at least 1: a client that waits what it is told succeeds.
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0))
            .max(1);
        self.counters.add(&self.counters.rate_limited, &[by], 1);
        tracing::debug!(evt = "rate_limited", by, who, retry_after = secs);
        ApiError::TooManyRequests { retry_after: secs }
    }
}

/// The key an address is limited under: IPv6 by its /64, IPv4-mapped IPv6 as IPv4.
pub(crate) fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Paths never limited (liveness and readiness must not lie).
fn never_limited(path: &str) -> bool {
    matches!(path, "/health" | "/ready")
}

/// Middleware before authentication: the limit per client address.
pub(crate) async fn per_ip(
    State(limits): State<Arc<RateLimits>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = peer {
        if !never_limited(req.uri().path()) {
            limits.check_ip(ip)?;
        }
    }
    Ok(next.run(req).await)
}

/// Middleware after authentication: the limit per API key (its id; the key itself is never kept).
pub(crate) async fn per_key(
    State(limits): State<Arc<RateLimits>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(p) = req.extensions().get::<Principal>() {
        limits.check_key(&p.key_id)?;
    }
    Ok(next.run(req).await)
}

/// Counters with labels, kept per [`Metrics`] registry and registered on it once: rate limiting
/// (`sentinel_api_rate_limited_total{by}`, `sentinel_api_rate_overflow_total{by}`) and webhooks
/// (`sentinel_webhook_rejected_total{source,reason}`, `sentinel_webhook_accepted_total{source}`).
///
/// Several routers may be built over one registry (TCP and Unix socket, tests): they share these
/// counters, so a family is rendered once.
#[derive(Debug)]
pub(crate) struct EdgeCounters {
    pub(crate) rate_limited: Family,
    pub(crate) rate_overflow: Family,
    pub(crate) webhook_rejected: Family,
    pub(crate) webhook_accepted: Family,
}

/// One counter family: name, help, label names, and the values by label values.
#[derive(Debug)]
pub(crate) struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }
}

type Registered = Mutex<Vec<(Weak<Metrics>, Arc<EdgeCounters>)>>;
static REGISTERED: Registered = Mutex::new(Vec::new());

impl EdgeCounters {
    /// The counters of `metrics`, made and registered on first use.
    pub(crate) fn of(metrics: &Arc<Metrics>) -> Arc<EdgeCounters> {
        let mut all = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|(m, _)| m.strong_count() > 0);
        if let Some((_, c)) = all
            .iter()
            .find(|(m, _)| std::ptr::eq(m.as_ptr(), Arc::as_ptr(metrics)))
        {
            return c.clone();
        }
        let c = Arc::new(EdgeCounters {
            rate_limited: Family::new(
                "sentinel_api_rate_limited",
                "Requests refused with 429 by a rate limit, by what was limited (ip, key).",
                &["by"],
            ),
            rate_overflow: Family::new(
                "sentinel_api_rate_overflow",
                "Requests checked against the shared overflow bucket because the table of tracked \
                 addresses or keys was full.",
                &["by"],
            ),
            webhook_rejected: Family::new(
                "sentinel_webhook_rejected",
                "Webhook deliveries refused, by source and reason.",
                &["source", "reason"],
            ),
            webhook_accepted: Family::new(
                "sentinel_webhook_accepted",
                "Webhook deliveries accepted (stored as events), by source.",
                &["source"],
            ),
        });
        // Rendered from the start at 0, so a dashboard sees the families before the first refusal.
        for by in ["ip", "key"] {
            c.add(&c.rate_limited, &[by], 0);
            c.add(&c.rate_overflow, &[by], 0);
        }
        let collector = Collector(c.clone());
        metrics.register(|r| r.register_collector(Box::new(collector)));
        all.push((Arc::downgrade(metrics), c.clone()));
        c
    }

    /// Adds `n` to `family{labels}`.
    pub(crate) fn add(&self, family: &Family, labels: &[&str], n: u64) {
        let mut v = family.values.lock().unwrap_or_else(PoisonError::into_inner);
        *v.entry(labels.iter().map(|s| (*s).to_owned()).collect())
            .or_insert(0) += n;
    }
}

#[derive(Debug)]
struct Collector(Arc<EdgeCounters>);

impl prometheus_client::collector::Collector for Collector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let c = &self.0;
        for f in [
            &c.rate_limited,
            &c.rate_overflow,
            &c.webhook_rejected,
            &c.webhook_accepted,
        ] {
            let values = f.values.lock().unwrap_or_else(PoisonError::into_inner);
            if values.is_empty() {
                continue;
            }
            let mut fam = encoder.encode_descriptor(
                f.name,
                f.help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (label_values, v) in values.iter() {
                let labels: Vec<(&str, &str)> = f
                    .labels
                    .iter()
                    .copied()
                    .zip(label_values.iter().map(String::as_str))
                    .collect();
                let counter = prometheus_client::metrics::counter::ConstCounter::new(*v);
                counter.encode(fam.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_keyed_by_its_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let m: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(m), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_full_table_sends_new_keys_to_one_shared_bucket() {
        let n = Arc::new(AtomicU64::new(0));
        let counted = n.clone();
        let on_overflow = Box::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let k: Keyed<u32> = Keyed::new(Limit::per_second(1, 2), 3, on_overflow).unwrap();
        for key in 0..3 {
            assert!(k.check(&key).is_ok());
        }
        // Keys 3.. are not tracked: they share one bucket of burst 2.
        assert!(k.check(&100).is_ok());
        assert!(k.check(&101).is_ok());
        assert!(k.check(&102).is_err(), "the overflow bucket is shared");
        assert_eq!(k.limiter.len(), 3, "the table never grows past its cap");
        assert_eq!(n.load(Ordering::Relaxed), 3);
        // A tracked key keeps its own bucket.
        assert!(k.check(&0).is_ok());
    }

    #[test]
    fn the_wait_is_reported() {
        let k: Keyed<u32> = Keyed::new(Limit::per_second(1, 1), 10, Box::new(|| ())).unwrap();
        assert!(k.check(&1).is_ok());
        let wait = k.check(&1).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }
}
