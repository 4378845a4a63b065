//! `/ui/login` and `/ui/logout`: an API key (or JWT) exchanged once for a session cookie.
//!
//! The login form has no session yet, so it carries a double-submit token of its own: a random value
//! set in the `sentinel_login_csrf` cookie (HttpOnly, SameSite=Strict, scoped to `/ui/login`) and
//! mirrored in a hidden field; a post whose field does not match its cookie, or that comes from
//! another origin, is refused (`sentinel_ui_logins_total{result="forged"}`) — another site cannot
//! log a victim's browser into the attacker's account (login CSRF).
//!
//! A refused key is counted twice: by its reason in `sentinel_api_auth_failures_total{reason}`, like
//! any refused credential, and in `sentinel_ui_logins_total{result="refused"}`. Guessing is bounded
//! by the per-address rate limit of the whole API (`api.rate_limit`) and, here, by a per-address
//! backoff after [`super::session::FREE_FAILURES`] consecutive failures ([`super::LoginThrottle`],
//! `result="throttled"`). The key is never echoed back, logged or kept: only the session's principal
//! is. Each login gets a new session token (a cookie planted before login is never promoted), and a
//! session opened with a JWT ends no later than the token's `exp`.

use super::session::{random_token, LoginResult};
use super::{cookie, layout, same_origin, session_of, Nav, UiError, Viewer};
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use subtle::ConstantTimeEq;

/// The login form's double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "sentinel_login_csrf";

/// How long a login form stays usable.
const LOGIN_FORM_TTL: Duration = Duration::from_secs(3600);

/// The login and logout routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/login", get(login_page).post(login_post))
        .route("/ui/logout", post(logout))
}

/// Where to go after login: `next` when it is a dashboard path ([`super::safe_next`]), else `/ui/`.
fn next_or_home(next: Option<&str>) -> String {
    super::safe_next(next).unwrap_or("/ui/").to_string()
}

fn cookie_attrs(state: &AppState) -> &'static str {
    if state.ui.sessions.settings().secure_cookie {
        "; HttpOnly; SameSite=Strict; Secure"
    } else {
        "; HttpOnly; SameSite=Strict"
    }
}

fn set_cookie(resp: &mut Response, value: String) {
    match HeaderValue::from_str(&value) {
        Ok(v) => {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        // Our own tokens are base64url: this cannot happen; say so rather than drop it silently.
        Err(_) => tracing::error!(evt = "ui_cookie_invalid"),
    }
}

fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// The login page with a fresh double-submit token (its cookie set on the answer).
fn form_page(state: &AppState, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let token = random_token();
    let body: Markup = html! {
        @if let Some(e) = error {
            p class="error" role="alert" id="login-error" { (e) }
        }
        form id="login" method="post" action="/ui/login" class="login" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next);
            p {
                label for="key" { "API key or token" }
                input id="key" name="key" type="password" autocomplete="current-password"
                    required autofocus spellcheck="false"
                    aria-describedby="key-help";
            }
            p id="key-help" class="help" {
                "Paste an API key (" code { "snl_…" } ") or a JWT. Any role may read; operators may also act."
            }
            p { button type="submit" { "Log in" } }
        }
    };
    let mut resp = (status, layout("Log in", Nav::None, None, body)).into_response();
    set_cookie(
        &mut resp,
        format!(
            "{LOGIN_CSRF_COOKIE}={token}{}; Path=/ui/login; Max-Age={}",
            cookie_attrs(state),
            LOGIN_FORM_TTL.as_secs()
        ),
    );
    resp
}

/// `GET /ui/login?next=…`: the form (or straight on to `next` with a live session).
async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Response {
    // A query that does not decode, or names `next` twice, is the dashboard's own 400 page.
    let q = match crate::extract::StrictQuery::parse(raw.as_deref()) {
        Ok(q) => q.0,
        Err(e) => return UiError::BadRequest(e.to_string()).into_response(),
    };
    let next = next_or_home(q.get("next").map(String::as_str));
    if session_of(&state, &headers).is_some() {
        return see_other(&next);
    }
    form_page(&state, StatusCode::OK, &next, None)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

fn forged(state: &AppState, why: &'static str) -> Response {
    state.ui.counters.login(LoginResult::Forged);
    tracing::info!(evt = "ui_login_refused", reason = why);
    UiError::Forbidden(
        "this login form is stale or was posted from another site: open the login page again"
            .into(),
    )
    .into_response()
}

/// `POST /ui/login`: checks the form's origin and token, then the key; opens a session.
async fn login_post(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    if !same_origin(headers, &state.ui.sessions.settings().public_origins) {
        return forged(&state, "origin");
    }
    let bytes =
        match crate::extract::read_limited(headers, body, state.settings.max_body_bytes).await {
            Ok(b) => b,
            Err(_) => return UiError::BadRequest("the form is too large".into()).into_response(),
        };
    let form: LoginForm = match serde_urlencoded::from_bytes(&bytes) {
        Ok(f) => f,
        Err(_) => return UiError::BadRequest("malformed form".into()).into_response(),
    };
    let expected = cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty()
        || form.csrf.is_empty()
        || !bool::from(form.csrf.as_bytes().ct_eq(expected.as_bytes()))
    {
        return forged(&state, "token");
    }
    let next = next_or_home(form.next.as_deref());
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    if let Some(wait) = ip.and_then(|ip| state.ui.throttle.wait(ip)) {
        state.ui.counters.login(LoginResult::Throttled);
        tracing::info!(
            evt = "ui_login_throttled",
            wait_ms = wait.as_millis() as u64
        );
        let secs = wait.as_secs().max(1);
        let mut resp = form_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(&format!(
                "Too many failed attempts from your address: try again in {secs} s."
            )),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let presented = form.key.trim();
    let (principal, until) = match state.auth.identify_until(presented) {
        Ok(found) => found,
        Err(reason) => {
            state.auth.count_refusal(reason);
            state.metrics.auth_failures.inc();
            state.ui.counters.login(LoginResult::Refused);
            if let Some(ip) = ip {
                state.ui.throttle.failed(ip);
            }
            return form_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &next,
                Some("That key or token was not accepted."),
            );
        }
    };
    if let Some(ip) = ip {
        state.ui.throttle.succeeded(ip);
    }
    let sessions = &state.ui.sessions;
    // A session cookie already in the browser is never reused: it is closed and a new one made.
    if let Some(old) = cookie(headers, sessions.settings().cookie_name()) {
        sessions.close(old);
    }
    let not_after = until.map(|t| {
        let left = t.duration_since(SystemTime::now()).unwrap_or_default();
        Instant::now() + left
    });
    let (token, s) = sessions.open(principal.clone(), not_after);
    // Rounded to the nearest second (a fresh 12h session says 43200, not 43199).
    let max_age = (s.expires.saturating_duration_since(Instant::now())
        + Duration::from_millis(500))
    .as_secs();
    state.ui.counters.login(LoginResult::Ok);
    tracing::info!(evt = "ui_login", key_id = %principal.key_id, role = principal.role.as_str());
    note(
        &state,
        &parts.extensions,
        &principal.key_id,
        format!("ui login key {} {:?}", principal.key_id, principal.name),
    )
    .await;
    let mut resp = see_other(&next);
    set_cookie(
        &mut resp,
        format!(
            "{}={token}{}; Path=/; Max-Age={max_age}",
            sessions.settings().cookie_name(),
            cookie_attrs(&state)
        ),
    );
    set_cookie(
        &mut resp,
        format!(
            "{LOGIN_CSRF_COOKIE}={}; Path=/ui/login; Max-Age=0",
            cookie_attrs(&state)
        ),
    );
    resp
}

/// Notes a login or logout in the audit trail, in the request's trace.
async fn note(state: &AppState, ext: &axum::http::Extensions, key_id: &str, summary: String) {
    let trace = ext
        .get::<sentinel_core::TraceId>()
        .cloned()
        .unwrap_or_default();
    super::note_operator(state, key_id, &trace, summary).await;
}

/// `POST /ui/logout` (CSRF-checked): closes the session on the server, clears the cookie.
async fn logout(
    State(state): State<AppState>,
    ext: Option<axum::Extension<sentinel_core::TraceId>>,
    super::CsrfForm(viewer, _): super::CsrfForm<std::collections::HashMap<String, String>>,
) -> Response {
    let Viewer {
        principal, token, ..
    } = viewer;
    let sessions = &state.ui.sessions;
    sessions.close(&token);
    tracing::info!(evt = "ui_logout", key_id = %principal.key_id);
    let mut e = axum::http::Extensions::new();
    if let Some(axum::Extension(t)) = ext {
        e.insert(t);
    }
    note(
        &state,
        &e,
        &principal.key_id,
        format!("ui logout key {} {:?}", principal.key_id, principal.name),
    )
    .await;
    let mut resp = see_other("/ui/login");
    set_cookie(
        &mut resp,
        format!(
            "{}={}; Path=/; Max-Age=0",
            sessions.settings().cookie_name(),
            cookie_attrs(&state)
        ),
    );
    resp
}
