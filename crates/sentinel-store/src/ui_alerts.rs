//! Reads the dashboard's alert pages need beyond the API's: the actions of a page of alerts (the
//! list shows what was done about each) and a trace's audit trail cut at a page's worth.
//!
//! Every query here is an indexed lookup bounded by a LIMIT (or by the ids of one page). This module
//! must not write.

use crate::backend::on_backend;
use crate::error::StoreError;
use crate::read::{audit_row, AuditIndexRow};
use crate::record::AuditRow;
use crate::store::Store;
use sentinel_core::{ActionKind, ActionState, AlertId, TraceId};
use sqlx::QueryBuilder;
use std::collections::HashMap;

/// At most this many actions are summed up per alert in [`Store::alert_action_states`].
const ACTIONS_PER_ALERT: usize = 20;

/// What was done about one alert, in brief: each action's kind and state, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertActions {
    /// The actions' kinds and states, oldest first (at most 20).
    pub actions: Vec<(ActionKind, ActionState)>,
    /// The alert has more actions than listed.
    pub more: bool,
}

/// A trace's audit trail cut at a limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditTrail {
    /// The records, in audit log order (as [`Store::audit_for_trace`]).
    pub rows: Vec<AuditRow>,
    /// More records of the trace exist past `rows`.
    pub more: bool,
}

impl Store {
    /// The kinds and states of the actions taken about each of `ids` (one page of alerts), by alert.
    /// One query over the `actions_alert_id` index; alerts without actions are absent.
    pub async fn alert_action_states(
        &self,
        ids: &[AlertId],
    ) -> Result<HashMap<AlertId, AlertActions>, StoreError> {
        let mut out: HashMap<AlertId, AlertActions> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut rows: Vec<(String, String, String, String)> = on_backend!(self, |pool| {
            let mut q = QueryBuilder::new(
                "SELECT id, alert_id, kind, state FROM actions WHERE alert_id IN (",
            );
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(id.to_string());
            }
            // No ORDER BY: it could lead SQLite to walk the whole table in id order; a page's actions
            // are few, sorted here.
            q.push(")");
            q.build_query_as().fetch_all(pool).await?
        });
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (_, alert, kind, state) in rows {
            let corrupt = |what: &str, e: String| {
                StoreError::Corrupt(format!("actions of alert {alert}: {what}: {e}"))
            };
            let id: AlertId = alert
                .parse()
                .map_err(|_| corrupt("alert_id", alert.clone()))?;
            let kind: ActionKind = kind.parse().map_err(|e| corrupt("kind", e))?;
            let state: ActionState = state.parse().map_err(|e| corrupt("state", e))?;
            let entry = out.entry(id).or_default();
            if entry.actions.len() < ACTIONS_PER_ALERT {
                entry.actions.push((kind, state));
            } else {
                entry.more = true;
            }
        }
        Ok(out)
    }

    /// The audit trail of one trace in audit log order (as [`Store::audit_for_trace`]), at most
    /// `limit` records, and whether more exist.
    pub async fn audit_trail(&self, trace: &TraceId, limit: u32) -> Result<AuditTrail, StoreError> {
        let sql = self.sql(
            "SELECT seq, ts, kind, subject_id, trace_id, summary, log_seq, content_hash FROM audit \
             WHERE trace_id = ? ORDER BY log_seq IS NULL, log_seq ASC, seq ASC LIMIT ?",
        );
        let rows = on_backend!(self, |pool| {
            sqlx::query_as::<_, AuditIndexRow>(&sql)
                .bind(trace.as_str())
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await?
        });
        let more = rows.len() > limit as usize;
        let rows = rows
            .into_iter()
            .take(limit as usize)
            .map(audit_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuditTrail { rows, more })
    }
}
