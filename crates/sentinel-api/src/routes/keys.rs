//! `/v1/keys`: API keys made, listed and revoked through the API (admin only).
//!
//! A new key is shown once, in the answer to its creation; only its keyed hash is stored and listing
//! never shows the hash. Revoking takes effect in the in-memory registry before the answer. Each change
//! is noted in the audit trail (`key_created`, `key_revoked`) besides the `operator` record every admin
//! action gets ([`crate::auth::audit_admin`]). A key is made only if its creation can be noted: when the
//! audit trail refuses the note, the stored row is revoked again and the answer is an error.

use crate::auth::{Auth, Principal, Role};
use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type, typed};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use sentinel_core::{Timestamp, TraceId};
use sentinel_store::ApiKeyRow;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// The longest life a key may be given.
pub const MAX_KEY_LIFE: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// The longest key name.
const MAX_NAME_CHARS: usize = 64;
/// The default and largest page of `GET /v1/keys`.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    role: String,
    /// A lifetime (`90d`, `12h`) or an RFC 3339 time; absent or null: never expires.
    #[serde(default)]
    expires: Option<String>,
}

/// When a key given `expires` (a lifetime such as `90d`, or an RFC 3339 time) stops working.
pub fn parse_expiry(expires: &str, now: Timestamp) -> Result<Timestamp, String> {
    let s = expires.trim();
    let at = if let Ok(d) = humantime::parse_duration(s) {
        if d.is_zero() {
            return Err("`expires`: must be a positive lifetime".into());
        }
        if d > MAX_KEY_LIFE {
            return Err("`expires`: at most 10 years".into());
        }
        now.as_millis()
            .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    } else if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| "`expires`: before 1970".to_string())?
            .as_millis();
        let ms = i64::try_from(ms).map_err(|_| "`expires`: too far".to_string())?;
        if ms <= now.as_millis() {
            return Err("`expires`: already past".into());
        }
        if ms - now.as_millis() > MAX_KEY_LIFE.as_millis() as i64 {
            return Err("`expires`: at most 10 years".into());
        }
        ms
    } else {
        return Err(format!(
            "`expires`: {s:?} is neither a lifetime (90d, 12h) nor an RFC 3339 time"
        ));
    };
    Ok(Timestamp::from_millis(at))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("`name`: must be 1 to {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("`name`: control characters are not allowed".into());
    }
    // Invisible characters that reorder or hide text where names are shown (`keys list`, logs):
    // a name could otherwise pass for another.
    if name.chars().any(|c| {
        matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}')
    }) {
        return Err("`name`: invisible or direction-changing characters are not allowed".into());
    }
    Ok(())
}

/// What a listing shows of a key: never its hash.
fn view(r: &ApiKeyRow, now: Timestamp) -> Value {
    let state = if r.revoked_at.is_some() {
        "revoked"
    } else if r.expires.is_some_and(|t| t.as_millis() <= now.as_millis()) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": r.id,
        "name": r.name,
        "role": r.role,
        "created": r.created,
        "expires": r.expires,
        "revoked_at": r.revoked_at,
        "state": state,
    })
}

fn recorder(s: &AppState) -> Result<&sentinel_pipeline::recorder::Recorder, ApiError> {
    // Without an audit trail a key change could not be noted: refuse rather than change unnoted.
    s.operator_audit
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no audit trail here: keys cannot be changed".into()))
}

/// `POST /v1/keys {name, role, expires}`: 201 with the new key (shown only this once).
pub(crate) async fn create(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_content_type(&headers, &["application/json"], "application/json")?;
    let bytes = read_limited(&headers, body, s.settings.max_body_bytes).await?;
    let b: CreateBody = typed(parse_json_value(&bytes).map_err(ApiError::BadRequest)?)
        .map_err(ApiError::BadRequest)?;
    let role: Role = b
        .role
        .parse()
        .map_err(|e: String| ApiError::BadRequest(format!("`role`: {e}")))?;
    let name = b.name.unwrap_or_else(|| role.as_str().to_owned());
    check_name(&name).map_err(ApiError::BadRequest)?;
    let now = Timestamp::now();
    let expires = b
        .expires
        .as_deref()
        .map(|e| parse_expiry(e, now))
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let rec = recorder(&s)?;

    let key = Auth::generate_key();
    let row = ApiKeyRow {
        id: ulid::Ulid::new().to_string(),
        name,
        role: role.as_str().into(),
        hash: s.auth.hash(&key),
        created: now,
        expires,
        revoked_at: None,
    };
    s.store.insert_api_key(&row).await?;
    if let Err(e) = rec.key_created(&trace, &row.id, &row.name, &row.role).await {
        // Never a key that the audit trail does not know of: take it back.
        let _ = s.store.revoke_api_key(&row.id).await;
        return Err(ApiError::Internal(format!(
            "key {} not created: {e}",
            row.id
        )));
    }
    crate::keys::register(&s.auth, &row);
    tracing::info!(evt = "api_key_created", trace = %trace, key_id = %row.id, role = %row.role, by = %who.key_id);
    let mut v = view(&row, now);
    v["key"] = json!(key);
    v["note"] = json!("the key is shown only this once");
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /v1/keys?limit=&after=`: `{items, next}` by id; revoked keys are listed as such.
pub(crate) async fn list(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut after = None;
    for (k, v) in &q {
        match k.as_str() {
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::BadRequest(format!("`limit`: 1 to {MAX_LIMIT}")))?;
            }
            "after" => {
                ulid::Ulid::from_string(v).map_err(|_| {
                    ApiError::BadRequest("`after`: not a key id this API gave out".into())
                })?;
                after = Some(v.as_str());
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}` (limit, after)"
                )))
            }
        }
    }
    let (rows, more) = s.store.api_keys_page(after, limit).await?;
    let now = Timestamp::now();
    let next = if more {
        rows.last().map(|r| json!(r.id)).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let items: Vec<Value> = rows.iter().map(|r| view(r, now)).collect();
    Ok(Json(json!({ "items": items, "next": next })))
}

/// `DELETE /v1/keys/{id}`: revokes the key at once; 404 when there is no such active key.
pub(crate) async fn revoke(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rec = recorder(&s)?;
    // Never the last active admin key: nothing but editing the database would bring an admin back
    // (a restart makes a new admin key only when no key at all is left).
    match s.store.revoke_api_key_keeping_an_admin(&id).await? {
        sentinel_store::Revoke::Done => {}
        sentinel_store::Revoke::NotFound => return Err(ApiError::NotFound),
        sentinel_store::Revoke::LastAdmin => {
            tracing::warn!(evt = "api_key_revoke_refused", trace = %trace, key_id = %id, by = %who.key_id, reason = "last_admin");
            return Err(ApiError::Conflict(
                "refused: this is the last active admin key; create another admin key first".into(),
            ));
        }
    }
    // In memory first of all: the key stops working before anything else can go wrong.
    s.auth.revoke(&id);
    tracing::info!(evt = "api_key_revoked", trace = %trace, key_id = %id, by = %who.key_id);
    let why = format!("by key {} {:?}", who.key_id, who.name);
    let audited = rec.key_revoked(&trace, &id, &why).await.is_ok();
    Ok(Json(
        json!({ "id": id, "revoked": true, "audited": audited }),
    ))
}
