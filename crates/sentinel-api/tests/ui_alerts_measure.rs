//! The dashboard's alert pages over a real store and a real audit log: records are written the way
//! the pipeline writes them (the [`Recorder`] over a store writer and the Merkle log with its index),
//! pages are requested through the real router with a live session cookie, and the HTML is read back.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unused_imports)]

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


fn big_alerts(n: usize) -> Vec<Alert> {
    let now = Timestamp::now().as_millis();
    let span: i64 = 30 * 86_400_000;
    (0..n)
        .map(|i| {
            let trace = TraceId::new();
            let ts = Timestamp::from_millis(now - span + (i as i64) * (span / n as i64));
            let ip = format!("198.51.100.{}", i % 250);
            Alert {
                id: AlertId::new(),
                ts,
                detector: "scenario".into(),
                scenario: ["ssh_bruteforce", "http_attack", "port_scan", "smtp_auth", "wp_login", "sqli", "dns_amp", "ftp_brute", "rdp_brute", "smb_scan"][i % 10].into(),
                severity: Severity::ALL[(i * 7) % 5],
                score: (i % 100) as u8,
                confidence: 0.7,
                subject: Subject::Ip(ip.parse().unwrap()),
                reasons: vec![Reason { code: "failed_logins".into(), detail: "6 failed logins (threshold 5)".into(), weight: 60 }],
                evidence: (0..5).map(|k| event(&format!("Nov 30 18:00:0{k} host sshd[1234]: Failed password for invalid user admin{k} from {ip} port 4{k}22 ssh2"), &trace, ts, None)).collect(),
                trace_id: trace,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure() {
    let path = std::path::PathBuf::from(std::env::var("BIG_DB").unwrap());
    let store = sentinel_store::Store::open(&path).await.unwrap();
    let mut h = harness().await;
    let mut s = AuditSettings::new(path.with_extension("audit"), "sentinel/ui-bench");
    s.checkpoint_every = 1_000_000;
    let (log, _task) = Log::open(s).await.unwrap();
    let (writer, wtask) = store.writer(WriterOptions::default());
    let (trail, index) = LogAudit::start(log.clone(), writer.clone(), h.state.metrics.clone());
    let recorder = Recorder::new(writer.clone(), Arc::new(trail), h.state.redactor.clone(), h.state.metrics.clone());
    let existing = store.list_alerts(&sentinel_store::AlertFilter { limit: 1, ..Default::default() }).await.unwrap();
    let story_id;
    if existing.items.is_empty() {
        let t0 = std::time::Instant::now();
        let all = big_alerts(20_000);
        for (i, a) in all.iter().enumerate() {
            writer.write(Record::Alert(a.clone())).await.unwrap();
            if i % 2 == 0 {
                let spec = ActionSpec { kind: ActionKind::BlockIp, subject: a.subject.clone(), ttl_secs: 3600, params: ActionParams::none(ActionKind::BlockIp) };
                let r = ActionRecord {
                    id: sentinel_core::ActionId::new(),
                    origin: Origin::Plan { plan_id: PlanId::new(), alert_id: a.id, investigation_id: None },
                    spec, mode: Mode::Enforce, state: if i % 4 == 0 { ActionState::Applied } else { ActionState::Expired },
                    created: a.ts, updated: a.ts, expires_at: Timestamp::from_millis(a.ts.as_millis() + 3_600_000),
                    preview: Preview { kind: ActionKind::BlockIp, operations: vec![] }, applied: None, error: None, trace_id: a.trace_id.clone(),
                };
                writer.write(Record::Action(r)).await.unwrap();
            }
        }
        // 200 full stories through the recorder (audit log + index), the last one measured.
        let mut last = None;
        for _ in 0..200 {
            let st = story(None);
            recorder.record_committed(vec![Entry::from(&st.alert), Entry::from(&st.inv), Entry::from(&st.plan), Entry::from((&st.expired, Change::Acted)), Entry::from((&st.applied, Change::Acted))]).await.unwrap();
            last = Some(st.alert.id);
        }
        log.checkpoint_now().await.unwrap();
        std::fs::write(path.with_extension("story"), last.unwrap().to_string()).unwrap();
        eprintln!("seeded in {:?}", t0.elapsed());
    }
    story_id = std::fs::read_to_string(path.with_extension("story")).unwrap();
    index.close().await;
    drop(recorder);
    drop(writer);
    wtask.finish().await.unwrap();
    h.state.store = store.clone();
    h.state.audit = Some(log.clone());
    let app = sentinel_api::router(h.state.clone());
    let c = cookie(&h, Role::Admin);
    let plain = store.list_alerts(&sentinel_store::AlertFilter { limit: 1, scenario: Some("port_scan".into()), ..Default::default() }).await.unwrap().items[0].id;
    let deep = store.list_alerts(&sentinel_store::AlertFilter { limit: 1000, ..Default::default() }).await.unwrap().next_cursor.unwrap();
    let paths = vec![
        "/ui/alerts".to_string(),
        "/ui/alerts?scenario=port_scan".into(),
        "/ui/alerts?scenario=nothing".into(),
        "/ui/alerts?severity=critical".into(),
        "/ui/alerts?min_severity=high".into(),
        "/ui/alerts?subject=198.51.100.7".into(),
        format!("/ui/alerts?since={}", Timestamp::from_millis(Timestamp::now().as_millis() - 86_400_000).to_rfc3339()),
        format!("/ui/alerts?until={}", Timestamp::from_millis(Timestamp::now().as_millis() - 20 * 86_400_000).to_rfc3339()),
        "/ui/alerts?scenario=port_scan&min_severity=high&subject=198.51.100.7".into(),
        "/ui/alerts?severity=info&scenario=sqli".into(),
        format!("/ui/alerts?cursor={deep}"),
        format!("/ui/alerts?limit=200&cursor={deep}"),
        format!("/ui/alerts/{}", story_id.trim()),
        format!("/ui/alerts/{plain}"),
    ];
    for p in &paths {
        let mut times = Vec::new();
        for _ in 0..15 {
            let t = std::time::Instant::now();
            let r = page(&app, p, &c).await;
            times.push(t.elapsed());
            assert_eq!(r.status, StatusCode::OK, "{p}");
        }
        times.sort();
        let doc = html(&page(&app, p, &c).await);
        eprintln!("{:>8.2} ms median {:>8.2} ms max  rows {:>3} {}", times[7].as_secs_f64() * 1e3, times[14].as_secs_f64() * 1e3, rows(&doc, "data-alert-id").len() + rows(&doc, "data-seq").len(), p);
    }
}
