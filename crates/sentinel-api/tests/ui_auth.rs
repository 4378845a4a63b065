//! The dashboard's security core against the real router over a real store: login and logout like a
//! browser (the login form's own token, the session cookie's attributes), server-side expiry, the
//! session cap, revocation, open redirects, the login backoff, and a walk over every `/ui` route
//! (no session, no or wrong CSRF token, another origin) checking the strict headers of every answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use common::{harness, send, Harness, Reply};
use sentinel_api::auth::{Principal, Role};
use sentinel_api::ui::{UiSettings, UiState};
use std::net::SocketAddr;
use std::time::Duration;

const HOST: &str = "sentinel.test";

async fn with_ui(settings: UiSettings) -> Harness {
    let mut h = harness().await;
    h.state.ui = UiState::new(settings);
    // A registry of its own: the harness's first router registered the default UiState's counters.
    h.state.metrics = std::sync::Arc::new(sentinel_pipeline::metrics::Metrics::default());
    h.app = sentinel_api::router(h.state.clone());
    h
}

fn req(method: Method, path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", HOST)
}

/// The value of a `Set-Cookie` named `name`, with its attributes.
fn set_cookie<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set: &str) -> String {
    set.split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

fn hidden(html: &str, name: &str) -> String {
    let at = format!("name=\"{name}\" value=\"");
    let i = html
        .find(&at)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + at.len();
    let j = html[i..].find('"').unwrap();
    html[i..i + j].to_string()
}

fn body(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// GETs the login form: its token (the cookie and the hidden field agree).
async fn login_form(h: &Harness) -> String {
    let r = send(
        &h.app,
        req(Method::GET, "/ui/login").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let c = set_cookie(&r, "sentinel_login_csrf").expect("login token cookie");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    let token = cookie_value(c);
    assert_eq!(hidden(&body(&r), "csrf"), token);
    assert!(body(&r).contains("id=\"login\""));
    assert!(body(&r).contains("id=\"key\""));
    token
}

async fn post_login(h: &Harness, key: &str, next: &str, from: Option<SocketAddr>) -> Reply {
    let token = login_form(h).await;
    let form =
        serde_urlencoded::to_string([("key", key), ("csrf", &token), ("next", next)]).unwrap();
    let mut r = req(Method::POST, "/ui/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("sentinel_login_csrf={token}"))
        .header("origin", format!("http://{HOST}"))
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(form))
        .unwrap();
    if let Some(a) = from {
        r.extensions_mut().insert(ConnectInfo(a));
    }
    send(&h.app, r).await
}

/// Logs in; the session cookie (`name=value`).
async fn login(h: &Harness, key: &str) -> String {
    let r = post_login(h, key, "/ui/live", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", body(&r));
    assert_eq!(r.header("location"), Some("/ui/live"));
    let name = h.state.ui.sessions.settings().cookie_name();
    let c = set_cookie(&r, name).expect("session cookie");
    format!("{name}={}", cookie_value(c))
}

async fn get_page(h: &Harness, path: &str, cookie: &str) -> Reply {
    send(
        &h.app,
        req(Method::GET, path)
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn metric(h: &Harness, line: &str) -> u64 {
    let text = h.state.metrics.render();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line)
                .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        })
        .unwrap_or_else(|| panic!("no {line} in metrics"))
}

fn assert_strict_headers(r: &Reply, what: &str) {
    let csp = r
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert!(r.header("referrer-policy").is_some(), "{what}");
}

#[tokio::test]
async fn login_sets_a_strict_cookie_and_opens_the_pages() {
    let h = with_ui(UiSettings::default()).await;
    let r = post_login(&h, &h.viewer_key, "/ui/live", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let c = set_cookie(&r, "sentinel_session").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(c.contains(attr), "{attr} missing: {c}");
    }
    assert!(!c.contains("Secure"), "{c}");
    // The login form's token is used up.
    assert!(set_cookie(&r, "sentinel_login_csrf")
        .unwrap()
        .contains("Max-Age=0"));
    let cookie = format!("sentinel_session={}", cookie_value(c));
    let page = get_page(&h, "/ui/live", &cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = body(&page);
    assert!(
        html.contains("id=\"feed\"") && html.contains("role=\"status\""),
        "{html}"
    );
    assert!(
        html.contains("<script src=\"/ui/static/live.js\" defer>"),
        "{html}"
    );
    assert!(html.contains("id=\"logout\""));
    assert!(!html.contains(&h.viewer_key), "the key is never echoed");
    assert_eq!(metric(&h, "sentinel_ui_logins_total{result=\"ok\"}"), 1);
    // Logged in, the login page goes straight on.
    let again = get_page(&h, "/ui/login?next=/ui/live", &cookie).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.header("location"), Some("/ui/live"));
}

#[tokio::test]
async fn a_secure_cookie_is_host_prefixed() {
    let h = with_ui(UiSettings {
        secure_cookie: true,
        ..Default::default()
    })
    .await;
    let r = post_login(&h, &h.viewer_key, "/ui/live", None).await;
    let c = set_cookie(&r, "__Host-sentinel_session").expect("__Host- cookie");
    assert!(
        c.contains("; Secure") && c.contains("Path=/") && !c.contains("Domain"),
        "{c}"
    );
    let cookie = format!("__Host-sentinel_session={}", cookie_value(c));
    assert_eq!(
        get_page(&h, "/ui/live", &cookie).await.status,
        StatusCode::OK
    );
    // The unprefixed name opens nothing.
    let plain = format!("sentinel_session={}", cookie_value(c));
    assert_eq!(
        get_page(&h, "/ui/live", &plain).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_wrong_key_is_refused_counted_and_never_echoed() {
    let h = with_ui(UiSettings::default()).await;
    let wrong = "snl_thisKeyWasNeverMadeAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = post_login(&h, wrong, "/ui/live", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r, "sentinel_session").is_none());
    assert!(!body(&r).contains(wrong), "the key is never echoed");
    assert!(body(&r).contains("id=\"login\""), "the form again");
    assert_eq!(
        metric(&h, "sentinel_ui_logins_total{result=\"refused\"}"),
        1
    );
    // `sentinel_api_auth_failures_total{reason="unknown_key"}` is read from this counter.
    assert_eq!(
        h.state
            .auth
            .refused(sentinel_api::auth::Refusal::UnknownKey),
        1
    );
    assert!(h.state.ui.sessions.is_empty());
}

#[tokio::test]
async fn a_forged_login_is_refused() {
    let h = with_ui(UiSettings::default()).await;
    let token = login_form(&h).await;
    let form = |csrf: &str| {
        serde_urlencoded::to_string([("key", h.viewer_key.as_str()), ("csrf", csrf)]).unwrap()
    };
    let cases: Vec<(&str, Request<Body>)> = vec![
        (
            "no token cookie",
            req(Method::POST, "/ui/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form(&token)))
                .unwrap(),
        ),
        (
            "token mismatch",
            req(Method::POST, "/ui/login")
                .header("cookie", format!("sentinel_login_csrf={token}"))
                .body(Body::from(form("other")))
                .unwrap(),
        ),
        (
            "foreign origin",
            req(Method::POST, "/ui/login")
                .header("cookie", format!("sentinel_login_csrf={token}"))
                .header("origin", "https://evil.example")
                .body(Body::from(form(&token)))
                .unwrap(),
        ),
        (
            "cross-site fetch",
            req(Method::POST, "/ui/login")
                .header("cookie", format!("sentinel_login_csrf={token}"))
                .header("sec-fetch-site", "cross-site")
                .body(Body::from(form(&token)))
                .unwrap(),
        ),
    ];
    for (what, r) in cases {
        let r = send(&h.app, r).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}");
        assert!(set_cookie(&r, "sentinel_session").is_none(), "{what}");
        assert_strict_headers(&r, what);
    }
    assert_eq!(metric(&h, "sentinel_ui_logins_total{result=\"forged\"}"), 4);
    assert!(h.state.ui.sessions.is_empty());
}

#[tokio::test]
async fn next_never_leaves_the_dashboard() {
    let h = with_ui(UiSettings::default()).await;
    for (next, to) in [
        ("/ui/alerts?severity=high", "/ui/alerts?severity=high"),
        ("//evil.example/ui/", "/ui/"),
        ("/\\evil.example", "/ui/"),
        ("https://evil.example/", "/ui/"),
        ("/v1/keys", "/ui/"),
    ] {
        let r = post_login(&h, &h.viewer_key, next, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(r.header("location"), Some(to), "{next}");
    }
}

#[tokio::test]
async fn repeated_failures_from_one_address_back_off() {
    let h = with_ui(UiSettings::default()).await;
    let from: SocketAddr = "192.0.2.9:40000".parse().unwrap();
    for _ in 0..5 {
        let r = post_login(&h, "snl_wrong", "/ui/", Some(from)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right key waits, from that address only.
    let r = post_login(&h, &h.viewer_key, "/ui/", Some(from)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        metric(&h, "sentinel_ui_logins_total{result=\"throttled\"}"),
        1
    );
    let other: SocketAddr = "198.51.100.4:40000".parse().unwrap();
    let r = post_login(&h, &h.viewer_key, "/ui/", Some(other)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = post_login(&h, &h.viewer_key, "/ui/", Some(from)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the wait is over");
}

#[tokio::test]
async fn sessions_expire_on_the_server() {
    let h = with_ui(UiSettings {
        session_ttl: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let cookie = login(&h, &h.viewer_key).await;
    assert_eq!(
        get_page(&h, "/ui/live", &cookie).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = get_page(&h, "/ui/live", &cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/ui/login?next=/ui/live"));
    assert!(h.state.ui.sessions.is_empty(), "removed, not only refused");

    let h = with_ui(UiSettings {
        idle_timeout: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let cookie = login(&h, &h.viewer_key).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            get_page(&h, "/ui/live", &cookie).await.status,
            StatusCode::OK,
            "use restarts the idle clock"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get_page(&h, "/ui/live", &cookie).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn logout_makes_the_old_cookie_useless() {
    let h = with_ui(UiSettings::default()).await;
    let cookie = login(&h, &h.viewer_key).await;
    let page = get_page(&h, "/ui/live", &cookie).await;
    let csrf = hidden(&body(&page), "csrf");
    let r = send(
        &h.app,
        req(Method::POST, "/ui/logout")
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/ui/login"));
    assert!(set_cookie(&r, "sentinel_session")
        .unwrap()
        .contains("Max-Age=0"));
    assert!(h.state.ui.sessions.is_empty());
    assert_eq!(
        get_page(&h, "/ui/live", &cookie).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_revoked_key_ends_its_sessions() {
    let h = with_ui(UiSettings::default()).await;
    let viewer = login(&h, &h.viewer_key).await;
    let admin = login(&h, &h.admin_key).await;
    assert_eq!(h.state.ui.sessions.len(), 2);
    assert!(h.state.auth.revoke("k-viewer"));
    assert_eq!(
        get_page(&h, "/ui/live", &viewer).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(h.state.ui.sessions.len(), 1, "closed at its next request");
    assert_eq!(
        get_page(&h, "/ui/live", &admin).await.status,
        StatusCode::OK
    );
    // What `DELETE /v1/keys/{id}` calls: every session of the key at once.
    assert_eq!(h.state.ui.sessions.close_key("k-admin"), 1);
    assert_eq!(
        get_page(&h, "/ui/live", &admin).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_session_cap_drops_the_least_recently_used() {
    let h = with_ui(UiSettings {
        max_sessions: 2,
        ..Default::default()
    })
    .await;
    let a = login(&h, &h.viewer_key).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = login(&h, &h.viewer_key).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(get_page(&h, "/ui/live", &a).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = login(&h, &h.viewer_key).await;
    assert_eq!(h.state.ui.sessions.len(), 2);
    assert_eq!(get_page(&h, "/ui/live", &a).await.status, StatusCode::OK);
    assert_eq!(get_page(&h, "/ui/live", &c).await.status, StatusCode::OK);
    assert_eq!(
        get_page(&h, "/ui/live", &b).await.status,
        StatusCode::SEE_OTHER,
        "b was least recently used"
    );
}

#[tokio::test]
async fn a_hostile_key_name_is_escaped() {
    let h = with_ui(UiSettings::default()).await;
    let key = sentinel_api::auth::Auth::generate_key();
    let name = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>";
    h.state.auth.insert(
        &h.state.auth.hash(&key),
        Principal {
            key_id: "k-xss".into(),
            name: name.into(),
            role: Role::Viewer,
        },
    );
    let cookie = login(&h, &key).await;
    let html = body(&get_page(&h, "/ui/live", &cookie).await);
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
}

#[tokio::test]
async fn static_files_have_types_and_validators() {
    let h = with_ui(UiSettings::default()).await;
    for (path, ty) in [
        ("/ui/static/app.css", "text/css; charset=utf-8"),
        ("/ui/static/live.js", "text/javascript; charset=utf-8"),
    ] {
        let r = send(&h.app, req(Method::GET, path).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header("content-type"), Some(ty));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert_strict_headers(&r, path);
        let etag = r.header("etag").unwrap().to_string();
        let again = send(
            &h.app,
            req(Method::GET, path)
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
    }
    let js = sentinel_api::ui::assets::LIVE_JS;
    assert!(
        !js.contains("innerHTML") && !js.contains("eval("),
        "DOM APIs and textContent only"
    );
}

/// The walk over every `/ui` route of [`sentinel_api::ui_table`].
#[tokio::test]
async fn every_ui_route_is_guarded_and_has_strict_headers() {
    let h = with_ui(UiSettings::default()).await;
    let cookie = login(&h, &h.admin_key).await;
    let csrf = hidden(&body(&get_page(&h, "/ui/live", &cookie).await), "csrf");
    let table = sentinel_api::ui_table();
    assert!(table.len() >= 7);
    for (method, path, role) in table {
        let path = path
            .replace("{id}", "01J0000000000000000000000X")
            .replace("{action_id}", "x");
        let what = format!("{method} {path}");
        let form_post = |cookie: Option<&str>, csrf: Option<&str>, extra: Option<(&str, &str)>| {
            let mut b = req(method.clone(), &path)
                .header("content-type", "application/x-www-form-urlencoded");
            if let Some(c) = cookie {
                b = b.header("cookie", c);
            }
            if let Some((k, v)) = extra {
                b = b.header(k, v);
            }
            b.body(Body::from(
                csrf.map(|t| format!("csrf={t}")).unwrap_or_default(),
            ))
            .unwrap()
        };
        if *method == Method::GET {
            let r = send(&h.app, req(Method::GET, &path).body(Body::empty()).unwrap()).await;
            assert_strict_headers(&r, &what);
            match role {
                Some(_) => {
                    assert_eq!(r.status, StatusCode::SEE_OTHER, "{what}");
                    assert_eq!(
                        r.header("location").unwrap(),
                        format!("/ui/login?next={path}"),
                        "{what}"
                    );
                    let ok = get_page(&h, &path, &cookie).await;
                    assert_strict_headers(&ok, &what);
                    assert!(
                        ok.status != StatusCode::SEE_OTHER && ok.status != StatusCode::FORBIDDEN,
                        "{what}: {}",
                        ok.status
                    );
                }
                None => assert!(
                    r.status == StatusCode::OK || r.status.is_redirection(),
                    "{what}: {}",
                    r.status
                ),
            }
            continue;
        }
        if role.is_none() {
            // The login form: its own token and origin check (a_forged_login_is_refused).
            let r = send(&h.app, form_post(None, None, None)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}");
            assert_strict_headers(&r, &what);
            continue;
        }
        let cases = [
            ("no session", form_post(None, Some(&csrf), None)),
            ("no token", form_post(Some(&cookie), None, None)),
            (
                "wrong token",
                form_post(Some(&cookie), Some("forged"), None),
            ),
            (
                "foreign origin",
                form_post(
                    Some(&cookie),
                    Some(&csrf),
                    Some(("origin", "https://evil.example")),
                ),
            ),
            (
                "cross-site",
                form_post(
                    Some(&cookie),
                    Some(&csrf),
                    Some(("sec-fetch-site", "cross-site")),
                ),
            ),
        ];
        for (why, r) in cases {
            let r = send(&h.app, r).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {why}");
            assert_strict_headers(&r, &format!("{what}: {why}"));
        }
    }
    assert!(metric(&h, "sentinel_ui_forms_refused_total{reason=\"token\"}") >= 2);
    assert!(metric(&h, "sentinel_ui_forms_refused_total{reason=\"origin\"}") >= 2);
    // Unknown paths under /ui are the dashboard's 404 page, with the same headers.
    let r = send(
        &h.app,
        req(Method::GET, "/ui/no-such-page")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_strict_headers(&r, "404");
}

/// Behind a proxy that rewrites `Host` (the request names `127.0.0.1:8000`, the browser's `Origin`
/// the proxy's address), a login post is refused unless `api.ui.public_origins` lists the proxy's
/// origin; listed, it is accepted (in any case), and another origin is still refused. The live stream's
/// cookie check goes through the same test.
#[tokio::test]
async fn a_host_rewriting_proxy_is_ours_only_when_listed() {
    async fn post_via_proxy(h: &Harness, origin: &str) -> Reply {
        let token = login_form(h).await;
        let form = serde_urlencoded::to_string([
            ("key", h.viewer_key.as_str()),
            ("csrf", token.as_str()),
            ("next", "/ui/"),
        ])
        .unwrap();
        let r = Request::builder()
            .method(Method::POST)
            .uri("/ui/login")
            .header("host", "127.0.0.1:8000")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("sentinel_login_csrf={token}"))
            .header("origin", origin)
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(form))
            .unwrap();
        send(&h.app, r).await
    }
    let unlisted = with_ui(UiSettings::default()).await;
    let r = post_via_proxy(&unlisted, "https://sentinel.example.org").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", body(&r));

    let listed = with_ui(UiSettings {
        public_origins: vec!["https://sentinel.example.org".into()],
        ..Default::default()
    })
    .await;
    let r = post_via_proxy(&listed, "https://Sentinel.Example.org").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", body(&r));
    assert!(set_cookie(&r, "sentinel_session").is_some());
    for other in [
        "https://evil.example",
        "http://sentinel.example.org",
        "https://sentinel.example.org:8443",
        "https://sentinel.example.org.evil.example",
        "null",
    ] {
        let r = post_via_proxy(&listed, other).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{other}");
    }
    // The headers alone decide, as for the stream's session check.
    let mut hd = axum::http::HeaderMap::new();
    hd.insert("host", "127.0.0.1:8000".parse().unwrap());
    hd.insert("origin", "https://sentinel.example.org".parse().unwrap());
    assert!(!sentinel_api::ui::same_origin(&hd, &[]));
    assert!(sentinel_api::ui::same_origin(
        &hd,
        &["https://sentinel.example.org".to_string()]
    ));
}
