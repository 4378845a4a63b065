//! The validated, typed configuration (`ValidatedConfig` and its sections) and the small enums it
//! introduces (`Band`, `LogLevel`). Values here are already checked; this module does no parsing of
//! user input beyond the enums' `FromStr`.

use ipnet::IpNet;
use sentinel_core::{ActionKind, Mode, Severity};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A coarse level for a risk score or a confidence, used by policy rules: the policy matrix's own
/// [`sentinel_respond::Band`], one type for the configuration and the response.
pub use sentinel_respond::Band;

/// The log level of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// All levels, most verbose first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];

    /// The lower-case name (as `tracing` filters spell it).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown level `{s}` (trace, debug, info, warn, error)"))
    }
}

/// `store.sync`: how hard each commit is pushed to disk before it is acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreSync {
    /// WAL with `synchronous=NORMAL`: acknowledged records survive a killed process.
    #[default]
    Normal,
    /// `synchronous=FULL`: acknowledged records also survive power loss (an fsync per commit).
    Full,
}

impl StoreSync {
    /// Both modes.
    pub const ALL: [StoreSync; 2] = [StoreSync::Normal, StoreSync::Full];

    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreSync::Normal => "normal",
            StoreSync::Full => "full",
        }
    }
}

impl fmt::Display for StoreSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoreSync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreSync::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown sync mode `{s}` (normal, full)"))
    }
}

/// The whole configuration, checked and typed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidatedConfig {
    /// Where the store and audit log live.
    pub data_dir: PathBuf,
    /// The HTTP API.
    pub api: ApiConfig,
    /// The event pipeline.
    pub pipeline: PipelineConfig,
    /// The event store.
    pub store: StoreConfig,
    /// Logging.
    pub logging: LoggingConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// Detectors.
    pub detect: DetectConfig,
    /// The response policy.
    pub policy: PolicyConfig,
    /// How actions are carried out.
    pub respond: crate::respond::RespondConfig,
    /// Where log lines come from.
    pub sources: Vec<crate::sources::SourceConfig>,
    /// How alerts are investigated (shown in the configuration's own shape, keys masked).
    #[serde(serialize_with = "crate::intel::serialize")]
    pub intel: sentinel_intel::IntelConfig,
    /// Where notices go (shown in the configuration's own shape, secrets masked).
    #[serde(serialize_with = "crate::notify::serialize")]
    pub notify: sentinel_notify::NotifyConfig,
    /// Processes and containers the daemon supervises, if any.
    #[serde(serialize_with = "crate::supervise::serialize")]
    pub supervise: Option<sentinel_supervise::SuperviseConfig>,
    /// OpenTelemetry export of each trace (off unless a collector is named).
    pub tracing: crate::otlp::TracingConfig,
    /// What joins the stages: in-process queues, or a Redis bus shared by a fleet.
    pub bus: crate::fleet::BusSetting,
    /// This node's name in the fleet (`None`: the hostname).
    pub node: Option<String>,
    /// The Redis bus's tuning and the heartbeat.
    pub fleet: crate::fleet::FleetConfig,
}

/// `api`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, 1..=64 MiB.
    pub max_body_bytes: usize,
    /// Time allowed per request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Accept requests without an API key (lab use only).
    pub allow_insecure_no_auth: bool,
    /// The operator states that TLS is terminated in front of the API.
    pub tls_terminated_by_proxy: bool,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// Where the gRPC API listens (`None`: no gRPC API).
    pub grpc_listen: Option<SocketAddr>,
    /// JWT bearer tokens (`None`: API keys only).
    pub jwt: Option<crate::api_jwt::JwtConfig>,
    /// `api.tls`: serve the API over TLS (`None`: plain HTTP).
    pub tls: Option<crate::api_tls::TlsConfig>,
    /// The byte budget of one list answer, 4 KiB..=64 MiB: a page stops before the item that would
    /// take it over (a count alone does not bound an answer: 1,000 events of 1 MB are 1 GB).
    pub max_page_bytes: usize,
    /// Rate limits per client address and per key.
    pub rate_limit: crate::ratehook::RateLimitConfig,
    /// Signed webhook routes (secrets masked when shown).
    pub webhooks: crate::ratehook::WebhooksConfig,
    /// `api.edge`: the connection server's timeouts and the NDJSON streams' limits.
    pub edge: crate::api_edge::EdgeConfig,
    /// `api.stream`: the live WebSocket stream's limits.
    pub stream: crate::api_stream::StreamConfig,
    /// `api.ui`: the dashboard and its sessions.
    pub ui: crate::api_ui::UiConfig,
}

/// `pipeline`: the event pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipelineConfig {
    /// Capacity of each bounded queue between stages.
    pub queue_capacity: usize,
    /// Time allowed for one plan to be applied.
    #[serde(with = "humantime_serde")]
    pub defend_timeout: Duration,
}

/// `store`: the event store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreConfig {
    /// Events written per transaction.
    pub batch_size: usize,
    /// Longest wait before a partial batch is written.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long events are kept.
    #[serde(with = "humantime_serde")]
    pub event_retention: Duration,
    /// Most events kept.
    pub max_events: u64,
    /// How hard each commit is pushed to disk before it is acknowledged (SQLite; PostgreSQL commits
    /// as the server's own `synchronous_commit` says).
    pub sync: StoreSync,
    /// `None`: the SQLite file `<data_dir>/sentinel.db` (the default). `postgres://…`: that
    /// PostgreSQL database; its credentials are masked when the configuration is shown.
    #[serde(serialize_with = "crate::otlp::masked_url")]
    pub url: Option<String>,
}

/// `audit`: the tamper-evident audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditConfig {
    /// Names the log and its signing key. When not set, a new log is named `sentinel/<hostname>` and an
    /// existing log keeps the name of its key (`audit/key.pub`).
    pub origin: Option<String>,
    /// Records between signed checkpoints.
    pub checkpoint_every: u64,
    /// Longest time between checkpoints while records arrive.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Size at which a new segment file is started.
    pub segment_bytes: u64,
    /// The outside witness each checkpoint is sent to, if any (shown as `witness_url` and
    /// `witness_secret`, the keys it is read from).
    #[serde(flatten)]
    pub witness: Option<WitnessConfig>,
}

/// `audit.witness_url` and `audit.witness_secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WitnessConfig {
    /// Where checkpoints are posted.
    #[serde(rename = "witness_url")]
    pub url: String,
    /// The HMAC key signing each request (masked when the configuration is shown).
    #[serde(rename = "witness_secret")]
    pub secret: String,
}

/// `logging`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggingConfig {
    /// Log level.
    pub level: LogLevel,
    /// Extra key fragments whose values are masked (on top of the built-in ones).
    pub redact_keys: Vec<String>,
    /// Lines per block of the log hash chain (each line carries `chain`; a checkpoint line ends each
    /// block); 0 = no chain.
    pub chain_every: u64,
}

/// `detect`: detectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectConfig {
    /// The heuristic detector.
    pub heuristic: HeuristicConfig,
    /// The scenario engine.
    pub scenarios: crate::sources::ScenarioConfig,
    /// The Falco detector.
    pub falco: FalcoConfig,
}

/// `detect.heuristic`: the heuristic detector's thresholds, the detector's own settings type.
pub use sentinel_detect::HeuristicSettings as HeuristicConfig;

/// `detect.falco`: what the Falco detector ignores, the detector's own settings type.
pub use sentinel_detect::FalcoSettings as FalcoConfig;

/// `policy`: how alerts become plans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyConfig {
    /// Observe (record only) or enforce.
    pub mode: Mode,
    /// Networks never acted on.
    pub allowlist: Vec<IpNet>,
    /// TTL of an action whose rule gives none.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
    /// Longest TTL any rule may ask for.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
    /// Thresholds that turn a risk score into a band.
    pub risk_bands: RiskBands,
    /// Thresholds that turn a confidence into a band.
    pub confidence_bands: ConfidenceBands,
}

impl PolicyConfig {
    /// The TTL an action gets: its own, or `default_ttl`.
    pub fn ttl_for(&self, action: &ActionRule) -> Duration {
        action.ttl.unwrap_or(self.default_ttl)
    }

    /// Whether `ip` is covered by the allowlist.
    pub fn is_allowlisted(&self, ip: std::net::IpAddr) -> bool {
        self.allowlist.iter().any(|net| net.contains(&ip))
    }

    /// The first rule matching an alert of a scenario no rule names, with its index (rules naming a
    /// scenario are left out).
    pub fn first_match(
        &self,
        severity: Severity,
        risk_score: u8,
        confidence: f32,
    ) -> Option<(usize, &Rule)> {
        let risk = self.risk_bands.band(risk_score);
        let conf = self.confidence_bands.band(confidence);
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.scenario.is_empty() && r.matches(severity, risk, conf))
    }
}

/// One policy rule: when severity, risk band and confidence band all match, its actions apply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Optional name, for plans and logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Scenarios matched (alerts of other scenarios skip the rule); empty matches every alert.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scenario: Vec<String>,
    /// Severities matched (`any` is stored expanded).
    pub severity: Vec<Severity>,
    /// Risk bands matched.
    pub risk: Vec<Band>,
    /// Confidence bands matched.
    pub confidence: Vec<Band>,
    /// Actions to take; empty means record only.
    pub actions: Vec<ActionRule>,
}

impl Rule {
    /// Whether the rule matches.
    pub fn matches(&self, severity: Severity, risk: Band, confidence: Band) -> bool {
        self.severity.contains(&severity)
            && self.risk.contains(&risk)
            && self.confidence.contains(&confidence)
    }
}

/// One action a rule asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRule {
    /// What to do.
    pub kind: ActionKind,
    /// For how long; `None` means `policy.default_ttl`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Parameters for the actuator, parsed for its kind (omitted when none is given).
    #[serde(skip_serializing_if = "sentinel_core::ActionParams::is_empty")]
    pub params: sentinel_core::ActionParams,
}

/// `policy.risk_bands`: `0 < medium < high <= 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RiskBands {
    /// Scores at or above this are at least medium.
    pub medium: u8,
    /// Scores at or above this are high.
    pub high: u8,
}

impl RiskBands {
    /// The band of a 0–100 risk score.
    pub fn band(&self, score: u8) -> Band {
        if score >= self.high {
            Band::High
        } else if score >= self.medium {
            Band::Medium
        } else {
            Band::Low
        }
    }
}

/// `policy.confidence_bands`: `0 < medium < high <= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConfidenceBands {
    /// Confidences at or above this are at least medium.
    pub medium: f64,
    /// Confidences at or above this are high.
    pub high: f64,
}

impl ConfidenceBands {
    /// The band of a 0–1 confidence.
    pub fn band(&self, confidence: f32) -> Band {
        let confidence = f64::from(confidence);
        if confidence >= self.high {
            Band::High
        } else if confidence >= self.medium {
            Band::Medium
        } else {
            Band::Low
        }
    }
}
