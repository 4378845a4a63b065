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

use super::{audit, defend, events, health, intel, notify, query, system};
use crate::error::ApiError;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response as OaResponse, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Doc, Ref, RefOr};
use utoipa::{Modify, OpenApi, ToSchema};

/// The whole API (assembled by utoipa from the handlers' attributes).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sentinel API",
        description = "Sentinel's HTTP API: telemetry in, detections, plans and the audit trail out. \
            Every route under `/v1` and `/metrics` needs an API key (`Authorization: Bearer <key>` or \
            `X-API-Key: <key>`); roles are viewer < operator < admin. `/health` and `/ready` need none.",
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
        defend::defend,
        events::post_batch,
        events::post_stream,
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
        (name = "system", description = "The daemon's own state."),
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

/// Paths served without a key (and outside `/v1`).
const OPEN_PATHS: &[&str] = &["/health", "/ready"];

/// Adds what every route shares: the security schemes and the edge's own answers.
struct Shared;

/// The answers the edge gives to any authenticated route, with why.
const EDGE_ANSWERS: &[(&str, &str)] = &[
    ("400", "A malformed request: a bad, unknown or repeated query parameter or path segment (the message names it)."),
    ("401", "No API key, or one that is not valid (always the same answer)."),
    ("403", "A valid key without the role this route needs."),
    ("429", "Busy: retry after the `Retry-After` seconds."),
    ("503", "Not available now (busy, out of time, not in this role, or shutting down): retry after `Retry-After`."),
];

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
                    .description(Some("An API key (`snl_…`) as a bearer token."))
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
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            for op in operations(item) {
                if open {
                    // No key needed: an empty requirement overrides the document's.
                    op.security = Some(vec![Default::default()]);
                    continue;
                }
                add_answers(op, EDGE_ANSWERS);
                if op.request_body.is_some() {
                    add_answers(op, BODY_ANSWERS);
                }
            }
        }
        doc.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("api_key", Vec::<String>::new()),
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
    /// `method_not_allowed`, `payload_too_large`, `unsupported_media_type`, `busy`, `unavailable`,
    /// `internal`.
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
    /// Its size in bytes.
    bytes: u64,
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
    /// The dead letters.
    items: Vec<serde_json::Value>,
    /// Pass back as `before` for the next page; absent or `null` on the last.
    next_before: Option<String>,
    /// Why the page ended before the end: `count` or `bytes`.
    truncated_by: Option<TruncatedBy>,
}

/// A page of audit-log records.
#[derive(ToSchema)]
pub(crate) struct AuditRecords {
    /// The records, in order.
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
    /// The signed notes, by tree size.
    checkpoints: Vec<serde_json::Value>,
    /// The `from` of the next page, if there may be more.
    next: Option<u64>,
    /// Why the page ended before the end: `count` or `bytes`.
    truncated_by: Option<TruncatedBy>,
}

/// Any JSON object (counters and such whose fields may grow).
#[derive(ToSchema)]
pub(crate) struct Object {}
