//! What the writer stores: the [`Record`] enum and the one SQL statement that persists each kind.
//!
//! Every kind is an upsert by id, so a retried batch or a replayed record never duplicates a row and an
//! action's later state overwrites its earlier one. Audit records have no id and are appended.
//! This module must not read; reads live in `read`.

use crate::error::StoreError;
use sentinel_core::{ActionRecord, Alert, AuditRecord, Event, Investigation, Plan, Severity};
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

const UPSERT_EVENT: &str = "INSERT INTO events (id, ts, kind, source, src_ip, trace_id, body) \
     VALUES (?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT(id) DO UPDATE SET ts = excluded.ts, kind = excluded.kind, source = excluded.source, \
     src_ip = excluded.src_ip, trace_id = excluded.trace_id, body = excluded.body";

const UPSERT_ALERT: &str =
    "INSERT INTO alerts (id, ts, scenario, severity, severity_rank, subject, trace_id, body) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT(id) DO UPDATE SET ts = excluded.ts, scenario = excluded.scenario, \
     severity = excluded.severity, severity_rank = excluded.severity_rank, subject = excluded.subject, \
     trace_id = excluded.trace_id, body = excluded.body";

const UPSERT_INVESTIGATION: &str =
    "INSERT INTO investigations (id, alert_id, ts, risk_score, trace_id, body) \
     VALUES (?, ?, ?, ?, ?, ?) \
     ON CONFLICT(id) DO UPDATE SET alert_id = excluded.alert_id, ts = excluded.ts, \
     risk_score = excluded.risk_score, trace_id = excluded.trace_id, body = excluded.body";

const UPSERT_PLAN: &str =
    "INSERT INTO plans (id, alert_id, investigation_id, ts, mode, trace_id, body) \
     VALUES (?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT(id) DO UPDATE SET alert_id = excluded.alert_id, \
     investigation_id = excluded.investigation_id, ts = excluded.ts, mode = excluded.mode, \
     trace_id = excluded.trace_id, body = excluded.body";

const UPSERT_ACTION: &str = "INSERT INTO actions \
     (id, plan_id, alert_id, kind, subject, state, expires_at, created, updated, trace_id, body) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT(id) DO UPDATE SET plan_id = excluded.plan_id, alert_id = excluded.alert_id, \
     kind = excluded.kind, subject = excluded.subject, state = excluded.state, \
     expires_at = excluded.expires_at, created = excluded.created, updated = excluded.updated, \
     trace_id = excluded.trace_id, body = excluded.body";

const INSERT_AUDIT: &str =
    "INSERT INTO audit (ts, kind, subject_id, trace_id, summary) VALUES (?, ?, ?, ?, ?)";

/// Writes one record with one statement on `conn` (usually inside the batch's transaction).
pub(crate) async fn persist(
    conn: &mut SqliteConnection,
    record: &Record,
) -> Result<(), StoreError> {
    let query = match record {
        Record::Event(e) => sqlx::query(UPSERT_EVENT)
            .bind(e.id.to_string())
            .bind(e.ts.as_millis())
            .bind(e.kind.0.clone())
            .bind(e.source.clone())
            .bind(e.src_ip.map(|ip| ip.to_string()))
            .bind(e.trace_id.as_str().to_owned())
            .bind(body(e)?),
        Record::Alert(a) => sqlx::query(UPSERT_ALERT)
            .bind(a.id.to_string())
            .bind(a.ts.as_millis())
            .bind(a.scenario.clone())
            .bind(a.severity.as_str())
            .bind(severity_rank(a.severity))
            .bind(a.subject.key())
            .bind(a.trace_id.as_str().to_owned())
            .bind(body(a)?),
        Record::Investigation(i) => sqlx::query(UPSERT_INVESTIGATION)
            .bind(i.id.to_string())
            .bind(i.alert.id.to_string())
            .bind(i.ts.as_millis())
            .bind(i64::from(i.risk_score))
            .bind(i.trace_id.as_str().to_owned())
            .bind(body(i)?),
        Record::Plan(p) => sqlx::query(UPSERT_PLAN)
            .bind(p.id.to_string())
            .bind(p.alert_id.to_string())
            .bind(p.investigation_id.to_string())
            .bind(p.ts.as_millis())
            .bind(p.mode.as_str())
            .bind(p.trace_id.as_str().to_owned())
            .bind(body(p)?),
        Record::Action(a) => sqlx::query(UPSERT_ACTION)
            .bind(a.id.to_string())
            .bind(a.plan_id.to_string())
            .bind(a.alert_id.to_string())
            .bind(a.spec.kind.as_str())
            .bind(a.spec.subject.key())
            .bind(a.state.as_str())
            .bind(a.expires_at.as_millis())
            .bind(a.created.as_millis())
            .bind(a.updated.as_millis())
            .bind(a.trace_id.as_str().to_owned())
            .bind(body(a)?),
        Record::Audit(a) => sqlx::query(INSERT_AUDIT)
            .bind(a.ts.as_millis())
            .bind(a.kind.as_str())
            .bind(a.subject_id.clone())
            .bind(a.trace_id.as_str().to_owned())
            .bind(a.summary.clone()),
    };
    query.execute(conn).await?;
    Ok(())
}
