//! The investigation through the API: `GET /v1/intel/{ip}` (operator: a lookup spends the providers'
//! quota) investigates a made-up alert from the address and answers the [`LookupReport`] — what each
//! enricher said, its cache state, the uncertainty and the explained score; `GET /v1/intel` (viewer)
//! answers every part's counters. API keys are never part of either answer.
//!
//! [`LookupReport`]: sentinel_intel::LookupReport

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use sentinel_core::Severity;
use sentinel_intel::{Intel, LookupReport};
use serde_json::Value;
use std::net::IpAddr;

fn intel(s: &AppState) -> Result<&Intel, ApiError> {
    s.intel.as_ref().ok_or_else(|| {
        ApiError::Unavailable("the investigation is not available in this role".into())
    })
}

/// `GET /v1/intel/{ip}?severity=…` (severity of the assumed alert, default `medium`).
#[utoipa::path(get, path = "/v1/intel/{ip}", tag = "intel",
    params(
        ("ip" = String, Path, description = "An IPv4 or IPv6 address."),
        ("severity" = Option<super::openapi::Severity>, Query, description = "Severity of the assumed alert (default `medium`)."),
    ),
    responses((status = 200, description = "What each enricher said, the uncertainty and the explained score. Role: operator.", body = super::openapi::Object)))]
pub(crate) async fn lookup(
    State(s): State<AppState>,
    Path(ip): Path<String>,
    crate::extract::StrictQuery(q): crate::extract::StrictQuery,
) -> Result<Json<LookupReport>, ApiError> {
    if let Some(k) = q.keys().find(|k| k.as_str() != "severity") {
        return Err(ApiError::BadRequest(format!(
            "`{k}`: unknown parameter (only `severity`)"
        )));
    }
    let ip: IpAddr = ip.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!("`ip`: `{ip}` is not an IPv4 or IPv6 address"))
    })?;
    let severity = match q.get("severity") {
        Some(v) => v
            .parse::<Severity>()
            .map_err(|e| ApiError::BadRequest(format!("`severity`: {e}")))?,
        None => Severity::Medium,
    };
    let intel = intel(&s)?;
    Ok(Json(intel.lookup(ip, severity).await))
}

/// `GET /v1/intel`: whether only local data is used, the remote providers in use, and every part's
/// counters (providers, cache, feeds).
#[utoipa::path(get, path = "/v1/intel", tag = "intel", operation_id = "intel_stats",
    responses((status = 200, description = "Every part's counters. Role: viewer.", body = super::openapi::Object)))]
pub(crate) async fn stats(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let intel = intel(&s)?;
    let mut v = serde_json::to_value(intel.stats())
        .map_err(|e| ApiError::Internal(format!("intel stats: {e}")))?;
    if let Value::Object(m) = &mut v {
        m.insert("offline".into(), intel.is_offline().into());
        m.insert("provider_names".into(), intel.provider_names().into());
    }
    Ok(Json(v))
}
