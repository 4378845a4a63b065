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
}
