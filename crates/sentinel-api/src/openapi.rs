//! The API described as OpenAPI 3.1, generated from the handlers' `#[utoipa::path]` attributes and
//! served at `GET /v1/openapi.json` (any authenticated role: it names every route, so an anonymous
//! caller does not get it, like every other `/v1` answer).
//!
//! The handlers keep their own attributes (path, parameters, the answers particular to them); what
//! every route shares is added here once, so it cannot drift route by route: the security schemes
//! (`Authorization: Bearer <key>` or `X-API-Key`), and the answers the edge itself gives to any
//! request (401 without a valid key, 403 below the route's role, 400 for a bad query, 413/415 for a
//! bad body, 429 and 503 with `Retry-After` when busy or out of time).
//!
//! The records answered (alerts, actions, events) are described here as their JSON shapes with the
//! fields a client relies on, open to more: the core types are not tied to the OpenAPI crate.
//! The document is built once and kept (it never changes while the process runs).
//!
//! This module is declared inside `routes` (by path) so it can name the private handler modules.
// The schema-only types below are never built: they exist for their derived schemas.
#![allow(dead_code)]

use super::{audit, defend, events, health, identity, intel, keys, notify, query, system};
use crate::error::ApiError;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response as OaResponse, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, OpenApi as Doc, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

/// The whole API (assembled by utoipa from the handlers' attributes).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sentinel API",
        description = "Sentinel's HTTP API: telemetry in, detections, plans and the audit trail out. \
            Every route under `/v1` and `/metrics` needs an API key (`Authorization: Bearer <key>` or \
            `X-API-Key: <key>`, or a JWT bearer token); roles are viewer < operator < admin. `/health`, \
            `/ready` and `POST /v1/identity` need none; the `/webhook/*` routes are authenticated by \
            their signature instead, and exist only when configured. Every route but `/health` and \
            `/ready` may answer 429 `rate_limited` with `Retry-After` (per client address, and per key \
            after authentication). Every list is a page: `{items, next_cursor, truncated_by}` bounded \
            by a count (`limit`) and a byte budget; an item larger than the budget is an elided marker.",
        license(name = "Proprietary")
    ),
    paths(
        health::health,
        health::ready,
        health::metrics,
        health::version,
        openapi_json,
        query::alerts,
        query::alert,
        query::actions,
        query::action,
        query::events,
        query::audit,
        audit::records,
        audit::proof,
        audit::consistency,
        audit::checkpoint,
        audit::checkpoints,
        crate::decisions::list,
        crate::decisions::add,
        crate::decisions::delete,
        intel::stats,
        intel::lookup,
        notify::stats,
        notify::send,
        notify::dead_letters,
        notify::retry,
        system::heartbeat,
        crate::stream::stream,
        defend::defend,
        events::post_batch,
        events::post_stream,
        keys::list,
        keys::create,
        keys::revoke,
        identity::challenge,
        crate::webhook::doc::github,
        crate::webhook::doc::gitea,
        crate::webhook::doc::generic,
        crate::webhook::doc::test,
    ),
    components(schemas(Error, ErrorDetail)),
    modifiers(&Shared),
    tags(
        (name = "health", description = "Liveness, readiness, version and metrics."),
        (name = "query", description = "Alerts, actions and events, filtered and paged."),
        (name = "audit", description = "The audit trail and its Merkle log: records, proofs, checkpoints."),
        (name = "intake", description = "Telemetry in: one event answered with its plan, or many."),
        (name = "decisions", description = "Manual decisions (block, rate-limit, isolate, quarantine)."),
        (name = "intel", description = "The investigation: lookups and counters."),
        (name = "notify", description = "Notifications: counters, manual notices, dead letters."),
        (name = "system", description = "The daemon's own state, its identity and this document."),
        (name = "keys", description = "API keys: made, listed and revoked (admin only; each change audited)."),
        (name = "webhooks", description = "Signed webhooks as an event source. Not API-key routes: the \
            signature over the raw body is the authentication. Each exists only when its secret is \
            configured (`api.webhooks`); otherwise it answers 404 like any unknown path."),
    )
)]
pub(crate) struct ApiDoc;

/// The document, built once.
pub(crate) fn document() -> &'static Doc {
    static DOC: OnceLock<Doc> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document as JSON text, rendered once.
fn rendered() -> Result<&'static str, ApiError> {
    static JSON: OnceLock<String> = OnceLock::new();
    if let Some(s) = JSON.get() {
        return Ok(s);
    }
    let text = serde_json::to_string(document())
        .map_err(|e| ApiError::Internal(format!("openapi document: {e}")))?;
    Ok(JSON.get_or_init(|| text))
}

/// `GET /v1/openapi.json`: this API as an OpenAPI 3.1 document. Role: viewer.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "system",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
)]
pub(crate) async fn openapi_json() -> Result<Response, ApiError> {
    Ok(([(header::CONTENT_TYPE, "application/json")], rendered()?).into_response())
}

/// Paths served without a key and outside every limit (liveness and readiness).
const OPEN_PATHS: &[&str] = &["/health", "/ready"];

/// Paths served without a key but behind the per-address rate limit, the in-flight cap and the
/// timeout: the identity challenge (it runs before a client may present a key). The unsigned
/// `/webhook/test` is keyless too (only with `SENTINEL_ENABLE_WEBHOOK_TEST=true`), with a webhook's
/// answers.
const KEYLESS_PATHS: &[&str] = &["/v1/identity"];

/// The signed webhooks: `(path, security scheme, signature header, how it is signed)`.
const SIGNED_PATHS: &[(&str, &str, &str, &str)] = &[
    (
        "/webhook/github",
        "github_signature",
        "X-Hub-Signature-256",
        "`sha256=<hex HMAC-SHA256(secret, raw body)>` (GitHub's scheme); the secret is `api.webhooks.github`.",
    ),
    (
        "/webhook/gitea",
        "gitea_signature",
        "X-Gitea-Signature",
        "`<hex HMAC-SHA256(secret, raw body)>` (Gitea's scheme); the secret is `api.webhooks.gitea`.",
    ),
    (
        "/webhook/generic",
        "generic_signature",
        "X-Sentinel-Signature",
        "`sha256=<hex HMAC-SHA256(secret, \"<X-Sentinel-Timestamp>.<raw body>\")>` with \
         `X-Sentinel-Timestamp` (unix seconds) inside the replay window; the secret is \
         `api.webhooks.generic`.",
    ),
];

/// Adds what every route shares: the security schemes and the edge's own answers.
struct Shared;

/// The answers the edge gives to any authenticated route, with why.
const EDGE_ANSWERS: &[(&str, &str)] = &[
    ("400", "A malformed request: a bad, unknown or repeated query parameter or path segment (the message names it)."),
    ("401", "No valid credentials: no key, an unknown, expired or revoked key, or a JWT that does not verify (always the same answer)."),
    ("403", "Valid credentials without the role this route needs."),
    ("429", RATE_LIMITED),
    ("503", "Not available now (busy, out of time, not in this role, or shutting down): retry after `Retry-After`."),
];

/// The answers of a route that needs no key but is rate limited and capped.
const KEYLESS_ANSWERS: &[(&str, &str)] = &[
    ("400", "A malformed request (the message names what)."),
    ("429", RATE_LIMITED),
    (
        "503",
        "Not available now (busy, out of time, or shutting down): retry after `Retry-After`.",
    ),
];

/// The answers of a signed webhook.
const SIGNED_ANSWERS: &[(&str, &str)] = &[
    ("400", "The delivery id header is missing (signed routes) or malformed, or the body is not a JSON object."),
    ("401", "A missing, malformed, stale or wrong signature (always the same answer, `WWW-Authenticate: Signature`); the body was not looked at."),
    ("404", "No secret is configured for this source: the route does not exist."),
    ("409", "`duplicate_delivery`: this delivery id was accepted within the replay window."),
    ("429", RATE_LIMITED),
    ("503", "Not available now (the intake is full, the store did not confirm in time, too many deliveries to de-duplicate, or shutting down): retry after `Retry-After`."),
];

/// Why a 429.
const RATE_LIMITED: &str =
    "`rate_limited`: this client address (any route but `/health` and `/ready`) or this key \
    (after authentication) is over its rate; or `busy`: the intake queue is full. Retry after the \
    `Retry-After` seconds.";

/// Answers of routes that read a body.
const BODY_ANSWERS: &[(&str, &str)] = &[
    ("413", "The body is larger than the limit."),
    ("415", "The content type is not the one this route reads."),
];

fn error_response(description: &str) -> RefOr<OaResponse> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::<utoipa::openapi::schema::Schema>::Ref(
                Ref::from_schema_name("Error"),
            ))),
        )
        .into()
}

/// `Retry-After`: whole seconds, at least 1.
fn retry_after() -> Header {
    let seconds = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .build();
    HeaderBuilder::new()
        .schema(seconds)
        .description(Some(
            "Seconds to wait before retrying (a whole number, at least 1).",
        ))
        .build()
}

/// Every 429 and 503 of `op` says it carries `Retry-After`.
fn add_retry_after(op: &mut Operation) {
    for (code, answer) in op.responses.responses.iter_mut() {
        if code == "429" || code == "503" {
            if let RefOr::T(answer) = answer {
                answer
                    .headers
                    .entry("Retry-After".to_string())
                    .or_insert_with(retry_after);
            }
        }
    }
}

fn add_answers(op: &mut Operation, answers: &[(&str, &str)]) {
    for (code, why) in answers {
        op.responses
            .responses
            .entry((*code).to_string())
            .or_insert_with(|| error_response(why));
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

impl Modify for Shared {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`snl_…`) or a JWT (EdDSA or HS256; its role in a claim) as a bearer token.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key (`snl_…`) in its own header.",
            ))),
        );
        for (_, scheme, header, how) in SIGNED_PATHS {
            let mut value = ApiKeyValue::new(*header);
            value.description = Some(format!("Not an API key: the delivery's signature, {how}"));
            components.add_security_scheme(*scheme, SecurityScheme::ApiKey(ApiKey::Header(value)));
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            let path = path.as_str();
            let signed = SIGNED_PATHS.iter().find(|s| s.0 == path);
            for op in operations(item) {
                if OPEN_PATHS.contains(&path) {
                    // No key needed: an empty requirement overrides the document's.
                    op.security = Some(vec![Default::default()]);
                    add_retry_after(op);
                    continue;
                }
                let webhook = path.starts_with("/webhook/");
                if path == "/webhook/test" {
                    // Unsigned (only with SENTINEL_ENABLE_WEBHOOK_TEST=true), otherwise a webhook.
                    op.security = Some(vec![Default::default()]);
                    add_answers(op, &SIGNED_ANSWERS[..1]);
                    add_answers(op, &SIGNED_ANSWERS[3..]);
                } else if KEYLESS_PATHS.contains(&path) {
                    op.security = Some(vec![Default::default()]);
                    add_answers(op, KEYLESS_ANSWERS);
                } else if let Some((_, scheme, _, _)) = signed {
                    // The signature is the authentication: no API key is asked for (nor looked at).
                    op.security = Some(vec![SecurityRequirement::new(
                        *scheme,
                        Vec::<String>::new(),
                    )]);
                    add_answers(op, SIGNED_ANSWERS);
                } else {
                    add_answers(op, EDGE_ANSWERS);
                }
                if op.request_body.is_some() {
                    // A webhook reads any content type (the signature covers the raw bytes).
                    add_answers(
                        op,
                        if webhook {
                            &BODY_ANSWERS[..1]
                        } else {
                            BODY_ANSWERS
                        },
                    );
                }
                add_retry_after(op);
            }
        }
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("api_key", Vec::<String>::new()),
        ]);
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas. Names are the component names in the document.

/// Every error answer: a stable code and a short message (the detail is in the log).
#[derive(ToSchema)]
pub(crate) struct Error {
    /// The error.
    error: ErrorDetail,
}

/// The error's code and message.
#[derive(ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `gone`,
    /// `method_not_allowed`, `payload_too_large`, `unsupported_media_type`, `busy`, `rate_limited`,
    /// `duplicate_delivery`, `unavailable`, `internal`.
    code: String,
    /// A short message for a person; it names the failing field or parameter.
    message: String,
}

/// How bad a finding is.
#[derive(ToSchema, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Severity {
    /// Worth recording, not acting on.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// What an action does.
#[derive(ToSchema, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionKind {
    /// Drop traffic from an address or range.
    BlockIp,
    /// Limit traffic from an address.
    RateLimit,
    /// Send an address to the honeypot.
    RedirectToHoneypot,
    /// Cut a container off the network.
    IsolateContainer,
    /// Move a file aside.
    QuarantineFile,
}

/// Where an action is in its life.
#[derive(ToSchema, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionState {
    /// Decided, not (yet) carried out.
    Planned,
    /// In force.
    Applied,
    /// Carrying it out failed.
    Failed,
    /// Undone.
    Reverted,
    /// Ran out.
    Expired,
    /// Refused by policy.
    Refused,
}

/// A page of records, newest first.
#[derive(ToSchema)]
pub(crate) struct Page<T: ToSchema> {
    /// The records; one larger than the whole byte budget is answered as an [`Elided`] marker.
    items: Vec<PageItem<T>>,
    /// Pass back as `cursor` for the next page; `null` when there are no more.
    next_cursor: Option<String>,
    /// Why the page ended before the end: `count` (the limit) or `bytes` (`api.max_page_bytes`).
    truncated_by: Option<TruncatedBy>,
}

/// One item of a page: the record, or a marker standing for one too large for any page.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only described, never built.
pub(crate) enum PageItem<T: ToSchema> {
    /// The record.
    Item(T),
    /// A record larger than the page's byte budget (read it alone by its id).
    Elided(Elided),
}

/// A record left out of a page because it alone is larger than the page's byte budget.
#[derive(ToSchema)]
pub(crate) struct Elided {
    /// Always `true`.
    elided: bool,
    /// The cursor just past it (where the listing goes on).
    cursor: String,
    /// Its size in bytes.
    bytes: u64,
    /// Why it is left out.
    reason: String,
}

/// What cut a page short.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Only described, never built.
pub(crate) enum TruncatedBy {
    /// The count limit.
    Count,
    /// The byte budget.
    Bytes,
}

/// An alert: what the detector found, about which subject, with its evidence.
#[derive(ToSchema)]
pub(crate) struct Alert {
    /// Its id.
    id: String,
    /// The scenario recognised.
    scenario: String,
    /// How bad.
    severity: Severity,
    /// Detector score, 0–100.
    score: u8,
    /// The trace it belongs to.
    trace_id: String,
}

/// An alert with its investigation, plans and actions.
#[derive(ToSchema)]
pub(crate) struct AlertDetail {
    /// The alert.
    alert: Alert,
    /// Its latest investigation, once one has concluded.
    investigation: Option<serde_json::Value>,
    /// The plans decided for it, oldest first.
    plans: Vec<serde_json::Value>,
    /// The actions those plans asked for, each in its latest state.
    actions: Vec<ActionRecord>,
}

/// An action and its state.
#[derive(ToSchema)]
pub(crate) struct ActionRecord {
    /// Its id.
    id: String,
    /// What it does, to what, for how long.
    spec: serde_json::Value,
    /// `observe` (planned only) or `enforce`.
    mode: String,
    /// Where it is in its life.
    state: ActionState,
    /// The trace it belongs to.
    trace_id: String,
}

/// An event as stored (secrets masked).
#[derive(ToSchema)]
pub(crate) struct Event {
    /// Its id.
    id: String,
    /// What kind of event.
    kind: String,
    /// Who reported it.
    source: String,
    /// The trace it belongs to.
    trace_id: String,
}

/// One telemetry object as an application posts it. The fields below are checked when present;
/// any other field is kept as an attribute. Secrets are masked before anything is stored.
#[derive(ToSchema)]
#[schema(example = json!({"kind": "auth", "src_ip": "198.51.100.4", "user": "root", "failed_logins": 3}))]
pub(crate) struct Telemetry {
    /// The kind of event (e.g. `http_request`, `auth`, `network`).
    kind: Option<String>,
    /// When it happened (RFC 3339).
    ts: Option<String>,
    /// Who reports it.
    source: Option<String>,
    /// The client's address.
    src_ip: Option<String>,
    /// What it was aimed at.
    target: Option<String>,
    /// Failed logins seen.
    failed_logins: Option<u64>,
    /// Requests per second.
    request_rate: Option<f64>,
    /// Bytes sent out.
    bytes_out: Option<u64>,
    /// The destination port.
    dst_port: Option<u16>,
    /// The request payload.
    payload: Option<String>,
    /// The request path.
    path: Option<String>,
    /// The user agent.
    user_agent: Option<String>,
    /// The user.
    user: Option<String>,
}

/// One telemetry object for `/v1/defend`: as [`Telemetry`], with the client's address required
/// (the plan is about it).
#[derive(ToSchema)]
#[schema(example = json!({"kind": "http_request", "src_ip": "203.0.113.9", "path": "/login", "failed_logins": 12}))]
pub(crate) struct DefendTelemetry {
    /// The client's address (IPv4 or IPv6).
    src_ip: String,
    /// The kind of event (e.g. `http_request`, `auth`, `network`).
    kind: Option<String>,
    /// When it happened (RFC 3339).
    ts: Option<String>,
    /// Who reports it.
    source: Option<String>,
    /// What it was aimed at.
    target: Option<String>,
    /// Failed logins seen.
    failed_logins: Option<u64>,
    /// Requests per second.
    request_rate: Option<f64>,
    /// Bytes sent out.
    bytes_out: Option<u64>,
    /// The destination port.
    dst_port: Option<u16>,
    /// The request payload.
    payload: Option<String>,
    /// The request path.
    path: Option<String>,
    /// The user agent.
    user_agent: Option<String>,
    /// The user.
    user: Option<String>,
}

/// What `/v1/defend` answers: the detection, and the plan when one was made.
#[derive(ToSchema)]
pub(crate) struct Outcome {
    /// The trace it belongs to.
    trace_id: String,
    /// The event's id.
    event_id: String,
    /// Detector score, 0–100.
    score: u8,
    /// Severity of that score.
    severity: Severity,
    /// Whether the score crossed the alert threshold.
    alerted: bool,
    /// The scenario recognised (`none` when nothing fired).
    scenario: String,
}

/// The answer to a batch or a stream of events.
#[derive(ToSchema)]
pub(crate) struct IntakeReport {
    /// The request's trace.
    trace_id: String,
    /// Items stored.
    accepted: u64,
    /// Items refused (malformed, or not stored).
    rejected: u64,
    /// Why, by `index` (batch, from 0) or `line` (stream, from 1); at most 1000 listed.
    errors: Vec<ItemError>,
    /// More errors than listed.
    errors_truncated: Option<bool>,
}

/// Why one item was refused.
#[derive(ToSchema)]
pub(crate) struct ItemError {
    /// Its index in the batch.
    index: Option<u64>,
    /// Its line in the stream.
    line: Option<u64>,
    /// Why.
    error: String,
}

/// A refusal that still says what was stored before it (429, 503).
#[derive(ToSchema)]
pub(crate) struct IntakeRefusal {
    /// The refusal.
    error: ErrorDetail,
    /// What was accepted and rejected before it.
    report: Option<IntakeReport>,
}

/// A manual decision, or its preview (`dry_run`). Exactly one of `ip`, `container`, `file`.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// An address or a range (CIDR).
    ip: Option<String>,
    /// A container name.
    container: Option<String>,
    /// An absolute path.
    file: Option<String>,
    /// The action (default: by the subject).
    kind: Option<ActionKind>,
    /// How long it holds (e.g. `4h`, `30m`, `7d`).
    #[schema(pattern = "^[1-9][0-9]{0,4}[smhd]$")]
    duration: String,
    /// Why (masked for secrets).
    #[schema(nullable = false)]
    reason: Option<String>,
    /// Parameters of the action (e.g. `{"cidr": …}`, `{"rate": …}`).
    params: Option<serde_json::Value>,
    /// Only preview it: nothing is planned or recorded.
    #[schema(nullable = false)]
    dry_run: Option<bool>,
}

/// A notice sent by hand.
#[derive(ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoticeBody {
    /// The title (1–200 characters, one line).
    #[schema(min_length = 1, max_length = 200)]
    title: String,
    /// The body (at most 16 KiB).
    #[schema(nullable = false, max_length = 16384)]
    body: Option<String>,
    /// How bad (default `info`).
    severity: Option<Severity>,
    /// `manual` (default) or `test`.
    kind: Option<NoticeKind>,
    /// The de-duplication key.
    key: Option<String>,
}

/// What a notice sent by hand is.
#[derive(ToSchema, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NoticeKind {
    /// A notice from an operator.
    Manual,
    /// A test of the channels.
    Test,
}

/// A page of dead letters, newest first.
#[derive(ToSchema)]
pub(crate) struct DeadLetters {
    /// The dead letters; one larger than the whole byte budget stands as
    /// `{"delivery_id", "elided": true, "bytes"}`.
    items: Vec<serde_json::Value>,
    /// Pass back as `before` for the next page; absent or `null` on the last.
    next_before: Option<String>,
    /// Why the page ended before the end: `count` or `bytes`.
    truncated_by: Option<TruncatedBy>,
}

/// A page of audit-log records.
#[derive(ToSchema)]
pub(crate) struct AuditRecords {
    /// The records, in order; one larger than the whole byte budget stands as
    /// `{"seq", "leaf_hash", "elided": true, "bytes"}`.
    records: Vec<serde_json::Value>,
    /// The `from` of the next page; `null` at the end of what is committed.
    next: Option<u64>,
    /// Records committed now.
    size: u64,
    /// Why the page ended before the end: `count` or `bytes`.
    truncated_by: Option<TruncatedBy>,
}

/// An inclusion proof with what it proves.
#[derive(ToSchema)]
pub(crate) struct InclusionProof {
    /// The record.
    seq: u64,
    /// The tree it is proved in.
    tree_size: u64,
    /// The record's leaf hash (hex).
    leaf_hash: String,
    /// The tree's root (hex).
    root_hash: String,
    /// The proof's hashes (hex).
    proof: Vec<String>,
}

/// A consistency proof between two tree sizes.
#[derive(ToSchema)]
pub(crate) struct ConsistencyProof {
    /// The smaller tree.
    from: u64,
    /// The larger tree.
    to: u64,
    /// Root of the smaller tree (hex).
    from_root: String,
    /// Root of the larger tree (hex).
    to_root: String,
    /// The proof's hashes (hex).
    proof: Vec<String>,
}

/// A page of stored checkpoints.
#[derive(ToSchema)]
pub(crate) struct Checkpoints {
    /// The signed notes, by tree size; one larger than the whole byte budget stands as
    /// `{"size", "root_hash", "elided": true, "bytes"}`.
    checkpoints: Vec<serde_json::Value>,
    /// The `from` of the next page, if there may be more.
    next: Option<u64>,
    /// Why the page ended before the end: `count` or `bytes`.
    truncated_by: Option<TruncatedBy>,
}

/// Any JSON object (counters and such whose fields may grow).
#[derive(ToSchema)]
pub(crate) struct Object {}

/// A role: viewer < operator < admin.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum KeyRole {
    /// Reads everything.
    Viewer,
    /// Reads, and posts telemetry, decisions and notices.
    Operator,
    /// Everything, including keys.
    Admin,
}

/// Where a key is in its life.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum KeyState {
    /// It works.
    Active,
    /// Its `expires` has passed.
    Expired,
    /// Revoked.
    Revoked,
}

/// A new key.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyCreate {
    /// A name for people (1–64 characters, no control characters; default: the role).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    name: Option<String>,
    /// Its role.
    role: KeyRole,
    /// A lifetime (`90d`, `12h`, at most 10 years) or an RFC 3339 time; absent or `null`: never.
    #[schema(example = "90d")]
    expires: Option<String>,
}

/// A key as listed: never its hash, never the key itself.
#[derive(ToSchema)]
pub(crate) struct KeyView {
    /// Its id (a ULID).
    id: String,
    /// Its name.
    name: String,
    /// Its role.
    role: KeyRole,
    /// When it was made (RFC 3339).
    created: String,
    /// When it stops working (RFC 3339); `null`: never.
    expires: Option<String>,
    /// When it was revoked (RFC 3339); `null`: it was not.
    revoked_at: Option<String>,
    /// Active, expired or revoked.
    state: KeyState,
}

/// A key just made: as listed, with the key itself (shown only this once).
#[derive(ToSchema)]
pub(crate) struct KeyCreated {
    /// Its id (a ULID).
    id: String,
    /// Its name.
    name: String,
    /// Its role.
    role: KeyRole,
    /// When it was made (RFC 3339).
    created: String,
    /// When it stops working (RFC 3339); `null`: never.
    expires: Option<String>,
    /// Always `null` here.
    revoked_at: Option<String>,
    /// Always `active` here.
    state: KeyState,
    /// The key (`snl_…`): shown only in this answer; only its keyed hash is stored.
    key: String,
    /// A reminder that the key is shown only once.
    note: String,
}

/// A key revoked.
#[derive(ToSchema)]
pub(crate) struct KeyRevoked {
    /// Its id.
    id: String,
    /// Always `true`.
    revoked: bool,
    /// Whether the audit trail took the note (the key is revoked either way); absent when the key
    /// was revoked already (nothing changed, nothing noted).
    audited: Option<bool>,
    /// `true` when the key was revoked before this request (it changed nothing).
    already_revoked: Option<bool>,
    /// When it was revoked, for a key revoked already.
    revoked_at: Option<String>,
}

/// The identity challenge: a fresh random nonce.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityChallenge {
    /// 16 to 64 random bytes, in hex.
    #[schema(
        pattern = "^([0-9a-fA-F]{2}){16,64}$",
        example = "00112233445566778899aabbccddeeff"
    )]
    nonce: String,
}

/// The daemon's answer to the identity challenge.
#[derive(ToSchema)]
pub(crate) struct IdentityProof {
    /// `HMAC-SHA256(server.id, nonce ‖ "sentinel-identity")`, hex.
    proof: String,
}

/// A webhook delivery accepted: stored as an event.
#[derive(ToSchema)]
pub(crate) struct WebhookAccepted {
    /// Always `true`.
    accepted: bool,
    /// The event made of it.
    event_id: String,
    /// Its trace.
    trace_id: String,
    /// The delivery id (`null` only on `/webhook/test` without one).
    delivery: Option<String>,
}
