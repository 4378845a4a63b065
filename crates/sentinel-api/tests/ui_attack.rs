//! The dashboard attacked through the real router over a real store: redirects that must stay on
//! the dashboard whatever `next` holds, the login backoff against an address that changes within its
//! IPv6 /64, hostile query strings (huge, negative, overflowing, unicode, repeated) that must be clear
//! 400 pages with the strict headers, never a 500, and the strict headers on every kind of answer
//! (405, 404, HEAD, assets, redirects).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use common::{harness, send, Harness, Reply};
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
async fn a_next_that_is_no_plain_dashboard_path_goes_to_the_overview() {
    let h = with_ui(UiSettings::default()).await;
    for next in [
        "/ui/alerts?scenario=é",
        "/ui/\u{7f}x",
        "/ui/\u{2028}",
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "/%2F%2Fevil.example",
        "/ui/%0d%0aSet-Cookie:x=1",
    ] {
        let r = post_login(&h, &h.viewer_key, next, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next:?}");
        let to = r.header("location");
        assert!(to.is_some(), "{next:?}: a 303 without a Location");
        let to = to.unwrap();
        assert!(to == "/ui/" || to == next, "{next:?} went to {to:?}");
        assert!(
            !to.starts_with("//") && !to.contains('\\') && to.starts_with("/ui/"),
            "{to}"
        );
    }
}

#[tokio::test]
async fn the_backoff_holds_across_an_ipv6_slash_64() {
    let h = with_ui(UiSettings::default()).await;
    // One host of an attacker's /64 after another: each a new address.
    for i in 1..=5u32 {
        let from: SocketAddr = format!("[2001:db8:1:2::{i:x}]:40000").parse().unwrap();
        let r = post_login(&h, "snl_wrong", "/ui/", Some(from)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let next: SocketAddr = "[2001:db8:1:2::ffff]:40000".parse().unwrap();
    let r = post_login(&h, "snl_wrong", "/ui/", Some(next)).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "another address of the same /64 waits too"
    );
    // Another /64 does not.
    let other: SocketAddr = "[2001:db8:1:3::1]:40000".parse().unwrap();
    let r = post_login(&h, &h.viewer_key, "/ui/", Some(other)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // IPv4 stays per address, an IPv4-mapped IPv6 address is its IPv4 address.
    for _ in 0..5 {
        let from: SocketAddr = "[::ffff:192.0.2.9]:40000".parse().unwrap();
        post_login(&h, "snl_wrong", "/ui/", Some(from)).await;
    }
    let v4: SocketAddr = "192.0.2.9:40001".parse().unwrap();
    assert_eq!(
        post_login(&h, &h.viewer_key, "/ui/", Some(v4)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let v4b: SocketAddr = "192.0.2.10:40001".parse().unwrap();
    assert_eq!(
        post_login(&h, &h.viewer_key, "/ui/", Some(v4b))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn hostile_queries_are_clear_400_pages_never_500s() {
    let h = with_ui(UiSettings::default()).await;
    let cookie = login(&h, &h.viewer_key).await;
    let long = "a".repeat(10_000);
    let bad = [
        "/ui/alerts?limit=99999999999999999999".to_string(),
        "/ui/alerts?limit=-1".into(),
        "/ui/alerts?limit=0".into(),
        "/ui/alerts?cursor=-1".into(),
        "/ui/alerts?cursor=%00".into(),
        format!("/ui/alerts?cursor={long}"),
        "/ui/alerts?since=99999999999999999999999".into(),
        "/ui/alerts?since=%F0%9F%98%80".into(),
        "/ui/alerts?severity=%F0%9F%98%80".into(),
        format!("/ui/alerts?{long}=1"),
        "/ui/alerts?limit=1&limit=2".into(),
        "/ui/alerts?%ZZ=1".into(),
        "/ui/decisions?before=-1".into(),
        "/ui/decisions?before=%00".into(),
        "/ui/decisions?done=x".into(),
        "/ui/decisions?nope=1".into(),
        "/ui/?window=99999999999d".into(),
        "/ui/?window=1&window=2".into(),
        "/ui/login?next=a&next=b".into(),
        // The confirmation line names an action id, nothing a link could make it say.
        "/ui/decisions?done=applied&id=203.0.113.7%20was%20NOT%20blocked".into(),
        "/ui/decisions?done=reverted".into(),
    ];
    let before = metric(&h, "sentinel_ui_bad_requests_total");
    for path in &bad {
        let r = get_page(&h, path, &cookie).await;
        let shown = &path[..path.len().min(80)];
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{shown}: {}", body(&r));
        assert_strict_headers(&r, shown);
        let ct = r.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("text/html"),
            "{shown}: an HTML page, not {ct}"
        );
        assert!(body(&r).contains("role=\"alert\""), "{shown}: says why");
        assert!(
            body(&r).len() < 20_000,
            "{shown}: the page does not echo 10k of input"
        );
    }
    // Each counted (the counter is the process's: other tests may add to it meanwhile).
    assert!(metric(&h, "sentinel_ui_bad_requests_total") - before >= bad.len() as u64);
    // Long but well-formed filters are fine (and echoed escaped).
    for path in [
        format!("/ui/alerts?scenario={long}"),
        format!("/ui/alerts?subject={long}"),
        "/ui/alerts?scenario=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_string(),
        "/ui/alerts?since=-9223372036854775808".into(),
        "/ui/alerts?until=9223372036854775807".into(),
    ] {
        let r = get_page(&h, &path, &cookie).await;
        assert_eq!(r.status, StatusCode::OK, "{}", &path[..path.len().min(80)]);
        assert!(!body(&r).contains("<script>alert"), "escaped");
    }
}

#[tokio::test]
async fn every_kind_of_answer_carries_the_strict_headers() {
    let h = with_ui(UiSettings::default()).await;
    let cookie = login(&h, &h.viewer_key).await;
    let cases: Vec<(&str, Request<Body>)> = vec![
        (
            "GET on a POST route",
            req(Method::GET, "/ui/logout")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "PUT",
            req(Method::PUT, "/ui/decisions")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "HEAD",
            req(Method::HEAD, "/ui/alerts")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "404",
            req(Method::GET, "/ui/%3Cscript%3E")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "asset",
            req(Method::GET, "/ui/static/live.js")
                .body(Body::empty())
                .unwrap(),
        ),
        (
            "redirect",
            req(Method::GET, "/ui/alerts").body(Body::empty()).unwrap(),
        ),
        (
            "bare /ui",
            req(Method::GET, "/ui").body(Body::empty()).unwrap(),
        ),
        (
            "method override",
            req(Method::POST, "/ui/alerts?_method=DELETE")
                .header("cookie", &cookie)
                .header("x-http-method-override", "DELETE")
                .body(Body::empty())
                .unwrap(),
        ),
    ];
    for (what, r) in cases {
        let r = send(&h.app, r).await;
        assert!(
            r.status != StatusCode::OK || what == "asset" || what == "HEAD",
            "{what}: {}",
            r.status
        );
        assert_strict_headers(&r, what);
        if what != "asset" {
            assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
        }
        assert!(!body(&r).contains("<script>"), "{what}");
    }
}

#[tokio::test]
async fn forms_posted_in_other_encodings_are_refused() {
    let h = with_ui(UiSettings::default()).await;
    let cookie = login(&h, &h.admin_key).await;
    let page = get_page(&h, "/ui/alerts", &cookie).await;
    let csrf = hidden(&body(&page), "csrf");
    let before = metric(&h, "sentinel_ui_forms_refused_total{reason=\"token\"}");
    let multipart =
        format!("--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--b--\r\n");
    for (ct, b) in [
        ("multipart/form-data; boundary=b", multipart),
        ("application/json", format!("{{\"csrf\":\"{csrf}\"}}")),
    ] {
        let r = send(
            &h.app,
            req(Method::POST, "/ui/logout")
                .header("cookie", &cookie)
                .header("content-type", ct)
                .body(Body::from(b))
                .unwrap(),
        )
        .await;
        assert!(
            r.status == StatusCode::FORBIDDEN || r.status == StatusCode::BAD_REQUEST,
            "{ct}: {}",
            r.status
        );
        assert_strict_headers(&r, ct);
    }
    assert!(metric(&h, "sentinel_ui_forms_refused_total{reason=\"token\"}") > before);
    // Still logged in: nothing above logged out.
    assert_eq!(
        get_page(&h, "/ui/alerts", &cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn logging_in_again_and_again_never_pushes_out_another_keys_session() {
    let h = with_ui(UiSettings {
        max_sessions: 2,
        ..Default::default()
    })
    .await;
    let admin = login(&h, &h.admin_key).await;
    // The short pauses only order the sessions' clocks; nothing is timed.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut last = String::new();
    for _ in 0..5 {
        last = login(&h, &h.viewer_key).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(h.state.ui.sessions.len(), 2);
    assert_eq!(
        get_page(&h, "/ui/live", &admin).await.status,
        StatusCode::OK,
        "the admin's session survives a viewer's logins"
    );
    assert_eq!(get_page(&h, "/ui/live", &last).await.status, StatusCode::OK);
}
