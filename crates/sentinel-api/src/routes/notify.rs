//! Notifications through the API: `POST /v1/notify` (operator) sends a notice of the operator's
//! through the routes and answers once its outbox rows are committed; `GET /v1/notify` (viewer)
//! answers the engine's counters; `GET /v1/notify/dead-letters` (viewer) pages the messages that
//! exhausted their attempts; `POST /v1/notify/dead-letters/{delivery_id}/retry` (operator) queues one
//! again. Every operator action is recorded in the audit trail (kind `operator`) with the key's id.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type, typed};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use sentinel_core::{AuditKind, Notice, NoticeKind, Severity, TraceId};
use sentinel_notify::{Notifications, OutboxError};
use serde::Deserialize;
use serde_json::{json, Value};

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The largest body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The default page of dead letters.
const DEFAULT_PAGE: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

fn engine(s: &AppState) -> Result<&Notifications, ApiError> {
    s.notify
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("notifications are not available in this role".into()))
}

impl From<OutboxError> for ApiError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::BadCursor => {
                ApiError::BadRequest("`before`: not a dead letter's delivery id".into())
            }
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

/// How long a client refused at the outbox cap is told to wait, in seconds.
const OUTBOX_FULL_RETRY_SECS: u64 = 5;

/// A one-line field (a title, a key) holds no control character: a CR/LF would forge a line in a
/// plain-text log or a header in a receiver that does not encode its headers, an escape sequence
/// would rewrite a terminal showing it.
fn one_line(field: &str, v: &str) -> Result<(), String> {
    match v.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "`{field}`: must be one line without control characters (found U+{:04X})",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// Checks a send request and makes its notice (every problem names its field).
fn notice_of(b: SendBody, trace: TraceId) -> Result<Notice, String> {
    let title = b.title.trim();
    let n = title.chars().count();
    if n == 0 || n > MAX_TITLE_CHARS {
        return Err(format!(
            "`title`: must be 1 to {MAX_TITLE_CHARS} characters, got {n}"
        ));
    }
    one_line("title", title)?;
    if b.body.len() > MAX_BODY_BYTES {
        return Err(format!(
            "`body`: must be at most {MAX_BODY_BYTES} bytes, got {}",
            b.body.len()
        ));
    }
    let severity = match b.severity.as_deref() {
        None => Severity::Info,
        Some(v) => v
            .parse::<Severity>()
            .map_err(|e| format!("`severity`: {e}"))?,
    };
    let kind = match b.kind.as_deref() {
        None | Some("manual") => NoticeKind::Manual,
        Some("test") => NoticeKind::Test,
        Some(other) => {
            return Err(format!(
                "`kind`: {other:?} is not allowed here (manual or test)"
            ))
        }
    };
    let mut notice = Notice::new(kind, severity, title, b.body, trace);
    if let Some(k) = b.key {
        let k = k.trim();
        if k.is_empty() || k.chars().count() > MAX_TITLE_CHARS {
            return Err(format!("`key`: must be 1 to {MAX_TITLE_CHARS} characters"));
        }
        one_line("key", k)?;
        notice = notice.with_key(k);
    }
    Ok(notice)
}

/// Records an operator's action in the audit trail (logged when it cannot be).
async fn audit(s: &AppState, who: &Principal, subject: &str, trace: &TraceId, what: String) {
    let summary = format!("{what} (key {} {:?})", who.key_id, who.name);
    tracing::info!(evt = "notify_operator", trace = %trace, key_id = %who.key_id, subject, summary = %summary);
    if let Some(rec) = &s.operator_audit {
        // A failure is logged and counted by the recorder.
        let _ = rec
            .note(AuditKind::Operator, subject, trace, summary, None)
            .await;
    }
}

/// `POST /v1/notify`: 202 `{accepted, rows, channels}` once the outbox holds the notice; 200 with no
/// channel and a `note` when no route matches it (it is logged only).
#[utoipa::path(post, path = "/v1/notify", tag = "notify",
    request_body(content = super::openapi::NoticeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "No route matches: logged only. Role: operator.", body = super::openapi::Object),
        (status = 202, description = "In the outbox. Role: operator.", body = super::openapi::Object),
    ))]
pub(crate) async fn send(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_content_type(&headers, &["application/json"], "application/json")?;
    let engine = engine(&s)?;
    // A flood while a channel is down would grow the outbox (the store, the disk) without bound.
    let pending = engine.stats().outbox_pending;
    if pending >= s.settings.max_notify_pending {
        s.metrics.notices_rejected_busy.inc();
        tracing::warn!(
            evt = "notify_outbox_full",
            trace = %trace,
            key_id = %who.key_id,
            pending,
            cap = s.settings.max_notify_pending,
            "the outbox holds more pending rows than its cap: the notice is refused"
        );
        return Err(ApiError::Busy {
            retry_after: OUTBOX_FULL_RETRY_SECS,
        });
    }
    let bytes = read_limited(&headers, body, s.settings.max_body_bytes).await?;
    let mut body = parse_json_value(&bytes).map_err(ApiError::BadRequest)?;
    let masked = s.redactor.redact(&mut body);
    s.metrics.secrets_redacted.add(masked as u64);
    let b: SendBody = typed(body).map_err(ApiError::BadRequest)?;
    let notice = notice_of(b, trace.clone()).map_err(ApiError::BadRequest)?;
    let done = engine
        .submit(&notice)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the notice was not queued: {e}")))?;
    audit(
        &s,
        &who,
        &format!("notify/{trace}"),
        &trace,
        format!(
            "operator sent a {} notice ({}) {:?} to [{}]",
            notice.kind,
            notice.severity,
            notice.title,
            done.channels.join(", ")
        ),
    )
    .await;
    if done.channels.is_empty() {
        return Ok((
            StatusCode::OK,
            Json(json!({
                "accepted": false,
                "rows": [],
                "channels": [],
                "note": format!("no route matches kind {} at severity {}: the notice was logged only", notice.kind, notice.severity),
            })),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"accepted": true, "rows": done.rows, "channels": done.channels})),
    ))
}

/// `GET /v1/notify`: the engine's counters.
#[utoipa::path(get, path = "/v1/notify", tag = "notify", operation_id = "notify_stats",
    responses((status = 200, description = "The engine's counters. Role: viewer.", body = super::openapi::Object)))]
pub(crate) async fn stats(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(engine(&s)?.stats())
        .map(Json)
        .map_err(|e| ApiError::Internal(format!("notify stats: {e}")))
}

/// `GET /v1/notify/dead-letters?limit=&before=`: newest first; `next_before` is the cursor of the
/// next page (absent on the last): the last delivery id of the page (kept as it was: a delivery id,
/// which is what `retry` takes too). The answer is bounded by `api.max_page_bytes` as well
/// (`truncated_by`: `count` or `bytes`).
#[utoipa::path(get, path = "/v1/notify/dead-letters", tag = "notify",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)."),
        ("before" = Option<String>, Query, description = "The `next_before` of the previous page."),
    ),
    responses((status = 200, description = "Dead letters, newest first. Role: viewer.", body = super::openapi::DeadLetters)))]
pub(crate) async fn dead_letters(
    State(s): State<AppState>,
    crate::extract::StrictQuery(q): crate::extract::StrictQuery,
) -> Result<Json<Value>, ApiError> {
    if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "limit" | "before")) {
        return Err(ApiError::BadRequest(format!(
            "`{k}`: unknown parameter (only `limit` and `before`)"
        )));
    }
    let max = sentinel_notify::engine::MAX_DEAD_LETTER_PAGE;
    let limit = match q.get("limit") {
        None => DEFAULT_PAGE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`limit`: must be between 1 and {max}"
                )))
            }
        },
    };
    let items = engine(&s)?
        .dead_letters(limit, q.get("before").cloned())
        .await?;
    let full = items.len() == limit;
    let (items, by_bytes) = crate::paging::fit(
        items,
        s.settings.paging.max_page_bytes,
        |d, bytes| json!({"delivery_id": d.delivery_id, "elided": true, "bytes": bytes}),
    )?;
    let next = (full || by_bytes)
        .then(|| {
            items
                .last()
                .and_then(|d| d["delivery_id"].as_str().map(str::to_owned))
        })
        .flatten();
    let truncated_by = next
        .as_ref()
        .map(|_| if by_bytes { "bytes" } else { "count" });
    Ok(Json(
        json!({"items": items, "next_before": next, "truncated_by": truncated_by}),
    ))
}

/// `POST /v1/notify/dead-letters/{delivery_id}/retry`: 200 when it is queued again, 404 when there
/// is no such dead letter.
#[utoipa::path(post, path = "/v1/notify/dead-letters/{delivery_id}/retry", tag = "notify",
    params(("delivery_id" = String, Path, description = "The dead letter.")),
    responses(
        (status = 200, description = "Queued again. Role: operator.", body = super::openapi::Object),
        (status = 404, description = "No such dead letter.", body = super::openapi::Error),
    ))]
pub(crate) async fn retry(
    State(s): State<AppState>,
    Extension(trace): Extension<TraceId>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id.is_empty() || id.len() > 200 {
        return Err(ApiError::BadRequest("`delivery_id`: malformed".into()));
    }
    if !engine(&s)?.retry_dead_letter(&id).await? {
        return Err(ApiError::NotFound);
    }
    audit(
        &s,
        &who,
        &format!("notify/{id}"),
        &trace,
        format!("operator requeued dead letter {id}"),
    )
    .await;
    Ok(Json(json!({"requeued": true, "delivery_id": id})))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn body(v: Value) -> SendBody {
        typed(v).unwrap()
    }

    #[test]
    fn a_send_request_is_checked_field_by_field() {
        let n = notice_of(body(json!({"title": "hi"})), TraceId::new()).unwrap();
        assert_eq!(
            (n.kind, n.severity, n.body.as_str()),
            (NoticeKind::Manual, Severity::Info, "")
        );
        let n = notice_of(
            body(json!({"title": "t", "severity": "high", "kind": "test", "key": "k"})),
            TraceId::new(),
        )
        .unwrap();
        assert_eq!((n.kind, n.severity), (NoticeKind::Test, Severity::High));
        assert_eq!(n.dedup_key(), "test:k");
        for (v, field) in [
            (json!({"title": ""}), "`title`"),
            (json!({"title": "x".repeat(201)}), "`title`"),
            (
                json!({"title": "t", "body": "x".repeat(16 * 1024 + 1)}),
                "`body`",
            ),
            (json!({"title": "t", "severity": "dire"}), "`severity`"),
            (json!({"title": "t", "kind": "crash"}), "`kind`"),
            (json!({"title": "a\r\nBcc: x@example.com"}), "`title`"),
            (json!({"title": "a\u{1b}[2J"}), "`title`"),
            (json!({"title": "t", "key": "a\nb"}), "`key`"),
        ] {
            let e = notice_of(body(v.clone()), TraceId::new()).unwrap_err();
            assert!(e.starts_with(field), "{v}: {e}");
        }
        assert!(typed::<SendBody>(json!({"title": "t", "color": "red"}))
            .unwrap_err()
            .contains("color"));
    }
}
