//! Manual decisions through the API, with CrowdSec-like verbs: `POST /v1/decisions` (add, or preview
//! with `dry_run`), `GET /v1/decisions` (live ones), `DELETE /v1/decisions?ip=…|id=…|all=true`.
//! The ledger behind [`Decisions`] stays the one source of truth.

use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type, typed};
use crate::state::AppState;
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use sentinel_core::{ActionId, ActionKind, ActionRecord, Subject, TraceId};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;

/// A decision to add.
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    /// What to do.
    pub kind: ActionKind,
    /// To whom.
    pub subject: Subject,
    /// For how long, in seconds.
    pub ttl_secs: u64,
    /// Why (kept in the plan's reason).
    pub reason: String,
    /// Kind-specific parameters (`cidr`, `rate_per_sec`, `honeypot`, …).
    pub params: serde_json::Value,
    /// Only show what would be done.
    pub dry_run: bool,
    /// The request's trace.
    pub trace_id: TraceId,
}

/// Which live decisions to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionSelector {
    /// One decision by id.
    Id(ActionId),
    /// Every live decision on this address.
    Ip(IpAddr),
    /// Every live decision.
    All,
}

/// Why a decision was not answered with its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionError {
    /// The request was refused (allowlist, bad parameter): a `400`.
    Invalid(String),
    /// The decision was made but its records were not committed: a `503`, never a 2xx.
    NotStored(String),
}

impl From<String> for DecisionError {
    fn from(reason: String) -> Self {
        DecisionError::Invalid(reason)
    }
}

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::Invalid(m) => ApiError::BadRequest(m),
            DecisionError::NotStored(m) => ApiError::Unavailable(m),
        }
    }
}

/// The ledger, as the API sees it. An `Ok` answer means the records it describes are committed.
#[async_trait]
pub trait Decisions: Send + Sync {
    /// Adds (or previews) a decision.
    async fn add(&self, req: DecisionRequest) -> Result<ActionRecord, DecisionError>;
    /// Live decisions, soonest expiry first.
    async fn list(&self) -> Vec<ActionRecord>;
    /// Reverts the selected live decisions; returns them in their new state.
    async fn delete(
        &self,
        sel: DecisionSelector,
        trace: TraceId,
    ) -> Result<Vec<ActionRecord>, DecisionError>;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    kind: Option<ActionKind>,
    duration: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    params: serde_json::Value,
    #[serde(default)]
    dry_run: bool,
}

fn desk(s: &AppState) -> Result<&dyn Decisions, ApiError> {
    s.decisions
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("decisions are not available in this role".into()))
}

/// `POST /v1/decisions`.
pub(crate) async fn add(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ActionRecord>), ApiError> {
    require_content_type(&headers, &["application/json"], "application/json")?;
    let bytes = read_limited(&headers, body, s.settings.max_body_bytes).await?;
    let b: AddBody = typed(parse_json_value(&bytes).map_err(ApiError::BadRequest)?)
        .map_err(ApiError::BadRequest)?;
    let ttl = humantime::parse_duration(&b.duration)
        .map_err(|e| ApiError::BadRequest(format!("`duration`: {e} (e.g. 4h, 30m, 7d)")))?;
    if ttl.as_secs() == 0 {
        return Err(ApiError::BadRequest(
            "`duration`: must be at least 1s".into(),
        ));
    }
    let mut params = b.params;
    let subject = match (b.ip, b.container, b.file) {
        (Some(ip), None, None) => match ip.parse::<IpAddr>() {
            Ok(addr) => Subject::Ip(addr),
            Err(_) => {
                let net: ipnet::IpNet = ip.parse().map_err(|_| {
                    ApiError::BadRequest(format!("`ip`: not an address or CIDR: {ip:?}"))
                })?;
                if !params.is_object() {
                    params = serde_json::json!({});
                }
                if let Some(m) = params.as_object_mut() {
                    m.insert("cidr".into(), net.to_string().into());
                }
                Subject::Ip(net.network())
            }
        },
        (None, Some(c), None) if !c.is_empty() => Subject::Container(c),
        (None, None, Some(f)) if f.starts_with('/') => Subject::File(f),
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of `ip`, `container` or `file` (an absolute path)".into(),
            ))
        }
    };
    let kind = b.kind.unwrap_or(match subject {
        Subject::Container(_) => ActionKind::IsolateContainer,
        Subject::File(_) => ActionKind::QuarantineFile,
        _ => ActionKind::BlockIp,
    });
    let dry_run = b.dry_run;
    let rec = desk(&s)?
        .add(DecisionRequest {
            kind,
            subject,
            ttl_secs: ttl.as_secs(),
            reason: b.reason,
            params,
            dry_run,
            trace_id: trace,
        })
        .await
        .map_err(ApiError::from)?;
    Ok((
        if dry_run {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(rec),
    ))
}

/// `GET /v1/decisions`.
pub(crate) async fn list(State(s): State<AppState>) -> Result<Json<Vec<ActionRecord>>, ApiError> {
    Ok(Json(desk(&s)?.list().await))
}

/// `DELETE /v1/decisions?ip=…|id=…|all=true`.
pub(crate) async fn delete(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ActionRecord>>, ApiError> {
    for k in q.keys() {
        if !matches!(k.as_str(), "ip" | "id" | "all") {
            return Err(ApiError::BadRequest(format!(
                "`{k}`: unknown query parameter (ip, id, all)"
            )));
        }
    }
    let sel = match (q.get("ip"), q.get("id"), q.get("all").map(String::as_str)) {
        (Some(ip), None, None) => DecisionSelector::Ip(
            ip.parse()
                .map_err(|_| ApiError::BadRequest(format!("`ip`: not an address: {ip:?}")))?,
        ),
        (None, Some(id), None) => DecisionSelector::Id(
            id.parse()
                .map_err(|_| ApiError::BadRequest("`id`: not an action id".into()))?,
        ),
        (None, None, Some("true")) => DecisionSelector::All,
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of `ip`, `id` or `all=true`".into(),
            ))
        }
    };
    Ok(Json(
        desk(&s)?.delete(sel, trace).await.map_err(ApiError::from)?,
    ))
}
