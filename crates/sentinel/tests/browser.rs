//! The dashboard's acceptance tests in a real browser: headless Chromium (Debian's `chromium`), driven
//! through `chromedriver` with fantoccini, against a real `sentinel run` that tails a log and blocks with
//! nftables, all inside a network namespace the test makes (see `common/browser.rs`).
//!
//! - the golden path: log in, watch an alert arrive live from a tailed log line, open its story, revert
//!   its decision (its nft element goes), log out (the old session cookie is refused);
//! - XSS: payloads in every field a log line, a webhook-style post and a decision carry render inert
//!   (no dialog, no script run, no CSP violation) and are shown as text;
//! - CSRF: a form post without the token, or from another origin, is refused and changes nothing;
//! - the WebSocket stream: a client that stops reading is cut off (close 4008) within a bound, a
//!   reconnect with its cursor gets exactly what it missed, and the browser's live feed goes on.
//!
//! Screenshots of every step: `<target>/browser-screenshots/<test>/NN-step.png`.
//! Needs root (namespaces, nftables), `chromium`, `chromium-driver` and `fonts-dejavu-core`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/browser.rs"]
mod browser;

use browser::{
    append, blocked, enforcing_yml, in_netns, plain_client, sshd_line, Browser, Sentinel, API, SOON,
};
use fantoccini::Locator;
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Polls `f` until it holds, for at most [`SOON`].
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + SOON;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {SOON:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Eight failed sshd logins from `ip`: enough for the brute-force scenario.
fn brute_force(ip: &str) -> Vec<String> {
    (0..8)
        .map(|i| {
            sshd_line(
                "victim",
                400 + i,
                &format!("Failed password for root from {ip} port {} ssh2", 51000 + i),
            )
        })
        .collect()
}

/// The first element matching `css` whose text contains `needle`, waited for.
async fn wait_text(b: &Browser, css: &str, needle: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + SOON;
    loop {
        for e in b.c.find_all(Locator::Css(css)).await.unwrap() {
            if e.text().await.unwrap_or_default().contains(needle) {
                return e;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no `{css}` containing {needle:?} within {SOON:?}; page:\n{}",
            b.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request with the session cookie (and, like a browser, this origin).
fn with_cookie(rb: reqwest::RequestBuilder, cookie: &(String, String)) -> reqwest::RequestBuilder {
    rb.header("cookie", format!("{}={}", cookie.0, cookie.1))
        .header("origin", format!("http://{API}"))
}

async fn ui_status(cookie: &(String, String), path: &str) -> (u16, String) {
    let r = with_cookie(plain_client().get(format!("http://{API}{path}")), cookie)
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), to)
}

async fn click(b: &Browser, css: &str) {
    b.wait(css).await.click().await.unwrap();
}

#[test]
fn golden_path_live_alert_story_revert_logout() {
    in_netns("bgolden", |ns| async move {
        const ATTACKER: &str = "203.0.113.7";
        let d = Sentinel::start(|dir| {
            let log = dir.join("auth.log");
            std::fs::write(&log, "").unwrap();
            enforcing_yml(&log)
        })
        .await;
        let log = d.dir.path().join("auth.log");
        let key = d.new_key("operator").await;
        let mut b = Browser::start("golden_path").await;
        b.login(&key).await;

        // The live feed, connected, before anything happened.
        click(&b, "nav a[href=\"/ui/live\"]").await;
        b.wait("#live-status[data-state=live]").await;
        assert_eq!(b.h1().await, "Live feed");
        b.js("window.__sameDocument = 'yes'; return null;").await;
        b.assert_inert("live feed").await;
        b.shot("live-feed-connected").await;
        assert!(!blocked(&ns, ATTACKER));

        // A brute force in the tailed log: its alert appears at the top of the feed, no reload.
        append(&log, &brute_force(ATTACKER));
        let item = wait_text(&b, "#feed li[data-kind=alert]", ATTACKER).await;
        assert_eq!(
            b.js("return window.__sameDocument;").await,
            "yes",
            "the page was reloaded"
        );
        assert!(
            b.c.find_all(Locator::Css("#feed-empty"))
                .await
                .unwrap()
                .is_empty(),
            "the empty-feed note stayed"
        );
        b.assert_inert("live feed with the alert").await;
        b.shot("alert-arrived-live").await;
        // Then its action, applied, arrives too.
        wait_text(&b, "#feed li[data-kind=action]", "applied").await;
        until("the nft element for the attacker", || {
            blocked(&ns, ATTACKER)
        })
        .await;
        b.shot("action-arrived-live").await;

        // Its story.
        item.find(Locator::Css("a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        b.wait("section#evidence").await;
        assert!(
            b.path().await.starts_with("/ui/alerts/"),
            "{}",
            b.path().await
        );
        let evidence = b.wait("section#evidence").await.text().await.unwrap();
        assert!(evidence.contains("Failed password for root"), "{evidence}");
        assert!(evidence.contains(ATTACKER), "{evidence}");
        for s in ["verdicts", "score", "plan", "audit"] {
            b.wait(&format!("section#{s}")).await;
        }
        let row = wait_text(&b, "section#actions tr[data-action-id]", "block_ip").await;
        let action = row.attr("data-action-id").await.unwrap().unwrap();
        b.assert_inert("story").await;
        b.shot("story").await;

        // Decisions: revert it.
        click(&b, "nav a[href=\"/ui/decisions\"]").await;
        let row_css = format!("table#decisions tr[data-action-id=\"{action}\"]");
        let row = b.wait(&row_css).await;
        assert!(row.text().await.unwrap().contains(ATTACKER));
        b.assert_inert("decisions").await;
        b.shot("decisions-before-revert").await;
        click(&b, &format!("{row_css} form.revert button[type=submit]")).await;
        b.wait("p.notice").await;
        assert!(
            b.path().await.contains("done=reverted"),
            "{}",
            b.path().await
        );
        assert!(
            b.c.find_all(Locator::Css(&row_css))
                .await
                .unwrap()
                .is_empty(),
            "the reverted decision is still listed"
        );
        assert!(
            !blocked(&ns, ATTACKER),
            "the nft element outlived the revert"
        );
        b.assert_inert("decisions after revert").await;
        b.shot("decision-reverted").await;
        let live = d.decisions().await;
        assert!(
            live.iter().all(|r| r["id"] != action.as_str()),
            "still live over the API: {live:?}"
        );

        // Log out: the old cookie no longer opens a page.
        let cookie = b.session_cookie().await;
        assert_eq!(ui_status(&cookie, "/ui/").await.0, 200);
        click(&b, "form#logout button[type=submit]").await;
        b.wait("form#login").await;
        assert!(
            b.path().await.starts_with("/ui/login"),
            "{}",
            b.path().await
        );
        b.shot("logged-out").await;
        let (status, to) = ui_status(&cookie, "/ui/").await;
        assert!((300..400).contains(&status), "{status}");
        assert!(to.starts_with("/ui/login"), "{to}");
        // And the browser itself is sent to the login page.
        b.goto("/ui/decisions").await;
        b.wait("form#login").await;
        b.close().await;
        drop(d);
    });
}

/// What the XSS test puts in every field.
const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";
const CANARY: &str = "<img src=x onerror=\"window.__pwned=1\">";
const CANARY_ATTR: &str = "'\"><svg onload=window.__pwned=1>";

/// No element a payload could have made exists in the page.
async fn no_payload_elements(b: &Browser, page: &str) {
    let n = b
        .js("return document.querySelectorAll('[onerror],[onload],script:not([src]),img[src=x]').length;")
        .await;
    assert_eq!(n, 0, "{page}: a payload became markup");
}

#[test]
fn xss_payloads_in_every_field_render_inert() {
    in_netns("bxss", |_ns| async move {
        let d = Sentinel::start(|dir| {
            // The log's path carries a payload too: the sources page shows it.
            let sub = dir.join("x\"><img src=x onerror=\"window.__pwned=1\">");
            std::fs::create_dir(&sub).unwrap();
            let log = sub.join("auth.log");
            std::fs::write(&log, "").unwrap();
            enforcing_yml(&log)
        })
        .await;
        let log = d
            .dir
            .path()
            .join("x\"><img src=x onerror=\"window.__pwned=1\">/auth.log");
        let key = d.new_key("operator").await;
        let mut b = Browser::start("xss").await;
        b.login(&key).await;
        b.goto("/ui/live").await;
        b.wait("#live-status[data-state=live]").await;

        // 1. sshd lines: payloads as user names and as the syslog host.
        let ip = "203.0.113.8";
        let mut lines = Vec::new();
        for (i, user) in [SCRIPT, IMG, CANARY, CANARY_ATTR].iter().enumerate() {
            let i = i as u32;
            lines.push(sshd_line(
                "victim",
                500 + i,
                &format!(
                    "Failed password for invalid user {user} from {ip} port {} ssh2",
                    52000 + i
                ),
            ));
        }
        for host in ["<script>window.__pwned=1</script>", "<b>host</b>"] {
            lines.push(sshd_line(
                host,
                520,
                &format!("Failed password for root from {ip} port 52200 ssh2"),
            ));
        }
        for (i, user) in [SCRIPT, IMG, CANARY, CANARY_ATTR].iter().enumerate() {
            let i = i as u32;
            lines.push(sshd_line(
                "victim",
                510 + i,
                &format!("Invalid user {user} from {ip} port {}", 52100 + i),
            ));
        }
        append(&log, &lines);

        // 2. A posted event with payloads in every field, as keys too.
        let r = plain_client()
            .post(d.url("/v1/defend"))
            .bearer_auth(&d.admin)
            .json(&json!({
                "kind": "auth", "src_ip": "203.0.113.9", "failed_logins": 500,
                "source": SCRIPT, "target": IMG, "path": CANARY, "user": CANARY_ATTR,
                "user_agent": SCRIPT, "payload": IMG, CANARY: CANARY_ATTR,
            }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let outcome: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{outcome}");
        assert_eq!(outcome["alerted"], true, "{outcome}");

        // 3. A decision over the API with a payload as its reason.
        let reason = format!("{SCRIPT} {CANARY}");
        let r = plain_client()
            .post(d.url("/v1/decisions"))
            .bearer_auth(&d.admin)
            .json(&json!({"ip": "192.0.2.44", "duration": "1h", "reason": reason}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

        // The live feed shows what came, inert.
        wait_text(&b, "#feed li[data-kind=alert]", ip).await;
        wait_text(&b, "#feed li[data-kind=alert]", "203.0.113.9").await;
        b.assert_inert("live feed").await;
        no_payload_elements(&b, "live feed").await;
        b.shot("live-feed").await;

        // The alerts list.
        b.goto("/ui/alerts").await;
        let mut stories = Vec::new();
        for who in [ip, "203.0.113.9"] {
            let row = wait_text(&b, "table#alerts tr[data-alert-id]", who).await;
            let id = row.attr("data-alert-id").await.unwrap().unwrap();
            stories.push((who, id));
        }
        b.assert_inert("alerts").await;
        no_payload_elements(&b, "alerts").await;
        b.shot("alerts").await;

        // Each story shows the payloads as text.
        for (who, id) in &stories {
            b.goto(&format!("/ui/alerts/{id}")).await;
            let evidence = b.wait("section#evidence").await.text().await.unwrap();
            b.assert_inert(&format!("story of {who}")).await;
            no_payload_elements(&b, &format!("story of {who}")).await;
            // The posted event holds every payload; the log's alert keeps its last lines as evidence.
            let shown: Vec<&str> = [SCRIPT, IMG, CANARY, CANARY_ATTR]
                .into_iter()
                .filter(|p| evidence.contains(p))
                .collect();
            if *who == ip {
                assert!(
                    !shown.is_empty(),
                    "story of {who}: no payload shown as text:\n{evidence}"
                );
            } else {
                assert_eq!(
                    shown.len(),
                    4,
                    "story of {who}: payloads not shown as text:\n{evidence}"
                );
            }
            b.shot(&format!("story-{who}")).await;
        }

        // Decisions: the reason as text; the manual form's preview keeps a payload as a value.
        b.goto("/ui/decisions").await;
        let row = wait_text(&b, "table#decisions tr[data-action-id]", "192.0.2.44").await;
        assert!(row.text().await.unwrap().contains(&reason));
        b.assert_inert("decisions").await;
        no_payload_elements(&b, "decisions").await;
        b.wait("#manual-ip")
            .await
            .send_keys("192.0.2.45")
            .await
            .unwrap();
        b.wait("#manual-duration")
            .await
            .send_keys("1h")
            .await
            .unwrap();
        b.wait("#manual-reason")
            .await
            .send_keys(CANARY_ATTR)
            .await
            .unwrap();
        click(&b, "form#manual button[value=preview]").await;
        b.wait("section#preview").await;
        assert_eq!(
            b.js("return document.getElementById('manual-reason').value;")
                .await,
            CANARY_ATTR
        );
        b.assert_inert("decision preview").await;
        no_payload_elements(&b, "decision preview").await;
        b.shot("decisions-preview").await;

        // Sources: the log's path as text.
        b.goto("/ui/sources").await;
        let sources = b.wait("table#sources").await.text().await.unwrap();
        assert!(
            sources.contains("onerror=\"window.__pwned=1\">"),
            "{sources}"
        );
        b.assert_inert("sources").await;
        no_payload_elements(&b, "sources").await;
        b.shot("sources").await;

        // The overview and the live feed rendered by the server, now holding every payload.
        b.goto("/ui/").await;
        b.wait("h1").await;
        b.assert_inert("overview").await;
        b.shot("overview").await;
        b.goto("/ui/live").await;
        wait_text(&b, "#feed li", ip).await;
        b.assert_inert("live feed, server-rendered").await;
        no_payload_elements(&b, "live feed, server-rendered").await;
        b.shot("live-feed-rendered").await;
        b.close().await;
        drop(d);
    });
}

/// A tiny server on another origin (another port) whose pages auto-submit a form to the dashboard.
async fn hostile_origin(pages: Vec<(&'static str, String)>) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:8081")
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let body = pages
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    })
}

/// A page that posts `fields` to `action` on load.
fn auto_submit(action: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=hidden name=\"{k}\" value=\"{v}\">"))
        .collect();
    format!(
        "<!doctype html><html><body><form method=post action=\"http://{API}{action}\">{inputs}</form>\
         <script>document.forms[0].submit();</script></body></html>"
    )
}

#[test]
fn csrf_posts_without_the_token_or_from_another_origin_are_refused() {
    in_netns("bcsrf", |ns| async move {
        const IP: &str = "203.0.113.20";
        let d = Sentinel::start(|dir| {
            let log = dir.join("auth.log");
            std::fs::write(&log, "").unwrap();
            enforcing_yml(&log)
        })
        .await;
        let r = plain_client()
            .post(d.url("/v1/decisions"))
            .bearer_auth(&d.admin)
            .json(&json!({"ip": IP, "duration": "1h", "reason": "csrf test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let rec: Value = r.json().await.unwrap();
        let id = rec["id"].as_str().unwrap().to_owned();
        assert!(blocked(&ns, IP));
        let still_there = |why: &'static str| {
            let d = &d;
            let ns = &ns;
            let id = id.clone();
            async move {
                assert!(blocked(ns, IP), "{why}: the nft element is gone");
                let live = d.decisions().await;
                assert!(
                    live.iter().any(|r| r["id"] == id.as_str()),
                    "{why}: the decision is gone"
                );
                assert!(
                    !live
                        .iter()
                        .any(|r| r["spec"]["subject"].to_string().contains("192.0.2.6")),
                    "{why}: a forged manual decision was applied: {live:?}"
                );
            }
        };

        let key = d.new_key("operator").await;
        let mut b = Browser::start("csrf").await;
        b.login(&key).await;
        let cookie = b.session_cookie().await;
        b.goto("/ui/decisions").await;
        let row_css = format!("table#decisions tr[data-action-id=\"{id}\"]");
        b.wait(&row_css).await;
        let token = b
            .js("return document.querySelector('form#logout input[name=csrf]').value;")
            .await
            .as_str()
            .unwrap()
            .to_owned();
        assert!(token.len() >= 16, "{token}");
        b.shot("decisions").await;

        // 1. In the browser, the revert form with its token removed.
        b.js(&format!(
            "document.querySelector('{} form.revert input[name=csrf]').remove(); return null;",
            row_css.replace('"', "\\\"")
        ))
        .await;
        click(&b, &format!("{row_css} form.revert button[type=submit]")).await;
        // The click returns before the refusal page has loaded: wait for it.
        wait_text(&b, "h1", "Forbidden").await;
        assert_eq!(b.h1().await, "Forbidden");
        assert!(
            b.text().await.contains("security token"),
            "{}",
            b.text().await
        );
        b.assert_inert("refusal page").await;
        b.shot("revert-without-token-refused").await;
        still_there("a revert without the token").await;

        // 2. Posts with the session cookie but no (or a wrong) token: revert, manual decision, logout.
        let form = |path: &str, body: String| {
            with_cookie(plain_client().post(format!("http://{API}{path}")), &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        };
        let revert = format!("/ui/decisions/{id}/revert");
        let manual = "kind=block_ip&ip=192.0.2.66&duration=1h&reason=forged&op=apply";
        for (path, body) in [
            (revert.as_str(), "next=%2Fui%2Fdecisions".to_owned()),
            (
                revert.as_str(),
                "csrf=wrong&next=%2Fui%2Fdecisions".to_owned(),
            ),
            ("/ui/decisions", manual.to_owned()),
            ("/ui/decisions", format!("csrf=wrong&{manual}")),
            ("/ui/logout", String::new()),
            ("/ui/logout", "csrf=wrong".to_owned()),
        ] {
            let r = form(path, body.clone()).send().await.unwrap();
            assert_eq!(r.status(), 403, "POST {path} {body}");
        }
        still_there("posts without the token").await;
        assert_eq!(
            ui_status(&cookie, "/ui/").await.0,
            200,
            "a forged logout ended the session"
        );
        // The same post with the token is accepted (so the refusals above are the token's doing).
        let r = form(
            "/ui/decisions",
            format!("csrf={token}&kind=block_ip&ip=198.51.100.70&duration=1h&reason=real&op=apply"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 303);
        until("the real manual decision", || blocked(&ns, "198.51.100.70")).await;

        // 3. From another origin, with the real token: refused by origin.
        let _evil = hostile_origin(vec![
            (
                "/revert",
                auto_submit(&revert, &[("csrf", &token), ("next", "/ui/decisions")]),
            ),
            (
                "/manual",
                auto_submit(
                    "/ui/decisions",
                    &[
                        ("csrf", &token),
                        ("kind", "block_ip"),
                        ("ip", "192.0.2.67"),
                        ("duration", "1h"),
                        ("reason", "forged"),
                        ("op", "apply"),
                    ],
                ),
            ),
            ("/logout", auto_submit("/ui/logout", &[("csrf", &token)])),
        ])
        .await;
        for page in ["revert", "manual", "logout"] {
            b.c.goto(&format!("http://127.0.0.1:8081/{page}"))
                .await
                .unwrap();
            // The forged form submits itself after the page loads: wait for the answer.
            wait_text(&b, "h1", "Forbidden").await;
            assert_eq!(b.h1().await, "Forbidden", "{page}");
            let text = b.text().await;
            assert!(text.contains("cross-origin"), "{page}: {text}");
            assert!(b
                .c
                .current_url()
                .await
                .unwrap()
                .as_str()
                .starts_with(&format!("http://{API}/")));
            b.shot(&format!("cross-origin-{page}-refused")).await;
        }
        still_there("cross-origin posts").await;
        assert_eq!(
            ui_status(&cookie, "/ui/").await.0,
            200,
            "a cross-origin logout ended the session"
        );
        b.goto("/ui/decisions").await;
        b.wait(&row_css).await;
        b.assert_inert("decisions after the attempts").await;
        b.shot("decision-still-there").await;
        b.close().await;
        drop(d);
    });
}

/// A sample of the daemon's `/metrics` (0 when absent).
async fn metric(d: &Sentinel, series: &str) -> f64 {
    let text = plain_client()
        .get(d.url("/metrics"))
        .bearer_auth(&d.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(key: &str, query: &str) -> Ws {
    let mut req = format!("ws://{API}/v1/stream{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("x-api-key", key.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next text frame as JSON: `Ok(None)` at a close frame (its code kept), `Err` at the end of the
/// connection without one.
async fn next_json(ws: &mut Ws, close: &mut Option<u16>) -> Result<Option<Value>, String> {
    loop {
        let m = tokio::time::timeout(SOON, ws.next())
            .await
            .map_err(|_| "nothing within the bound".to_owned())?;
        match m {
            None => return Err("end of stream".into()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(Message::Text(t))) => return Ok(Some(serde_json::from_str(&t).unwrap())),
            Some(Ok(Message::Close(c))) => {
                *close = c.map(|c| u16::from(c.code));
                return Ok(None);
            }
            Some(Ok(_)) => {}
        }
    }
}

#[test]
fn a_stalled_stream_is_cut_off_and_a_reconnect_misses_nothing() {
    in_netns("bws", |_ns| async move {
        const SRC: &str = "203.0.113.50";
        const N: u64 = 160;
        let d = Sentinel::start(|dir| {
            let log = dir.join("auth.log");
            std::fs::write(&log, "").unwrap();
            enforcing_yml(&log)
        })
        .await;
        let viewer = d.new_key("viewer").await;
        let mut b = Browser::start("websocket").await;
        b.login(&viewer).await;
        b.goto("/ui/live").await;
        b.wait("#live-status[data-state=live]").await;
        b.shot("live-feed").await;

        // A client that reads the hello, then stops reading.
        let mut stalled = ws_connect(&viewer, &format!("?kind=event&subject={SRC}")).await;
        let mut close = None;
        let hello = next_json(&mut stalled, &mut close).await.unwrap().unwrap();
        assert_eq!(hello["type"], "hello", "{hello}");

        // Far more than the socket buffers hold: N events of 64 KiB, numbered.
        let blob = "x".repeat(64 * 1024);
        let http = plain_client();
        for batch in 0..N / 10 {
            let items: Vec<Value> = (batch * 10..batch * 10 + 10)
                .map(|seq| json!({"kind": "bulk", "src_ip": SRC, "seq": seq, "blob": blob}))
                .collect();
            let r = http
                .post(d.url("/v1/events"))
                .bearer_auth(&d.admin)
                .json(&items)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["accepted"], 10, "{body}");
        }
        let written = Instant::now();
        let slow = "sentinel_api_stream_disconnected_total{reason=\"slow\"}";
        let deadline = Instant::now() + Duration::from_secs(30);
        while metric(&d, slow).await < 1.0 {
            assert!(
                Instant::now() < deadline,
                "the stalled client was never cut off:\n{}",
                d.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = written.elapsed();
        // The bound: the daemon's send timeout (10 s) after the buffers filled, with slack for a loaded machine.
        assert!(took < Duration::from_secs(30), "cut off after {took:?}");

        // It reads again: what was buffered, then the close frame with 4008 ("slow client").
        let mut got: Vec<Value> = Vec::new();
        let end = loop {
            match next_json(&mut stalled, &mut close).await {
                Ok(Some(f)) => {
                    assert_eq!(f["type"], "item", "{f}");
                    got.push(f);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(end, Ok(()), "no close frame; {} items read", got.len());
        assert_eq!(close, Some(4008));
        let seqs = |items: &[Value]| -> Vec<u64> {
            items
                .iter()
                .map(|i| i["data"]["attrs"]["seq"].as_u64().unwrap())
                .collect()
        };
        let first = seqs(&got);
        let k = first.len() as u64;
        assert!(
            k < N,
            "the stalled client got everything: nothing was held back"
        );
        assert_eq!(first, (0..k).collect::<Vec<_>>());

        // A reconnect with the last cursor it processed gets exactly the rest.
        let last = got
            .last()
            .map(|i| i["cursor"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| hello["cursor"].as_str().unwrap().to_owned());
        let mut again =
            ws_connect(&viewer, &format!("?kind=event&subject={SRC}&cursor={last}")).await;
        let h = next_json(&mut again, &mut close).await.unwrap().unwrap();
        assert_eq!(h["type"], "hello");
        assert_eq!(h["cursor"], last.as_str());
        let mut rest = Vec::new();
        while (rest.len() as u64) < N - k {
            let f = next_json(&mut again, &mut close)
                .await
                .unwrap_or_else(|e| panic!("after {} of {}: {e}", rest.len(), N - k))
                .unwrap();
            rest.push(f);
        }
        assert_eq!(
            seqs(&rest),
            (k..N).collect::<Vec<_>>(),
            "gaps or duplicates"
        );
        // Nothing more (no duplicate comes late).
        let extra = tokio::time::timeout(Duration::from_millis(1500), again.next()).await;
        assert!(
            !matches!(extra, Ok(Some(Ok(Message::Text(_))))),
            "an extra frame: {extra:?}"
        );
        again.close(None).await.unwrap();

        // The browser's live feed went on all along: a new alert arrives in it.
        let r = http
            .post(d.url("/v1/defend"))
            .bearer_auth(&d.admin)
            .json(&json!({"kind": "auth", "src_ip": "203.0.113.51", "failed_logins": 500, "path": "/login"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        wait_text(&b, "#feed li[data-kind=alert]", "203.0.113.51").await;
        assert_eq!(
            b.wait("#live-status")
                .await
                .attr("data-state")
                .await
                .unwrap()
                .as_deref(),
            Some("live")
        );
        b.assert_inert("live feed").await;
        b.shot("live-feed-still-live").await;
        b.close().await;
        drop(d);
    });
}
