//! The dashboard's alert pages over a real store and a real audit log: records are written the way
//! the pipeline writes them (the [`Recorder`] over a store writer and the Merkle log with its index),
//! pages are requested through the real router with a live session cookie, and the HTML is read back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{harness, send, Harness, Reply};
use sentinel_api::auth::{Principal, Role};
use sentinel_audit::{AuditSettings, Log, LogTask};
use sentinel_core::params::ActionParams;
use sentinel_core::{
    ActionKind, ActionRecord, ActionSpec, ActionState, Alert, AlertId, Contribution, Event,
    EventId, EventKind, Evidence, Investigation, InvestigationId, Mode, Origin, Plan, PlanId,
    Preview, Reason, Severity, Subject, Timestamp, TraceId, Verdict,
};
use sentinel_pipeline::recorder::{Change, Entry, LogAudit, Recorder};
use sentinel_store::{Record, StoreWriter, WriterOptions};
use std::collections::HashSet;
use std::sync::Arc;

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

/// The router with an audit log, and a recorder writing records and audit entries as the pipeline does.
struct Fixture {
    h: Harness,
    app: axum::Router,
    log: Log,
    recorder: Recorder,
    writer: StoreWriter,
    _task: LogTask,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let h = harness().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = AuditSettings::new(dir.path().join("audit"), "sentinel/ui-test");
    // Checkpoints only when the test asks for one.
    s.checkpoint_every = 1_000_000;
    s.checkpoint_interval = std::time::Duration::from_secs(3600);
    let (log, task) = Log::open(s).await.unwrap();
    let (writer, _wtask) = h.store.writer(WriterOptions::default());
    let (trail, _index) = LogAudit::start(log.clone(), writer.clone(), h.state.metrics.clone());
    let recorder = Recorder::new(
        writer.clone(),
        Arc::new(trail),
        h.state.redactor.clone(),
        h.state.metrics.clone(),
    );
    let mut state = h.state.clone();
    state.audit = Some(log.clone());
    Fixture {
        app: sentinel_api::router(state),
        h,
        log,
        recorder,
        writer,
        _task: task,
        _dir: dir,
    }
}

/// A session cookie for `role` (admin, or the harness's viewer).
fn cookie(h: &Harness, role: Role) -> String {
    let (key_id, name) = match role {
        Role::Viewer => ("k-viewer", "viewer"),
        _ => ("k-admin", "admin"),
    };
    let (token, _) = h.state.ui.sessions.open(
        Principal {
            key_id: key_id.into(),
            name: name.into(),
            role: if role == Role::Viewer {
                Role::Viewer
            } else {
                Role::Admin
            },
        },
        None,
    );
    format!("{}={token}", h.state.ui.sessions.settings().cookie_name())
}

async fn page(app: &axum::Router, path: &str, cookie: &str) -> Reply {
    let req = Request::get(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    send(app, req).await
}

fn html(r: &Reply) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

/// The inner HTML of `<section id="ID" …>…</section>` (sections do not nest on these pages).
fn section<'a>(doc: &'a str, id: &str) -> &'a str {
    let open = format!("<section id=\"{id}\"");
    let start = doc.find(&open).unwrap_or_else(|| panic!("no section#{id}"));
    let end = doc[start..].find("</section>").unwrap() + start;
    &doc[start..end]
}

/// Every `<tr …>…</tr>` of `doc` with `attr="value"`, by value.
fn rows<'a>(doc: &'a str, attr: &str) -> Vec<(String, &'a str)> {
    let needle = format!("<tr {attr}=\"");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = doc[at..].find(&needle) {
        let start = at + i + needle.len();
        let vend = doc[start..].find('"').unwrap() + start;
        let end = doc[vend..].find("</tr>").unwrap() + vend;
        out.push((doc[start..vend].to_owned(), &doc[start..end]));
        at = end;
    }
    out
}

/// The `href` of `a[rel=next]`, unescaped, if any.
fn next_href(doc: &str) -> Option<String> {
    let i = doc.find("rel=\"next\" href=\"")?;
    let start = i + "rel=\"next\" href=\"".len();
    let end = doc[start..].find('"')? + start;
    Some(doc[start..end].replace("&amp;", "&"))
}

fn event(line: &str, trace: &TraceId, ts: Timestamp, extra: Option<&str>) -> Event {
    let mut attrs = serde_json::Map::new();
    attrs.insert("line".into(), line.into());
    attrs.insert("service".into(), extra.unwrap_or("sshd").into());
    Event {
        id: EventId::new(),
        kind: EventKind(extra.unwrap_or("log_line").into()),
        ts,
        source: extra.map_or("file:/var/log/auth.log".into(), |x| format!("file:{x}")),
        src_ip: Some("203.0.113.7".parse().unwrap()),
        target: extra.map(str::to_owned),
        attrs,
        trace_id: trace.clone(),
    }
}

/// A whole story: an alert, its investigation (two providers, a score breakdown), a plan and two
/// actions (one applied, one expired). With `x`, every free-text field carries `x`.
struct Story {
    alert: Alert,
    inv: Investigation,
    plan: Plan,
    applied: ActionRecord,
    expired: ActionRecord,
}

fn story(x: Option<&str>) -> Story {
    let t = |s: &str| x.map_or(s.to_owned(), |x| format!("{s}{x}"));
    let trace = TraceId::new();
    let ts = Timestamp::from_millis(Timestamp::now().as_millis() - 60_000);
    let subject = match x {
        None => Subject::Ip("203.0.113.7".parse().unwrap()),
        Some(x) => Subject::Container(format!("web{x}")),
    };
    let alert = Alert {
        id: AlertId::new(),
        ts,
        detector: t("scenario"),
        scenario: t("ssh_bruteforce"),
        severity: Severity::High,
        score: 70,
        confidence: 0.8,
        subject: subject.clone(),
        reasons: vec![Reason {
            code: t("failed_logins"),
            detail: t("6 failed logins (threshold 5)"),
            weight: 70,
        }],
        evidence: vec![
            event(
                &t("Nov 30 18:00:01 host sshd[1]: Failed password for root from 203.0.113.7 port 22"),
                &trace,
                ts,
                x,
            ),
            event(
                &t("Nov 30 18:00:02 host sshd[1]: Failed password for admin from 203.0.113.7 port 22"),
                &trace,
                ts,
                x,
            ),
        ],
        trace_id: trace.clone(),
    };
    let inv = Investigation {
        id: InvestigationId::new(),
        ts,
        alert: alert.clone(),
        evidence: vec![
            Evidence {
                provider: t("abuseipdb"),
                verdict: Verdict::Malicious,
                score: Some(97),
                details: serde_json::json!({"reports": 42, "usage": t("hosting")}),
            },
            Evidence {
                provider: t("local_context"),
                verdict: Verdict::Suspicious,
                score: None,
                details: serde_json::json!({"note": t("seen 3 times this week")}),
            },
        ],
        risk_score: 85,
        confidence: 0.9,
        uncertainty: vec![t("greynoise did not answer in time")],
        contributions: vec![
            Contribution {
                input: t("alert"),
                detail: t("ssh_bruteforce high score 70"),
                risk: 70,
                confidence: 0.5,
            },
            Contribution {
                input: t("abuseipdb"),
                detail: t("abuseipdb: malicious (confidence score 97)"),
                risk: 20,
                confidence: 0.3,
            },
            Contribution {
                input: t("history"),
                detail: t("no earlier alert"),
                risk: -5,
                confidence: 0.1,
            },
        ],
        trace_id: trace.clone(),
    };
    let kind = match x {
        None => ActionKind::BlockIp,
        Some(_) => ActionKind::IsolateContainer,
    };
    let spec = ActionSpec {
        kind,
        subject: subject.clone(),
        ttl_secs: 3600,
        params: ActionParams::none(kind),
    };
    let plan = Plan {
        id: PlanId::new(),
        ts,
        alert_id: alert.id,
        investigation_id: inv.id,
        mode: Mode::Enforce,
        severity: Severity::High,
        risk_band: t("high"),
        confidence_band: t("high"),
        actions: vec![spec.clone()],
        reason: t("matrix: high risk x high confidence: block for 1h"),
        trace_id: trace.clone(),
        scope: sentinel_core::Scope::Global,
    };
    let action = |state: ActionState, expires: i64| ActionRecord {
        id: sentinel_core::ActionId::new(),
        origin: Origin::of_plan(&plan),
        spec: spec.clone(),
        mode: Mode::Enforce,
        state,
        created: ts,
        updated: ts,
        expires_at: Timestamp::from_millis(expires),
        preview: Preview {
            kind,
            operations: vec![t("add element inet sentinel block4 { 203.0.113.7 }")],
        },
        applied: None,
        error: x.map(|x| format!("error{x}")),
        trace_id: trace.clone(),
    };
    let expired = action(ActionState::Expired, ts.as_millis() + 1000);
    let applied = action(ActionState::Applied, ts.as_millis() + 3_600_000);
    Story {
        alert,
        inv,
        plan,
        applied,
        expired,
    }
}

impl Fixture {
    /// Records a story the way the pipeline does (records and audit entries, committed).
    async fn record(&self, s: &Story) {
        self.recorder
            .record_committed(vec![
                Entry::from(&s.alert),
                Entry::from(&s.inv),
                Entry::from(&s.plan),
                Entry::from((&s.expired, Change::Acted)),
                Entry::from((&s.applied, Change::Acted)),
            ])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_story_shows_every_part_with_verified_proofs() {
    let f = fixture().await;
    let s = story(None);
    f.record(&s).await;
    f.log.checkpoint_now().await.unwrap();
    let admin = cookie(&f.h, Role::Admin);
    let r = page(&f.app, &format!("/ui/alerts/{}", s.alert.id), &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", html(&r));
    let doc = html(&r);
    assert!(
        doc.contains("<h1>Alert: ssh_bruteforce on ip:203.0.113.7</h1>"),
        "{doc}"
    );
    // Every class the story uses is styled (legible without colour: see app.css).
    assert_eq!(
        sentinel_api::ui::assets::style_check::undefined_classes(&doc),
        Vec::<String>::new()
    );
    assert!(doc.contains("<dd>scenario</dd>"), "the detector");
    assert!(doc.contains("<span class=\"sev sev-high\">high</span>"));
    assert!(doc.contains("70 / 100") && doc.contains("0.80"));
    assert!(doc.contains(&format!("datetime=\"{}\"", s.alert.ts.to_rfc3339())));

    let ev = section(&doc, "evidence");
    for e in &s.alert.evidence {
        let line = e.attrs["line"].as_str().unwrap();
        assert!(
            ev.contains(&format!("<pre><code>{line}</code></pre>")),
            "{ev}"
        );
    }
    assert!(ev.contains("file:/var/log/auth.log") && ev.contains("sshd"));

    let v = section(&doc, "verdicts");
    let providers = rows(v, "data-provider");
    assert_eq!(providers.len(), 2, "{v}");
    assert_eq!(providers[0].0, "abuseipdb");
    assert!(providers[0].1.contains(">malicious<") && providers[0].1.contains("<td>97</td>"));
    assert!(providers[0].1.contains("reports: 42") && providers[0].1.contains("usage: hosting"));
    assert_eq!(providers[1].0, "local_context");
    assert!(providers[1].1.contains(">suspicious<") && providers[1].1.contains("seen 3 times"));
    assert!(
        v.contains("greynoise did not answer in time"),
        "uncertainty"
    );

    let sc = section(&doc, "score");
    for c in &s.inv.contributions {
        assert!(sc.contains(&c.detail), "{sc}");
    }
    assert!(
        sc.contains(">+70<") && sc.contains(">+20<") && sc.contains(">-5<"),
        "{sc}"
    );
    assert!(sc.contains("+0.30"), "{sc}");
    assert!(sc.contains("data-risk=\"85\">85 / 100"), "{sc}");

    let p = section(&doc, "plan");
    assert!(p.contains(&s.plan.reason), "{p}");
    assert!(p.contains(">enforce<") && p.contains("<dd>high</dd>"));
    assert!(
        p.contains("block_ip on <code>ip:203.0.113.7</code> for 1h"),
        "{p}"
    );

    let a = section(&doc, "actions");
    let acts = rows(a, "data-action-id");
    assert_eq!(acts.len(), 2, "{a}");
    let applied = acts
        .iter()
        .find(|(id, _)| *id == s.applied.id.to_string())
        .unwrap();
    assert!(applied.1.contains(">applied<"));
    assert!(applied.1.contains(&format!(
        "datetime=\"{}\"",
        s.applied.expires_at.to_rfc3339()
    )));
    let csrf =
        f.h.state
            .ui
            .sessions
            .get(admin.split('=').nth(1).unwrap())
            .unwrap()
            .csrf;
    assert!(applied.1.contains(&format!(
        "<form class=\"revert\" method=\"post\" action=\"/ui/decisions/{}/revert\">",
        s.applied.id
    )));
    assert!(applied
        .1
        .contains(&format!("name=\"csrf\" value=\"{csrf}\"")));
    assert!(applied.1.contains(&format!(
        "name=\"next\" value=\"/ui/alerts/{}\"",
        s.alert.id
    )));
    let expired = acts
        .iter()
        .find(|(id, _)| *id == s.expired.id.to_string())
        .unwrap();
    assert!(expired.1.contains(">expired<"));
    assert!(
        !expired.1.contains("form"),
        "no revert for an expired action"
    );
    assert_eq!(a.matches("class=\"revert\"").count(), 1);

    let au = section(&doc, "audit");
    let recs = rows(au, "data-seq");
    // alert, investigation, plan, two actions: all in the log, all in the checkpoint just signed.
    assert_eq!(recs.len(), 5, "{au}");
    let size = f.log.latest_checkpoint().checkpoint.size;
    let root = hex::encode(f.log.latest_checkpoint().checkpoint.root);
    assert!(au.contains(&root), "the checkpoint's root is shown");
    for (seq, row) in &recs {
        assert!(seq.parse::<u64>().unwrap() < size);
        assert!(
            row.contains(&format!("proof verified against checkpoint {size}")),
            "{row}"
        );
    }
    for kind in [
        "alert_raised",
        "investigation_concluded",
        "plan_decided",
        "action_changed",
    ] {
        assert!(au.contains(kind), "{kind}");
    }

    // A viewer sees the same story without the revert form.
    let viewer = cookie(&f.h, Role::Viewer);
    let r = page(&f.app, &format!("/ui/alerts/{}", s.alert.id), &viewer).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = html(&r);
    assert_eq!(rows(section(&doc, "actions"), "data-action-id").len(), 2);
    assert!(!doc.contains("class=\"revert\""));
    assert!(!doc.contains("/revert"));
}

#[tokio::test]
async fn proofs_say_why_they_cannot_be_checked() {
    let f = fixture().await;
    let s = story(None);
    f.record(&s).await;
    // No checkpoint since the records were written.
    let admin = cookie(&f.h, Role::Admin);
    let doc = html(&page(&f.app, &format!("/ui/alerts/{}", s.alert.id), &admin).await);
    let au = section(&doc, "audit");
    assert_eq!(rows(au, "data-seq").len(), 5);
    assert_eq!(au.matches("not yet in a checkpoint").count(), 5, "{au}");
    assert!(!au.contains("proof verified"));

    // A role without an audit log says so.
    let app = sentinel_api::router(f.h.state.clone());
    let doc = html(&page(&app, &format!("/ui/alerts/{}", s.alert.id), &admin).await);
    let au = section(&doc, "audit");
    assert!(au.contains("this node keeps no audit log"), "{au}");
    assert!(!au.contains("proof verified"));

    // An alert not investigated yet, with records outside the log.
    let mut bare = story(None).alert;
    bare.evidence.clear();
    f.writer.write(Record::Alert(bare.clone())).await.unwrap();
    f.writer
        .write(Record::Audit(sentinel_store::AuditRow::unlogged(
            sentinel_core::AuditRecord {
                ts: bare.ts,
                kind: sentinel_core::AuditKind::AlertRaised,
                subject_id: bare.id.to_string(),
                trace_id: bare.trace_id.clone(),
                summary: "raised".into(),
                content_hash: None,
            },
        )))
        .await
        .unwrap();
    let path = format!("/ui/alerts/{}", bare.id);
    let doc = wait_for(&f.app, &path, &admin).await;
    assert!(section(&doc, "evidence").contains("No evidence lines"));
    assert!(section(&doc, "verdicts").contains("Not investigated yet"));
    assert!(section(&doc, "score").contains("Not investigated yet"));
    assert!(section(&doc, "plan").contains("No plan"));
    assert!(section(&doc, "actions").contains("No action"));
    let au = section(&doc, "audit");
    assert!(au.contains("not in the audit log"), "{au}");
    assert_eq!(f.h.state.metrics.audit_proof_failures.get(), 0);

    // An index row that does not say what the log holds at its seq is caught and counted.
    let other = sentinel_core::AuditRecord {
        ts: Timestamp::now(),
        kind: sentinel_core::AuditKind::AlertRaised,
        subject_id: "another".into(),
        trace_id: TraceId::new(),
        summary: "what the log holds".into(),
        content_hash: None,
    };
    let seq = f.log.append(other.clone()).await.unwrap().seq;
    let forged = sentinel_core::AuditRecord {
        summary: "what the index claims".into(),
        trace_id: s.alert.trace_id.clone(),
        ..other
    };
    let group = sentinel_store::AckGroup::new();
    f.writer
        .write_acked(
            Record::Audit(sentinel_store::AuditRow::logged(seq, forged)),
            group.token(0),
        )
        .await
        .unwrap();
    assert_eq!(group.settled().await.failed, 0);
    f.log.checkpoint_now().await.unwrap();
    let doc = html(&page(&f.app, &format!("/ui/alerts/{}", s.alert.id), &admin).await);
    let au = section(&doc, "audit");
    let recs = rows(au, "data-seq");
    assert_eq!(recs.len(), 6, "{au}");
    assert_eq!(
        au.matches("proof verified against checkpoint").count(),
        5,
        "{au}"
    );
    let bad = recs.iter().find(|(s, _)| *s == seq.to_string()).unwrap().1;
    assert!(
        bad.contains("NOT verified: the store&#39;s copy differs")
            || bad.contains("NOT verified: the store's copy differs"),
        "{bad}"
    );
    assert_eq!(f.h.state.metrics.audit_proof_failures.get(), 1);
}

/// The page once the writer has committed what it was given (it writes in batches).
async fn wait_for(app: &axum::Router, path: &str, cookie: &str) -> String {
    for _ in 0..200 {
        let r = page(app, path, cookie).await;
        if r.status == StatusCode::OK {
            let doc = html(&r);
            if !section(&doc, "audit").contains("No audit record") {
                return doc;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{path} never showed its records");
}

#[tokio::test]
async fn bad_requests_are_pages_naming_the_problem() {
    let f = fixture().await;
    let admin = cookie(&f.h, Role::Admin);
    for (q, names) in [
        ("?severity=bogus", "`severity`"),
        ("?min_severity=huge", "`min_severity`"),
        ("?since=yesterday", "`since`"),
        ("?until=2026-13-45", "`until`"),
        ("?cursor=not-a-cursor", "`cursor`"),
        ("?limit=0", "`limit`"),
        ("?limit=100000", "`limit`"),
        ("?colour=red", "`colour`"),
        ("?scenario=a&scenario=b", "`scenario`"),
    ] {
        let r = page(&f.app, &format!("/ui/alerts{q}"), &admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(html(&r).contains(names), "{q}: {}", html(&r));
    }
    let r = page(&f.app, "/ui/alerts/not-an-id", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("not an alert id"));
    let r = page(&f.app, &format!("/ui/alerts/{}", AlertId::new()), &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    // Without a session: to the login page, coming back here after.
    let r = send(
        &f.app,
        Request::get("/ui/alerts?scenario=x")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header("location").unwrap().starts_with("/ui/login?next="));
}

/// `n` alerts one second apart (oldest first), cycling through scenarios, severities and subjects.
fn alerts(n: usize) -> Vec<Alert> {
    let base = Timestamp::now().as_millis() - 10_000_000;
    let scenarios = ["ssh_bruteforce", "http_attack", "port_scan"];
    (0..n)
        .map(|i| Alert {
            id: AlertId::new(),
            ts: Timestamp::from_millis(base + i as i64 * 1000),
            detector: "scenario".into(),
            scenario: scenarios[i % 3].into(),
            severity: Severity::ALL[i % 5],
            score: (i % 100) as u8,
            confidence: 0.5,
            subject: Subject::Ip(format!("198.51.100.{}", i % 4).parse().unwrap()),
            reasons: vec![],
            evidence: vec![],
            trace_id: TraceId::new(),
        })
        .collect()
}

/// Follows `a[rel=next]` from `first`, answering the ids of every row of every page, in order.
async fn walk(app: &axum::Router, first: &str, cookie: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let r = page(app, &path, cookie).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", html(&r));
        let doc = html(&r);
        for (id, row) in rows(&doc, "data-alert-id") {
            assert!(row.contains(&format!("href=\"/ui/alerts/{id}\"")));
            ids.push(id);
        }
        next = next_href(&doc);
        pages += 1;
        assert!(pages < 100, "paging does not end");
    }
    (ids, pages)
}

#[tokio::test]
async fn filters_and_paging_list_every_alert_exactly_once() {
    let f = fixture().await;
    let all = alerts(47);
    for a in &all {
        f.writer.write(Record::Alert(a.clone())).await.unwrap();
    }
    // One action on the newest alert, shown in its row.
    let s = story(None);
    f.record(&s).await;
    let viewer = cookie(&f.h, Role::Viewer);
    let mut expected: Vec<&Alert> = all.iter().collect();
    expected.push(&s.alert);
    expected.sort_by_key(|a| std::cmp::Reverse(a.id));
    let ids = |v: &[&Alert]| v.iter().map(|a| a.id.to_string()).collect::<Vec<_>>();

    // Everything, 10 a page: newest first, each once.
    let (got, pages) = walk(&f.app, "/ui/alerts?limit=10", &viewer).await;
    assert_eq!(got, ids(&expected));
    assert_eq!(pages, 5);
    let doc = html(&page(&f.app, "/ui/alerts", &viewer).await);
    let first = rows(&doc, "data-alert-id");
    assert_eq!(first.len(), 48, "the default page holds them all");
    let row = first
        .iter()
        .find(|(id, _)| *id == s.alert.id.to_string())
        .unwrap()
        .1;
    assert!(
        row.contains("block_ip: <span class=\"state state-applied\">applied</span>"),
        "{row}"
    );
    assert!(
        row.contains("block_ip: <span class=\"state state-expired\">expired</span>"),
        "{row}"
    );
    assert!(row.contains("<span class=\"sev sev-high\">high</span>"));
    assert!(doc.contains("<table id=\"alerts\">") && doc.contains("<caption>"));
    assert!(doc.contains("<th scope=\"col\">Severity</th>"));

    // Each filter, paged 4 at a time; the next link carries the filters.
    let since = all[10].ts;
    let until = all[30].ts;
    type Keep = Box<dyn Fn(&Alert) -> bool>;
    let cases: Vec<(String, Keep)> = vec![
        (
            "scenario=http_attack".into(),
            Box::new(|a: &Alert| a.scenario == "http_attack"),
        ),
        (
            "severity=medium".into(),
            Box::new(|a: &Alert| a.severity == Severity::Medium),
        ),
        (
            "min_severity=high".into(),
            Box::new(|a: &Alert| a.severity >= Severity::High),
        ),
        (
            "subject=198.51.100.2".into(),
            Box::new(|a: &Alert| a.subject.key() == "ip:198.51.100.2"),
        ),
        (
            format!("since={}&until={}", since.to_rfc3339(), until.as_millis()),
            Box::new(move |a: &Alert| a.ts >= since && a.ts <= until),
        ),
        (
            "scenario=port_scan&min_severity=medium&subject=ip%3A198.51.100.1".into(),
            Box::new(|a: &Alert| {
                a.scenario == "port_scan"
                    && a.severity >= Severity::Medium
                    && a.subject.key() == "ip:198.51.100.1"
            }),
        ),
        ("scenario=nothing_like_it".into(), Box::new(|_| false)),
    ];
    for (q, keep) in &cases {
        let want: Vec<&Alert> = expected.iter().copied().filter(|a| keep(a)).collect();
        let (got, _) = walk(&f.app, &format!("/ui/alerts?{q}&limit=4"), &viewer).await;
        assert_eq!(got, ids(&want), "{q}");
        let set: HashSet<&String> = got.iter().collect();
        assert_eq!(set.len(), got.len(), "{q}: an alert listed twice");
        // The filter form shows what was asked.
        let doc = html(&page(&f.app, &format!("/ui/alerts?{q}"), &viewer).await);
        assert!(doc.contains("<form id=\"alert-filters\" method=\"get\" action=\"/ui/alerts\""));
        if q.starts_with("scenario=http_attack") {
            assert!(doc.contains("name=\"scenario\" value=\"http_attack\""));
        }
        if want.is_empty() {
            assert!(doc.contains("No alerts match these filters."));
            assert!(!doc.contains("<table id=\"alerts\">"));
        }
    }
    // A browser's datetime-local value is read as UTC.
    let local = since.to_rfc3339();
    let local = &local[..19];
    let (got, _) = walk(
        &f.app,
        &format!("/ui/alerts?since={local}&limit=50"),
        &viewer,
    )
    .await;
    let want: Vec<&Alert> = expected
        .iter()
        .copied()
        .filter(|a| a.ts.as_millis() >= since.as_millis() / 1000 * 1000)
        .collect();
    assert_eq!(got, ids(&want));
}

fn assert_inert(doc: &str) {
    for bad in [
        "<script",
        "<img",
        "onerror=alert(1)>",
        "<style",
        " style=",
        "javascript:",
    ] {
        assert!(!doc.contains(bad), "{bad:?} in the page:\n{doc}");
    }
    assert!(doc.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(doc.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[tokio::test]
async fn every_field_of_a_hostile_story_renders_inert() {
    let f = fixture().await;
    let s1 = story(Some(SCRIPT));
    let s2 = story(Some(IMG));
    f.record(&s1).await;
    f.record(&s2).await;
    f.log.checkpoint_now().await.unwrap();
    let admin = cookie(&f.h, Role::Admin);
    for s in [&s1, &s2] {
        let doc = html(&page(&f.app, &format!("/ui/alerts/{}", s.alert.id), &admin).await);
        let x = if std::ptr::eq(s, &s1) {
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        } else {
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        };
        for id in ["evidence", "verdicts", "score", "plan", "actions", "audit"] {
            assert!(
                section(&doc, id).contains(x),
                "section#{id} lost the text:\n{}",
                section(&doc, id)
            );
        }
        // The payload's text stays (escaped); no tag or attribute of it does.
        for bad in ["<script", "<img", "<style", " style=", "=alert(1)>"] {
            assert!(!doc.contains(bad), "{bad:?} in the story");
        }
        // Still a working page: both actions and a revert form for the live one.
        assert_eq!(rows(section(&doc, "actions"), "data-action-id").len(), 2);
        assert_eq!(doc.matches("class=\"revert\"").count(), 1);
    }
    let doc = html(&page(&f.app, "/ui/alerts", &admin).await);
    assert_eq!(rows(&doc, "data-alert-id").len(), 2);
    assert_inert(&doc);
    // Hostile filter values echoed into the form and the next link stay inert too.
    for q in [SCRIPT, IMG] {
        let enc = sentinel_api::ui::urlencode(q);
        let doc = html(
            &page(
                &f.app,
                &format!("/ui/alerts?scenario={enc}&subject={enc}"),
                &admin,
            )
            .await,
        );
        for bad in ["<script", "<img"] {
            assert!(!doc.contains(bad), "{bad:?} echoed:\n{doc}");
        }
        let doc = html(&page(&f.app, &format!("/ui/alerts/{enc}"), &admin).await);
        assert!(!doc.contains("<script") && !doc.contains("<img"));
    }
}
