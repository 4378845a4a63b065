//! The operator's dashboard under `/ui/`: server-rendered HTML, no front-end build step.
//!
//! Every page is a maud template, so every value rendered is escaped by the template engine (never
//! build HTML by string concatenation here, never use `PreEscaped` on anything that came from a
//! request, a log line, a provider or the store). Pages need a session ([`Viewer`]); a session comes
//! from `/ui/login`, where an API key or JWT is exchanged for a cookie (see [`session`]). Every form
//! carries the session's CSRF token and every POST is checked by [`CsrfForm`] (token and origin).
//! Every answer under `/ui/` carries strict security headers ([`security_headers`]): a CSP without
//! inline script or style, so templates use classes and `/ui/static/` files only.
//!
//! Layout contract (tests and the browser test rely on it): the page title is the one `<h1>`; the
//! content is `<main id="main">`; the navigation is `<nav aria-label="Sections">` with
//! `aria-current="page"` on the current section; logging out is `<form id="logout">`.

pub mod alerts;
pub mod assets;
pub mod charts;
pub mod decisions;
pub mod live;
pub mod login;
pub mod overview;
pub mod session;
pub mod sources;

use crate::auth::{Principal, Role};
use crate::extract::StrictQuery;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use sentinel_core::{ActionState, AuditKind, Timestamp, TraceId};
use serde::de::DeserializeOwned;
pub use session::{
    FormRefusal, LoginResult, LoginThrottle, Session, Sessions, UiCounters, UiSettings,
};
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The dashboard's shared state inside [`AppState`]: the session table, the login backoff and the
/// counters.
#[derive(Debug, Clone, Default)]
pub struct UiState {
    /// Live sessions.
    pub sessions: Arc<Sessions>,
    /// The per-address backoff on failed logins.
    pub throttle: Arc<LoginThrottle>,
    /// `sentinel_ui_logins_total{result}`, `sentinel_ui_forms_refused_total{reason}`.
    pub counters: Arc<UiCounters>,
}

impl UiState {
    /// A dashboard with these settings and no session yet.
    pub fn new(settings: UiSettings) -> Self {
        Self {
            sessions: Arc::new(Sessions::new(settings)),
            ..Self::default()
        }
    }
}

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/ui/`.
    Overview,
    /// `/ui/alerts`.
    Alerts,
    /// `/ui/decisions`.
    Decisions,
    /// `/ui/sources`.
    Sources,
    /// `/ui/live`.
    Live,
    /// A page outside the navigation (login, errors).
    None,
}

const SECTIONS: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/ui/", "Overview"),
    (Nav::Alerts, "/ui/alerts", "Alerts"),
    (Nav::Decisions, "/ui/decisions", "Decisions"),
    (Nav::Sources, "/ui/sources", "Sources"),
    (Nav::Live, "/ui/live", "Live feed"),
];

/// Who is looking at a page: the session's principal and its CSRF token. Extracting it from a
/// request without a live session answers a redirect to the login page (for a GET) or a 403 page.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who logged in.
    pub principal: Principal,
    /// The session's CSRF token, for [`csrf_input`].
    pub csrf: String,
    /// The session's cookie token (to close it at logout).
    pub token: String,
}

impl Viewer {
    /// Whether the viewer has at least `min`.
    pub fn can(&self, min: Role) -> bool {
        self.principal.role >= min
    }

    /// `Ok` if the viewer has at least `min`, else the 403 page.
    pub fn require(&self, min: Role) -> Result<(), UiError> {
        if self.can(min) {
            Ok(())
        } else {
            Err(UiError::Forbidden(format!(
                "this needs the {} role; you are {}",
                min.as_str(),
                self.principal.role.as_str()
            )))
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The live session of a request (by its cookie), if any, with its key still valid. Used by the
/// pages ([`Viewer`]) and by the WebSocket stream, which a browser cannot give an API key header.
pub fn session_of(state: &AppState, headers: &HeaderMap) -> Option<Viewer> {
    let sessions = &state.ui.sessions;
    let token = cookie(headers, sessions.settings().cookie_name())?;
    let s = sessions.get(token)?;
    if !state.auth.still_valid(&s.principal) {
        sessions.close(token);
        return None;
    }
    Some(Viewer {
        principal: s.principal,
        csrf: s.csrf,
        token: token.to_string(),
    })
}

/// Whether a browser request comes from our own origin: `Sec-Fetch-Site`, when sent, must be
/// `same-origin`; `Origin`, when sent, must name the host the request was sent to, or be one of
/// `public` (`api.ui.public_origins`, the addresses a `Host`-rewriting proxy serves the dashboard at;
/// compared without regard to case). A request with neither header (not a browser) passes this
/// check; the CSRF token still stands in its way.
pub fn same_origin(headers: &HeaderMap, public: &[String]) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if origin
        .to_str()
        .is_ok_and(|o| public.iter().any(|p| p.eq_ignore_ascii_case(o)))
    {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|r| r.eq_ignore_ascii_case(host))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(v) = session_of(state, &parts.headers) {
            return Ok(v);
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let here = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/ui/");
            let to = format!("/ui/login?next={}", urlencode(here));
            return Err(Redirect::to(&to).into_response());
        }
        Err(UiError::Forbidden("no live session: log in again".into()).into_response())
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page's query string, read strictly ([`StrictQuery`]: each parameter at most once); a parameter
/// not in `allowed` is refused by name (the first, in sorted order).
pub fn page_query(raw: Option<&str>, allowed: &[&str]) -> Result<HashMap<String, String>, UiError> {
    let q = StrictQuery::parse(raw).map_err(|e| UiError::BadRequest(e.to_string()))?;
    if let Some(k) = q.unknown_key(allowed) {
        let k: String = k.chars().take(40).collect();
        return Err(UiError::BadRequest(format!(
            "`{k}`: unknown query parameter (expected one of {})",
            allowed.join(", ")
        )));
    }
    Ok(q.0)
}

/// Where a page may send the browser back to (the login's and the revert form's `next`): `next` when
/// it is a dashboard path (`/ui/…`, not `//…` nor `/\…`, no control character, white space or
/// backslash anywhere), else `None`. Never another host.
pub fn safe_next(next: Option<&str>) -> Option<&str> {
    let n = next?;
    let ok = n.starts_with("/ui/")
        && !n.starts_with("//")
        && !n.contains('\\')
        && n.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(n)
}

/// A time as every page shows it: `<time datetime="RFC 3339">` with a readable UTC form
/// (`2026-11-30T18:30:04.123Z` reads as `2026-11-30 18:30:04 UTC`).
pub fn time_tag(ts: Timestamp) -> Markup {
    let iso = ts.to_rfc3339();
    let human = match (iso.get(..10), iso.get(11..19)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => iso.clone(),
    };
    html! { time datetime=(iso) { (human) } }
}

/// A table's header: one `th scope="col"` per column, in a `thead` row.
pub fn head_row<'a>(columns: impl IntoIterator<Item = &'a str>) -> Markup {
    html! {
        thead { tr { @for c in columns { th scope="col" { (c) } } } }
    }
}

/// An action's state, worded and classed (`state state-applied`).
pub fn state_text(s: ActionState) -> Markup {
    html! { span class={ "state state-" (s.as_str()) } { (s.as_str()) } }
}

/// Notes what an operator did (a login, a logout, a revert) in the audit trail as an `operator`
/// record, in `trace`, when there is a trail. A failure is logged (the recorder counts it); what the
/// operator did stands.
pub async fn note_operator(state: &AppState, key_id: &str, trace: &TraceId, summary: String) {
    let Some(rec) = &state.operator_audit else {
        return;
    };
    if let Err(e) = rec
        .note(AuditKind::Operator, key_id, trace, summary, None)
        .await
    {
        tracing::warn!(evt = "ui_audit_note_failed", error = %e);
    }
}

/// A form posted by a logged-in viewer, its CSRF token and origin checked: the body
/// (`application/x-www-form-urlencoded`, at most `api.max_body_bytes`) must carry `csrf` equal to the
/// session's token, and the request must be [`same_origin`]. Anything else is the 403 page, counted.
#[derive(Debug)]
pub struct CsrfForm<T>(pub Viewer, pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers, &state.ui.sessions.settings().public_origins) {
            tracing::info!(evt = "ui_csrf_refused", reason = "origin");
            state.ui.counters.form_refused(FormRefusal::Origin);
            return Err(
                UiError::Forbidden("cross-origin form posts are refused".into()).into_response(),
            );
        }
        let limit = state.settings.max_body_bytes;
        let bytes: Bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| UiError::BadRequest("form too large".into()).into_response())?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| UiError::BadRequest("malformed form".into()).into_response())?;
        let sent = pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(viewer.csrf.as_bytes())) {
            tracing::info!(evt = "ui_csrf_refused", reason = "token");
            state.ui.counters.form_refused(FormRefusal::Token);
            return Err(UiError::Forbidden(
                "the form's security token is missing or stale: reload the page".into(),
            )
            .into_response());
        }
        let form: T = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| UiError::BadRequest(format!("form: {e}")).into_response())?;
        Ok(CsrfForm(viewer, form))
    }
}

/// The hidden input every form of a session carries.
pub fn csrf_input(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// A whole page: head, skip link, navigation (with the viewer and the logout form when logged in),
/// `<main id="main">` with the one `<h1>`, then `body`.
pub fn layout(title: &str, nav: Nav, viewer: Option<&Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sentinel" }
                link rel="stylesheet" href="/ui/static/app.css";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/ui/" { "Sentinel" }
                    @if let Some(v) = viewer {
                        nav aria-label="Sections" {
                            ul {
                                @for (n, href, label) in SECTIONS {
                                    li {
                                        @if *n == nav {
                                            a href=(href) aria-current="page" { (label) }
                                        } @else {
                                            a href=(href) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        div class="who" {
                            span { (v.principal.name) " (" (v.principal.role.as_str()) ")" }
                            form id="logout" method="post" action="/ui/logout" {
                                (csrf_input(v))
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// What a page answers besides success: an HTML page with the status.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// Malformed input.
    #[error("{0}")]
    BadRequest(String),
    /// Not allowed (role, CSRF, origin, no session on a POST).
    #[error("{0}")]
    Forbidden(String),
    /// No such record.
    #[error("not found")]
    NotFound,
    /// A dependency (store, ledger) failed or is absent; the detail is logged.
    #[error("{0}")]
    Unavailable(String),
}

impl From<sentinel_store::StoreError> for UiError {
    fn from(e: sentinel_store::StoreError) -> Self {
        tracing::warn!(evt = "ui_store_error", error = %e);
        UiError::Unavailable("the store could not answer; see the daemon's log".into())
    }
}

/// Dashboard requests answered with the 400 page (`sentinel_ui_bad_requests_total`): one count for
/// the process, however many routers are built.
static BAD_REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many dashboard requests were answered with the 400 page.
pub fn bad_requests() -> u64 {
    BAD_REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        if let UiError::BadRequest(why) = &self {
            BAD_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (shown, _) = alerts::clip(why, 200);
            tracing::info!(evt = "ui_bad_request", why = %shown);
        }
        let (status, title) = match &self {
            UiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            UiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            UiError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            UiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        };
        let body = html! { p class="error" role="alert" { (self.to_string()) } p { a href="/ui/" { "Back to the overview" } } };
        (status, layout(title, Nav::None, None, body)).into_response()
    }
}

/// The CSP every `/ui/` answer carries: nothing inline, nothing from elsewhere, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Middleware: the strict headers of every `/ui/` answer.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Middleware over the whole router: [`security_headers`] on every answer to a `/ui` path, also those
/// made outside the dashboard's own routes (405 for a method a route does not take, the rate limit's
/// 429, the in-flight cap's 503, the request timeout).
pub async fn ui_paths_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/ui" || path.starts_with("/ui/") {
        security_headers(req, next).await
    } else {
        next.run(req).await
    }
}

/// The `/ui` routes (empty when the dashboard is off). Each page module adds its routes here.
pub fn routes(state: &AppState) -> Router<AppState> {
    if !state.ui.sessions.settings().enabled {
        return Router::new();
    }
    state
        .ui
        .counters
        .register(&state.metrics, &state.ui.sessions);
    Router::new()
        .route(
            "/ui",
            axum::routing::get(|| async { Redirect::permanent("/ui/") }),
        )
        .merge(decisions::routes())
        .merge(alerts::routes())
        .merge(sources::routes())
        .merge(login::routes())
        .merge(assets::routes())
        .merge(live::routes())
        .merge(overview::routes())
        // Any other path under /ui/ is the dashboard's own 404 page (with the strict headers).
        .route(
            "/ui/{*rest}",
            axum::routing::any(|| async { UiError::NotFound }),
        )
        .layer(axum::middleware::from_fn(security_headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_dashboard() {
        for good in ["/ui/alerts/abc", "/ui/alerts?x=1"] {
            assert_eq!(safe_next(Some(good)), Some(good));
        }
        for bad in [
            "//evil.example/ui/",
            "/\\evil.example",
            "https://evil.example/ui/",
            "/v1/decisions",
            "/ui",
            "/ui/\\x",
            "/ui/\\\\evil",
            "/ui/a b",
            "/ui/\tx",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_next(None), None);
    }

    #[test]
    fn times_read_as_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-30T18:30:04.123Z").unwrap();
        assert_eq!(
            time_tag(t).into_string(),
            "<time datetime=\"2026-11-30T18:30:04.123Z\">2026-11-30 18:30:04 UTC</time>"
        );
    }
}
