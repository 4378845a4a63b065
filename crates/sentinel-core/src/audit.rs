//! Audit records (one per stage transition) and notices for people.

use crate::alert::Severity;
use crate::ids::TraceId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Which stage transition an audit record notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// An event was accepted.
    EventAccepted,
    /// A detector raised an alert.
    AlertRaised,
    /// An investigation concluded.
    InvestigationConcluded,
    /// The policy decided a plan.
    PlanDecided,
    /// An action changed state.
    ActionChanged,
    /// A notice went out.
    NoticeSent,
    /// An operator did something through the API.
    Operator,
    /// An API key was created.
    KeyCreated,
    /// An API key was revoked.
    KeyRevoked,
    /// A configuration was loaded (its content hash is the hash of what was loaded).
    ConfigLoaded,
    /// Sentinel started.
    Started,
    /// Sentinel stopped.
    Stopped,
    /// The head of the process log's hash chain, every N lines.
    LogChain,
}

impl AuditKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::EventAccepted => "event_accepted",
            AuditKind::AlertRaised => "alert_raised",
            AuditKind::InvestigationConcluded => "investigation_concluded",
            AuditKind::PlanDecided => "plan_decided",
            AuditKind::ActionChanged => "action_changed",
            AuditKind::NoticeSent => "notice_sent",
            AuditKind::Operator => "operator",
            AuditKind::KeyCreated => "key_created",
            AuditKind::KeyRevoked => "key_revoked",
            AuditKind::ConfigLoaded => "config_loaded",
            AuditKind::Started => "started",
            AuditKind::Stopped => "stopped",
            AuditKind::LogChain => "log_chain",
        }
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When.
    pub ts: Timestamp,
    /// What happened.
    pub kind: AuditKind,
    /// The id of the record it is about.
    pub subject_id: String,
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// A short summary.
    pub summary: String,
    /// SHA-256 of what the record is about (the stored record's JSON, the configuration file's
    /// bytes), as 64 lowercase hex digits, so the store can be checked against the audit log.
    #[serde(default)]
    pub content_hash: Option<String>,
}

/// What a notice is about; notification routes choose by it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticeKind {
    /// An alert and the plan made for it.
    #[default]
    Alert,
    /// Actions were applied.
    ActionApplied,
    /// An action failed to apply or to revert.
    ActionFailed,
    /// An action was reverted (expired or undone by an operator).
    ActionReverted,
    /// Something inside Sentinel went wrong (a stage, a provider, the store).
    Error,
    /// A supervised process or container crashed, was restarted, or is crash-looping.
    Crash,
    /// The audit log signed a checkpoint.
    AuditCheckpoint,
    /// The daily digest.
    Digest,
    /// Sent by an operator (`POST /v1/notify`).
    Manual,
    /// A test notice.
    Test,
}

impl NoticeKind {
    /// Every kind, in declaration order.
    pub const ALL: [NoticeKind; 10] = [
        NoticeKind::Alert,
        NoticeKind::ActionApplied,
        NoticeKind::ActionFailed,
        NoticeKind::ActionReverted,
        NoticeKind::Error,
        NoticeKind::Crash,
        NoticeKind::AuditCheckpoint,
        NoticeKind::Digest,
        NoticeKind::Manual,
        NoticeKind::Test,
    ];

    /// The snake_case name, as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Alert => "alert",
            NoticeKind::ActionApplied => "action_applied",
            NoticeKind::ActionFailed => "action_failed",
            NoticeKind::ActionReverted => "action_reverted",
            NoticeKind::Error => "error",
            NoticeKind::Crash => "crash",
            NoticeKind::AuditCheckpoint => "audit_checkpoint",
            NoticeKind::Digest => "digest",
            NoticeKind::Manual => "manual",
            NoticeKind::Test => "test",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message for people about something Sentinel saw or did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// One-line title.
    pub title: String,
    /// How bad.
    pub severity: Severity,
    /// Details.
    pub body: String,
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// What it is about.
    #[serde(default)]
    pub kind: NoticeKind,
    /// Notices with the same kind and key within a route's de-duplication window are sent as one
    /// message with a count (an attack wave is one message, not a thousand). `None`: the title is
    /// the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Notice {
    /// A notice of `kind` with no explicit de-duplication key.
    pub fn new(
        kind: NoticeKind,
        severity: Severity,
        title: impl Into<String>,
        body: impl Into<String>,
        trace_id: TraceId,
    ) -> Notice {
        Notice {
            title: title.into(),
            severity,
            body: body.into(),
            trace_id,
            kind,
            key: None,
        }
    }

    /// Sets the de-duplication key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Notice {
        self.key = Some(key.into());
        self
    }

    /// The de-duplication key: `<kind>:<key or title>`.
    pub fn dedup_key(&self) -> String {
        format!(
            "{}:{}",
            self.kind.as_str(),
            self.key.as_deref().unwrap_or(&self.title)
        )
    }
}
