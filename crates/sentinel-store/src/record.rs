//! What the writer stores: the [`Record`] enum and the one SQL statement that persists each kind.
//!
//! Every kind is an upsert by id, so a retried batch or a replayed record never duplicates a row and an
//! action's later state overwrites its earlier one. Audit records have no id and are appended.
//! This module must not read; reads live in `read`.

use crate::error::StoreError;
use sentinel_core::{
    ActionRecord, Alert, AlertId, AuditRecord, Event, Evidence, Investigation, InvestigationId,
    Plan, Severity, Timestamp, TraceId,
};
use serde::Serialize;
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
    /// One entry of the audit trail (appended, never replaced).
    Audit(AuditRecord),
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
    fn from(v: AuditRecord) -> Self {
        Record::Audit(v)
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

const AUDIT_HEAD: &str = "INSERT INTO audit (ts, kind, subject_id, trace_id, summary) VALUES ";

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
            cols: 5,
            tail: "",
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
        Record::Audit(a) => query
            .bind(a.ts.as_millis())
            .bind(a.kind.as_str())
            .bind(a.subject_id.clone())
            .bind(a.trace_id.as_str().to_owned())
            .bind(a.summary.clone()),
    })
}

/// Rows per statement: SQLite allows 32,766 bound values; the widest kind binds 11 per row.
const ROWS_PER_STATEMENT: usize = 256;

/// Persists records of one kind with multi-row statements (rows keep their order, so a later upsert
/// of the same id wins). Every record in `records` must be of the same kind.
pub(crate) async fn persist_same_kind(
    conn: &mut SqliteConnection,
    records: &[&Record],
) -> Result<(), StoreError> {
    let Some(first) = records.first() else {
        return Ok(());
    };
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
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
