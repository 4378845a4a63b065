//! Manual decisions through the API, with CrowdSec-like verbs: `POST /v1/decisions` (add, or preview
//! with `dry_run`), `GET /v1/decisions` (live ones), `DELETE /v1/decisions?ip=…|id=…|all=true`.
//! The ledger behind [`Decisions`] stays the one source of truth. A body is parsed into a typed
//! [`ActionSpec`] here (every malformed value is a 400 naming its field); the daemon adds its limits.

use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type, typed, StrictQuery};
use crate::paging::{self, CursorKind};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use sentinel_core::params::{Cidr, ContainerName, QuarantinePath};
use sentinel_core::{ActionKind, ActionRecord, ActionSpec, SpecError, SpecField, Subject, TraceId};
pub use sentinel_pipeline::decisions::{
    DecisionError, DecisionRequest, DecisionSelector, Decisions,
};
use serde::Deserialize;
use std::net::IpAddr;

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
    kind: Option<String>,
    duration: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    params: serde_json::Value,
    #[serde(default)]
    dry_run: bool,
}

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::Invalid(m) => ApiError::BadRequest(m),
            DecisionError::NotStored(m) => ApiError::Unavailable(m),
        }
    }
}

fn desk(s: &AppState) -> Result<&dyn Decisions, ApiError> {
    s.decisions
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("decisions are not available in this role".into()))
}

/// `POST /v1/decisions`.
#[utoipa::path(post, path = "/v1/decisions", tag = "decisions",
    request_body(content = crate::routes::openapi::DecisionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The preview (`dry_run`). Role: operator.", body = crate::routes::openapi::ActionRecord),
        (status = 201, description = "The decision, planned or applied. Role: operator.", body = crate::routes::openapi::ActionRecord),
    ))]
pub(crate) async fn add(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ActionRecord>), ApiError> {
    require_content_type(&headers, &["application/json"], "application/json")?;
    let bytes = read_limited(&headers, body, s.settings.max_body_bytes).await?;
    let mut body = parse_json_value(&bytes).map_err(ApiError::BadRequest)?;
    // Secrets in `reason`, `params` or anywhere else are masked before anything reads, stores or echoes them.
    let masked = s.redactor.redact(&mut body);
    s.metrics.secrets_redacted.add(masked as u64);
    let b: AddBody = typed(body).map_err(ApiError::BadRequest)?;

    let (spec, reason, dry_run) = b.into_spec().map_err(ApiError::BadRequest)?;
    let rec = desk(&s)?
        .add(DecisionRequest {
            spec,
            reason,
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

/// Checks an add body as `POST /v1/decisions` does, without the daemon's limits: what the CLI runs
/// before sending, so both refuse the same things with the same words.
pub fn check_add_body(body: &serde_json::Value) -> Result<ActionSpec, String> {
    let b: AddBody = typed(body.clone())?;
    b.into_spec().map(|(spec, _, _)| spec)
}

/// A decision to add from a body as `POST /v1/decisions` takes it, for the gRPC API: secrets masked
/// first (counted), then checked as REST checks it; the error is the one REST answers.
pub fn add_request(
    s: &AppState,
    mut body: serde_json::Value,
    trace: TraceId,
) -> Result<DecisionRequest, ApiError> {
    let masked = s.redactor.redact(&mut body);
    s.metrics.secrets_redacted.add(masked as u64);
    let b: AddBody = typed(body).map_err(ApiError::BadRequest)?;
    let (spec, reason, dry_run) = b.into_spec().map_err(ApiError::BadRequest)?;
    Ok(DecisionRequest {
        spec,
        reason,
        dry_run,
        trace_id: trace,
    })
}

/// `` `field`: reason `` for a problem in the action, named as the request names it.
fn named(e: &SpecError, subject_key: &str) -> String {
    match e.field {
        SpecField::Subject => format!("`{subject_key}`: {}", e.reason),
        SpecField::Ttl => format!("`duration`: {}", e.reason),
        other => format!("`{other}`: {}", e.reason),
    }
}

impl AddBody {
    /// The typed action, the reason and whether it is a dry run. No message quotes the raw input.
    fn into_spec(self) -> Result<(ActionSpec, String, bool), String> {
        if self.duration.len() > 32 {
            return Err("`duration`: too long (e.g. 4h, 30m, 7d)".into());
        }
        let ttl = humantime::parse_duration(self.duration.trim())
            .map_err(|_| "`duration`: not a duration (e.g. 4h, 30m, 7d)".to_string())?;
        if ttl.as_secs() == 0 {
            return Err("`duration`: must be at least 1s".into());
        }
        let mut params = self.params;
        let (subject, key) = match (self.ip, self.container, self.file) {
            (Some(ip), None, None) => match ip.parse::<IpAddr>() {
                // `::ffff:a.b.c.d` is the IPv4 address a.b.c.d (what nftables can match).
                Ok(addr) => (Subject::Ip(addr.to_canonical()), "ip"),
                Err(_) => {
                    let net: Cidr = ip.parse().map_err(|e| format!("`ip`: {e}"))?;
                    match &mut params {
                        serde_json::Value::Null => {
                            params = serde_json::json!({ "cidr": net.to_string() })
                        }
                        serde_json::Value::Object(m) => {
                            if m.get("cidr")
                                .is_some_and(|c| c.as_str() != Some(&net.to_string()))
                            {
                                return Err(
                                    "`params.cidr`: differs from the range given as `ip`".into()
                                );
                            }
                            m.insert("cidr".into(), net.to_string().into());
                        }
                        _ => return Err("`params`: must be an object".into()),
                    }
                    (Subject::Ip(net.net().network()), "ip")
                }
            },
            (None, Some(c), None) => {
                let c: ContainerName = c.parse().map_err(|e| format!("`container`: {e}"))?;
                (Subject::Container(c.to_string()), "container")
            }
            (None, None, Some(f)) => {
                let f: QuarantinePath = f.parse().map_err(|e| format!("`file`: {e}"))?;
                (Subject::File(f.to_string()), "file")
            }
            _ => {
                return Err(
                    "give exactly one of `ip`, `container` or `file` (an absolute path)".into(),
                )
            }
        };
        let kind = match self.kind {
            Some(k) => k.parse().map_err(|e| format!("`kind`: {e}"))?,
            None => match subject {
                Subject::Container(_) => ActionKind::IsolateContainer,
                Subject::File(_) => ActionKind::QuarantineFile,
                _ => ActionKind::BlockIp,
            },
        };
        let spec =
            ActionSpec::parse(kind, subject, ttl.as_secs(), &params).map_err(|e| named(&e, key))?;
        Ok((spec, self.reason, self.dry_run))
    }
}

/// `GET /v1/decisions?limit=&cursor=`: live decisions, newest first, paged by count and bytes
/// (`{"items", "next_cursor", "truncated_by"}`; a `dc_…` cursor).
#[utoipa::path(get, path = "/v1/decisions", tag = "decisions",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page (`dc_…`)."),
    ),
    responses((status = 200, description = "The live decisions, newest first. Role: viewer.", body = crate::routes::openapi::Page<crate::routes::openapi::ActionRecord>)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery,
) -> Result<axum::response::Response, ApiError> {
    if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "limit" | "cursor")) {
        return Err(ApiError::BadRequest(format!(
            "`{k}`: unknown query parameter (limit, cursor)"
        )));
    }
    let limit = paging::limit_param(q.get("limit").map(String::as_str))?;
    let before = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            CursorKind::Decision
                .decode("cursor", c)?
                .parse::<sentinel_core::ActionId>()
                .map_err(|_| {
                    ApiError::BadRequest("`cursor`: not a cursor this API gave out".into())
                })?,
        ),
    };
    let (items, more) = desk(&s)?.list_page(before, limit).await;
    paging::answer(
        paging::Page::new(
            CursorKind::Decision,
            limit,
            s.settings.paging.max_page_bytes,
        ),
        items.into_iter().map(|r| (r.id.to_string(), r)),
        more.then_some(paging::TruncatedBy::Count),
    )
}

/// `DELETE /v1/decisions?ip=…|id=…|all=true`.
#[utoipa::path(delete, path = "/v1/decisions", tag = "decisions",
    params(
        ("ip" = Option<String>, Query, description = "Every decision about this address."),
        ("id" = Option<String>, Query, description = "This decision."),
        ("all" = Option<bool>, Query, description = "`true`: every decision."),
    ),
    responses((status = 200, description = "The decisions deleted. Exactly one of `ip`, `id`, `all=true`. Role: operator.", body = Vec<crate::routes::openapi::ActionRecord>)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    StrictQuery(q): StrictQuery,
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
            ip.parse::<IpAddr>()
                .map(|a| a.to_canonical())
                .map_err(|_| ApiError::BadRequest("`ip`: not an address".into()))?,
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
