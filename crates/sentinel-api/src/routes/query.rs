//! Queries: alerts, actions, events and the audit trail, filtered and paged by cursor.
//!
//! Query parameters are checked strictly: an unknown or repeated parameter or a bad value is a 400
//! naming it. Listings are paged by count and bytes ([`crate::paging`]); their cursors are typed.

use crate::error::ApiError;
use crate::extract::StrictQuery;
use crate::paging::{self, CursorKind, TruncatedBy};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use sentinel_core::Timestamp;
use sentinel_core::{ActionId, ActionRecord, AlertId, TraceId};
use sentinel_store::{ActionFilter, AlertDetail, AlertFilter, AuditRow, EventFilter, Page};
use std::collections::HashMap;
use std::str::FromStr;

type Params = StrictQuery;

pub(super) struct Checked<'a> {
    params: &'a HashMap<String, String>,
    allowed: &'static [&'static str],
}

impl<'a> Checked<'a> {
    pub(super) fn new(
        params: &'a HashMap<String, String>,
        allowed: &'static [&'static str],
    ) -> Result<Self, ApiError> {
        if let Some(k) = crate::extract::first_unknown(params, allowed) {
            return Err(ApiError::BadRequest(format!(
                "`{k}`: unknown query parameter (expected one of {})",
                allowed.join(", ")
            )));
        }
        Ok(Self { params, allowed })
    }

    pub(super) fn text(&self, key: &str) -> Option<String> {
        debug_assert!(self.allowed.contains(&key));
        self.params.get(key).filter(|v| !v.is_empty()).cloned()
    }

    pub(super) fn parsed<T: FromStr>(&self, key: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.text(key)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ApiError::BadRequest(format!("`{key}`: {e}")))
            })
            .transpose()
    }

    fn time(&self, key: &str) -> Result<Option<Timestamp>, ApiError> {
        self.text(key)
            .map(|v| {
                Timestamp::parse_rfc3339(&v)
                    .or_else(|e| v.parse::<i64>().map(Timestamp::from_millis).map_err(|_| e))
                    .map_err(|_| {
                        ApiError::BadRequest(format!(
                            "`{key}`: not an RFC 3339 time or epoch milliseconds: {v:?}"
                        ))
                    })
            })
            .transpose()
    }

    /// `limit`: 1..=1000, 100 when not given.
    pub(super) fn limit(&self) -> Result<usize, ApiError> {
        paging::limit_param(self.text("limit").as_deref())
    }

    /// `cursor`, checked to be one of `kind`'s: the position it names.
    pub(super) fn cursor(&self, kind: CursorKind) -> Result<Option<String>, ApiError> {
        self.text("cursor")
            .map(|c| kind.decode("cursor", &c))
            .transpose()
    }
}

/// Answers a store page as a paged list: `limit` and the byte budget apply again to what the store
/// read (it stops reading near the budget; the answer stops exactly at it).
fn paged<T: serde::Serialize>(
    s: &AppState,
    kind: CursorKind,
    limit: usize,
    page: Page<T>,
    position: impl Fn(&T) -> String,
) -> Result<Response, ApiError> {
    let more = page.next_cursor.as_ref().map(|_| {
        if page.by_bytes {
            TruncatedBy::Bytes
        } else {
            TruncatedBy::Count
        }
    });
    let items = page.items.into_iter().map(|i| (position(&i), i));
    paging::answer(
        paging::Page::new(kind, limit, s.settings.paging.max_page_bytes),
        items,
        more,
    )
}

const ALERT_PARAMS: &[&str] = &[
    "severity",
    "min_severity",
    "scenario",
    "subject",
    "trace_id",
    "since",
    "until",
    "cursor",
    "limit",
];

/// `GET /v1/alerts`.
#[utoipa::path(get, path = "/v1/alerts", tag = "query",
    params(
        ("severity" = Option<super::openapi::Severity>, Query, description = "Only this severity."),
        ("min_severity" = Option<super::openapi::Severity>, Query, description = "Only at least this severe."),
        ("scenario" = Option<String>, Query, description = "Only this scenario."),
        ("subject" = Option<String>, Query, description = "Only about this subject."),
        ("trace_id" = Option<String>, Query, description = "Only of this trace."),
        ("since" = Option<String>, Query, description = "From this time (RFC 3339 or epoch milliseconds)."),
        ("until" = Option<String>, Query, description = "Up to this time (RFC 3339 or epoch milliseconds)."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (1–1000)."),
    ),
    responses((status = 200, description = "A page of alerts, newest first. Role: viewer.", body = super::openapi::Page<super::openapi::Alert>)))]
pub(crate) async fn alerts(
    State(s): State<AppState>,
    StrictQuery(q): Params,
) -> Result<Response, ApiError> {
    let c = Checked::new(&q, ALERT_PARAMS)?;
    let limit = c.limit()?;
    let f = AlertFilter {
        severity: c.parsed("severity")?,
        min_severity: c.parsed("min_severity")?,
        scenario: c.text("scenario"),
        subject: c.text("subject"),
        trace_id: c.text("trace_id"),
        since: c.time("since")?,
        until: c.time("until")?,
        cursor: c.cursor(CursorKind::Alert)?,
        limit: limit as u32,
        max_bytes: s.settings.paging.max_page_bytes,
    };
    let page = s.store.list_alerts(&f).await?;
    paged(&s, CursorKind::Alert, limit, page, |a| a.id.to_string())
}

/// `GET /v1/alerts/{id}`: the alert with its investigation, plans and actions.
#[utoipa::path(get, path = "/v1/alerts/{id}", tag = "query",
    params(("id" = String, Path, pattern = "^[0-9A-HJKMNP-TV-Z]{26}$", description = "The alert's id (a ULID).")),
    responses(
        (status = 200, description = "The alert with its investigation, plans and actions. Role: viewer.", body = super::openapi::AlertDetail),
        (status = 404, description = "No such alert.", body = super::openapi::Error),
    ))]
pub(crate) async fn alert(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, ApiError> {
    let id =
        AlertId::from_str(&id).map_err(|_| ApiError::BadRequest("`id`: not an alert id".into()))?;
    s.store
        .get_alert(id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

const ACTION_PARAMS: &[&str] = &[
    "state", "kind", "subject", "trace_id", "since", "until", "cursor", "limit",
];

/// `GET /v1/actions`.
#[utoipa::path(get, path = "/v1/actions", tag = "query",
    params(
        ("state" = Option<super::openapi::ActionState>, Query, description = "Only in this state."),
        ("kind" = Option<super::openapi::ActionKind>, Query, description = "Only of this kind."),
        ("subject" = Option<String>, Query, description = "Only about this subject."),
        ("trace_id" = Option<String>, Query, description = "Only of this trace."),
        ("since" = Option<String>, Query, description = "From this time (RFC 3339 or epoch milliseconds)."),
        ("until" = Option<String>, Query, description = "Up to this time (RFC 3339 or epoch milliseconds)."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (1–1000)."),
    ),
    responses((status = 200, description = "A page of actions, newest first. Role: viewer.", body = super::openapi::Page<super::openapi::ActionRecord>)))]
pub(crate) async fn actions(
    State(s): State<AppState>,
    StrictQuery(q): Params,
) -> Result<Response, ApiError> {
    let c = Checked::new(&q, ACTION_PARAMS)?;
    let limit = c.limit()?;
    let f = ActionFilter {
        state: c.parsed("state")?,
        kind: c.parsed("kind")?,
        subject: c.text("subject"),
        trace_id: c.text("trace_id"),
        since: c.time("since")?,
        until: c.time("until")?,
        cursor: c.cursor(CursorKind::Action)?,
        limit: limit as u32,
        max_bytes: s.settings.paging.max_page_bytes,
    };
    let page = s.store.list_actions(&f).await?;
    paged(&s, CursorKind::Action, limit, page, |a| a.id.to_string())
}

/// `GET /v1/actions/{id}`.
#[utoipa::path(get, path = "/v1/actions/{id}", tag = "query",
    params(("id" = String, Path, pattern = "^[0-9A-HJKMNP-TV-Z]{26}$", description = "The action's id (a ULID).")),
    responses(
        (status = 200, description = "The action. Role: viewer.", body = super::openapi::ActionRecord),
        (status = 404, description = "No such action.", body = super::openapi::Error),
    ))]
pub(crate) async fn action(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ActionRecord>, ApiError> {
    let id = ActionId::from_str(&id)
        .map_err(|_| ApiError::BadRequest("`id`: not an action id".into()))?;
    s.store
        .get_action(id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

const EVENT_PARAMS: &[&str] = &[
    "trace_id", "src_ip", "kind", "since", "until", "cursor", "limit",
];

/// `GET /v1/events`.
#[utoipa::path(get, path = "/v1/events", tag = "query",
    params(
        ("trace_id" = Option<String>, Query, description = "Only of this trace."),
        ("src_ip" = Option<String>, Query, description = "Only from this address."),
        ("kind" = Option<String>, Query, description = "Only of this kind."),
        ("since" = Option<String>, Query, description = "From this time (RFC 3339 or epoch milliseconds)."),
        ("until" = Option<String>, Query, description = "Up to this time (RFC 3339 or epoch milliseconds)."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (1–1000)."),
    ),
    responses((status = 200, description = "A page of events, newest first. Role: viewer.", body = super::openapi::Page<super::openapi::Event>)))]
pub(crate) async fn events(
    State(s): State<AppState>,
    StrictQuery(q): Params,
) -> Result<Response, ApiError> {
    let c = Checked::new(&q, EVENT_PARAMS)?;
    let limit = c.limit()?;
    let f = EventFilter {
        trace_id: c.text("trace_id"),
        src_ip: c.text("src_ip"),
        kind: c.text("kind"),
        since: c.time("since")?,
        until: c.time("until")?,
        cursor: c.cursor(CursorKind::Event)?,
        limit: limit as u32,
        max_bytes: s.settings.paging.max_page_bytes,
    };
    let page = s.store.list_events(&f).await?;
    paged(&s, CursorKind::Event, limit, page, |e| e.id.to_string())
}

/// `GET /v1/audit?trace_id=…`: every audit record of one trace, in the order written, each with its
/// `seq` in the audit log (`null` for a record the log does not hold) and its `content_hash` (SHA-256
/// hex of the stored record it notes, or of the configuration loaded; `null` when there is none).
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(("trace_id" = String, Query, pattern = "^[0-9A-HJKMNP-TV-Z]{26}$", description = "The trace (a ULID).")),
    responses((status = 200, description = "Every audit record of the trace, in the order written. Role: viewer.", body = Vec<super::openapi::Object>)))]
pub(crate) async fn audit(
    State(s): State<AppState>,
    StrictQuery(q): Params,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    let c = Checked::new(&q, &["trace_id"])?;
    let t = c
        .text("trace_id")
        .ok_or_else(|| ApiError::BadRequest("`trace_id`: missing".into()))?;
    let t = TraceId::parse(&t)
        .ok_or_else(|| ApiError::BadRequest("`trace_id`: not a trace id".into()))?;
    Ok(Json(s.store.audit_for_trace(&t).await?))
}
