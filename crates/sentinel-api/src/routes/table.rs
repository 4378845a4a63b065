//! Every route of the router with the least role it needs (`None`: no key needed), for the tests that
//! walk the whole API (the auth matrix checks each row against the real router, and that the rows
//! name exactly the paths `routes/mod.rs` routes). A route added to the router is added here too.

use crate::auth::Role;
use axum::http::Method;

const V: Option<Role> = Some(Role::Viewer);
const O: Option<Role> = Some(Role::Operator);
const A: Option<Role> = Some(Role::Admin);

static TABLE: &[(Method, &str, Option<Role>)] = &[
    (Method::GET, "/health", None),
    (Method::GET, "/ready", None),
    (Method::GET, "/metrics", V),
    (Method::GET, "/v1/version", V),
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

/// `(method, path, least role)` for every route; paths in the router's `{param}` syntax.
pub fn route_table() -> &'static [(Method, &'static str, Option<Role>)] {
    TABLE
}
