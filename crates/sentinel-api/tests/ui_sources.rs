//! `GET /ui/sources` over the real router and store, with real log sources: files tailed by the
//! daemon's source code (`sentinel_pipeline::sources::start`), parsed by a built-in format and by
//! fail2ban filters, their events run through the real scenario engine and its alerts stored by the
//! real store writer. The page must show what the counters counted: lines read, parsed, unparsed by
//! reason, a filter that matched nothing marked `silent` with the words "matched nothing", scenarios
//! with their matches and alerts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{harness, Harness};
use http_body_util::BodyExt;
use sentinel_api::auth::{Principal, Role};
use sentinel_core::{Alert, AlertId, Detector, Reason, Severity, Subject, Timestamp, TraceId};
use sentinel_store::{Record, WriterOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// Opens a dashboard session for a viewer (as `/ui/login` would) and returns its cookie.
fn session(h: &Harness) -> String {
    let (token, _) = h.state.ui.sessions.open(
        Principal {
            key_id: "k-viewer".into(),
            name: "viewer".into(),
            role: Role::Viewer,
        },
        None,
    );
    format!("sentinel_session={token}")
}

async fn get_page(h: &Harness, cookie: &str) -> (StatusCode, String) {
    let r = h
        .app
        .clone()
        .oneshot(
            Request::get("/ui/sources")
                .header("cookie", cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = r.status();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The `<tr>…</tr>` whose opening tag carries `attr`.
fn row<'a>(html: &'a str, attr: &str) -> &'a str {
    let at = html
        .find(attr)
        .unwrap_or_else(|| panic!("no row with {attr}:\n{html}"));
    let start = html[..at].rfind("<tr").unwrap();
    let end = at + html[at..].find("</tr>").unwrap() + 5;
    &html[start..end]
}

fn alert(scenario: &str, ts: Timestamp) -> Alert {
    Alert {
        id: AlertId::new(),
        ts,
        detector: "test".into(),
        scenario: scenario.into(),
        severity: Severity::High,
        score: 50,
        confidence: 0.9,
        subject: Subject::Ip("198.51.100.7".parse().unwrap()),
        reasons: vec![Reason {
            code: "test".into(),
            detail: "x".into(),
            weight: 50,
        }],
        evidence: vec![],
        trace_id: TraceId::new(),
    }
}

async fn write_alerts(h: &Harness, alerts: Vec<Alert>) {
    let (writer, task) = h.store.writer(WriterOptions::default());
    let n = alerts.len() as u64;
    for a in alerts {
        writer.write(Record::Alert(a)).await.unwrap();
    }
    drop(writer);
    assert_eq!(task.finish().await.unwrap().records, n);
}

#[tokio::test]
async fn without_a_session_the_page_redirects_to_the_login() {
    let h = harness().await;
    let r = h
        .app
        .clone()
        .oneshot(Request::get("/ui/sources").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        "/ui/login?next=/ui/sources"
    );
}

/// Three tailed files: sshd lines (failures that raise `ssh_bruteforce`, and garbage), a fail2ban
/// filter that matches, and one that matches nothing.
#[tokio::test(flavor = "multi_thread")]
async fn real_sources_show_their_lines_reasons_and_a_silent_filter() {
    let h = harness().await;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(
        p("good.conf"),
        "[Definition]\nfailregex = ^login failed from <HOST>$\n",
    )
    .unwrap();
    std::fs::write(
        p("never.conf"),
        "[Definition]\nfailregex = ^this line never comes from <HOST>$\n",
    )
    .unwrap();
    for f in ["auth.log", "app.log", "other.log"] {
        std::fs::write(p(f), "").unwrap();
    }
    let yaml = format!(
        "data_dir: \"{data}\"\n\
         sources:\n\
         \x20 - {{ type: file, paths: [\"{auth}\"], format: sshd, from_beginning: true, poll_interval: 20ms }}\n\
         \x20 - {{ type: file, paths: [\"{app}\"], fail2ban_filter: \"{good}\", from_beginning: true, poll_interval: 20ms }}\n\
         \x20 - {{ type: file, paths: [\"{other}\"], fail2ban_filter: \"{never}\", from_beginning: true, poll_interval: 20ms }}\n",
        data = p("data").display(),
        auth = p("auth.log").display(),
        app = p("app.log").display(),
        other = p("other.log").display(),
        good = p("good.conf").display(),
        never = p("never.conf").display(),
    );
    let cfg = sentinel_config::load_str(&yaml, None, &[]).unwrap_or_else(|e| panic!("{e}"));
    let redactor = Arc::new(sentinel_core::Redactor::default());
    let metrics = h.state.metrics.clone();
    // The real scenario engine, its counters handed to the metrics as the daemon does.
    let mut engine = sentinel_pipeline::scenarios::engine(&cfg, &redactor).unwrap();
    metrics.scenarios.set(engine.tally()).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let (writer, writer_task) = h.store.writer(WriterOptions::default());
    let m = metrics.clone();
    // The detect stage's part: every event through the engine, its alerts counted and stored.
    let detect = tokio::spawn(async move {
        let mut found = Vec::new();
        while let Some(sub) = rx.recv().await {
            let sub: sentinel_pipeline::intake::Submission = sub;
            Detector::observe(&mut engine, &sub.event, &mut found);
            for a in found.drain(..) {
                m.by_scenario.add("alerts_by_scenario", &a.scenario, 1);
                writer.write(Record::Alert(a)).await.unwrap();
            }
        }
        drop(writer);
        writer_task.finish().await.unwrap();
    });
    let sources = sentinel_pipeline::sources::start(&cfg, tx, metrics.clone(), redactor)
        .await
        .unwrap();

    let now = || Timestamp::now().to_rfc3339();
    let mut auth = std::fs::OpenOptions::new()
        .append(true)
        .open(p("auth.log"))
        .unwrap();
    for i in 0..8 {
        writeln!(
            auth,
            "{} srv sshd[{}]: Failed password for invalid user admin{i} from 203.0.113.66 port {} ssh2",
            now(),
            200 + i,
            40000 + i
        )
        .unwrap();
    }
    for junk in ["garbage", "<<<>>> not a log line", "12345"] {
        writeln!(auth, "{junk}").unwrap();
    }
    let mut app = std::fs::OpenOptions::new()
        .append(true)
        .open(p("app.log"))
        .unwrap();
    writeln!(app, "login failed from 198.51.100.7").unwrap();
    writeln!(app, "login failed from 198.51.100.8").unwrap();
    writeln!(app, "something else").unwrap();
    let mut other = std::fs::OpenOptions::new()
        .append(true)
        .open(p("other.log"))
        .unwrap();
    for i in 0..4 {
        writeln!(other, "an unrelated line {i} from 192.0.2.{i}").unwrap();
    }
    drop((auth, app, other));

    let auth_label = format!("file:{}", p("auth.log").display());
    let app_label = format!("file:{}", p("app.log").display());
    let other_label = format!("file:{}", p("other.log").display());
    // Wait for the real sources to have read and parsed everything.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let snap = loop {
        let s = metrics.sources_snapshot();
        let by = |l: &str| s.sources.iter().find(|x| x.source == l).cloned();
        let done = by(&auth_label).is_some_and(|x| x.parsed() + x.unparsed() == 11)
            && by(&app_label).is_some_and(|x| x.parsed() + x.unparsed() == 3)
            && by(&other_label).is_some_and(|x| x.unparsed() == 4);
        if done {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sources did not read their lines: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    sources.stop().await;
    detect.await.unwrap();

    let auth_stats = snap
        .sources
        .iter()
        .find(|x| x.source == auth_label)
        .unwrap();
    assert_eq!(auth_stats.read.lines_read, 11);
    assert_eq!((auth_stats.parsed(), auth_stats.unparsed()), (8, 3));
    let auth_reasons = &auth_stats.filters[0].unmatched_by_reason;
    assert_eq!(auth_reasons.iter().map(|r| r.1).sum::<u64>(), 3);
    // The per-source reasons add up to the documented all-sources counter.
    let all: u64 = snap.unparsed_by_reason.iter().map(|r| r.1).sum();
    assert_eq!(all, 3 + 1 + 4);
    let ssh = snap
        .scenarios
        .iter()
        .find(|s| s.name == "ssh_bruteforce")
        .unwrap();
    assert!(ssh.matched.unwrap() >= 5 && ssh.alerts >= 1, "{ssh:?}");

    let cookie = session(&h);
    let (status, html) = get_page(&h, &cookie).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<table id=\"sources\""), "{html}");
    assert!(html.contains("<table id=\"scenarios\""), "{html}");

    // The sshd source: 11 read, 8 parsed, 3 not, each reason with its count.
    let r = row(&html, &format!("data-source=\"{auth_label}\""));
    assert!(
        !r.contains("silent") && !r.contains("matched nothing"),
        "{r}"
    );
    assert!(
        r.contains("<td class=\"num\">11</td><td class=\"num\">8</td><td class=\"num\">3</td>"),
        "{r}"
    );
    for (reason, n) in auth_reasons {
        assert!(
            r.contains(&format!("<span class=\"reason\">{reason}</span>: {n}</li>")),
            "{reason}={n}: {r}"
        );
    }
    // The matching filter shows its count.
    let r = row(&html, &format!("data-source=\"{app_label}\""));
    assert!(r.contains("data-filter=\"good\""), "{r}");
    assert!(!r.contains("silent"), "{r}");
    assert!(
        r.contains("<td class=\"num\">3</td><td class=\"num\">2</td><td class=\"num\">1</td>"),
        "{r}"
    );
    assert!(
        r.contains("<span class=\"reason\">no_match</span>: 1</li>"),
        "{r}"
    );
    assert_eq!(
        sentinel_api::ui::assets::style_check::undefined_classes(&html),
        Vec::<String>::new()
    );
    // The filter that matched nothing: class and words, with what it read and for how long.
    let r = row(&html, &format!("data-source=\"{other_label}\""));
    assert!(r.contains("data-filter=\"never\""), "{r}");
    assert!(r.contains("class=\"silent\""), "{r}");
    assert!(r.contains("matched nothing"), "{r}");
    assert!(r.contains(" in 4 lines read over "), "{r}");
    assert!(r.contains("<time datetime=\""), "{r}");

    // Scenarios: the one that fired, with its alerts since start and in the window, linked.
    let r = row(&html, "data-scenario=\"ssh_bruteforce\"");
    assert!(
        r.contains("<a href=\"/ui/alerts?scenario=ssh_bruteforce\">ssh_bruteforce</a>"),
        "{r}"
    );
    assert!(!r.contains("silent"), "{r}");
    assert!(
        r.contains(&format!(
            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            ssh.matched.unwrap(),
            ssh.alerts,
            ssh.alerts
        )),
        "{r}"
    );
    assert!(r.contains("<time datetime=\""), "{r}");
    // A built-in scenario these lines never touch: silent, in words.
    let quiet = snap
        .scenarios
        .iter()
        .find(|s| s.matched == Some(0))
        .expect("some built-in scenario matched nothing");
    let r = row(&html, &format!("data-scenario=\"{}\"", quiet.name));
    assert!(
        r.contains("class=\"silent\"") && r.contains("matched nothing"),
        "{r}"
    );
}

#[tokio::test]
async fn hostile_names_reasons_and_scenarios_render_inert() {
    let h = harness().await;
    let m = &h.state.metrics;
    let script = "<script>alert(1)</script>";
    let img = "\"><img src=x onerror=alert(1)>";
    m.log_sources
        .register(&format!("file:/var/log/{script}{img}"), Default::default);
    let c = m
        .source_lines
        .counts(&format!("file:/var/log/{script}{img}"), img);
    c.unmatched_because("<script>alert(1)</script>\"><img src=x onerror=alert(1)>");
    m.by_reason.add(
        "log_lines_unparsed_by_reason",
        "<script>alert(1)</script>\"><img src=x onerror=alert(1)>",
        1,
    );
    m.by_scenario
        .add("alerts_by_scenario", &format!("{script}{img}"), 1);
    write_alerts(&h, vec![alert(&format!("{img}{script}"), Timestamp::now())]).await;
    let (status, html) = get_page(&h, &session(&h)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    // The link to the scenario's alerts is percent-encoded, not broken out of.
    assert!(
        html.contains("/ui/alerts?scenario=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%3Cscript%3Ealert%281%29%3C/script%3E"),
        "{html}"
    );
}

/// The window read stays on the `alerts_ts` index and bounded: 12,000 alerts in the window, a cap
/// under that says from when it counted; old alerts are not counted.
#[tokio::test]
async fn the_alerts_window_is_indexed_bounded_and_says_when_truncated() {
    let h = harness().await;
    let now = Timestamp::now().as_millis();
    let mut alerts = Vec::new();
    for i in 0..12_000i64 {
        let sc = if i % 3 == 0 {
            "web_scan"
        } else {
            "ssh_bruteforce"
        };
        alerts.push(alert(sc, Timestamp::from_millis(now - 1000 - i * 1000)));
    }
    // Two days old: outside the 24 h window.
    for i in 0..50 {
        alerts.push(alert(
            "old_one",
            Timestamp::from_millis(now - 48 * 3600 * 1000 - i),
        ));
    }
    write_alerts(&h, alerts).await;
    let plan = h.store.scenario_window_plan().await.unwrap().join("\n");
    assert!(plan.contains("USING INDEX alerts_ts"), "{plan}");
    assert!(
        !plan.contains("SCAN alerts\n") && !plan.ends_with("SCAN alerts"),
        "{plan}"
    );

    let since = Timestamp::from_millis(now - 24 * 3600 * 1000);
    let w = h
        .store
        .alerts_by_scenario_since(since, 20_000)
        .await
        .unwrap();
    assert_eq!(w.truncated_at, None);
    let get = |w: &sentinel_store::ScenarioWindow, s: &str| {
        w.scenarios
            .iter()
            .find(|x| x.scenario == s)
            .map(|x| x.alerts)
    };
    assert_eq!(get(&w, "ssh_bruteforce"), Some(8_000));
    assert_eq!(get(&w, "web_scan"), Some(4_000));
    assert_eq!(get(&w, "old_one"), None);
    assert_eq!(w.scenarios[0].last.as_millis(), now - 2000);

    let w = h
        .store
        .alerts_by_scenario_since(since, 3_000)
        .await
        .unwrap();
    assert_eq!(
        get(&w, "ssh_bruteforce").unwrap() + get(&w, "web_scan").unwrap(),
        3_000
    );
    assert_eq!(
        w.truncated_at.unwrap().as_millis(),
        now - 1000 - 2_999 * 1000
    );

    let (status, html) = get_page(&h, &session(&h)).await;
    assert_eq!(status, StatusCode::OK);
    let r = row(&html, "data-scenario=\"web_scan\"");
    assert!(r.contains("<td class=\"num\">4000</td>"), "{r}");
    assert!(!html.contains("data-scenario=\"old_one\""), "{html}");
}
