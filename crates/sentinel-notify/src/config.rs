//! The notification configuration, as the config crate validates it into typed values: named
//! channels, the routes that send notices to them, delivery retries, and the daily digest.
//!
//! Secrets (a webhook's signing secret, an SMTP password, a Matrix access token, a Slack URL, which
//! is itself the credential) are [`Secret`]s: never shown by `Debug`, `Display` or serialisation.

use sentinel_core::{NoticeKind, Severity};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A credential; shown as `***` everywhere.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// `notify:` — everything about telling people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifyConfig {
    /// Channels by name (names are what routes refer to).
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Which notices go where; a notice goes to the union of every matching route's channels.
    pub routes: Vec<Route>,
    /// How failed deliveries are retried before they become dead letters.
    pub retry: RetrySettings,
    /// The daily digest, when configured.
    pub digest: Option<DigestConfig>,
    /// Delivered outbox rows are kept this long (for de-duplication windows and inspection), then pruned.
    pub keep_delivered: Duration,
    /// `POST /v1/notify` is refused (429) while this many rows wait in the outbox; Sentinel's own
    /// notices (alerts, errors, crashes) are never refused.
    pub max_pending: u64,
}

/// The default [`NotifyConfig::max_pending`].
pub const DEFAULT_MAX_PENDING: u64 = 10_000;

impl Default for NotifyConfig {
    /// The embedded defaults: no channel (notices go to the log only), no route, default retries.
    fn default() -> Self {
        NotifyConfig {
            channels: BTreeMap::new(),
            routes: Vec::new(),
            retry: RetrySettings::default(),
            digest: None,
            keep_delivered: Duration::from_secs(7 * 24 * 3600),
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

/// One channel, as `type: …` in configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChannelConfig {
    /// JSON POSTed to a URL, signed with HMAC-SHA256.
    Webhook(WebhookConfig),
    /// Email over SMTP.
    Smtp(SmtpConfig),
    /// A Matrix room, through the client-server API.
    Matrix(MatrixConfig),
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    Slack(SlackConfig),
    /// The structured log (`evt=notice`); always works, useful as a route's fallback.
    Log,
}

impl ChannelConfig {
    /// The `type:` name.
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Smtp(_) => "smtp",
            ChannelConfig::Matrix(_) => "matrix",
            ChannelConfig::Slack(_) => "slack",
            ChannelConfig::Log => "log",
        }
    }
}

/// `type: webhook`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookConfig {
    /// Where to POST (http or https).
    pub url: String,
    /// The HMAC-SHA256 key; the signature covers `<timestamp>.<body>`.
    pub secret: Secret,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS; refused if the server does not offer it.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption (only for a relay on loopback).
    None,
}

/// `type: smtp`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SmtpConfig {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Server port (587 for STARTTLS, 465 for TLS, 25 for a local relay).
    pub port: u16,
    /// Connection security.
    pub security: SmtpSecurity,
    /// Login, if the server needs one.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<Secret>,
    /// `From:` address.
    pub from: String,
    /// `To:` addresses (at least one).
    pub to: Vec<String>,
    /// Extra CA certificate (PEM) to trust, for a server with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

/// `type: matrix`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixConfig {
    /// The homeserver's base URL, e.g. `https://matrix.example.org`.
    pub homeserver: String,
    /// The room id (`!abc:example.org`) the bot has joined.
    pub room: String,
    /// The bot's access token.
    pub access_token: Secret,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

/// `type: slack`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackConfig {
    /// The incoming-webhook URL (a credential itself).
    pub url: Secret,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

/// One route: notices of these kinds, at least this severe, go to these channels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Kinds matched; empty matches every kind.
    pub kinds: Vec<NoticeKind>,
    /// Least severity matched.
    pub min_severity: Severity,
    /// Channel names (each exists in `channels`).
    pub channels: Vec<String>,
    /// Notices with the same de-duplication key are held this long after the first, then sent as
    /// one message with a count.
    pub group_wait: Duration,
    /// After a message for a key is sent, later notices with that key wait until this much time has
    /// passed since it, and are then sent as one summary with a count.
    pub dedup_window: Duration,
    /// At most this many messages per channel per `throttle_per`; the rest wait for the next window.
    pub throttle_max: u32,
    /// The throttle's window.
    pub throttle_per: Duration,
}

impl Route {
    /// Whether this route takes `kind` at `severity`.
    pub fn matches(&self, kind: NoticeKind, severity: Severity) -> bool {
        severity >= self.min_severity && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }
}

/// Retries of a failed delivery: `base × factor^n`, capped, with jitter; after `max_attempts` the
/// message is a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrySettings {
    /// The first wait.
    pub base: Duration,
    /// The growth of each next wait.
    pub factor: f64,
    /// The longest wait.
    pub cap: Duration,
    /// Attempts before a dead letter (at least 1).
    pub max_attempts: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            base: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(300),
            max_attempts: 12,
        }
    }
}

/// `notify.digest`: one message a day summing up the last 24 hours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestConfig {
    /// Time of day, UTC, as `(hour, minute)`.
    pub at: (u8, u8),
    /// Channels it goes to.
    pub channels: Vec<String>,
    /// How many top sources it lists.
    pub top: usize,
}
