//! Signed webhooks as an event source: `POST /webhook/github`, `/webhook/gitea` and `/webhook/generic`.
//!
//! | route | signature | delivery id |
//! |---|---|---|
//! | github | `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>` | `X-GitHub-Delivery` |
//! | gitea | `X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>` | `X-Gitea-Delivery` |
//! | generic | `X-Sentinel-Timestamp: <unix s>` + `X-Sentinel-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>` (the scheme Sentinel's own webhook channel signs with) | `X-Sentinel-Delivery` |
//!
//! The signature is the authentication (no API key), so it is checked over the raw body bytes before
//! anything else looks at them: no parsing, no handler logic. A missing signature and a wrong one get
//! the same 401 (a stale timestamp too); the reason is only counted
//! (`sentinel_webhook_rejected_total{source,reason}`) and logged (`evt=webhook_rejected`).
//!
//! Replays: the generic route refuses a timestamp outside the replay window; every route refuses a
//! delivery id it accepted, and a signature it accepted, within the memory span (409, counted
//! `reason="replayed"`). The delivery-id headers are signed by no one, so a captured delivery sent
//! again under a fresh id is caught by its signature, not its id. The memory span is twice the
//! replay window: a generic timestamp may lie up to one window ahead of the clock, so a signed
//! delivery stays valid for two windows and must be remembered as long. GitHub and Gitea sign no
//! timestamp: their deliveries are remembered as long, and no longer.
//! The table of delivery ids is bounded (`max_deliveries`): when it is full of ids still inside the
//! window, new deliveries are refused with 503 (only a holder of a secret can fill it), never let
//! through unchecked.
//!
//! A route exists only when its secret is configured: without one it answers 404 like any unknown
//! path. `/webhook/test` (no signature: for trying the event path) exists only when
//! `SENTINEL_ENABLE_WEBHOOK_TEST=true`, and building the router then logs a WARNING.
//!
//! An accepted delivery becomes one event (kind `webhook` unless a generic body names another, source
//! the route's name) handed to the pipeline like posted telemetry; the answer waits until it is stored.

use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited};
use crate::ratelimit::EdgeCounters;
use crate::state::AppState;
use crate::telemetry::to_event;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use hmac::{Hmac, Mac};
use sentinel_core::TraceId;
use sentinel_notify::config::Secret;
use sentinel_pipeline::intake::Submission;
use sentinel_store::AckGroup;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::error::{SendTimeoutError, TrySendError};

/// The environment variable that mounts `/webhook/test`.
pub const ENABLE_TEST_ENV: &str = "SENTINEL_ENABLE_WEBHOOK_TEST";

/// The longest delivery id kept.
const MAX_DELIVERY_ID: usize = 200;

/// `api.webhooks`: which webhook routes exist and how deliveries are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The secret of `/webhook/github` (`None`: the route does not exist).
    pub github: Option<Secret>,
    /// The secret of `/webhook/gitea` (`None`: the route does not exist).
    pub gitea: Option<Secret>,
    /// The secret of `/webhook/generic` (`None`: the route does not exist).
    pub generic: Option<Secret>,
    /// How far a generic delivery's timestamp may be from now, and how long delivery ids are
    /// remembered.
    pub replay_window: Duration,
    /// The most delivery ids remembered at once.
    pub max_deliveries: usize,
    /// Mount the unsigned `/webhook/test` (from `SENTINEL_ENABLE_WEBHOOK_TEST=true`).
    pub enable_test: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            github: None,
            gitea: None,
            generic: None,
            replay_window: Duration::from_secs(300),
            max_deliveries: 100_000,
            enable_test: false,
        }
    }
}

/// Where a delivery comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Github,
    Gitea,
    Generic,
    Test,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Github => "github",
            Source::Gitea => "gitea",
            Source::Generic => "generic",
            Source::Test => "test",
        }
    }

    fn delivery_header(self) -> &'static str {
        match self {
            Source::Github => "x-github-delivery",
            Source::Gitea => "x-gitea-delivery",
            Source::Generic | Source::Test => "x-sentinel-delivery",
        }
    }

    fn event_header(self) -> Option<&'static str> {
        match self {
            Source::Github => Some("x-github-event"),
            Source::Gitea => Some("x-gitea-event"),
            Source::Generic | Source::Test => None,
        }
    }
}

/// Why a delivery was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// No signature header (or, generic, no timestamp header).
    Missing,
    /// A signature or timestamp header that is not of the expected form.
    Malformed,
    /// A generic timestamp outside the replay window.
    Stale,
    /// A well-formed signature that does not match.
    Mismatch,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::Stale => "stale",
            Reason::Mismatch => "mismatch",
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// `hex(HMAC-SHA256(secret, body))` given as `given_hex`, compared in constant time.
fn body_mac_ok(secret: &[u8], body: &[u8], given_hex: &str) -> Result<(), Reason> {
    let given = hex::decode(given_hex.trim()).map_err(|_| Reason::Malformed)?;
    if given.len() != 32 {
        return Err(Reason::Malformed);
    }
    let mut m = HmacSha256::new_from_slice(secret).map_err(|_| Reason::Mismatch)?;
    m.update(body);
    m.verify_slice(&given).map_err(|_| Reason::Mismatch)
}

/// Checks `body` against the source's signature headers: the only thing done before the signature
/// holds is reading the body (bounded).
fn verify(
    source: Source,
    secret: &[u8],
    h: &HeaderMap,
    body: &[u8],
    window: Duration,
) -> Result<(), Reason> {
    match source {
        Source::Github => {
            let sig = header(h, "x-hub-signature-256").ok_or(Reason::Missing)?;
            let hex_sig = sig
                .trim()
                .strip_prefix("sha256=")
                .ok_or(Reason::Malformed)?;
            body_mac_ok(secret, body, hex_sig)
        }
        Source::Gitea => {
            let sig = header(h, "x-gitea-signature").ok_or(Reason::Missing)?;
            body_mac_ok(secret, body, sig)
        }
        Source::Generic => {
            let ts = header(h, "x-sentinel-timestamp").ok_or(Reason::Missing)?;
            let sig = header(h, "x-sentinel-signature").ok_or(Reason::Missing)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            sentinel_notify::channels::verify(secret, ts, sig, body, now, window.as_secs()).map_err(
                |e| match e {
                    sentinel_notify::channels::VerifyError::Stale { .. } => Reason::Stale,
                    sentinel_notify::channels::VerifyError::Mismatch => Reason::Mismatch,
                    _ => Reason::Malformed,
                },
            )
        }
        Source::Test => Ok(()),
    }
}

/// Delivery ids accepted within the replay window, bounded.
#[derive(Debug)]
struct Deliveries {
    window: Duration,
    max: usize,
    inner: Mutex<DeliveriesInner>,
}

#[derive(Debug, Default)]
struct DeliveriesInner {
    seen: HashMap<(Source, String), Instant>,
    order: VecDeque<(Instant, Source, String)>,
}

/// Why a delivery id could not be reserved.
enum Reserve {
    Duplicate,
    Full,
}

impl Deliveries {
    fn prune(&self, inner: &mut DeliveriesInner, now: Instant) {
        while let Some((at, _, _)) = inner.order.front() {
            if now.duration_since(*at) <= self.window {
                break;
            }
            if let Some((at, src, id)) = inner.order.pop_front() {
                // Only the entry still recorded at that time is dropped (a released and re-reserved
                // id has a newer one).
                if inner.seen.get(&(src, id.clone())) == Some(&at) {
                    inner.seen.remove(&(src, id));
                }
            }
        }
    }

    /// Reserves `id` (before the event is submitted, so two racing copies cannot both pass).
    fn reserve(&self, src: Source, id: &str) -> Result<(), Reserve> {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.prune(&mut inner, now);
        let key = (src, id.to_owned());
        if inner.seen.contains_key(&key) {
            return Err(Reserve::Duplicate);
        }
        if inner.seen.len() >= self.max {
            return Err(Reserve::Full);
        }
        inner.seen.insert(key, now);
        inner.order.push_back((now, src, id.to_owned()));
        Ok(())
    }

    /// Forgets a reservation whose event was not accepted (so the sender's retry is not a replay).
    fn release(&self, src: Source, id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.seen.remove(&(src, id.to_owned()));
    }
}

/// What every webhook route shares.
struct Hooks {
    deliveries: Deliveries,
    counters: Arc<EdgeCounters>,
}

/// The webhook routes that exist under `state.settings.webhooks`.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let s = &state.settings.webhooks;
    let hooks = Arc::new(Hooks {
        deliveries: Deliveries {
            // Twice the window: as long as a signed delivery can stay valid (see the module docs).
            window: s.replay_window.saturating_mul(2),
            max: s.max_deliveries.max(1),
            inner: Mutex::new(DeliveriesInner::default()),
        },
        counters: EdgeCounters::of(&state.metrics),
    });
    let mut r = Router::new();
    let configured = [
        (Source::Github, "/webhook/github", s.github.clone()),
        (Source::Gitea, "/webhook/gitea", s.gitea.clone()),
        (Source::Generic, "/webhook/generic", s.generic.clone()),
    ];
    for (src, path, secret) in configured {
        let Some(secret) = secret else { continue };
        let secret = Arc::new(secret);
        let hooks = hooks.clone();
        hooks
            .counters
            .add(&hooks.counters.webhook_accepted, &[src.name()], 0);
        r = r.route(
            path,
            post(
                move |st: State<AppState>, trace: Extension<TraceId>, h: HeaderMap, b: Body| {
                    let (hooks, secret) = (hooks.clone(), secret.clone());
                    async move {
                        handle(
                            &hooks,
                            src,
                            Some(secret.expose().as_bytes()),
                            st.0,
                            trace.0,
                            h,
                            b,
                        )
                        .await
                    }
                },
            ),
        );
    }
    if s.enable_test {
        tracing::warn!(
            evt = "webhook_test_enabled",
            msg = "SENTINEL_ENABLE_WEBHOOK_TEST is true: POST /webhook/test turns any unsigned body into an event; never on a reachable address",
        );
        let hooks = hooks.clone();
        r = r.route(
            "/webhook/test",
            post(
                move |st: State<AppState>, trace: Extension<TraceId>, h: HeaderMap, b: Body| {
                    let hooks = hooks.clone();
                    async move { handle(&hooks, Source::Test, None, st.0, trace.0, h, b).await }
                },
            ),
        );
    }
    r
}

/// The webhook routes as the OpenAPI document describes them. The routes themselves are closures
/// built in [`routes`] (one per configured secret), so their attributes sit on these stand-ins, never
/// called. What every webhook shares (401, 404, 409, 429, 503 and the signature's security scheme) is
/// added by the document's modifier in `openapi.rs`.
pub(crate) mod doc {
    #![allow(dead_code)]

    /// `POST /webhook/github`: a GitHub delivery.
    #[utoipa::path(post, path = "/webhook/github", tag = "webhooks",
        params(
            ("X-Hub-Signature-256" = String, Header, description = "`sha256=<hex HMAC-SHA256(secret, raw body)>`."),
            ("X-GitHub-Delivery" = String, Header, pattern = "^[!-~]{1,200}$", description = "The delivery id (1–200 printable characters), de-duplicated within the replay window."),
            ("X-GitHub-Event" = Option<String>, Header, description = "The event type, kept in the event."),
        ),
        request_body(content = crate::routes::openapi::Object, content_type = "application/json", description = "GitHub's payload (a JSON object); its summary becomes an event."),
        responses((status = 200, description = "Accepted and stored as an event (source `webhook/github`). Exists only when `api.webhooks.github` is configured.", body = crate::routes::openapi::WebhookAccepted)))]
    pub(crate) async fn github() {}

    /// `POST /webhook/gitea`: a Gitea delivery.
    #[utoipa::path(post, path = "/webhook/gitea", tag = "webhooks",
        params(
            ("X-Gitea-Signature" = String, Header, description = "`<hex HMAC-SHA256(secret, raw body)>`."),
            ("X-Gitea-Delivery" = String, Header, pattern = "^[!-~]{1,200}$", description = "The delivery id (1–200 printable characters), de-duplicated within the replay window."),
            ("X-Gitea-Event" = Option<String>, Header, description = "The event type, kept in the event."),
        ),
        request_body(content = crate::routes::openapi::Object, content_type = "application/json", description = "Gitea's payload (a JSON object); its summary becomes an event."),
        responses((status = 200, description = "Accepted and stored as an event (source `webhook/gitea`). Exists only when `api.webhooks.gitea` is configured.", body = crate::routes::openapi::WebhookAccepted)))]
    pub(crate) async fn gitea() {}

    /// `POST /webhook/generic`: a delivery signed the way Sentinel's own webhook channel signs.
    #[utoipa::path(post, path = "/webhook/generic", tag = "webhooks",
        params(
            ("X-Sentinel-Timestamp" = String, Header, pattern = "^[0-9]{1,20}$", description = "Unix seconds; outside the replay window (default 5 min) the signature is refused."),
            ("X-Sentinel-Signature" = String, Header, description = "`sha256=<hex HMAC-SHA256(secret, \"<timestamp>.<raw body>\")>`."),
            ("X-Sentinel-Delivery" = String, Header, pattern = "^[!-~]{1,200}$", description = "The delivery id (1–200 printable characters), de-duplicated within the replay window."),
        ),
        request_body(content = crate::routes::openapi::Telemetry, content_type = "application/json", description = "One telemetry object (kind `webhook` unless it names one; its `source` is replaced by the route's)."),
        responses((status = 200, description = "Accepted and stored as an event (source `webhook/generic`). Exists only when `api.webhooks.generic` is configured.", body = crate::routes::openapi::WebhookAccepted)))]
    pub(crate) async fn generic() {}

    /// `POST /webhook/test`: unsigned, for trying the event path.
    #[utoipa::path(post, path = "/webhook/test", tag = "webhooks",
        params(("X-Sentinel-Delivery" = Option<String>, Header, pattern = "^[!-~]{1,200}$", description = "An optional delivery id, de-duplicated within the replay window.")),
        request_body(content = crate::routes::openapi::Telemetry, content_type = "application/json", description = "One telemetry object."),
        responses(
            (status = 200, description = "Stored as an event (source `webhook/test`). NO SIGNATURE: exists only when the daemon runs with `SENTINEL_ENABLE_WEBHOOK_TEST=true` (logged as a WARNING at start); never on a reachable address.", body = crate::routes::openapi::WebhookAccepted),
            (status = 404, description = "`SENTINEL_ENABLE_WEBHOOK_TEST` is not `true`: the route does not exist.", body = crate::routes::openapi::Error),
        ))]
    pub(crate) async fn test() {}
}

/// The same 401 for a missing, malformed, stale or wrong signature.
fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": {"code": "unauthorized", "message": "missing or invalid signature"}})),
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Signature"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn retry_later(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    r
}

impl Hooks {
    fn reject(&self, src: Source, reason: &'static str, trace: &TraceId) {
        self.counters
            .add(&self.counters.webhook_rejected, &[src.name(), reason], 1);
        tracing::warn!(evt = "webhook_rejected", source = src.name(), reason, trace = %trace);
    }
}

/// One delivery: body (bounded) → signature → delivery id → event → stored.
async fn handle(
    hooks: &Hooks,
    src: Source,
    secret: Option<&[u8]>,
    s: AppState,
    trace: TraceId,
    h: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_limited(&h, body, s.settings.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            let reason = if matches!(e, ApiError::TooLarge(_)) {
                "too_large"
            } else {
                "unreadable"
            };
            hooks.reject(src, reason, &trace);
            return e.into_response();
        }
    };
    if let Some(secret) = secret {
        if let Err(reason) = verify(src, secret, &h, &bytes, s.settings.webhooks.replay_window) {
            hooks.reject(src, reason.label(), &trace);
            return unauthorized();
        }
    }
    // From here on the sender is who it claims to be.
    let delivery = header(&h, src.delivery_header()).map(str::trim);
    let delivery = match delivery {
        Some(d)
            if !d.is_empty()
                && d.len() <= MAX_DELIVERY_ID
                && d.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Some(d.to_owned())
        }
        Some(_) => {
            hooks.reject(src, "bad_delivery_id", &trace);
            return ApiError::BadRequest(format!(
                "`{}` must be 1 to {MAX_DELIVERY_ID} printable characters",
                src.delivery_header()
            ))
            .into_response();
        }
        None if src == Source::Test => None,
        None => {
            hooks.reject(src, "no_delivery_id", &trace);
            return ApiError::BadRequest(format!(
                "missing `{}`: deliveries are de-duplicated on it",
                src.delivery_header()
            ))
            .into_response();
        }
    };
    // What a replay is known by: the signature (the id header is signed by no one, so a captured
    // delivery could come again under any id) and the delivery id (the sender's own retries).
    let keys: Vec<String> = signature_key(src, &h)
        .into_iter()
        .chain(delivery.as_ref().map(|d| format!("id:{d}")))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let refused = match hooks.deliveries.reserve(src, k) {
            Ok(()) => continue,
            Err(Reserve::Duplicate) => {
                hooks.reject(src, "replayed", &trace);
                error(
                    StatusCode::CONFLICT,
                    "duplicate_delivery",
                    "this delivery was already accepted",
                )
            }
            Err(Reserve::Full) => {
                hooks.reject(src, "deliveries_full", &trace);
                retry_later(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "too many recent deliveries to de-duplicate; retry later",
                ))
            }
        };
        for k in &keys[..i] {
            hooks.deliveries.release(src, k);
        }
        return refused;
    }
    let answer = accept(hooks, src, &s, &trace, &h, &bytes, delivery.as_deref()).await;
    if answer.status() != StatusCode::OK && answer.status() != StatusCode::SERVICE_UNAVAILABLE {
        // Not accepted: the sender's retry must not count as a replay. (A 503 may have been stored
        // without confirmation: the id stays, so a retry cannot store it twice.)
        for k in &keys {
            hooks.deliveries.release(src, k);
        }
    }
    answer
}

/// The verified signature of a delivery in one canonical form (its bytes in lower-case hex: the hex
/// may be sent in either case), as a de-duplication key; `None` for the unsigned test route.
fn signature_key(src: Source, h: &HeaderMap) -> Option<String> {
    let name = match src {
        Source::Github => "x-hub-signature-256",
        Source::Gitea => "x-gitea-signature",
        Source::Generic => "x-sentinel-signature",
        Source::Test => return None,
    };
    let v = header(h, name)?.trim();
    let v = v.strip_prefix("sha256=").unwrap_or(v);
    hex::decode(v)
        .ok()
        .map(|b| format!("sig:{}", hex::encode(b)))
}

/// The event of a verified delivery, handed to the pipeline and waited for.
async fn accept(
    hooks: &Hooks,
    src: Source,
    s: &AppState,
    trace: &TraceId,
    h: &HeaderMap,
    bytes: &[u8],
    delivery: Option<&str>,
) -> Response {
    // GitHub's and Gitea's hook settings offer (and GitHub defaults to) a form body whose `payload`
    // field holds the JSON; the signature was checked over the raw form bytes above.
    let form;
    let json_bytes = match form_payload(src, h, bytes) {
        Ok(Some(p)) => {
            form = p;
            form.as_bytes()
        }
        Ok(None) => bytes,
        Err(msg) => {
            hooks.reject(src, "bad_body", trace);
            return ApiError::BadRequest(msg).into_response();
        }
    };
    let value = match parse_json_value(json_bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            hooks.reject(src, "bad_body", trace);
            return ApiError::BadRequest("expected a JSON object".into()).into_response();
        }
        Err(e) => {
            hooks.reject(src, "bad_body", trace);
            return ApiError::BadRequest(e).into_response();
        }
    };
    let mut obj = match src {
        Source::Github | Source::Gitea => summary(src, h, &value),
        Source::Generic | Source::Test => {
            let mut m = value;
            // The route names the source: a body cannot claim to be another one.
            m.remove("source");
            m.entry("kind").or_insert_with(|| "webhook".into());
            m
        }
    };
    if let Some(d) = delivery {
        obj.insert("delivery".into(), d.into());
    }
    let mut posted = match to_event(Value::Object(obj), trace, &s.redactor, false, "") {
        Ok(p) => p,
        Err(e) => {
            hooks.reject(src, "bad_body", trace);
            return ApiError::BadRequest(e.0).into_response();
        }
    };
    s.metrics.secrets_redacted.add(posted.masked as u64);
    let source = format!("webhook/{}", src.name());
    posted.event.source = source.clone();
    if let Some(raw) = posted.raw.as_mut() {
        raw.source = source;
    }
    let event_id = posted.event.id;
    let group = AckGroup::new();
    let sub = Submission::telemetry(posted.event, posted.raw, None, Some(group.token(0)));
    let queued = match s.intake.try_send(sub) {
        Ok(()) => Ok(()),
        Err(TrySendError::Closed(sub)) => Err((sub, false)),
        Err(TrySendError::Full(sub)) => {
            match s.intake.send_timeout(sub, s.settings.intake_wait).await {
                Ok(()) => Ok(()),
                Err(SendTimeoutError::Timeout(sub)) => Err((sub, true)),
                Err(SendTimeoutError::Closed(sub)) => Err((sub, false)),
            }
        }
    };
    if let Err((sub, busy)) = queued {
        if let Some(t) = sub.ack {
            t.withdraw();
        }
        if busy {
            s.metrics.events_rejected_busy.inc();
            hooks.reject(src, "busy", trace);
            return ApiError::Busy { retry_after: 1 }.into_response();
        }
        hooks.reject(src, "stopping", trace);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &s.settings.intake_closed("; retry later"),
        );
    }
    s.metrics.events_accepted.inc();
    match tokio::time::timeout(s.settings.defend_timeout, group.settled()).await {
        Ok(sum) if sum.committed == 1 => {
            hooks
                .counters
                .add(&hooks.counters.webhook_accepted, &[src.name()], 1);
            tracing::info!(evt = "webhook_accepted", source = src.name(), delivery = delivery.unwrap_or(""), event = %event_id, trace = %trace);
            (
                StatusCode::OK,
                Json(json!({
                    "accepted": true,
                    "event_id": event_id.to_string(),
                    "trace_id": trace.to_string(),
                    "delivery": delivery,
                })),
            )
                .into_response()
        }
        Ok(_) => {
            s.metrics.events_not_stored.inc();
            hooks.reject(src, "not_stored", trace);
            ApiError::Internal(format!("webhook event {event_id} was not stored")).into_response()
        }
        Err(_) => {
            s.metrics.events_store_unconfirmed.inc();
            hooks.reject(src, "unconfirmed", trace);
            retry_later(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store did not confirm the event in time; it may be kept (a retry with the same delivery id is refused as a duplicate)",
            ))
        }
    }
}

/// The JSON of a GitHub or Gitea delivery sent as `application/x-www-form-urlencoded` (its `payload`
/// field); `None` for any other content type.
fn form_payload(src: Source, h: &HeaderMap, bytes: &[u8]) -> Result<Option<String>, String> {
    let form = header(h, "content-type").is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form || !matches!(src, Source::Github | Source::Gitea) {
        return Ok(None);
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|e| format!("the form body does not decode: {e}"))?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| Some(v))
        .ok_or_else(|| {
            "a form delivery needs a `payload` field holding the JSON (or set the hook's content type to application/json)".to_string()
        })
}

/// The fields of a GitHub or Gitea delivery kept in the event (the payload itself can be large and
/// is the forge's to keep): event type, repository, sender, action, ref.
fn summary(src: Source, h: &HeaderMap, body: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("kind".into(), "webhook".into());
    let str_at = |path: &[&str]| -> Option<Value> {
        let mut v = body.get(path[0])?;
        for p in &path[1..] {
            v = v.get(p)?;
        }
        v.as_str().map(|s| Value::String(s.to_owned()))
    };
    if let Some(e) = src.event_header().and_then(|n| header(h, n)) {
        m.insert("event".into(), e.into());
    }
    for (key, path) in [
        ("repo", &["repository", "full_name"][..]),
        ("sender", &["sender", "login"][..]),
        ("action", &["action"][..]),
        ("ref", &["ref"][..]),
    ] {
        if let Some(v) = str_at(path) {
            m.insert(key.into(), v);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_per_source() {
        let body = b"{\"a\":1}";
        let mut mac = HmacSha256::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let hexsig = hex::encode(mac.finalize().into_bytes());
        let w = Duration::from_secs(300);
        let mut h = HeaderMap::new();
        assert_eq!(
            verify(Source::Github, b"s3cret", &h, body, w),
            Err(Reason::Missing)
        );
        h.insert(
            "x-hub-signature-256",
            format!("sha256={hexsig}").parse().unwrap(),
        );
        assert_eq!(verify(Source::Github, b"s3cret", &h, body, w), Ok(()));
        assert_eq!(
            verify(Source::Github, b"other", &h, body, w),
            Err(Reason::Mismatch)
        );
        let mut h = HeaderMap::new();
        h.insert("x-gitea-signature", "zz".parse().unwrap());
        assert_eq!(
            verify(Source::Gitea, b"s3cret", &h, body, w),
            Err(Reason::Malformed)
        );
        h.insert("x-gitea-signature", hexsig.parse().unwrap());
        assert_eq!(verify(Source::Gitea, b"s3cret", &h, body, w), Ok(()));
    }

    #[test]
    fn delivery_ids_are_bounded_and_released() {
        let d = Deliveries {
            window: Duration::from_secs(300),
            max: 2,
            inner: Mutex::new(DeliveriesInner::default()),
        };
        assert!(d.reserve(Source::Github, "a").is_ok());
        assert!(matches!(
            d.reserve(Source::Github, "a"),
            Err(Reserve::Duplicate)
        ));
        assert!(d.reserve(Source::Gitea, "a").is_ok(), "ids are per source");
        assert!(matches!(d.reserve(Source::Github, "b"), Err(Reserve::Full)));
        d.release(Source::Github, "a");
        assert!(d.reserve(Source::Github, "b").is_ok());
    }
}
