//! `/v1/keys`: API keys made, listed and revoked through the API (admin only).
//!
//! A new key is shown once, in the answer to its creation; only its keyed hash is stored and listing
//! never shows the hash. Revoking takes effect in the in-memory registry before the answer. Each change
//! is noted in the audit trail (`key_created`, `key_revoked`) besides the `operator` record every admin
//! action gets ([`crate::auth::audit_admin`]). A key is made only if its creation can be noted: when the
//! audit trail refuses the note, the stored row is revoked again and the answer is an error.

use crate::auth::{Auth, Principal, Role};
use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type, typed, StrictQuery};
use crate::paging::{self, CursorKind};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sentinel_core::{Timestamp, TraceId};
use sentinel_store::ApiKeyRow;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The longest life a key may be given.
pub const MAX_KEY_LIFE: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// The longest key name.
const MAX_NAME_CHARS: usize = 64;

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
#[utoipa::path(post, path = "/v1/keys", tag = "keys", operation_id = "keys_create",
    request_body(content = super::openapi::KeyCreate, content_type = "application/json"),
    responses((status = 201, description = "The new key, shown only this once. Role: admin.", body = super::openapi::KeyCreated)))]
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

/// `GET /v1/keys?limit=&cursor=`: a page of keys by id, `{items, next_cursor, truncated_by}` like
/// every list (`ky_…` cursors); revoked and expired keys are listed as such, never with their hash.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", operation_id = "keys_list",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page (`ky_…`)."),
    ),
    responses((status = 200, description = "A page of keys by id (never their hashes). Role: admin.", body = super::openapi::Page<super::openapi::KeyView>)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    StrictQuery(q): StrictQuery,
) -> Result<Response, ApiError> {
    if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "limit" | "cursor")) {
        return Err(ApiError::BadRequest(format!(
            "`{k}`: unknown query parameter (limit, cursor)"
        )));
    }
    let limit = paging::limit_param(q.get("limit").map(String::as_str))?;
    let after = match q.get("cursor") {
        Some(c) => {
            let id = CursorKind::Key.decode("cursor", c)?;
            ulid::Ulid::from_string(&id).map_err(|_| {
                ApiError::BadRequest("`cursor`: not a cursor this API gave out".into())
            })?;
            Some(id)
        }
        None => None,
    };
    // `limit` is at most 1000: it fits.
    let (rows, more) = s
        .store
        .api_keys_page(after.as_deref(), u32::try_from(limit).unwrap_or(1000))
        .await?;
    let now = Timestamp::now();
    paging::answer(
        paging::Page::new(CursorKind::Key, limit, s.settings.paging.max_page_bytes),
        rows.iter().map(|r| (r.id.clone(), view(r, now))),
        more.then_some(paging::TruncatedBy::Count),
    )
}

/// `DELETE /v1/keys/{id}`: revokes the key at once. Revoking a key that is already revoked changes
/// nothing and says so (`already_revoked: true`, 200: the caller's goal holds, and a retried request
/// must not look like a failure); an id no key has is a 404 naming it.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", operation_id = "keys_revoke",
    params(("id" = String, Path, description = "The key's id (as `GET /v1/keys` lists it).")),
    responses(
        (status = 200, description = "Revoked: the key stops working at once. Role: admin.", body = super::openapi::KeyRevoked),
        (status = 404, description = "No such key.", body = super::openapi::Error),
        (status = 409, description = "Refused: the last active admin key.", body = super::openapi::Error),
    ))]
pub(crate) async fn revoke(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rec = recorder(&s)?;
    // Never the last active admin key: nothing but editing the database would bring an admin back
    // (a restart makes a new admin key only when no key at all is left).
    match s.store.revoke_api_key_keeping_an_admin(&id).await? {
        sentinel_store::Revoke::Done => {}
        sentinel_store::Revoke::NotFound => {
            // Nothing was revoked: tell "already revoked" from "no such key" rather than a bare
            // "not found" for a key `keys list` shows.
            let rows = s.store.api_keys_all().await?;
            return Ok(match rows.iter().find(|r| r.id == id) {
                Some(r) => Json(json!({
                    "id": id,
                    "revoked": true,
                    "already_revoked": true,
                    "revoked_at": r.revoked_at,
                }))
                .into_response(),
                None => (
                    StatusCode::NOT_FOUND,
                    Json(json!({ "error": {
                        "code": "not_found",
                        "message": format!("no key has the id {id:?} (see `sentinel keys list`)"),
                    }})),
                )
                    .into_response(),
            });
        }
        sentinel_store::Revoke::LastAdmin => {
            tracing::warn!(evt = "api_key_revoke_refused", trace = %trace, key_id = %id, by = %who.key_id, reason = "last_admin");
            return Err(ApiError::Conflict(
                "refused: this is the last active admin key; create another admin key first".into(),
            ));
        }
    }
    // In memory first of all: the key stops working before anything else can go wrong.
    s.auth.revoke(&id);
    // Its dashboard sessions end with it (they would be refused at their next request anyway).
    let sessions = s.ui.sessions.close_key(&id);
    tracing::info!(evt = "api_key_revoked", trace = %trace, key_id = %id, by = %who.key_id, sessions_closed = sessions);
    let why = format!("by key {} {:?}", who.key_id, who.name);
    let audited = rec.key_revoked(&trace, &id, &why).await.is_ok();
    Ok(Json(json!({ "id": id, "revoked": true, "audited": audited })).into_response())
}
