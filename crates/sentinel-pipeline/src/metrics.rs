//! Sentinel's metrics, kept in one [`prometheus_client`] registry and rendered at `/metrics` in the
//! Prometheus text format (0.0.4) by the library's encoder.
//!
//! Each crate that owns metrics registers them: the pipeline its counters, stage latency histograms and
//! queue depths; the store writer its batch histogram ([`sentinel_store::WriterMonitor::register_metrics`]);
//! the log sources their own counters, read at scrape time ([`LogSources`], [`Fail2banFilters`]). Metric
//! names and label sets are a user contract (README): they do not change. Labels come from the code or the
//! configuration (bounded), never from input. This module never reads a queue's items or a source's data,
//! only their counts.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter as Atomic};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sentinel_core::tasks::Tasks;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

mod intel;
mod snapshot;
mod sources;
pub use intel::IntelMetrics;
pub use snapshot::{FilterStats, HttpIntakeStats, ScenarioStats, SourceStats, SourcesSnapshot};
pub use sources::{Fail2banFilters, LogSources, SessionReading, SourceReading};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A monotonically increasing counter (a [`prometheus_client`] counter; clones share the value).
#[derive(Debug, Default, Clone)]
pub struct Counter(Atomic<u64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
    /// Sets the value (for counters mirrored from a component that counts on its own).
    pub fn set(&self, v: u64) {
        self.0.inner().store(v, Ordering::Relaxed);
    }
}

/// Help texts of the labelled counter families the code uses (by name without `sentinel_` and `_total`).
const LABELED_HELP: &[(&str, &str)] = &[
    (
        "log_lines_unparsed_by_reason",
        "Log lines no parser understood (or that said nothing of interest), by reason.",
    ),
    ("alerts_by_scenario", "Scenario alerts raised, by scenario."),
];

/// Counters with one label, e.g. unparsed lines by reason. The label set is small and bounded by the
/// code (reasons, scenario names), never by input. A family is rendered from its first sample on.
#[derive(Debug, Clone)]
pub struct Labeled {
    key: &'static str,
    families: Arc<Mutex<BTreeMap<&'static str, BTreeMap<String, Counter>>>>,
}

impl Labeled {
    /// Counters labelled `key="…"`.
    pub fn new(key: &'static str) -> Self {
        Self {
            key,
            families: Arc::default(),
        }
    }

    fn counter(&self, name: &'static str, label: &str) -> Counter {
        let mut m = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        let family = m.entry(name).or_default();
        match family.get(label) {
            Some(c) => c.clone(),
            None => family.entry(label.to_owned()).or_default().clone(),
        }
    }

    /// Adds `n` to counter `sentinel_{name}_total{key="label"}`.
    pub fn add(&self, name: &'static str, label: &str, n: u64) {
        self.counter(name, label).add(n);
    }

    /// Sets counter `sentinel_{name}_total{key="label"}`.
    pub fn set(&self, name: &'static str, label: &str, v: u64) {
        self.counter(name, label).set(v);
    }

    /// Every label of family `name` with its value, sorted by label.
    pub fn family(&self, name: &str) -> Vec<(String, u64)> {
        let m = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        m.get(name)
            .map(|f| f.iter().map(|(l, c)| (l.clone(), c.get())).collect())
            .unwrap_or_default()
    }

    /// The value of `sentinel_{name}_total{key="label"}` (0 when never counted).
    pub fn get(&self, name: &'static str, label: &str) -> u64 {
        let m = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        m.get(name)
            .and_then(|f| f.get(label))
            .map_or(0, Counter::get)
    }
}

impl Collector for Labeled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.families.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, family) in m.iter() {
            let full = format!("sentinel_{name}");
            let help = LABELED_HELP
                .iter()
                .find(|(n, _)| n == name)
                .map_or("", |(_, h)| *h);
            let mut family_encoder =
                encoder.encode_descriptor(&full, help, None, MetricType::Counter)?;
            for (label, c) in family {
                let labels = [(self.key, label.as_str())];
                c.0.encode(family_encoder.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Lines one source handed to one parser (a fail2ban filter or a built-in format): how many it matched and
/// how many it did not. A filter that never matches shows here as a source whose `matched` stays at 0.
#[derive(Debug, Default)]
pub struct LineCounts {
    /// Lines the parser understood (for a fail2ban filter: a failregex matched).
    pub matched: Counter,
    /// Lines it did not (no match, ignored, malformed).
    pub unmatched: Counter,
    /// [`LineCounts::unmatched`] by reason (reasons are code constants: bounded).
    reasons: Mutex<BTreeMap<&'static str, u64>>,
}

impl LineCounts {
    /// Counts one line the parser did not match, for `reason` (a code constant).
    pub fn unmatched_because(&self, reason: &'static str) {
        self.unmatched.inc();
        let mut m = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
        *m.entry(reason).or_default() += 1;
    }

    /// The unmatched lines counted with [`LineCounts::unmatched_because`], by reason.
    pub fn unmatched_by_reason(&self) -> Vec<(&'static str, u64)> {
        let m = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter().map(|(r, n)| (*r, *n)).collect()
    }
}

/// A `(source, filter)` label pair.
type SourceFilter = (String, String);

/// [`LineCounts`] per `(source, filter)`; the set is fixed by the configuration, not by input.
#[derive(Debug, Clone, Default)]
pub struct SourceLines(Arc<Mutex<BTreeMap<SourceFilter, Arc<LineCounts>>>>);

impl SourceLines {
    /// Every `(source, filter)` and its counters, sorted.
    pub fn all(&self) -> Vec<(SourceFilter, Arc<LineCounts>)> {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The counters of `(source, filter)`, created at zero (so they are rendered before the first line).
    pub fn counts(&self, source: &str, filter: &str) -> Arc<LineCounts> {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.entry((source.to_owned(), filter.to_owned()))
            .or_default()
            .clone()
    }
}

impl Collector for SourceLines {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if m.is_empty() {
            return Ok(());
        }
        type Pick = fn(&LineCounts) -> &Counter;
        let families: [(&str, &str, Pick); 2] = [
            (
                "sentinel_source_lines_matched",
                "Lines a source's parser (fail2ban filter or format) matched, per source and filter.",
                |c| &c.matched,
            ),
            (
                "sentinel_source_lines_unmatched",
                "Lines a source's parser did not match, per source and filter.",
                |c| &c.unmatched,
            ),
        ];
        for (name, help, pick) in families {
            let mut family_encoder =
                encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for ((source, filter), c) in m.iter() {
                let labels = [("source", source.as_str()), ("filter", filter.as_str())];
                pick(c).0.encode(family_encoder.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A pipeline stage, as labelled in `sentinel_stage_latency_seconds{stage="…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Heuristic and scenarios: an event in, its alerts handed on.
    Detect,
    /// An alert in, its investigation handed on.
    Investigate,
    /// An investigation in, its plan handed on.
    Decide,
    /// A plan in, its actions recorded and its notice handed on.
    Act,
    /// A notice in, sent.
    Notify,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Detect,
        Stage::Investigate,
        Stage::Decide,
        Stage::Act,
        Stage::Notify,
    ];

    /// The `stage` label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Detect => "detect",
            Stage::Investigate => "investigate",
            Stage::Decide => "decide",
            Stage::Act => "act",
            Stage::Notify => "notify",
        }
    }
}

/// Upper bounds (seconds) of the stage latency buckets: from tens of microseconds (a policy decision) to
/// seconds (an investigation waiting on enrichers).
const STAGE_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// One latency histogram per stage, all present (at 0) from the start.
#[derive(Debug, Clone)]
struct StageLatency([Histogram; 5]);

impl Default for StageLatency {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Histogram::new(STAGE_BUCKETS)))
    }
}

impl Collector for StageLatency {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family_encoder = encoder.encode_descriptor(
            "sentinel_stage_latency_seconds",
            "Seconds from a stage receiving an item to handing it on, per stage.",
            None,
            MetricType::Histogram,
        )?;
        for (stage, h) in Stage::ALL.iter().zip(&self.0) {
            let labels = [("stage", stage.as_str())];
            h.encode(family_encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Observes the time since it was made into its stage's latency histogram when dropped.
#[must_use = "the latency is observed when the timer is dropped"]
#[derive(Debug)]
pub struct StageTimer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl Drop for StageTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// Reads a queue's `(items waiting, capacity)`; `None` once the queue is gone.
type QueueRead = Box<dyn Fn() -> Option<(usize, usize)> + Send + Sync>;

/// The pipeline's bounded queues by name, read at each scrape.
#[derive(Clone, Default)]
pub struct Queues(Arc<Mutex<BTreeMap<String, QueueRead>>>);

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").finish_non_exhaustive()
    }
}

impl Queues {
    /// Adds (or replaces) the queue `name`: `read` returns `(items waiting, capacity)`, or `None` once the
    /// queue is gone, and is called at every scrape.
    pub fn register(
        &self,
        name: &str,
        read: impl Fn() -> Option<(usize, usize)> + Send + Sync + 'static,
    ) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.insert(name.to_owned(), Box::new(read));
    }

    /// Adds (or replaces) the queue `name`, read through its sender. Only a weak handle is kept, so the
    /// queue still closes when its real senders are gone (and is then no longer rendered).
    pub fn register_sender<T: Send + 'static>(
        &self,
        name: &str,
        tx: &tokio::sync::mpsc::Sender<T>,
    ) {
        let weak = tx.downgrade();
        self.register(name, move || {
            let tx = weak.upgrade()?;
            let cap = tx.max_capacity();
            Some((cap.saturating_sub(tx.capacity()), cap))
        });
    }

    /// Every queue's `(items waiting, capacity)` now, by name.
    pub fn read(&self) -> BTreeMap<String, (usize, usize)> {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter()
            .filter_map(|(name, read)| Some((name.clone(), read()?)))
            .collect()
    }
}

impl Collector for Queues {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = self.read();
        // The documented intake gauge, always there (0 before the intake queue is registered).
        let intake = ConstGauge::new(now.get("intake").map_or(0, |(depth, _)| *depth as u64));
        intake.encode(encoder.encode_descriptor(
            "sentinel_intake_queue_depth",
            "Events waiting in the intake queue.",
            None,
            intake.metric_type(),
        )?)?;
        type Pick = fn(&(usize, usize)) -> usize;
        let families: [(&str, &str, Pick); 2] = [
            (
                "sentinel_queue_depth",
                "Items waiting in a pipeline queue (intake, then between stages), per queue.",
                |(depth, _)| *depth,
            ),
            (
                "sentinel_queue_capacity",
                "Items a pipeline queue holds before its senders wait, per queue.",
                |(_, cap)| *cap,
            ),
        ];
        for (name, help, pick) in families {
            let mut family_encoder =
                encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (queue, v) in &now {
                let labels = [("queue", queue.as_str())];
                ConstGauge::new(pick(v) as u64).encode(family_encoder.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The store writer's metrics once the writer runs (the daemon sets it after opening the store).
#[derive(Debug)]
struct LateWriter(Arc<OnceLock<sentinel_store::WriterMonitor>>);

impl Collector for LateWriter {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match self.0.get() {
            Some(w) => Collector::encode(w, encoder),
            None => Ok(()),
        }
    }
}

/// What became of each Falco alert the Falco detector saw (`sentinel_falco_events_total{outcome}`: an
/// alert about a container or a host event's remote address, or why none was raised), read at each
/// scrape. The daemon registers it with [`Metrics::register`] once it has built the detector.
#[derive(Debug)]
pub struct FalcoMetrics(pub Arc<sentinel_detect::FalcoTally>);

impl Collector for FalcoMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "sentinel_falco_events",
            "Falco alerts the Falco detector looked at, by outcome (container_alert, host_alert, or why no alert was raised).",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in self.0.read() {
            ConstCounter::new(n).encode(family.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }
}

/// The audit log's counters (`sentinel_audit_*`), read from the log at each scrape once the daemon has
/// opened it ([`AuditLogMetrics::set`]); nothing is rendered before.
#[derive(Debug, Clone, Default)]
pub struct AuditLogMetrics {
    log: Arc<OnceLock<sentinel_audit::Log>>,
    witness: Arc<OnceLock<Arc<sentinel_audit::witness::WitnessCounters>>>,
}

impl AuditLogMetrics {
    /// Renders `log`'s counters from now on (the first log set stays).
    pub fn set(&self, log: sentinel_audit::Log) {
        let _ = self.log.set(log);
    }

    /// Renders the witness's counters (`sentinel_audit_witness_*`) from now on.
    pub fn set_witness(&self, counters: Arc<sentinel_audit::witness::WitnessCounters>) {
        let _ = self.witness.set(counters);
    }
}

impl Collector for AuditLogMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(w) = self.witness.get() {
            let counters: [(&str, &str, u64); 4] = [
                (
                    "sentinel_audit_witness_sent",
                    "Signed checkpoints the audit witness accepted.",
                    w.sent(),
                ),
                (
                    "sentinel_audit_witness_failed",
                    "Delivery rounds to the audit witness that failed (logged as audit_witness_failed).",
                    w.failed(),
                ),
                (
                    "sentinel_audit_witness_requests",
                    "Requests sent to the audit witness, retries included.",
                    w.requests(),
                ),
                (
                    "sentinel_audit_witness_superseded",
                    "Checkpoints not sent to the witness because a newer one covered them.",
                    w.superseded(),
                ),
            ];
            for (name, help, v) in counters {
                let c = ConstCounter::new(v);
                c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
            }
        }
        let Some(log) = self.log.get() else {
            return Ok(());
        };
        let s = log.stats().snapshot();
        let counters: [(&str, &str, u64); 6] = [
            (
                "sentinel_audit_appends",
                "Records appended to the audit log (acknowledged once durable).",
                s.appends,
            ),
            (
                "sentinel_audit_batches",
                "Group commits of the audit log (one write and sync for many appends).",
                s.batches,
            ),
            (
                "sentinel_audit_fsyncs",
                "fsync/fdatasync calls the audit log made.",
                s.fsyncs,
            ),
            (
                "sentinel_audit_checkpoints",
                "Signed checkpoints the audit log stored.",
                s.checkpoints,
            ),
            (
                "sentinel_audit_failures",
                "Audit log appends and checkpoints that failed.",
                s.failures,
            ),
            (
                "sentinel_audit_bytes",
                "Bytes the audit log wrote (segments and stored hashes).",
                s.bytes,
            ),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let gauges: [(&str, &str, u64); 2] = [
            (
                "sentinel_audit_tree_size",
                "Records committed in the audit log (its Merkle tree size).",
                log.size(),
            ),
            (
                "sentinel_audit_checkpoint_size",
                "Tree size of the latest signed checkpoint of the audit log.",
                log.latest_checkpoint().checkpoint.size,
            ),
        ];
        for (name, help, v) in gauges {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

/// The task tracker's counts (`sentinel_tasks_active{kind}`, `sentinel_tasks_started_total{kind}`,
/// `sentinel_tasks_finished_total{kind}`), read at each scrape. Kinds are code constants.
#[derive(Debug)]
struct TaskCounts(Tasks);

impl Collector for TaskCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let kinds = self.0.kinds();
        let mut active = encoder.encode_descriptor(
            "sentinel_tasks_active",
            "Tasks in flight (investigations, action batches, HTTP requests, pipeline stages), per kind.",
            None,
            MetricType::Gauge,
        )?;
        for k in &kinds {
            ConstGauge::new(k.active).encode(active.encode_family(&[("kind", k.kind)])?)?;
        }
        type Pick = fn(&sentinel_core::tasks::KindCounts) -> u64;
        let families: [(&str, &str, Pick); 2] = [
            ("sentinel_tasks_started", "Tasks started, per kind.", |k| {
                k.started
            }),
            (
                "sentinel_tasks_finished",
                "Tasks finished (returned, failed, panicked or cancelled), per kind.",
                |k| k.finished,
            ),
        ];
        for (name, help, pick) in families {
            let mut family_encoder =
                encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for k in &kinds {
                ConstCounter::new(pick(k))
                    .encode(family_encoder.encode_family(&[("kind", k.kind)])?)?;
            }
        }
        Ok(())
    }
}

/// A help text without its final period (the registry adds one).
const fn help(text: &'static str) -> &'static str {
    match text.as_bytes() {
        [rest @ .., b'.'] => match std::str::from_utf8(rest) {
            Ok(s) => s,
            Err(_) => text,
        },
        _ => text,
    }
}

macro_rules! metrics {
    ($($field:ident : $help:literal),* $(,)?) => {
        /// Every metric Sentinel keeps, in one registry.
        #[derive(Debug)]
        pub struct Metrics {
            $(
                #[doc = $help]
                pub $field: Counter,
            )*
            /// Counters with a `reason` label (unparsed lines).
            pub by_reason: Labeled,
            /// Counters with a `scenario` label (alerts).
            pub by_scenario: Labeled,
            /// Matched and unmatched lines per source and filter.
            pub source_lines: SourceLines,
            /// The log sources' own counters (`sentinel_log_*` totals and per source), read at render time.
            pub log_sources: LogSources,
            /// The fail2ban filters' session counters, read at render time.
            pub fail2ban_filters: Fail2banFilters,
            /// The store writer's counters (group-commit batch sizes), once the writer runs.
            pub store_writer: Arc<OnceLock<sentinel_store::WriterMonitor>>,
            /// The pipeline's queues, read at render time (see [`Metrics::register_queue`]).
            pub queues: Queues,
            /// The audit log's counters, read at render time once it is open.
            pub audit_log: AuditLogMetrics,
            /// The investigation's counters (providers, cache, feeds), read at render time once it
            /// is built.
            pub intel: IntelMetrics,
            /// The daemon's work in flight by kind (`sentinel_tasks_*`), read at render time.
            pub tasks: Tasks,
            /// The OTLP trace exporter and its counters (`sentinel_otel_*`; off until started).
            pub otel: crate::otel::Otel,
            /// The scenario engine's per-scenario counters, once the daemon has built it (read by
            /// [`Metrics::sources_snapshot`], not rendered at `/metrics`).
            pub scenarios: Arc<OnceLock<Arc<sentinel_detect::scenario::ScenarioTally>>>,
            stage_latency: StageLatency,
            registry: Mutex<Registry>,
        }

        impl Default for Metrics {
            fn default() -> Self {
                Self::new()
            }
        }

        impl Metrics {
            /// Every metric at zero, registered.
            pub fn new() -> Self {
                let mut registry = Registry::default();
                $(
                    let $field = Counter::default();
                    registry.register(
                        concat!("sentinel_", stringify!($field)),
                        help($help),
                        $field.0.clone(),
                    );
                )*
                let m = Self {
                    $($field,)*
                    by_reason: Labeled::new("reason"),
                    by_scenario: Labeled::new("scenario"),
                    source_lines: SourceLines::default(),
                    log_sources: LogSources::default(),
                    fail2ban_filters: Fail2banFilters::default(),
                    store_writer: Arc::default(),
                    queues: Queues::default(),
                    audit_log: AuditLogMetrics::default(),
                    intel: IntelMetrics::default(),
                    tasks: Tasks::new(),
                    otel: crate::otel::Otel::default(),
                    scenarios: Arc::default(),
                    stage_latency: StageLatency::default(),
                    registry: Mutex::new(Registry::default()),
                };
                registry.register_collector(Box::new(m.by_reason.clone()));
                registry.register_collector(Box::new(m.by_scenario.clone()));
                registry.register_collector(Box::new(m.source_lines.clone()));
                registry.register_collector(Box::new(m.log_sources.clone()));
                registry.register_collector(Box::new(m.fail2ban_filters.clone()));
                registry.register_collector(Box::new(LateWriter(m.store_writer.clone())));
                registry.register_collector(Box::new(m.stage_latency.clone()));
                registry.register_collector(Box::new(m.queues.clone()));
                registry.register_collector(Box::new(m.audit_log.clone()));
                registry.register_collector(Box::new(m.intel.clone()));
                registry.register_collector(Box::new(TaskCounts(m.tasks.clone())));
                m.otel.register(&mut registry);
                *m.registry.lock().unwrap_or_else(PoisonError::into_inner) = registry;
                m
            }
        }
    };
}

impl Metrics {
    /// Lets a component register metrics of its own (they are rendered with the rest).
    pub fn register(&self, register: impl FnOnce(&mut Registry)) {
        register(&mut self.registry.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Renders every metric in the Prometheus text format (0.0.4, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            // Only a collector can fail (writing to a String cannot): say so rather than serve half.
            tracing::error!(evt = "metrics_render_failed", error = %e);
        }
        out
    }

    /// The latency histogram of `stage` (seconds from receiving an item to handing it on).
    pub fn stage_latency(&self, stage: Stage) -> &Histogram {
        let i = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
        &self.stage_latency.0[i]
    }

    /// A timer that observes `stage`'s latency when dropped: make it when the stage receives an item, and
    /// drop it once the item is handed on.
    pub fn stage_timer(&self, stage: Stage) -> StageTimer<'_> {
        StageTimer {
            histogram: self.stage_latency(stage),
            started: Instant::now(),
        }
    }

    /// Renders the depth of queue `name` (`sentinel_queue_depth{queue="name"}` and its capacity, and for
    /// `intake` also `sentinel_intake_queue_depth`), read through `tx` at each scrape.
    pub fn register_queue<T: Send + 'static>(&self, name: &str, tx: &tokio::sync::mpsc::Sender<T>) {
        self.queues.register_sender(name, tx);
    }
}

metrics! {
    http_requests: "HTTP requests answered.",
    auth_failures: "Requests refused for a missing or wrong API key.",
    events_accepted: "Events handed to the pipeline (counted when queued, before they are stored).",
    events_invalid: "Events refused as malformed (per line or item).",
    events_rejected_busy: "Events refused because the pipeline queue was full.",
    defend_requests: "Calls to /v1/defend answered with a plan.",
    defend_timeouts: "Calls to /v1/defend that timed out waiting for the pipeline.",
    alerts_raised: "Alerts raised by detectors.",
    investigations: "Investigations concluded.",
    plans_decided: "Plans decided by the policy.",
    actions_recorded: "Action records produced.",
    actions_refused: "Actions refused by the allowlist or an actuator.",
    notices_sent: "Notices sent.",
    notices_rejected_busy: "Notices POST /v1/notify refused because the outbox held more pending rows than its cap.",
    secrets_redacted: "Secret values masked in posted events, log lines and manual decisions.",
    store_write_errors: "Records the store failed to write.",
    events_not_stored: "Events (or /v1/defend records) handed to the pipeline that the store did not write; the client was told.",
    events_store_unconfirmed: "Events whose commit was not confirmed before the answer's deadline; the client got a 503.",
    log_lines_parsed: "Log lines the parsers understood.",
    log_lines_unparsed: "Log lines no parser understood (or that said nothing of interest).",
    scenario_keys_expired: "Scenario keys dropped as idle by event time.",
    scenario_keys_evicted: "Live scenario keys evicted at the per-scenario cap.",
    audit_index_failures: "Audit records the store's index row was not written for (the audit log holds them; they are indexed again at the next start).",
    audit_proof_failures: "Audit records a dashboard page found not matching the audit log (the store's copy differs, the inclusion proof or the checkpoint's signature does not verify, or the log could not be read).",
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};

    type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

    /// The text read by a strict parser of the Prometheus text format (grammar, types, histogram
    /// rules, one family per name): a failure here is a scrape Prometheus would reject.
    pub(crate) fn parse(text: &str) -> Exposition {
        match openmetrics_parser::prometheus::parse_prometheus(text) {
            Ok(e) => e,
            Err(e) => panic!("/metrics does not parse: {e:?}\n{text}"),
        }
    }

    /// The sample of `family` with exactly these labels.
    fn find<'e>(
        e: &'e Exposition,
        family: &str,
        labels: &[(&str, &str)],
    ) -> Option<&'e openmetrics_parser::Sample<PrometheusValue>> {
        let f = e.families.get(family)?;
        let names = f.get_label_names();
        if names.len() != labels.len() {
            return None;
        }
        let values = names
            .iter()
            .map(|n| {
                labels
                    .iter()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| (*v).to_owned())
            })
            .collect::<Option<Vec<String>>>()?;
        f.get_sample_by_label_values(&values)
    }

    /// The value of a counter or gauge sample of `family` with these labels.
    pub(crate) fn sample(e: &Exposition, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match &find(e, family, labels)?.value {
            PrometheusValue::Counter(c) => Some(c.value.as_f64()),
            PrometheusValue::Gauge(g) => Some(g.as_f64()),
            _ => None,
        }
    }

    /// The sample count of a histogram sample of `family` with these labels.
    fn histogram_count(e: &Exposition, family: &str, labels: &[(&str, &str)]) -> Option<u64> {
        match &find(e, family, labels)?.value {
            PrometheusValue::Histogram(h) => h.count,
            _ => None,
        }
    }

    fn family_type(e: &Exposition, family: &str) -> Option<PrometheusType> {
        e.families.get(family).map(|f| f.family_type.clone())
    }

    #[test]
    fn the_parser_these_tests_use_rejects_a_broken_exposition() {
        for bad in [
            // A raw line feed in a label value (what an unescaped hostile name would make).
            "# TYPE a_total counter\na_total{x=\"1\n\"} 1\n",
            // A family twice.
            "# TYPE a gauge\na 1\n# TYPE a gauge\na 2\n",
            // Buckets that are not cumulative.
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        ] {
            assert!(
                openmetrics_parser::prometheus::parse_prometheus(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_metric_is_there_at_zero_from_the_start_and_parses() {
        let m = Metrics::new();
        let text = m.render();
        let e = parse(&text);
        for name in [
            "http_requests",
            "auth_failures",
            "events_accepted",
            "events_invalid",
            "events_rejected_busy",
            "defend_requests",
            "defend_timeouts",
            "alerts_raised",
            "investigations",
            "plans_decided",
            "actions_recorded",
            "actions_refused",
            "notices_sent",
            "notices_rejected_busy",
            "secrets_redacted",
            "store_write_errors",
            "events_not_stored",
            "events_store_unconfirmed",
            "log_lines_parsed",
            "log_lines_unparsed",
            "scenario_keys_expired",
            "scenario_keys_evicted",
            "audit_index_failures",
            "log_lines_read",
            "log_bytes_read",
            "log_source_errors",
        ] {
            let family = format!("sentinel_{name}_total");
            assert_eq!(sample(&e, &family, &[]), Some(0.0), "{family}: {text}");
            assert_eq!(family_type(&e, &family), Some(PrometheusType::Counter));
            assert!(
                text.contains(&format!("# TYPE {family} counter\n")),
                "{text}"
            );
        }
        assert_eq!(sample(&e, "sentinel_intake_queue_depth", &[]), Some(0.0));
        assert_eq!(
            family_type(&e, "sentinel_intake_queue_depth"),
            Some(PrometheusType::Gauge)
        );
        // The help texts keep their one final period.
        assert!(
            text.contains("# HELP sentinel_events_accepted_total Events handed to the pipeline (counted when queued, before they are stored).\n"),
            "{text}"
        );
        // Every stage's latency histogram, empty.
        assert!(text.contains("# TYPE sentinel_stage_latency_seconds histogram\n"));
        assert_eq!(
            family_type(&e, "sentinel_stage_latency_seconds"),
            Some(PrometheusType::Histogram)
        );
        for stage in Stage::ALL {
            assert_eq!(
                histogram_count(
                    &e,
                    "sentinel_stage_latency_seconds",
                    &[("stage", stage.as_str())]
                ),
                Some(0),
                "{stage:?}: {text}"
            );
        }
        assert!(
            text.contains("# TYPE sentinel_queue_depth gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE sentinel_queue_capacity gauge\n"),
            "{text}"
        );
    }

    #[test]
    fn a_stage_timer_observes_its_stage_only() {
        let m = Metrics::new();
        {
            let _t = m.stage_timer(Stage::Decide);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        m.stage_latency(Stage::Act).observe(0.000_07);
        m.stage_latency(Stage::Act).observe(20.0);
        let text = m.render();
        let e = parse(&text);
        let family = "sentinel_stage_latency_seconds";
        assert_eq!(
            histogram_count(&e, family, &[("stage", "decide")]),
            Some(1),
            "{text}"
        );
        assert_eq!(
            histogram_count(&e, family, &[("stage", "act")]),
            Some(2),
            "{text}"
        );
        assert_eq!(
            histogram_count(&e, family, &[("stage", "detect")]),
            Some(0),
            "{text}"
        );
        // 2 ms or more: not in the 1 ms bucket, in the 2.5 ms one (or above, on a slow machine).
        assert!(
            text.contains(
                "sentinel_stage_latency_seconds_bucket{stage=\"decide\",le=\"0.001\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("sentinel_stage_latency_seconds_bucket{stage=\"act\",le=\"0.0001\"} 1\n")
                && text
                    .contains("sentinel_stage_latency_seconds_bucket{stage=\"act\",le=\"10\"} 1\n")
                && text.contains(
                    "sentinel_stage_latency_seconds_bucket{stage=\"act\",le=\"+Inf\"} 2\n"
                ),
            "{text}"
        );
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("sentinel_stage_latency_seconds_sum{stage=\"decide\"} "))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(sum >= 0.002, "{text}");
    }

    #[tokio::test]
    async fn queue_depths_are_read_from_the_channels_at_scrape_time() {
        let m = Metrics::new();
        let (intake, mut intake_rx) = tokio::sync::mpsc::channel::<u32>(8);
        let (plans, _plans_rx) = tokio::sync::mpsc::channel::<String>(4);
        m.register_queue("intake", &intake);
        m.register_queue("plans", &plans);
        for n in 0..3 {
            intake.send(n).await.unwrap();
        }
        plans.send("p".into()).await.unwrap();
        let e = parse(&m.render());
        assert_eq!(sample(&e, "sentinel_intake_queue_depth", &[]), Some(3.0));
        assert_eq!(
            sample(&e, "sentinel_queue_depth", &[("queue", "intake")]),
            Some(3.0)
        );
        assert_eq!(
            sample(&e, "sentinel_queue_capacity", &[("queue", "intake")]),
            Some(8.0)
        );
        assert_eq!(
            sample(&e, "sentinel_queue_depth", &[("queue", "plans")]),
            Some(1.0)
        );
        assert_eq!(
            sample(&e, "sentinel_queue_capacity", &[("queue", "plans")]),
            Some(4.0)
        );
        intake_rx.recv().await.unwrap();
        let e = parse(&m.render());
        assert_eq!(sample(&e, "sentinel_intake_queue_depth", &[]), Some(2.0));
        // Registering keeps no sender alive: the queue still closes (and drains) when its senders go.
        drop(intake);
        assert_eq!(intake_rx.recv().await, Some(1));
        assert_eq!(intake_rx.recv().await, Some(2));
        assert_eq!(intake_rx.recv().await, None);
        let e = parse(&m.render());
        assert_eq!(
            sample(&e, "sentinel_queue_depth", &[("queue", "intake")]),
            None
        );
        assert_eq!(sample(&e, "sentinel_intake_queue_depth", &[]), Some(0.0));
        assert_eq!(
            sample(&e, "sentinel_queue_depth", &[("queue", "plans")]),
            Some(1.0)
        );
        // A queue read through a function of its own, registered again under the same name: replaced.
        m.queues.register("plans", || Some((7, 9)));
        let e = parse(&m.render());
        assert_eq!(
            sample(&e, "sentinel_queue_depth", &[("queue", "plans")]),
            Some(7.0)
        );
    }

    #[test]
    fn a_component_registers_metrics_of_its_own() {
        let m = Metrics::new();
        let g = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        m.register(|r| r.register("sentinel_test_things", "Things", g.clone()));
        g.set(4);
        let e = parse(&m.render());
        assert_eq!(sample(&e, "sentinel_test_things", &[]), Some(4.0));
    }

    #[tokio::test]
    async fn renders_the_store_writers_batch_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let store = sentinel_store::Store::open(&dir.path().join("s.db"))
            .await
            .unwrap();
        let (writer, task) = store.writer(sentinel_store::WriterOptions::default());
        let m = Metrics::default();
        assert!(!m.render().contains("sentinel_store_batch_records"));
        m.store_writer.set(writer.monitor()).unwrap();
        let group = sentinel_store::AckGroup::new();
        for n in 0..3 {
            let ev = sentinel_core::Event {
                id: sentinel_core::EventId::new(),
                kind: sentinel_core::EventKind::telemetry(),
                ts: sentinel_core::Timestamp::now(),
                source: "test".into(),
                src_ip: None,
                target: None,
                attrs: Default::default(),
                trace_id: sentinel_core::TraceId::new(),
            };
            writer
                .write_acked(sentinel_store::Record::Event(ev), group.token(n))
                .await
                .unwrap();
        }
        assert_eq!(group.settled().await.committed, 3);
        let text = m.render();
        assert!(
            text.contains("# TYPE sentinel_store_batch_records histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("sentinel_store_batch_records_sum 3.0\n"),
            "{text}"
        );
        let count = writer.stats().batches;
        assert!((1..=3).contains(&count));
        assert!(
            text.contains(&format!("sentinel_store_batch_records_count {count}\n"))
                && text.contains(&format!(
                    "sentinel_store_batch_records_bucket{{le=\"+Inf\"}} {count}\n"
                ))
                && text.contains(&format!(
                    "sentinel_store_batch_records_bucket{{le=\"4\"}} {count}\n"
                )),
            "{text}"
        );
        assert!(
            text.contains("sentinel_store_records_dropped_total 0\n"),
            "{text}"
        );
        // A store that fails under the writer: the record nobody waits for (a log line's event, an
        // audit record) is dropped, and /metrics says so.
        store.close().await;
        let lost = sentinel_core::Event {
            id: sentinel_core::EventId::new(),
            kind: sentinel_core::EventKind::telemetry(),
            ts: sentinel_core::Timestamp::now(),
            source: "test".into(),
            src_ip: None,
            target: None,
            attrs: Default::default(),
            trace_id: sentinel_core::TraceId::new(),
        };
        writer
            .write(sentinel_store::Record::Event(lost))
            .await
            .unwrap();
        drop(writer);
        task.finish().await.unwrap();
        let text = m.render();
        assert!(
            text.contains("sentinel_store_records_dropped_total 1\n")
                && text.contains("sentinel_store_failed_batches_total 1\n"),
            "{text}"
        );
    }

    #[test]
    fn renders_the_falco_outcomes() {
        use sentinel_core::{Detector, Event, EventId, EventKind, Timestamp, TraceId};
        let m = Metrics::default();
        let mut d = sentinel_detect::FalcoSettings::default().build();
        m.register(|r| r.register_collector(Box::new(FalcoMetrics(d.tally()))));
        let mut attrs = serde_json::Map::new();
        for (k, v) in [
            ("service", "falco"),
            ("rule", "r"),
            ("priority", "Critical"),
        ] {
            attrs.insert(k.into(), v.into());
        }
        let host = Event {
            id: EventId::new(),
            kind: EventKind("runtime_alert".into()),
            ts: Timestamp::now(),
            source: "t".into(),
            src_ip: None,
            target: None,
            attrs,
            trace_id: TraceId::new(),
        };
        let mut out = Vec::new();
        d.observe(&host, &mut out);
        let text = m.render();
        assert!(
            text.contains("sentinel_falco_events_total{outcome=\"host_without_address\"} 1\n")
                && text.contains("sentinel_falco_events_total{outcome=\"container_alert\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn renders_every_counter() {
        let m = Metrics::default();
        m.events_accepted.add(3);
        let text = m.render();
        assert!(text.contains("sentinel_events_accepted_total 3\n"));
        assert!(text.contains("# TYPE sentinel_store_write_errors_total counter"));
        m.by_reason
            .add("log_lines_unparsed_by_reason", "no_match", 2);
        m.by_reason
            .add("log_lines_unparsed_by_reason", "bad_\"x", 1);
        let text = m.render();
        assert!(
            text.contains("sentinel_log_lines_unparsed_by_reason_total{reason=\"no_match\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sentinel_log_lines_unparsed_by_reason_total{reason=\"bad_\\\"x\"} 1\n"),
            "{text}"
        );
        assert_eq!(
            m.by_reason.get("log_lines_unparsed_by_reason", "no_match"),
            2
        );
        let c = m.source_lines.counts("jail:sshd", "sshd");
        let text = m.render();
        assert!(
            text.contains(
                "sentinel_source_lines_matched_total{source=\"jail:sshd\",filter=\"sshd\"} 0\n"
            ),
            "{text}"
        );
        c.matched.add(2);
        c.unmatched.inc();
        // Names come from the configuration (file paths may hold any byte but NUL): a hostile one stays one
        // label value and cannot add a sample of its own.
        m.source_lines
            .counts("file:/var/log/a\"}\nsentinel_fake_total 99\n#", "x\\y")
            .matched
            .inc();
        let text = m.render();
        assert!(
            text.contains(
                "sentinel_source_lines_matched_total{source=\"file:/var/log/a\\\"}\\nsentinel_fake_total 99\\n#\",filter=\"x\\\\y\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("sentinel_fake_total")),
            "{text}"
        );
        // A parser reads the hostile name back as the one label value it is.
        let parsed = parse(&text);
        assert_eq!(
            sample(
                &parsed,
                "sentinel_source_lines_matched_total",
                &[
                    ("source", "file:/var/log/a\"}\nsentinel_fake_total 99\n#"),
                    ("filter", "x\\y")
                ]
            ),
            Some(1.0),
            "{text}"
        );
        assert!(!parsed.families.contains_key("sentinel_fake_total"));
        let text = m.render();
        assert!(
            text.contains(
                "sentinel_source_lines_matched_total{source=\"jail:sshd\",filter=\"sshd\"} 2\n"
            ) && text.contains(
                "sentinel_source_lines_unmatched_total{source=\"jail:sshd\",filter=\"sshd\"} 1\n"
            ),
            "{text}"
        );
    }

    /// The audit log's counters are read from the log at each scrape (strictly parsed): nothing before
    /// the log is set, then values that follow its appends and checkpoints; the witness's counters
    /// appear once it is set.
    #[tokio::test]
    async fn audit_log_counters_follow_the_log() {
        let m = Metrics::new();
        assert!(
            !m.render().contains("sentinel_audit_appends"),
            "{}",
            m.render()
        );
        let dir = tempfile::tempdir().unwrap();
        let (log, task) = sentinel_audit::Log::open(sentinel_audit::AuditSettings::new(
            dir.path().join("audit"),
            "sentinel/test",
        ))
        .await
        .unwrap();
        m.audit_log.set(log.clone());
        let trace = sentinel_core::TraceId::new();
        for i in 0..3 {
            log.append(sentinel_core::AuditRecord {
                ts: sentinel_core::Timestamp::now(),
                kind: sentinel_core::AuditKind::Operator,
                subject_id: format!("s{i}"),
                trace_id: trace.clone(),
                summary: "x".into(),
                content_hash: None,
            })
            .await
            .unwrap();
        }
        let cp = log.checkpoint_now().await.unwrap();
        let text = m.render();
        let e = parse(&text);
        let stats = log.stats().snapshot();
        for (family, want) in [
            ("sentinel_audit_appends_total", 3),
            ("sentinel_audit_batches_total", stats.batches),
            ("sentinel_audit_fsyncs_total", stats.fsyncs),
            ("sentinel_audit_bytes_total", stats.bytes),
            ("sentinel_audit_checkpoints_total", stats.checkpoints),
            ("sentinel_audit_failures_total", 0),
            ("sentinel_audit_tree_size", 3),
            ("sentinel_audit_checkpoint_size", cp.checkpoint.size),
        ] {
            assert_eq!(
                sample(&e, family, &[]),
                Some(want as f64),
                "{family}: {text}"
            );
        }
        assert_eq!(cp.checkpoint.size, 3);
        assert!(stats.fsyncs > 0 && stats.bytes > 0 && stats.checkpoints >= 1);
        assert_eq!(
            family_type(&e, "sentinel_audit_tree_size"),
            Some(PrometheusType::Gauge)
        );
        assert!(!text.contains("sentinel_audit_witness"), "{text}");
        let w = Arc::new(sentinel_audit::witness::WitnessCounters::default());
        w.sent.fetch_add(2, Ordering::Relaxed);
        m.audit_log.set_witness(w);
        let e = parse(&m.render());
        assert_eq!(
            sample(&e, "sentinel_audit_witness_sent_total", &[]),
            Some(2.0)
        );
        assert_eq!(
            sample(&e, "sentinel_audit_witness_failed_total", &[]),
            Some(0.0)
        );
        task.finish().await.unwrap();
    }

    #[test]
    fn renders_the_task_counts_per_kind() {
        let m = Metrics::new();
        // No kind yet: the families parse empty.
        parse(&m.render());
        let a = m.tasks.track("investigation");
        let b = m.tasks.track("http_request");
        drop(m.tasks.track("http_request"));
        let text = m.render();
        let e = parse(&text);
        for (family, kind, want) in [
            ("sentinel_tasks_active", "investigation", 1.0),
            ("sentinel_tasks_active", "http_request", 1.0),
            ("sentinel_tasks_started_total", "http_request", 2.0),
            ("sentinel_tasks_finished_total", "http_request", 1.0),
            ("sentinel_tasks_finished_total", "investigation", 0.0),
        ] {
            assert_eq!(
                sample(&e, family, &[("kind", kind)]),
                Some(want),
                "{family}{{kind={kind}}}: {text}"
            );
        }
        assert_eq!(
            family_type(&e, "sentinel_tasks_active"),
            Some(PrometheusType::Gauge)
        );
        drop((a, b));
        let e = parse(&m.render());
        assert_eq!(
            sample(&e, "sentinel_tasks_active", &[("kind", "http_request")]),
            Some(0.0)
        );
    }
}
