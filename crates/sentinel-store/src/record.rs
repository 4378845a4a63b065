//! What the writer stores: the [`Record`] enum, the JSON body each kind is stored as, and its content
//! hash (the statements that persist records live in `persist`).
//!
//! [`content_hash`] is the one definition of a record's content hash: SHA-256 of its JSON body exactly
//! as stored here (an investigation's compact form, not the one reads rebuild), so it can be recomputed
//! from the row ([`Store::stored_content_hash`](crate::Store::stored_content_hash)).
//! This module must not read; reads live in `read`.

use crate::error::StoreError;
use sentinel_core::{
    ActionRecord, Alert, AlertId, AuditKind, AuditRecord, Contribution, Event, Evidence,
    Investigation, InvestigationId, Plan, Severity, Timestamp, TraceId,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One record for the [`StoreWriter`](crate::StoreWriter).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A normalised observation.
    Event(Event),
    /// A detector's finding.
    Alert(Alert),
    /// An alert plus enrichment and risk.
    Investigation(Investigation),
    /// What the policy chose.
    Plan(Plan),
    /// An action; written again on every state change, replacing the earlier row.
    Action(ActionRecord),
    /// One entry of the audit trail (appended, never replaced), with its place in the audit log.
    Audit(AuditRow),
}

/// An audit record as the store indexes it: the record and, once the audit log holds it, its sequence
/// number there. Serialised (for the API) as the record's fields plus `seq`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// The record's sequence number in the audit log; `None` for a record the log does not hold.
    #[serde(rename = "seq")]
    pub log_seq: Option<u64>,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
}

impl AuditRow {
    /// A record the audit log does not hold (yet).
    pub fn unlogged(record: AuditRecord) -> Self {
        AuditRow {
            log_seq: None,
            record,
        }
    }

    /// The record at `seq` in the audit log.
    pub fn logged(seq: u64, record: AuditRecord) -> Self {
        AuditRow {
            log_seq: Some(seq),
            record,
        }
    }
}

impl Record {
    /// The table this record lands in.
    pub fn table(&self) -> &'static str {
        match self {
            Record::Event(_) => "events",
            Record::Alert(_) => "alerts",
            Record::Investigation(_) => "investigations",
            Record::Plan(_) => "plans",
            Record::Action(_) => "actions",
            Record::Audit(_) => "audit",
        }
    }
}

impl From<Event> for Record {
    fn from(v: Event) -> Self {
        Record::Event(v)
    }
}
impl From<Alert> for Record {
    fn from(v: Alert) -> Self {
        Record::Alert(v)
    }
}
impl From<Investigation> for Record {
    fn from(v: Investigation) -> Self {
        Record::Investigation(v)
    }
}
impl From<Plan> for Record {
    fn from(v: Plan) -> Self {
        Record::Plan(v)
    }
}
impl From<ActionRecord> for Record {
    fn from(v: ActionRecord) -> Self {
        Record::Action(v)
    }
}
impl From<AuditRecord> for Record {
    /// An audit record the audit log does not hold.
    fn from(v: AuditRecord) -> Self {
        Record::Audit(AuditRow::unlogged(v))
    }
}
impl From<AuditRow> for Record {
    fn from(v: AuditRow) -> Self {
        Record::Audit(v)
    }
}

/// SHA-256 of `bytes` as 64 lowercase hex digits: the form of every content hash.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The JSON body a record is stored as (`None` for an audit record, which is stored as columns).
pub fn stored_body(record: &Record) -> Result<Option<String>, StoreError> {
    Ok(Some(match record {
        Record::Event(e) => body(e)?,
        Record::Alert(a) => body(a)?,
        Record::Investigation(i) => body(&StoredInvestigation::from(i))?,
        Record::Plan(p) => body(p)?,
        Record::Action(a) => body(a)?,
        Record::Audit(_) => return Ok(None),
    }))
}

/// The content hash of a record: [`sha256_hex`] of its [`stored_body`]; `None` for an audit record.
/// The audit record noting a stored record carries it, and it can be recomputed from the row
/// ([`Store::stored_content_hash`](crate::Store::stored_content_hash)).
pub fn content_hash(record: &Record) -> Result<Option<String>, StoreError> {
    Ok(stored_body(record)?.map(|b| sha256_hex(b.as_bytes())))
}

/// The table holding the record an audit record of `kind` is about, when it is a stored record (an
/// alert, an investigation, a plan or an action; an operator's record is about an action).
pub fn audited_table(kind: AuditKind) -> Option<&'static str> {
    match kind {
        AuditKind::AlertRaised => Some("alerts"),
        AuditKind::InvestigationConcluded => Some("investigations"),
        AuditKind::PlanDecided => Some("plans"),
        AuditKind::ActionChanged | AuditKind::Operator => Some("actions"),
        AuditKind::EventAccepted
        | AuditKind::NoticeSent
        | AuditKind::KeyCreated
        | AuditKind::KeyRevoked
        | AuditKind::ConfigLoaded
        | AuditKind::Started
        | AuditKind::Stopped
        | AuditKind::LogChain => None,
    }
}

/// An investigation as stored: its alert by id only (the alert is its own row, evidence and all), so
/// each alert is stored once. Reads put the alert back ([`Store::get_alert`](crate::Store::get_alert)).
#[derive(Serialize)]
pub(crate) struct StoredInvestigation<'a> {
    id: InvestigationId,
    ts: Timestamp,
    alert_id: AlertId,
    evidence: &'a [Evidence],
    risk_score: u8,
    confidence: f32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    uncertainty: &'a [String],
    #[serde(skip_serializing_if = "<[Contribution]>::is_empty")]
    contributions: &'a [Contribution],
    trace_id: &'a TraceId,
}

impl<'a> From<&'a Investigation> for StoredInvestigation<'a> {
    fn from(i: &'a Investigation) -> Self {
        StoredInvestigation {
            id: i.id,
            ts: i.ts,
            alert_id: i.alert.id,
            evidence: &i.evidence,
            risk_score: i.risk_score,
            confidence: i.confidence,
            uncertainty: &i.uncertainty,
            contributions: &i.contributions,
            trace_id: &i.trace_id,
        }
    }
}

/// A stored investigation read back: either the compact form (`alert_id`) or one stored before it,
/// with its alert copied in.
#[derive(serde::Deserialize)]
pub(crate) struct ReadInvestigation {
    id: InvestigationId,
    ts: Timestamp,
    #[serde(default)]
    alert: Option<Alert>,
    evidence: Vec<Evidence>,
    risk_score: u8,
    confidence: f32,
    #[serde(default)]
    uncertainty: Vec<String>,
    #[serde(default)]
    contributions: Vec<Contribution>,
    trace_id: TraceId,
}

impl ReadInvestigation {
    /// The investigation, with `alert` (the row its `alert_id` names) unless it carries its own copy.
    pub(crate) fn with_alert(self, alert: &Alert) -> Investigation {
        Investigation {
            id: self.id,
            ts: self.ts,
            alert: self.alert.unwrap_or_else(|| alert.clone()),
            evidence: self.evidence,
            risk_score: self.risk_score,
            confidence: self.confidence,
            uncertainty: self.uncertainty,
            contributions: self.contributions,
            trace_id: self.trace_id,
        }
    }
}

/// The rank stored next to a severity so `min_severity` is a numeric comparison.
pub(crate) fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Info => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

pub(crate) fn body<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Encode(e.to_string()))
}

/// A log sequence number as SQLite stores it (a signed 64-bit integer).
pub(crate) fn seq_column(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Encode(format!("audit log seq {seq} is too large")))
}
