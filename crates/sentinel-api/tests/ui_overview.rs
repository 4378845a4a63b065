//! The overview page `/ui/` over a real store fed through the real store writer: its rollups equal
//! the counts of the record tables over random batches, the page shows the right numbers, hostile
//! strings come out escaped, nothing inline is styled, and a session is required.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;
#[path = "../../sentinel-store/tests/common/mod.rs"]
mod fixtures;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use rand::{Rng, SeedableRng};
use sentinel_api::auth::{Principal, Role};
use sentinel_core::{ActionKind, ActionState, Severity, Subject, Timestamp};
use sentinel_store::{Record, RollupSeries, Store, WriterOptions};
use std::time::Duration;

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

async fn write(store: &Store, records: Vec<Record>, batch_size: usize) {
    let (w, task) = store.writer(WriterOptions {
        queue_capacity: 4096,
        batch_size,
        flush_interval: Duration::from_millis(2),
    });
    for r in records {
        w.write(r).await.unwrap();
    }
    drop(w);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.dropped, 0);
}

fn session(h: &Harness, role: Role) -> String {
    let (token, _) = h.state.ui.sessions.open(
        Principal {
            // A key the harness registered, so the session's key is still valid.
            key_id: if role == Role::Viewer {
                "k-viewer"
            } else {
                "k-admin"
            }
            .into(),
            name: "ui tester".into(),
            role,
        },
        None,
    );
    format!("sentinel_session={token}")
}

async fn page(h: &Harness, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    send(&h.app, req.body(Body::empty()).unwrap()).await
}

/// The text of the element with `id`, up to its first `<`.
fn text_of(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].to_string()
}

#[tokio::test]
async fn rollups_equal_the_counts_of_the_tables_over_random_batches() {
    let h = harness().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let base = Timestamp::now().as_millis() - 3 * 3_600_000;
    let kinds = ["auth_failure", "http_request", "port_probe", SCRIPT];
    let scenarios = ["ssh_bruteforce", "http_scan", IMG];
    let mut pending_actions = Vec::new();
    for round in 0..12 {
        let mut batch = Vec::new();
        for _ in 0..rng.gen_range(0..400) {
            let ts = base + rng.gen_range(0..3 * 3_600_000);
            let ip = format!("198.51.100.{}", rng.gen_range(1..200));
            let kind = kinds[rng.gen_range(0..kinds.len())];
            batch.push(Record::Event(fixtures::event(ts, &ip, kind, "trace-p")));
        }
        for _ in 0..rng.gen_range(0..20) {
            let ts = base + rng.gen_range(0..3 * 3_600_000);
            let sev = [Severity::Low, Severity::High, Severity::Critical][rng.gen_range(0..3)];
            let subject = if rng.gen_bool(0.2) {
                Subject::User(SCRIPT.into())
            } else {
                fixtures::ip(&format!("203.0.113.{}", rng.gen_range(1..6)))
            };
            let a = fixtures::alert(ts, scenarios[rng.gen_range(0..3)], sev, subject, "trace-p");
            let inv = fixtures::investigation(&a);
            let p = fixtures::plan(&a, &inv);
            let kind = [ActionKind::BlockIp, ActionKind::RateLimit][rng.gen_range(0..2)];
            let act = fixtures::action(&p, kind, ActionState::Planned, ts + 5);
            batch.push(Record::Alert(a));
            batch.push(Record::Action(act.clone()));
            pending_actions.push(act);
        }
        // Actions change state in later batches: the same id written again must not count again.
        for act in pending_actions.iter_mut() {
            if !rng.gen_bool(0.3) {
                continue;
            }
            act.state = [ActionState::Applied, ActionState::Reverted][rng.gen_range(0..2)];
            act.updated = Timestamp::from_millis(act.updated.as_millis() + 1);
            batch.push(Record::Action(act.clone()));
        }
        write(&h.store, batch, rng.gen_range(1..600)).await;
        for s in RollupSeries::ALL {
            assert_eq!(
                h.store.rollup_buckets(s).await.unwrap(),
                h.store.rollup_recount(s).await.unwrap(),
                "round {round}, {s:?}"
            );
        }
    }
    assert!(!h
        .store
        .rollup_buckets(RollupSeries::ActionKind)
        .await
        .unwrap()
        .is_empty());
}

/// 30 `auth_failure` and 12 `http_request` events, 5 alerts (3 on one address), 2 applied actions
/// and 1 reverted one, all within the last hour; and 7 events a day ago.
async fn known_store(h: &Harness) {
    let now = Timestamp::now().as_millis();
    let mut batch = Vec::new();
    for i in 0..42 {
        let kind = if i < 30 {
            "auth_failure"
        } else {
            "http_request"
        };
        batch.push(Record::Event(fixtures::event(
            now - 60_000 - i * 1000,
            "198.51.100.4",
            kind,
            "trace-k",
        )));
    }
    for i in 0..7 {
        batch.push(Record::Event(fixtures::event(
            now - 20 * 3_600_000 - i,
            "198.51.100.5",
            "auth_failure",
            "trace-k",
        )));
    }
    for i in 0..5 {
        let subject = if i < 3 { "203.0.113.9" } else { "203.0.113.10" };
        let scenario = if i < 4 { "ssh_bruteforce" } else { "http_scan" };
        let a = fixtures::alert(
            now - 120_000 - i,
            scenario,
            Severity::High,
            fixtures::ip(subject),
            "trace-k",
        );
        let inv = fixtures::investigation(&a);
        let p = fixtures::plan(&a, &inv);
        batch.push(Record::Alert(a));
        batch.push(Record::Investigation(inv));
        if i < 3 {
            let state = if i < 2 {
                ActionState::Applied
            } else {
                ActionState::Reverted
            };
            let mut act = fixtures::action(
                &p,
                ActionKind::BlockIp,
                ActionState::Planned,
                now - 100_000 - i,
            );
            batch.push(Record::Action(act.clone()));
            act.state = state;
            batch.push(Record::Action(act));
        }
    }
    write(&h.store, batch, 16).await;
}

#[tokio::test]
async fn the_page_shows_the_counts_the_top_lists_and_the_window() {
    let h = harness().await;
    known_store(&h).await;
    let cookie = session(&h, Role::Viewer);

    let r = page(&h, "/ui/?window=1h", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(
        sentinel_api::ui::assets::style_check::undefined_classes(&html),
        Vec::<String>::new()
    );
    assert_eq!(text_of(&html, "count-events"), "42");
    assert_eq!(text_of(&html, "count-alerts"), "5");
    assert_eq!(text_of(&html, "count-investigations"), "5");
    assert_eq!(text_of(&html, "count-actions"), "3");
    assert_eq!(text_of(&html, "count-active-actions"), "2");
    assert_eq!(text_of(&html, "count-active-subjects"), "1");
    // The top lists, most first, linking to the alerts filtered by them.
    let sources = &html[html.find("id=\"top-sources\"").unwrap()..];
    let a = sources
        .find("href=\"/ui/alerts?subject=ip%3A203.0.113.9\"")
        .unwrap();
    let b = sources
        .find("href=\"/ui/alerts?subject=ip%3A203.0.113.10\"")
        .unwrap();
    assert!(a < b);
    assert!(html.contains("href=\"/ui/alerts?scenario=ssh_bruteforce\""));
    // Five figures, each an image with a title and a caption, each with its numbers as a table.
    assert_eq!(html.matches("<figure").count(), 5);
    assert_eq!(html.matches("<svg class=\"chart\" role=\"img\"").count(), 5);
    assert_eq!(html.matches("<figcaption>").count(), 5);
    assert!(html.contains("<title id=\"chart-events-title\">"));
    assert_eq!(html.matches("<table").count(), 5);
    // The window links, the current one marked.
    assert!(html.contains("<a href=\"/ui/?window=1h\" aria-current=\"true\">"));
    assert!(html.contains("<a href=\"/ui/?window=7d\">"));

    // The default window (24 hours) holds the older events too.
    let r = page(&h, "/ui/", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(text_of(&html, "count-events"), "49");
    assert!(html.contains("<a href=\"/ui/?window=24h\" aria-current=\"true\">"));

    // Bad windows are a 400 page naming the parameter.
    for bad in ["/ui/?window=2d", "/ui/?window=1h&window=7d", "/ui/?since=1"] {
        let r = page(&h, bad, Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        let html = String::from_utf8(r.body.clone()).unwrap();
        assert!(
            html.contains("window") || html.contains("since"),
            "{bad}: {html}"
        );
    }
}

#[tokio::test]
async fn hostile_names_are_escaped_and_nothing_is_styled_inline() {
    let h = harness().await;
    let now = Timestamp::now().as_millis();
    let mut batch = Vec::new();
    for hostile in [SCRIPT, IMG] {
        batch.push(Record::Event(fixtures::event(
            now - 5_000,
            "198.51.100.7",
            hostile,
            "trace-x",
        )));
        let a = fixtures::alert(
            now - 4_000,
            hostile,
            Severity::Critical,
            Subject::User(hostile.into()),
            "trace-x",
        );
        let inv = fixtures::investigation(&a);
        let p = fixtures::plan(&a, &inv);
        batch.push(Record::Action(fixtures::action(
            &p,
            ActionKind::BlockIp,
            ActionState::Applied,
            now - 3_000,
        )));
        batch.push(Record::Alert(a));
    }
    write(&h.store, batch, 8).await;
    let cookie = session(&h, Role::Admin);
    let r = page(&h, "/ui/?window=1h", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK);
    let html = String::from_utf8(r.body.clone()).unwrap();
    assert!(!html.contains("<script"), "raw <script in the page");
    assert!(!html.contains("<img"), "raw <img in the page");
    // (`onerror=` is there only as escaped text, which the two checks above make inert.)
    // The names are there, escaped: in the tables (by maud) and in the charts (by plotters).
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(
        html.contains("href=\"/ui/alerts?subject=user%3A"),
        "subject link percent-encoded"
    );
    // No inline style anywhere (the CSP forbids it) and no chart fell back to the note.
    assert!(!html.contains("style="), "an inline style attribute");
    assert!(!html.contains("<style"), "a <style> element");
    assert!(!html.contains("could not be drawn"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("style-src 'self'"));
}

#[tokio::test]
async fn a_session_is_required() {
    let h = harness().await;
    let r = page(&h, "/ui/", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/ui/login?next=/ui/"));
    let r = page(&h, "/ui/?window=7d", Some("sentinel_session=forged")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // An API key is not a session.
    let mut req = Request::get("/ui/");
    req = req.header("x-api-key", h.admin_key.as_str());
    let r = send(&h.app, req.body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}
