//! What the writer stores: the [`Record`] enum and the one SQL statement that persists each kind.
//!
//! Every kind is an upsert by id, so a retried batch or a replayed record never duplicates a row and an
//! action's later state overwrites its earlier one. Audit records have no id and are appended; one the
//! audit log holds carries its log sequence number, which is unique, so adding it again (catching the
//! index up after a crash) changes nothing.
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
use sqlx::SqliteConnection;

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
struct StoredInvestigation<'a> {
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

fn body<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Encode(e.to_string()))
}

const EVENT_HEAD: &str =
    "INSERT INTO events (id, ts, kind, source, src_ip, trace_id, body) VALUES ";
const EVENT_TAIL: &str = " ON CONFLICT(id) DO UPDATE SET ts = excluded.ts, kind = excluded.kind, \
     source = excluded.source, src_ip = excluded.src_ip, trace_id = excluded.trace_id, body = excluded.body";

const ALERT_HEAD: &str =
    "INSERT INTO alerts (id, ts, scenario, severity, severity_rank, subject, trace_id, body) VALUES ";
const ALERT_TAIL: &str = " ON CONFLICT(id) DO UPDATE SET ts = excluded.ts, scenario = excluded.scenario, \
     severity = excluded.severity, severity_rank = excluded.severity_rank, subject = excluded.subject, \
     trace_id = excluded.trace_id, body = excluded.body";

const INVESTIGATION_HEAD: &str =
    "INSERT INTO investigations (id, alert_id, ts, risk_score, trace_id, body) VALUES ";
const INVESTIGATION_TAIL: &str = " ON CONFLICT(id) DO UPDATE SET alert_id = excluded.alert_id, \
     ts = excluded.ts, risk_score = excluded.risk_score, trace_id = excluded.trace_id, body = excluded.body";

const PLAN_HEAD: &str =
    "INSERT INTO plans (id, alert_id, investigation_id, ts, mode, trace_id, body) VALUES ";
const PLAN_TAIL: &str = " ON CONFLICT(id) DO UPDATE SET alert_id = excluded.alert_id, \
     investigation_id = excluded.investigation_id, ts = excluded.ts, mode = excluded.mode, \
     trace_id = excluded.trace_id, body = excluded.body";

const ACTION_HEAD: &str = "INSERT INTO actions \
     (id, plan_id, alert_id, kind, subject, state, expires_at, created, updated, trace_id, body) VALUES ";
const ACTION_TAIL: &str = " ON CONFLICT(id) DO UPDATE SET plan_id = excluded.plan_id, \
     alert_id = excluded.alert_id, kind = excluded.kind, subject = excluded.subject, \
     state = excluded.state, expires_at = excluded.expires_at, created = excluded.created, \
     updated = excluded.updated, trace_id = excluded.trace_id, body = excluded.body";

const AUDIT_HEAD: &str =
    "INSERT INTO audit (ts, kind, subject_id, trace_id, summary, log_seq, content_hash) VALUES ";
/// A log sequence number already indexed is kept as it is (the audit log is the authority; adding a
/// record again only happens when catching up, and [`persist_same_kind`] reports a skip).
const AUDIT_TAIL: &str = " ON CONFLICT (log_seq) WHERE log_seq IS NOT NULL DO NOTHING";

/// The SQL pieces of one kind's upsert: `head` + one `(?, …)` tuple per row + `tail`.
struct Shape {
    head: &'static str,
    cols: usize,
    tail: &'static str,
}

fn shape(record: &Record) -> Shape {
    match record {
        Record::Event(_) => Shape {
            head: EVENT_HEAD,
            cols: 7,
            tail: EVENT_TAIL,
        },
        Record::Alert(_) => Shape {
            head: ALERT_HEAD,
            cols: 8,
            tail: ALERT_TAIL,
        },
        Record::Investigation(_) => Shape {
            head: INVESTIGATION_HEAD,
            cols: 6,
            tail: INVESTIGATION_TAIL,
        },
        Record::Plan(_) => Shape {
            head: PLAN_HEAD,
            cols: 7,
            tail: PLAN_TAIL,
        },
        Record::Action(_) => Shape {
            head: ACTION_HEAD,
            cols: 11,
            tail: ACTION_TAIL,
        },
        Record::Audit(_) => Shape {
            head: AUDIT_HEAD,
            cols: 7,
            tail: AUDIT_TAIL,
        },
    }
}

type Q<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds one record's columns, in the order its `Shape` lists them.
fn bind<'q>(query: Q<'q>, record: &Record) -> Result<Q<'q>, StoreError> {
    Ok(match record {
        Record::Event(e) => query
            .bind(e.id.to_string())
            .bind(e.ts.as_millis())
            .bind(e.kind.0.clone())
            .bind(e.source.clone())
            .bind(e.src_ip.map(|ip| ip.to_string()))
            .bind(e.trace_id.as_str().to_owned())
            .bind(body(e)?),
        Record::Alert(a) => query
            .bind(a.id.to_string())
            .bind(a.ts.as_millis())
            .bind(a.scenario.clone())
            .bind(a.severity.as_str())
            .bind(severity_rank(a.severity))
            .bind(a.subject.key())
            .bind(a.trace_id.as_str().to_owned())
            .bind(body(a)?),
        Record::Investigation(i) => query
            .bind(i.id.to_string())
            .bind(i.alert.id.to_string())
            .bind(i.ts.as_millis())
            .bind(i64::from(i.risk_score))
            .bind(i.trace_id.as_str().to_owned())
            .bind(body(&StoredInvestigation::from(i))?),
        Record::Plan(p) => query
            .bind(p.id.to_string())
            .bind(p.alert_id.to_string())
            .bind(p.investigation_id.to_string())
            .bind(p.ts.as_millis())
            .bind(p.mode.as_str())
            .bind(p.trace_id.as_str().to_owned())
            .bind(body(p)?),
        Record::Action(a) => query
            .bind(a.id.to_string())
            .bind(a.origin.plan_id().map(|id| id.to_string()))
            .bind(a.origin.alert_id().map(|id| id.to_string()))
            .bind(a.spec.kind.as_str())
            .bind(a.spec.subject.key())
            .bind(a.state.as_str())
            .bind(a.expires_at.as_millis())
            .bind(a.created.as_millis())
            .bind(a.updated.as_millis())
            .bind(a.trace_id.as_str().to_owned())
            .bind(body(a)?),
        Record::Audit(AuditRow { log_seq, record: a }) => query
            .bind(a.ts.as_millis())
            .bind(a.kind.as_str())
            .bind(a.subject_id.clone())
            .bind(a.trace_id.as_str().to_owned())
            .bind(a.summary.clone())
            .bind(log_seq.map(seq_column).transpose()?)
            .bind(a.content_hash.clone()),
    })
}

/// A log sequence number as SQLite stores it (a signed 64-bit integer).
pub(crate) fn seq_column(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Encode(format!("audit log seq {seq} is too large")))
}

/// Rows per statement: SQLite allows 32,766 bound values; the widest kind binds 11 per row.
const ROWS_PER_STATEMENT: usize = 256;

/// Persists records of one kind with multi-row statements (rows keep their order, so a later upsert
/// of the same id wins). Every record in `records` must be of the same kind. Returns the rows written:
/// fewer than given only for audit records whose log sequence number was already indexed (each such
/// skip is logged as `audit_index_duplicate`).
pub(crate) async fn persist_same_kind(
    conn: &mut SqliteConnection,
    records: &[&Record],
) -> Result<u64, StoreError> {
    let Some(first) = records.first() else {
        return Ok(0);
    };
    let mut written = 0;
    let sh = shape(first);
    let tuple = format!("({})", vec!["?"; sh.cols].join(", "));
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut sql =
            String::with_capacity(sh.head.len() + chunk.len() * (tuple.len() + 2) + sh.tail.len());
        sql.push_str(sh.head);
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&tuple);
        }
        sql.push_str(sh.tail);
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = bind(query, r)?;
        }
        let done = query.execute(&mut *conn).await?.rows_affected();
        let given = chunk.len() as u64;
        if done < given {
            tracing::warn!(
                evt = "audit_index_duplicate",
                table = first.table(),
                skipped = given - done,
                "records already indexed under their audit log seq were kept as they were"
            );
        }
        written += done;
    }
    Ok(written)
}
