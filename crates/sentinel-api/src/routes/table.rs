//! Every route of the router with the least role it needs (`None`: no key needed), for the tests that
//! walk the whole API (the auth matrix checks each row against the real router, the OpenAPI test that
//! the document names exactly these operations, and both that the rows name exactly the paths
//! `routes/mod.rs` and `webhook.rs` route). A route added to the router is added here too.
//!
//! Not in the tables: the `/v1` and `/v1/` catch-all (any method, 401 without a key and 404 with one),
//! which is no operation but the answer for a path that names none.

use crate::auth::Role;
use axum::http::Method;

const V: Option<Role> = Some(Role::Viewer);
const O: Option<Role> = Some(Role::Operator);
const A: Option<Role> = Some(Role::Admin);

static TABLE: &[(Method, &str, Option<Role>)] = &[
    (Method::GET, "/health", None),
    (Method::GET, "/ready", None),
    (Method::GET, "/metrics", V),
    (Method::POST, "/v1/identity", None),
    (Method::GET, "/v1/version", V),
    (Method::GET, "/v1/openapi.json", V),
    (Method::GET, "/v1/alerts", V),
    (Method::GET, "/v1/alerts/{id}", V),
    (Method::GET, "/v1/actions", V),
    (Method::GET, "/v1/actions/{id}", V),
    (Method::GET, "/v1/events", V),
    (Method::GET, "/v1/audit", V),
    (Method::GET, "/v1/audit/records", V),
    (Method::GET, "/v1/audit/proof/{seq}", V),
    (Method::GET, "/v1/audit/consistency", V),
    (Method::GET, "/v1/audit/checkpoint", V),
    (Method::GET, "/v1/audit/checkpoints", V),
    (Method::GET, "/v1/decisions", V),
    (Method::GET, "/v1/intel", V),
    (Method::GET, "/v1/notify", V),
    (Method::GET, "/v1/notify/dead-letters", V),
    (Method::GET, "/v1/system/heartbeat", V),
    (Method::GET, "/v1/stream", V),
    (Method::POST, "/v1/defend", O),
    (Method::POST, "/v1/events", O),
    (Method::POST, "/v1/decisions", O),
    (Method::DELETE, "/v1/decisions", O),
    (Method::GET, "/v1/intel/{ip}", O),
    (Method::POST, "/v1/notify", O),
    (
        Method::POST,
        "/v1/notify/dead-letters/{delivery_id}/retry",
        O,
    ),
    (Method::POST, "/v1/events/stream", O),
    (Method::GET, "/v1/keys", A),
    (Method::POST, "/v1/keys", A),
    (Method::DELETE, "/v1/keys/{id}", A),
];

/// `(method, path, least role)` for every route authenticated by an API key or JWT, or open (`None`:
/// `/health`, `/ready`, and the identity challenge `POST /v1/identity`); paths in the router's
/// `{param}` syntax.
pub fn route_table() -> &'static [(Method, &'static str, Option<Role>)] {
    TABLE
}

/// How a webhook route is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAuth {
    /// A signature over the raw body with the route's secret: no API key opens it, none is needed.
    Signed,
    /// None at all: `/webhook/test`, only with `SENTINEL_ENABLE_WEBHOOK_TEST=true`.
    Unsigned,
}

static WEBHOOKS: &[(Method, &str, WebhookAuth)] = &[
    (Method::POST, "/webhook/github", WebhookAuth::Signed),
    (Method::POST, "/webhook/gitea", WebhookAuth::Signed),
    (Method::POST, "/webhook/generic", WebhookAuth::Signed),
    (Method::POST, "/webhook/test", WebhookAuth::Unsigned),
];

/// The webhook routes: not API-key routes, and each exists only when configured (its secret in
/// `api.webhooks`, or `SENTINEL_ENABLE_WEBHOOK_TEST=true` for the test route); unconfigured, it
/// answers 404 like any unknown path.
pub fn webhook_table() -> &'static [(Method, &'static str, WebhookAuth)] {
    WEBHOOKS
}

static UI: &[(Method, &str, Option<Role>)] = &[
    (Method::GET, "/ui", None),
    (Method::GET, "/ui/login", None),
    (Method::POST, "/ui/login", None),
    (Method::POST, "/ui/logout", V),
    (Method::GET, "/ui/static/app.css", None),
    (Method::GET, "/ui/static/live.js", None),
    (Method::GET, "/ui/live", V),
    (Method::GET, "/ui/", V),
    (Method::GET, "/ui/alerts", V),
    (Method::GET, "/ui/alerts/{id}", V),
    (Method::GET, "/ui/decisions", V),
    (Method::POST, "/ui/decisions", O),
    (Method::POST, "/ui/decisions/{action_id}/revert", O),
    (Method::GET, "/ui/sources", V),
    // Page helpers add their rows here: a GET page its least role to see it, a form POST the
    // least role to use it (the POST refuses a lesser role with the 403 page).
];

/// `(method, path, least role)` of every dashboard route (`/ui…`, authenticated by the session
/// cookie, not by an API key; `None`: no session needed — the login form, the static files, the
/// `/ui` redirect). The `ui_auth` test walks it: a GET page without a session redirects to the login
/// page, a POST without a session or without its CSRF token or from another origin is a 403, and
/// every answer carries the strict headers.
pub fn ui_table() -> &'static [(Method, &'static str, Option<Role>)] {
    UI
}
