//! The one SQL statement that persists each kind of [`Record`], on either engine.
//!
//! Every kind is an upsert by id, so a retried batch or a replayed record never duplicates a row and an
//! action's later state overwrites its earlier one. Audit records have no id and are appended; one the
//! audit log holds carries its log sequence number, which is unique, so adding it again (catching the
//! index up after a crash) changes nothing.
//!
//! Records of one kind go in multi-row statements. When one call holds two records with the same id
//! (an action stored, then changed, in one batch), only the later is written: the row ends as it would
//! have after both, and PostgreSQL refuses an upsert that touches one row twice. This module must not
//! read; reads live in `read`.

use crate::backend::{tuples, Tx, Val};
use crate::error::StoreError;
use crate::record::{body, seq_column, severity_rank, AuditRow, Record, StoredInvestigation};
use std::collections::HashSet;

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

/// The SQL pieces of one kind's upsert: `head` + one tuple of placeholders per row + `tail`.
struct Shape {
    head: &'static str,
    tail: &'static str,
}

fn shape(record: &Record) -> Shape {
    let (head, tail) = match record {
        Record::Event(_) => (EVENT_HEAD, EVENT_TAIL),
        Record::Alert(_) => (ALERT_HEAD, ALERT_TAIL),
        Record::Investigation(_) => (INVESTIGATION_HEAD, INVESTIGATION_TAIL),
        Record::Plan(_) => (PLAN_HEAD, PLAN_TAIL),
        Record::Action(_) => (ACTION_HEAD, ACTION_TAIL),
        Record::Audit(_) => (AUDIT_HEAD, AUDIT_TAIL),
    };
    Shape { head, tail }
}

/// One record's column values, in the order its statement's head lists them; for every kind but
/// audit records the first is the id.
fn columns(record: &Record) -> Result<Vec<Val>, StoreError> {
    Ok(match record {
        Record::Event(e) => vec![
            e.id.to_string().into(),
            e.ts.as_millis().into(),
            e.kind.0.clone().into(),
            e.source.clone().into(),
            e.src_ip.map(|ip| ip.to_string()).into(),
            e.trace_id.as_str().into(),
            body(e)?.into(),
        ],
        Record::Alert(a) => vec![
            a.id.to_string().into(),
            a.ts.as_millis().into(),
            a.scenario.clone().into(),
            a.severity.as_str().into(),
            severity_rank(a.severity).into(),
            a.subject.key().into(),
            a.trace_id.as_str().into(),
            body(a)?.into(),
        ],
        Record::Investigation(i) => vec![
            i.id.to_string().into(),
            i.alert.id.to_string().into(),
            i.ts.as_millis().into(),
            i64::from(i.risk_score).into(),
            i.trace_id.as_str().into(),
            body(&StoredInvestigation::from(i))?.into(),
        ],
        Record::Plan(p) => vec![
            p.id.to_string().into(),
            p.alert_id.to_string().into(),
            p.investigation_id.to_string().into(),
            p.ts.as_millis().into(),
            p.mode.as_str().into(),
            p.trace_id.as_str().into(),
            body(p)?.into(),
        ],
        Record::Action(a) => vec![
            a.id.to_string().into(),
            a.origin.plan_id().map(|id| id.to_string()).into(),
            a.origin.alert_id().map(|id| id.to_string()).into(),
            a.spec.kind.as_str().into(),
            a.spec.subject.key().into(),
            a.state.as_str().into(),
            a.expires_at.as_millis().into(),
            a.created.as_millis().into(),
            a.updated.as_millis().into(),
            a.trace_id.as_str().into(),
            body(a)?.into(),
        ],
        Record::Audit(AuditRow { log_seq, record: a }) => vec![
            a.ts.as_millis().into(),
            a.kind.as_str().into(),
            a.subject_id.clone().into(),
            a.trace_id.as_str().into(),
            a.summary.clone().into(),
            log_seq.map(seq_column).transpose()?.into(),
            a.content_hash.clone().into(),
        ],
    })
}

/// Rows per statement: SQLite allows 32,766 bound values, PostgreSQL 65,535; the widest kind binds 11
/// per row.
const ROWS_PER_STATEMENT: usize = 256;

/// Leaves out every row whose id comes again later in `rows` (order otherwise kept).
fn last_per_id(rows: Vec<Vec<Val>>) -> Vec<Vec<Val>> {
    let mut seen = HashSet::new();
    let mut kept: Vec<Vec<Val>> = rows
        .into_iter()
        .rev()
        .filter(|row| match row.first() {
            Some(Val::Text(id)) => seen.insert(id.clone()),
            _ => true,
        })
        .collect();
    kept.reverse();
    kept
}

/// Persists records of one kind with multi-row statements, in the caller's transaction (a later
/// record with the same id wins). Every record in `records` must be of the same kind. Returns the rows
/// written: fewer than given for records left out for a later one with the same id, and for audit
/// records whose log sequence number was already indexed (each such skip is logged as
/// `audit_index_duplicate`).
pub(crate) async fn persist_same_kind(tx: &mut Tx, records: &[&Record]) -> Result<u64, StoreError> {
    let Some(first) = records.first() else {
        return Ok(0);
    };
    let sh = shape(first);
    let rows = records
        .iter()
        .map(|r| columns(r))
        .collect::<Result<Vec<_>, _>>()?;
    let rows = match first {
        Record::Audit(_) => rows,
        _ => last_per_id(rows),
    };
    let cols = rows.first().map_or(0, Vec::len);
    let mut written = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Val>> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
        let given = chunk.len() as u64;
        let sql = format!("{}{}{}", sh.head, tuples(chunk.len(), cols), sh.tail);
        let done = tx
            .execute(&sql, chunk.into_iter().flatten().collect())
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_row_of_an_id_is_kept() {
        let row = |id: &str, n: i64| vec![Val::from(id), Val::Int(n)];
        let kept = last_per_id(vec![row("a", 1), row("b", 2), row("a", 3), row("c", 4)]);
        assert_eq!(kept, vec![row("b", 2), row("a", 3), row("c", 4)]);
    }
}
