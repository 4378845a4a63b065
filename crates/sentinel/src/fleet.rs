//! The roles a process runs (`sentinel run --role sensor,investigator,responder,api`) and the bus
//! that joins them to the rest of the fleet (`bus: memory | redis://…`).
//!
//! With every role and the in-process bus (`sentinel run` on the defaults) the pipeline is the
//! embedded one of [`sentinel_pipeline::stages::start`]: bounded queues, no bus at all. Otherwise the
//! roles of [`sentinel_pipeline::roles`] run, joined by the bus: on Redis they reach the same roles
//! in other processes and on other hosts; on the in-process bus they can only reach each other, so
//! a process on it must run sensor, investigator and responder together.
//!
//! Each role's links count on their own [`LinkStats`] (exported per role as
//! `sentinel_bus_link_messages_total{role,outcome}`), the Redis bus's own counters as
//! `sentinel_bus_*_total`.

use anyhow::Context;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use sentinel_bus::{BusStats, RedisBus, RedisBusConfig};
use sentinel_config::{BusSetting, ValidatedConfig};
use sentinel_core::Bus;
use sentinel_pipeline::bus::MemoryBus;
use sentinel_pipeline::intake::Submission;
use sentinel_pipeline::links::wire;
use sentinel_pipeline::links::{BusLink, Idempotency, LinkCounts, LinkStats, SeenSet};
use sentinel_pipeline::metrics::Metrics;
use sentinel_pipeline::policy::ScenarioPolicy;
use sentinel_pipeline::recorder::Recorder;
use sentinel_pipeline::roles::{
    self, CollectorStages, InvestigatorStages, ResponderStages, Role, SensorStages,
};
use sentinel_pipeline::stages::{self, Detectors, Running, Stages};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The roles `sentinel run` may be given.
pub const ROLE_NAMES: [&str; 4] = ["sensor", "investigator", "responder", "api"];

/// What one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleSet {
    /// Reads sources and the API's events, detects, publishes alerts.
    pub sensor: bool,
    /// Investigates alerts (shared with the other investigators), decides, publishes plans.
    pub investigator: bool,
    /// Carries out the plans for its host, reverts them on expiry, reports its action records.
    pub responder: bool,
    /// Serves the query API and collects the responders' reports.
    pub api: bool,
}

impl RoleSet {
    /// Every role (`sentinel run` without `--role`).
    pub const ALL: RoleSet = RoleSet {
        sensor: true,
        investigator: true,
        responder: true,
        api: true,
    };

    /// Reads `--role` values (each may list several, comma-separated); none means every role.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<RoleSet, String> {
        if names.is_empty() {
            return Ok(RoleSet::ALL);
        }
        let mut r = RoleSet {
            sensor: false,
            investigator: false,
            responder: false,
            api: false,
        };
        for name in names.iter().flat_map(|n| n.as_ref().split(',')) {
            match name.trim() {
                "sensor" => r.sensor = true,
                "investigator" => r.investigator = true,
                "responder" => r.responder = true,
                "api" => r.api = true,
                "all" => r = RoleSet::ALL,
                other => {
                    return Err(format!(
                        "unknown role `{other}`: the roles are {} (or all)",
                        ROLE_NAMES.join(", ")
                    ))
                }
            }
        }
        Ok(r)
    }

    /// The names of the roles in the set.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [self.sensor, self.investigator, self.responder, self.api];
        ROLE_NAMES
            .iter()
            .zip(on)
            .filter_map(|(n, on)| on.then_some(*n))
            .collect()
    }

    fn pipeline_roles(&self) -> bool {
        self.sensor && self.investigator && self.responder
    }
}

/// How long a stopping process waits for Redis to take what its local buffer holds.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// How long a stopping process waits for its downstream roles to take what its upstream roles
/// published (in-process bus: what is not taken is lost with the process).
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// The bus of this process, and who it is in the fleet.
pub struct Fleet {
    /// This node's name (`node`, else the hostname).
    pub node: String,
    /// The roles this process runs.
    pub roles: RoleSet,
    bus: Arc<dyn Bus>,
    redis: Option<Arc<RedisBus>>,
    memory: Option<Arc<MemoryBus>>,
    idempotency: Arc<dyn Idempotency>,
    max_in_flight: usize,
    stats: Vec<(&'static str, Arc<LinkStats>)>,
    drains: Vec<tokio::task::JoinHandle<()>>,
    sealer: Option<Arc<wire::Sealer>>,
}

/// Reads `topics` of the in-process bus and drops what they carry.
async fn drain(
    memory: &Arc<MemoryBus>,
    topics: &[&str],
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut out = Vec::new();
    for t in topics {
        let mut rx = memory
            .subscribe(&sentinel_core::Topic((*t).to_owned()), "drop")
            .await
            .map_err(|e| anyhow::anyhow!("cannot read `{t}` on the in-process bus: {e}"))?;
        out.push(tokio::spawn(
            async move { while rx.recv().await.is_some() {} },
        ));
    }
    Ok(out)
}

/// A bus config for this node: consumer names `<node>-<pid>-<random>` (a container's pid is 1 on
/// every host; the random part keeps two of them apart).
pub fn redis_config(cfg: &ValidatedConfig, url: &str, node: &str) -> RedisBusConfig {
    let mut c = RedisBusConfig::new(url);
    c.prefix = cfg.fleet.prefix.clone();
    c.consumer = format!(
        "{node}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    );
    c.maxlen = cfg.fleet.stream_maxlen;
    c.claim_idle = cfg.fleet.claim_idle;
    c.buffer = cfg.fleet.buffer;
    // Alerts are work: those a sensor published before the first investigator ever ran are
    // investigated once one does (responders and API nodes start with what comes next).
    c.oldest_groups = vec![roles::INVESTIGATORS.to_owned()];
    c
}

/// This node's name: `node`, else the hostname, else `sentinel`.
pub fn node_name(cfg: &ValidatedConfig) -> String {
    cfg.node.clone().unwrap_or_else(|| {
        let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let h = h.trim();
        if h.is_empty() {
            "sentinel".to_owned()
        } else {
            h.to_owned()
        }
    })
}

impl Fleet {
    /// The bus the configuration names, for `roles`. A process on the in-process bus must run the
    /// three pipeline roles together (nothing else could take what one of them hands on).
    pub fn open(cfg: &ValidatedConfig, roles: RoleSet) -> anyhow::Result<Fleet> {
        let node = node_name(cfg);
        let max_in_flight = cfg.fleet.max_in_flight;
        match &cfg.bus {
            BusSetting::Memory => {
                let partial = roles.sensor || roles.investigator || roles.responder;
                if partial && !roles.pipeline_roles() {
                    anyhow::bail!(
                        "roles {} on `bus: memory`: the in-process bus joins only the roles of this \
                         process, so sensor, investigator and responder must run together. Set \
                         `bus: redis://…` (or BUS=redis) to share the work with other processes",
                        roles.names().join(",")
                    );
                }
                let memory = Arc::new(MemoryBus::new(cfg.pipeline.queue_capacity));
                Ok(Fleet {
                    node,
                    roles,
                    bus: memory.clone(),
                    redis: None,
                    memory: Some(memory),
                    idempotency: Arc::new(SeenSet::new(100_000)),
                    max_in_flight,
                    stats: Vec::new(),
                    drains: Vec::new(),
                    sealer: None,
                })
            }
            BusSetting::Redis(url) => {
                let sealer = match &cfg.fleet.secret {
                    Some(k) => Some(Arc::new(
                        wire::Sealer::new(k.expose().as_bytes())
                            .map_err(|e| anyhow::anyhow!("fleet.secret: {e}"))?,
                    )),
                    None => None,
                };
                let config = redis_config(cfg, url, &node);
                let redis = Arc::new(RedisBus::new(config).map_err(|e| {
                    anyhow::anyhow!("cannot use the bus {}: {e}", sentinel_config::mask_url(url))
                })?);
                // A claim outlives any handler; a mark outlives any redelivery.
                let deduper = redis.deduper(
                    cfg.fleet.claim_idle.max(Duration::from_secs(30)),
                    cfg.fleet.done_keep,
                );
                Ok(Fleet {
                    node,
                    roles,
                    bus: redis.clone(),
                    redis: Some(redis),
                    memory: None,
                    idempotency: Arc::new(deduper),
                    max_in_flight,
                    stats: Vec::new(),
                    drains: Vec::new(),
                    sealer,
                })
            }
        }
    }

    /// True when the roles run as the embedded pipeline (every role, in-process bus).
    pub fn embedded(&self) -> bool {
        self.memory.is_some() && self.roles == RoleSet::ALL
    }

    /// The Redis bus, when the fleet uses one.
    pub fn redis(&self) -> Option<&Arc<RedisBus>> {
        self.redis.as_ref()
    }

    fn link(&mut self, role: &'static str) -> BusLink {
        let stats = Arc::new(LinkStats::default());
        self.stats.push((role, stats.clone()));
        BusLink {
            bus: self.bus.clone(),
            idempotency: self.idempotency.clone(),
            stats,
            max_in_flight: self.max_in_flight,
            sealer: self.sealer.clone(),
        }
    }

    /// What each role's links counted.
    pub fn link_counts(&self) -> Vec<(&'static str, LinkCounts)> {
        self.stats.iter().map(|(r, s)| (*r, s.snapshot())).collect()
    }

    /// The Prometheus collector of the links' and the Redis bus's counters.
    pub fn collector(&self) -> FleetMetrics {
        FleetMetrics {
            links: self.stats.clone(),
            bus: self.redis.as_ref().map(|r| r.stats().clone()),
        }
    }

    /// Starts the pipeline this process runs: the embedded one, or its roles on the bus. The sender
    /// is the intake (a process without the sensor role has a closed one: its API refuses events
    /// with 503, they belong to a sensor).
    pub async fn start(
        &mut self,
        parts: Parts,
        capacity: usize,
    ) -> anyhow::Result<(mpsc::Sender<Submission>, Pipeline)> {
        let Parts {
            detectors,
            investigator,
            policy,
            ledger,
            notifier,
            recorder,
            metrics,
            redactor,
        } = parts;
        if self.embedded() {
            let ledger = ledger.context("the embedded pipeline needs the responder's ledger")?;
            let stages = Stages {
                detectors,
                investigator,
                policy,
                ledger,
                notifier,
                recorder,
                metrics,
                redactor,
            };
            let (tx, running) = stages::start(stages, capacity);
            return Ok((tx, Pipeline::Embedded(running)));
        }
        let mut running = Vec::new();
        // Consumers first: on the in-process bus a message published before its group exists is
        // refused.
        if self.roles.api && self.redis.is_some() {
            let link = self.link("api");
            let role = roles::collector(
                CollectorStages {
                    node: self.node.clone(),
                    recorder: recorder.clone(),
                    decisions: !self.roles.responder,
                },
                link,
            )
            .await
            .context("cannot start the API node's collector")?;
            running.push(("api", role));
        }
        if let Some(memory) = &self.memory {
            // In one process the store already holds every record: what is published for API
            // nodes elsewhere is read and dropped.
            self.drains = drain(memory, &[wire::INVESTIGATIONS, wire::DECISIONS]).await?;
        }
        if let (true, Some(ledger)) = (self.roles.responder, ledger) {
            let link = self.link("responder");
            let role = roles::responder(
                ResponderStages {
                    node: self.node.clone(),
                    mode: policy.mode(),
                    ledger,
                    notifier,
                    recorder: recorder.clone(),
                    metrics: metrics.clone(),
                },
                link,
                capacity,
            )
            .await
            .context("cannot start the responder")?;
            running.push(("responder", role));
        }
        if self.roles.investigator {
            let link = self.link("investigator");
            let role = roles::investigator(
                InvestigatorStages {
                    investigator,
                    policy,
                    recorder: recorder.clone(),
                    metrics: metrics.clone(),
                },
                link,
                capacity,
            )
            .await
            .context("cannot start the investigator")?;
            running.push(("investigator", role));
        }
        let intake = if self.roles.sensor {
            let link = self.link("sensor");
            let (tx, role) = roles::sensor(
                SensorStages {
                    node: Some(self.node.clone()),
                    detectors,
                    redactor,
                    recorder,
                    metrics,
                },
                link,
                capacity,
            );
            running.push(("sensor", role));
            tx
        } else {
            let (tx, _) = mpsc::channel(1);
            tx
        };
        tracing::info!(
            evt = "roles_started",
            node = %self.node,
            roles = %self.roles.names().join(","),
            bus = if self.redis.is_some() { "redis" } else { "memory" },
        );
        Ok((
            intake,
            Pipeline::Roles {
                roles: running,
                stats: self.stats.clone(),
            },
        ))
    }

    /// The reporter of a responder's later changes (expiries) for the API nodes, on a Redis bus.
    pub fn reporter(&mut self) -> Option<sentinel_pipeline::links::Reporter> {
        if self.redis.is_none() || !self.roles.responder {
            return None;
        }
        let link = self.link("expiry");
        Some(sentinel_pipeline::links::Reporter::new(
            link,
            self.node.clone(),
        ))
    }

    /// Closes the bus (after the pipeline has drained). What waits in the local buffer because
    /// Redis is away is given [`FLUSH_WAIT`] to go out; what cannot is logged as lost.
    pub async fn close(&self) {
        if let Some(r) = &self.redis {
            let left = r.flush(FLUSH_WAIT).await;
            if left > 0 {
                tracing::error!(
                    evt = "bus_messages_lost",
                    messages = left,
                    wait_ms = FLUSH_WAIT.as_millis() as u64,
                    "Redis did not come back before the stop: these messages were never published"
                );
            }
            r.close();
        }
        if let Some(m) = &self.memory {
            m.close();
        }
        for d in &self.drains {
            d.abort();
        }
    }
}

/// What the roles of a process are made of ([`Stages`], with a ledger only on a responder).
pub struct Parts {
    /// The detectors (sensor).
    pub detectors: Detectors,
    /// The investigator (investigator).
    pub investigator: Arc<sentinel_intel::Investigator>,
    /// The policy (investigator).
    pub policy: ScenarioPolicy,
    /// The action ledger (responder).
    pub ledger: Option<Arc<sentinel_respond::Ledger>>,
    /// Who to tell (responder).
    pub notifier: Box<dyn sentinel_core::Notifier>,
    /// Where records and their audit entries go.
    pub recorder: Recorder,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Masks what the detector derives from an event as posted (sensor).
    pub redactor: sentinel_core::Redactor,
}

/// The running pipeline of a process.
pub enum Pipeline {
    /// Every stage in this process, joined by bounded queues.
    Embedded(Running),
    /// Roles joined by the bus, upstream last (sensor after investigator after responder).
    Roles {
        /// The roles, in the order they were started.
        roles: Vec<(&'static str, Role)>,
        /// Each role's link counters.
        stats: Vec<(&'static str, Arc<LinkStats>)>,
    },
}

impl Pipeline {
    /// Stops taking new events (the sensor's intake, or the embedded pipeline's).
    pub fn close_intake(&self) {
        match self {
            Pipeline::Embedded(r) => r.close_intake(),
            Pipeline::Roles { roles, .. } => {
                for (name, r) in roles {
                    if *name == "sensor" {
                        r.stop();
                    }
                }
            }
        }
    }

    /// How many pipeline stage tasks run while the pipeline is whole (for the watchdog).
    pub fn stages(&self) -> u64 {
        match self {
            Pipeline::Embedded(_) => stages::STAGES,
            Pipeline::Roles { roles, .. } => roles
                .iter()
                .map(|(name, _)| match *name {
                    "sensor" => 1,
                    _ => 2,
                })
                .sum(),
        }
    }

    /// Drains and ends: upstream first (the sensor), each downstream role given up to
    /// [`DRAIN_WAIT`] to take what was published to it in this process before it stops reading.
    pub async fn join(self) {
        let (roles, stats) = match self {
            Pipeline::Embedded(r) => return r.join().await,
            Pipeline::Roles { roles, stats } => (roles, stats),
        };
        let count = |role: &str| {
            stats
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, s)| s.snapshot())
        };
        // Sensor, then investigator, then responder.
        for (name, role) in roles.into_iter().rev() {
            let upstream = match name {
                "investigator" => Some("sensor"),
                "responder" => Some("investigator"),
                _ => None,
            };
            if let (Some(up), Some(_)) = (upstream, count(name)) {
                let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
                while let (Some(u), Some(d)) = (count(up), count(name)) {
                    if d.received >= u.published || tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            role.stop();
            role.join().await;
            tracing::info!(evt = "role_stopped", role = name);
        }
    }
}

/// The Prometheus collector of [`Fleet::collector`].
#[derive(Debug)]
pub struct FleetMetrics {
    links: Vec<(&'static str, Arc<LinkStats>)>,
    bus: Option<Arc<BusStats>>,
}

type LinkPick = fn(&LinkCounts) -> u64;

const LINK_OUTCOMES: [(&str, LinkPick); 12] = [
    ("received", |c| c.received),
    ("malformed", |c| c.malformed),
    ("skipped", |c| c.skipped),
    ("duplicate", |c| c.duplicates),
    ("busy", |c| c.busy),
    ("acked", |c| c.acked),
    ("abandoned", |c| c.abandoned),
    ("published", |c| c.published),
    ("publish_failed", |c| c.publish_failed),
    ("bus_error", |c| c.bus_errors),
    ("poisoned", |c| c.poisoned),
    ("forged", |c| c.forged),
];

impl Collector for FleetMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.links.is_empty() {
            let mut family = encoder.encode_descriptor(
                "sentinel_bus_link_messages",
                "Messages a role's bus links handled, per role and outcome (received, malformed, \
                 skipped: for another host, duplicate: already handled, busy: held by another \
                 handler, acked, abandoned, published, publish_failed, bus_error, poisoned: \
                 delivered too many times and given up, forged: \
                 unsigned or signed with another key).",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (role, s) in &self.links {
                let c = s.snapshot();
                for (outcome, pick) in LINK_OUTCOMES {
                    ConstCounter::new(pick(&c))
                        .encode(family.encode_family(&[("role", *role), ("outcome", outcome)])?)?;
                }
            }
        }
        if let Some(bus) = &self.bus {
            let b = bus.snapshot();
            let totals: [(&str, &str, u64); 8] = [
                ("sentinel_bus_published", "Messages written to Redis (XADD answered).", b.published),
                ("sentinel_bus_delivered", "Messages handed to this process's consumers (first deliveries and reclaimed).", b.delivered),
                ("sentinel_bus_acked", "Messages acknowledged (XACK).", b.acked),
                ("sentinel_bus_reclaimed", "Pending messages taken over from an idle consumer (XAUTOCLAIM).", b.reclaimed),
                ("sentinel_bus_buffered", "Messages put in the local buffer while Redis was away.", b.buffered),
                ("sentinel_bus_buffer_overflow", "Messages refused because the local buffer was full (lost).", b.buffer_overflow),
                ("sentinel_bus_reconnects", "Connections to Redis made again after one was lost.", b.reconnects),
                ("sentinel_bus_refused", "Messages Redis refused, entries without a payload, and pending entries trimmed before their ack.", b.refused),
            ];
            for (name, help, v) in totals {
                let c = ConstCounter::new(v);
                c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
            }
            let g = ConstGauge::new(i64::try_from(b.waiting).unwrap_or(i64::MAX));
            g.encode(encoder.encode_descriptor(
                "sentinel_bus_buffer_waiting",
                "Messages in the local buffer now (Redis away).",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Puts every checkpoint the node's audit log signs on the fleet's [`CheckpointBoard`] (the log
/// stays here; its checkpoints are collected centrally), until `stop`. A checkpoint that cannot be
/// put (Redis away) is logged once per outage; the next one put covers it.
pub fn spawn_checkpoint_collection(
    fleet: &Fleet,
    log: &sentinel_audit::Log,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let redis = fleet.redis()?;
    let board = match sentinel_bus::CheckpointBoard::new(redis.config()) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(evt = "checkpoint_collection_failed", error = %e);
            return None;
        }
    };
    let node = fleet.node.clone();
    let mut checkpoints = log.subscribe_checkpoints();
    Some(tokio::spawn(async move {
        let mut failing = false;
        loop {
            let cp = checkpoints.borrow_and_update().clone();
            if cp.checkpoint.size > 0 {
                match board.put(&node, cp.checkpoint.size, &cp.text).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(
                            evt = "checkpoint_collection_recovered",
                            size = cp.checkpoint.size
                        );
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(evt = "checkpoint_collection_failed", size = cp.checkpoint.size, error = %e);
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                changed = checkpoints.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }))
}

/// Registers the fleet's collector on the daemon's metrics.
pub fn register_metrics(fleet: &Fleet, metrics: &Metrics) {
    let collector = fleet.collector();
    metrics.register(|r| r.register_collector(Box::new(collector)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn roles_parse_from_repeated_and_comma_separated_flags() {
        assert_eq!(RoleSet::parse::<&str>(&[]).unwrap(), RoleSet::ALL);
        let r = RoleSet::parse(&["sensor,investigator", "api"]).unwrap();
        assert_eq!(r.names(), vec!["sensor", "investigator", "api"]);
        assert!(!r.responder);
        assert_eq!(RoleSet::parse(&["all"]).unwrap(), RoleSet::ALL);
        let e = RoleSet::parse(&["sensor,colector"]).unwrap_err();
        assert!(e.contains("colector") && e.contains("investigator"), "{e}");
    }
}
