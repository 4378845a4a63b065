//! The typed reads the API serves: filtered, paged listings and single-record lookups.
//!
//! Rows are rebuilt from their JSON `body`; the indexed columns only select and order them. A body
//! that no longer parses is reported as [`StoreError::Corrupt`] naming the table and id, never skipped
//! silently. Every read here runs on SQLite and PostgreSQL alike. This module must not write.

use crate::backend::{on_backend, Engine};
use crate::error::StoreError;
use crate::filter::{
    effective_limit, ip_text, paginate, parse_cursor, subject_key, ActionFilter, AlertFilter,
    EventFilter, Page,
};
use crate::record::{
    audited_table, seq_column, severity_rank, sha256_hex, AuditRow, ReadInvestigation,
};
use crate::store::Store;
use sentinel_core::{
    ActionId, ActionRecord, Alert, AlertId, AuditKind, AuditRecord, Event, EventId, Investigation,
    Plan, Subject, Timestamp, TraceId,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::QueryBuilder;

/// At most this many audit records are returned for one trace.
pub const AUDIT_PER_TRACE_LIMIT: i64 = 10_000;
/// At most this many plans, and this many actions, are returned with one alert.
const DETAIL_LIMIT: i64 = 1_000;

/// What the store holds about one subject over a time window: how often it was alerted on and acted
/// against (the investigation's "source history").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SubjectHistory {
    /// Alerts about the subject with `since <= ts < before`.
    pub alerts: u64,
    /// Actions against the subject created with `since <= created < before`, whatever their state now.
    pub actions: u64,
    /// The latest of those alerts' times.
    pub last_alert: Option<Timestamp>,
}

/// An alert with everything that followed from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertDetail {
    /// The alert.
    pub alert: Alert,
    /// Its latest investigation, once one has concluded.
    pub investigation: Option<Investigation>,
    /// The plans decided for it, oldest first.
    pub plans: Vec<Plan>,
    /// The actions those plans asked for, oldest first, each in its latest state.
    pub actions: Vec<ActionRecord>,
}

fn decode<T: DeserializeOwned>(table: &str, id: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("{table} {id}: {e}")))
}

fn decode_all<T: DeserializeOwned>(
    table: &str,
    rows: Vec<(String, String)>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|(id, body)| decode(table, id, body))
        .collect()
}

/// Rows of a listing as they stream from either engine: `(id, body)`.
type RowStream<'a> = futures::stream::BoxStream<'a, Result<(String, String), sqlx::Error>>;

/// Appends the paging tail to a listing's query (`id` below the cursor, newest first, one row more
/// than the page) and streams its rows. A macro: the same code for each engine's `QueryBuilder`.
macro_rules! page_rows {
    ($q:ident, $pool:ident, $cursor:expr, $limit:expr) => {{
        if let Some(c) = $cursor {
            $q.push(" AND id < ").push_bind(c);
        }
        $q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from($limit) + 1);
        $q.build_query_as::<(String, String)>().fetch($pool)
    }};
}

/// Reads one page from `rows` (the listing's `limit + 1` rows, newest first).
async fn collect_page<T: DeserializeOwned>(
    table: &str,
    mut stream: RowStream<'_>,
    limit: u32,
    max_bytes: usize,
) -> Result<Page<T>, StoreError> {
    use futures::TryStreamExt;
    // Rows are read one by one so a byte bound stops the read itself, not only the answer.
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut bytes = 0usize;
    let mut by_bytes = false;
    while let Some(row) = stream.try_next().await? {
        if max_bytes > 0 && bytes > max_bytes && rows.len() < limit as usize {
            // More rows exist past the bound: the page ends at the last row read.
            by_bytes = true;
            break;
        }
        bytes = bytes.saturating_add(row.1.len());
        rows.push(row);
    }
    drop(stream);
    if by_bytes {
        let next_cursor = rows.last().map(|(id, _)| id.clone());
        return Ok(Page {
            items: decode_all(table, rows)?,
            next_cursor,
            by_bytes,
        });
    }
    let (rows, next_cursor) = paginate(rows, limit);
    Ok(Page {
        items: decode_all(table, rows)?,
        next_cursor,
        by_bytes,
    })
}

impl Store {
    /// Alerts matching `f`, newest first.
    pub async fn list_alerts(&self, f: &AlertFilter) -> Result<Page<Alert>, StoreError> {
        let limit = effective_limit(f.limit);
        let cursor = parse_cursor::<AlertId>(f.cursor.as_deref())?;
        // Filtered only by time or minimum severity, the page is found in the (id, ts, severity_rank)
        // index without reading the rows it skips (SQLite would otherwise walk the table, or sort a
        // whole time range); an equality filter has its own (column, id) index (migration 7).
        let by_range_only = f.scenario.is_none()
            && f.subject.is_none()
            && f.severity.is_none()
            && f.trace_id.is_none()
            && (f.since.is_some() || f.until.is_some() || f.min_severity.is_some());
        // `INDEXED BY` is SQLite's; PostgreSQL's planner picks its own index.
        let head = if by_range_only && self.engine() == Engine::Sqlite {
            "SELECT id, body FROM alerts INDEXED BY alerts_id_ts_rank WHERE 1 = 1"
        } else {
            "SELECT id, body FROM alerts WHERE 1 = 1"
        };
        on_backend!(self, |pool| {
            let mut q = QueryBuilder::new(head);
            if let Some(s) = f.min_severity {
                q.push(" AND severity_rank >= ").push_bind(severity_rank(s));
            }
            if let Some(s) = f.severity {
                q.push(" AND severity = ").push_bind(s.as_str());
            }
            if let Some(s) = &f.scenario {
                q.push(" AND scenario = ").push_bind(self.text_param(s));
            }
            if let Some(s) = &f.subject {
                q.push(" AND subject = ").push_bind(subject_key(s));
            }
            if let Some(t) = &f.trace_id {
                q.push(" AND trace_id = ").push_bind(self.text_param(t));
            }
            if let Some(t) = f.since {
                q.push(" AND ts >= ").push_bind(t.as_millis());
            }
            if let Some(t) = f.until {
                q.push(" AND ts <= ").push_bind(t.as_millis());
            }
            let rows = page_rows!(q, pool, cursor, limit);
            collect_page("alerts", rows, limit, f.max_bytes).await
        })
    }

    /// One alert with its investigation, plans and actions; `None` when there is no such alert.
    pub async fn get_alert(&self, id: AlertId) -> Result<Option<AlertDetail>, StoreError> {
        let id = id.to_string();
        let sql = |s: &'static str| self.sql(s);
        let (alert_sql, inv_sql, plans_sql, actions_sql) = (
            sql("SELECT id, body FROM alerts WHERE id = ?"),
            sql("SELECT id, body FROM investigations WHERE alert_id = ? ORDER BY id DESC LIMIT 1"),
            sql("SELECT id, body FROM plans WHERE alert_id = ? ORDER BY id ASC LIMIT ?"),
            sql("SELECT id, body FROM actions WHERE alert_id = ? ORDER BY id ASC LIMIT ?"),
        );
        let (alert, investigation, plans, actions) = on_backend!(self, |pool| {
            let Some(alert) = sqlx::query_as::<_, (String, String)>(&alert_sql)
                .bind(&id)
                .fetch_optional(pool)
                .await?
            else {
                return Ok(None);
            };
            let investigation = sqlx::query_as::<_, (String, String)>(&inv_sql)
                .bind(&id)
                .fetch_optional(pool)
                .await?;
            let plans = sqlx::query_as::<_, (String, String)>(&plans_sql)
                .bind(&id)
                .bind(DETAIL_LIMIT)
                .fetch_all(pool)
                .await?;
            let actions = sqlx::query_as::<_, (String, String)>(&actions_sql)
                .bind(&id)
                .bind(DETAIL_LIMIT)
                .fetch_all(pool)
                .await?;
            (alert, investigation, plans, actions)
        });
        let alert: Alert = decode("alerts", &alert.0, &alert.1)?;
        let investigation = investigation
            .map(|(iid, body)| {
                decode::<ReadInvestigation>("investigations", &iid, &body)
                    .map(|i| i.with_alert(&alert))
            })
            .transpose()?;
        Ok(Some(AlertDetail {
            alert,
            investigation,
            plans: decode_all("plans", plans)?,
            actions: decode_all("actions", actions)?,
        }))
    }

    /// Actions matching `f` (time bounds apply to `created`), newest first, each in its latest state.
    pub async fn list_actions(&self, f: &ActionFilter) -> Result<Page<ActionRecord>, StoreError> {
        let limit = effective_limit(f.limit);
        let cursor = parse_cursor::<ActionId>(f.cursor.as_deref())?;
        on_backend!(self, |pool| {
            let mut q = QueryBuilder::new("SELECT id, body FROM actions WHERE 1 = 1");
            if let Some(s) = f.state {
                q.push(" AND state = ").push_bind(s.as_str());
            }
            if let Some(k) = f.kind {
                q.push(" AND kind = ").push_bind(k.as_str());
            }
            if let Some(s) = &f.subject {
                q.push(" AND subject = ").push_bind(subject_key(s));
            }
            if let Some(t) = &f.trace_id {
                q.push(" AND trace_id = ").push_bind(self.text_param(t));
            }
            if let Some(t) = f.since {
                q.push(" AND created >= ").push_bind(t.as_millis());
            }
            if let Some(t) = f.until {
                q.push(" AND created <= ").push_bind(t.as_millis());
            }
            let rows = page_rows!(q, pool, cursor, limit);
            collect_page("actions", rows, limit, f.max_bytes).await
        })
    }

    /// How often `subject` was alerted on and acted against from `since` up to (not including)
    /// `before`. Both counts use the `subject` indexes of `alerts` and `actions`.
    pub async fn subject_history(
        &self,
        subject: &Subject,
        since: Timestamp,
        before: Timestamp,
    ) -> Result<SubjectHistory, StoreError> {
        let key = subject.key();
        let alerts_sql = self
            .sql("SELECT COUNT(*), MAX(ts) FROM alerts WHERE subject = ? AND ts >= ? AND ts < ?");
        let actions_sql = self
            .sql("SELECT COUNT(*) FROM actions WHERE subject = ? AND created >= ? AND created < ?");
        let ((alerts, last), actions): ((i64, Option<i64>), i64) = on_backend!(self, |pool| {
            let alerts = sqlx::query_as(&alerts_sql)
                .bind(&key)
                .bind(since.as_millis())
                .bind(before.as_millis())
                .fetch_one(pool)
                .await?;
            let actions = sqlx::query_scalar(&actions_sql)
                .bind(&key)
                .bind(since.as_millis())
                .bind(before.as_millis())
                .fetch_one(pool)
                .await?;
            (alerts, actions)
        });
        Ok(SubjectHistory {
            alerts: u64::try_from(alerts).unwrap_or(0),
            actions: u64::try_from(actions).unwrap_or(0),
            last_alert: last.map(Timestamp::from_millis),
        })
    }

    /// One action in its latest state.
    pub async fn get_action(&self, id: ActionId) -> Result<Option<ActionRecord>, StoreError> {
        let sql = self.sql("SELECT id, body FROM actions WHERE id = ?");
        let row = on_backend!(self, |pool| {
            sqlx::query_as::<_, (String, String)>(&sql)
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(|(id, body)| decode("actions", &id, &body))
            .transpose()
    }

    /// Events matching `f`, newest first.
    pub async fn list_events(&self, f: &EventFilter) -> Result<Page<Event>, StoreError> {
        let limit = effective_limit(f.limit);
        let cursor = parse_cursor::<EventId>(f.cursor.as_deref())?;
        on_backend!(self, |pool| {
            let mut q = QueryBuilder::new("SELECT id, body FROM events WHERE 1 = 1");
            if let Some(t) = &f.trace_id {
                q.push(" AND trace_id = ").push_bind(self.text_param(t));
            }
            if let Some(ip) = &f.src_ip {
                q.push(" AND src_ip = ").push_bind(ip_text(ip));
            }
            if let Some(k) = &f.kind {
                q.push(" AND kind = ").push_bind(self.text_param(k));
            }
            if let Some(t) = f.since {
                q.push(" AND ts >= ").push_bind(t.as_millis());
            }
            if let Some(t) = f.until {
                q.push(" AND ts <= ").push_bind(t.as_millis());
            }
            let rows = page_rows!(q, pool, cursor, limit);
            collect_page("events", rows, limit, f.max_bytes).await
        })
    }

    /// The audit trail of one trace in audit log order (by log seq; rows the log does not hold come
    /// after, in the order they were stored), at most [`AUDIT_PER_TRACE_LIMIT`], each record with its
    /// audit log seq (when the log holds it) and content hash. Log order holds even for rows the index
    /// caught up after a crash, which are stored later than the rows around them.
    pub async fn audit_for_trace(&self, trace: &TraceId) -> Result<Vec<AuditRow>, StoreError> {
        Ok(self
            .audit_trail(trace, AUDIT_PER_TRACE_LIMIT as u32)
            .await?
            .rows)
    }

    /// Up to `limit` indexed audit records the audit log holds, from log seq `from` on, in log seq
    /// order: for checking the index against the log.
    pub async fn audit_index_from(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let sql = self.sql(
            "SELECT seq, ts, kind, subject_id, trace_id, summary, log_seq, content_hash FROM audit \
             WHERE log_seq >= ? ORDER BY log_seq ASC LIMIT ?",
        );
        let from = seq_column(from)?;
        let rows = on_backend!(self, |pool| {
            sqlx::query_as::<_, AuditIndexRow>(&sql)
                .bind(from)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(audit_row).collect()
    }

    /// The highest audit log seq indexed, `None` when no indexed record came from the log. Catching
    /// the index up from the log starts after it (see also [`Store::audit_log_seq_gaps`]).
    pub async fn max_audit_log_seq(&self) -> Result<Option<u64>, StoreError> {
        let max: Option<i64> = on_backend!(self, |pool| {
            sqlx::query_scalar("SELECT MAX(log_seq) FROM audit WHERE log_seq IS NOT NULL")
                .fetch_one(pool)
                .await?
        });
        max.map(|m| u64::try_from(m).map_err(|_| StoreError::Corrupt(format!("audit log_seq {m}"))))
            .transpose()
    }

    /// The audit log seqs in `from..to` that the index lacks, as ranges in ascending order: the
    /// records to add again after a crash (the index is written after the log, and not necessarily in
    /// seq order, so a gap can sit below the highest seq indexed).
    pub async fn audit_log_seq_gaps(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<std::ops::Range<u64>>, StoreError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let sql = self.sql(
            "SELECT log_seq FROM audit WHERE log_seq >= ? AND log_seq < ? ORDER BY log_seq ASC",
        );
        let (from_col, to_col) = (seq_column(from)?, seq_column(to)?);
        let present: Vec<i64> = on_backend!(self, |pool| {
            sqlx::query_scalar(&sql)
                .bind(from_col)
                .bind(to_col)
                .fetch_all(pool)
                .await?
        });
        let mut gaps = Vec::new();
        let mut next = from;
        for seq in present {
            let seq = u64::try_from(seq)
                .map_err(|_| StoreError::Corrupt(format!("audit log_seq {seq}")))?;
            if seq > next {
                gaps.push(next..seq);
            }
            next = seq + 1;
        }
        if next < to {
            gaps.push(next..to);
        }
        Ok(gaps)
    }

    /// The content hash of a stored record, recomputed from its row exactly as stored: the record an
    /// audit record of `kind` about `subject_id` notes. `None` when `kind` is not about a stored record
    /// (see [`audited_table`](crate::audited_table)) or there is no such row. An action's row holds its
    /// latest state: it matches the hash of the latest audit record about it.
    pub async fn stored_content_hash(
        &self,
        kind: AuditKind,
        subject_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(table) = audited_table(kind) else {
            return Ok(None);
        };
        // `table` is one of the fixed names `audited_table` answers, never caller text.
        let sql = format!("SELECT body FROM {table} WHERE id = ?");
        let sql = self.sql(&sql);
        let body: Option<String> = on_backend!(self, |pool| {
            sqlx::query_scalar(&sql)
                .bind(subject_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(body.map(|b| sha256_hex(b.as_bytes())))
    }
}

/// An `audit` row as selected: seq, ts, kind, subject_id, trace_id, summary, log_seq, content_hash.
pub(crate) type AuditIndexRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
);

pub(crate) fn audit_row(
    (seq, ts, kind, subject_id, trace_id, summary, log_seq, content_hash): AuditIndexRow,
) -> Result<AuditRow, StoreError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("audit {seq}: {what}: {e}"))
    };
    let kind: AuditKind =
        serde_json::from_value(serde_json::Value::String(kind)).map_err(|e| corrupt("kind", &e))?;
    let trace_id: TraceId = serde_json::from_value(serde_json::Value::String(trace_id))
        .map_err(|e| corrupt("trace_id", &e))?;
    let log_seq = log_seq
        .map(u64::try_from)
        .transpose()
        .map_err(|e| corrupt("log_seq", &e))?;
    Ok(AuditRow {
        log_seq,
        record: AuditRecord {
            ts: sentinel_core::Timestamp::from_millis(ts),
            kind,
            subject_id,
            trace_id,
            summary,
            content_hash,
        },
    })
}
