//! The dashboard's decisions page against the real router, a real SQLite store, a real audit log and
//! a real ledger whose `block_ip` actuator is nftables inside a network namespace the test creates:
//! a revert from the page removes the set element, a preview applies nothing, an apply adds one, a
//! viewer gets no forms and a 403, a post without the CSRF token or from elsewhere is refused, hostile
//! text comes out escaped, and a bad duration is a 400 next to its field. Needs root (namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use sentinel_api::auth::{Auth, Principal, Role};
use sentinel_api::decisions::Decisions;
use sentinel_api::{ApiSettings, AppState};
use sentinel_core::{ActionLimits, ActionState, Mode, Redactor, TraceId};
use sentinel_pipeline::ledger::Desk;
use sentinel_pipeline::recorder::Recorder;
use sentinel_respond::actuators::nft::{NftBlockIp, NftTable};
use sentinel_respond::{Allowlist, Ledger, LedgerConfig, Responder};
use sentinel_store::Store;
use sentinel_testkit::netns::Netns;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tower::ServiceExt;

const XSS: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>";

struct Env {
    app: Router,
    store: Store,
    ns: Netns,
    ledger: Arc<Ledger>,
    desk: Arc<Desk>,
    recorder: Recorder,
    op: (String, String),
    viewer: (String, String),
    /// The viewer's API key (for `/metrics`).
    viewer_key: String,
    _dir: tempfile::TempDir,
}

/// A browser's session: (cookie token, CSRF token).
fn session(state: &AppState, key_id: &str, role: Role) -> (String, String) {
    let (token, s) = state.ui.sessions.open(
        Principal {
            key_id: key_id.into(),
            name: key_id.into(),
            role,
        },
        None,
    );
    (token, s.csrf)
}

async fn env() -> Env {
    let ns = Netns::new("uidec").expect("these tests need root: they create a network namespace");
    let (dir, store, metrics, recorder) = common::audited_store("sentinel/ui-decisions-test").await;
    let table = NftTable::default().in_netns(ns.name()).unwrap();
    let responder = Responder::new(Allowlist::new(["192.0.2.0/24".parse().unwrap()]))
        .with_actuator(Box::new(NftBlockIp::new(table)));
    let ledger = Arc::new(Ledger::new(responder, LedgerConfig::default()));
    let desk = Arc::new(Desk {
        ledger: ledger.clone(),
        recorder: recorder.clone(),
        mode: Mode::Enforce,
        limits: ActionLimits {
            max_ttl: Some(std::time::Duration::from_secs(7 * 86400)),
            quarantine_roots: vec![],
        },
    });
    let auth = Auth::new([9u8; 32], false);
    let viewer_key = Auth::generate_key();
    for (id, role, key) in [
        ("k-op", Role::Operator, Auth::generate_key()),
        ("k-viewer", Role::Viewer, viewer_key.clone()),
    ] {
        assert!(auth.insert(
            &auth.hash(&key),
            Principal {
                key_id: id.into(),
                name: id.into(),
                role,
            },
        ));
    }
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let state = AppState {
        store: store.clone(),
        intake: tx,
        auth: Arc::new(auth),
        metrics,
        ready: Arc::new(AtomicBool::new(true)),
        redactor: Arc::new(Redactor::default()),
        settings: ApiSettings::default(),
        audit: None,
        decisions: Some(desk.clone()),
        intel: None,
        notify: None,
        operator_audit: Some(recorder.clone()),
        system: Default::default(),
        ui: Default::default(),
    };
    let recorder_kept = recorder;
    let op = session(&state, "k-op", Role::Operator);
    let viewer = session(&state, "k-viewer", Role::Viewer);
    Env {
        app: sentinel_api::router(state),
        store,
        ns,
        ledger,
        desk,
        recorder: recorder_kept,
        op,
        viewer,
        viewer_key,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    trace: Option<TraceId>,
    body: String,
}

impl Env {
    async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        let trace = resp
            .headers()
            .get("x-trace-id")
            .and_then(|v| TraceId::parse(v.to_str().unwrap()));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            location,
            trace,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    async fn get(&self, who: &(String, String), path: &str) -> Answer {
        self.send(
            Request::get(path)
                .header(header::COOKIE, format!("sentinel_session={}", who.0))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// The value of the sample `line` (name and labels) in `GET /metrics`.
    async fn metric(&self, line: &str) -> u64 {
        let a = self
            .send(
                Request::get("/metrics")
                    .header("x-api-key", &self.viewer_key)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {line} in /metrics:\n{}", a.body)) as u64
    }

    /// A same-origin form post; `csrf` is added unless `with_csrf` is false.
    async fn post(
        &self,
        who: &(String, String),
        path: &str,
        fields: &[(&str, &str)],
        with_csrf: bool,
        origin: &str,
    ) -> Answer {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        if with_csrf {
            pairs.push(("csrf", &who.1));
        }
        let body = serde_urlencoded::to_string(&pairs).unwrap();
        self.send(
            Request::post(path)
                .header(header::COOKIE, format!("sentinel_session={}", who.0))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::HOST, "sentinel.test")
                .header(header::ORIGIN, origin)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    async fn manual(&self, who: &(String, String), fields: &[(&str, &str)]) -> Answer {
        self.post(who, "/ui/decisions", fields, true, "http://sentinel.test")
            .await
    }

    /// The nft set elements in the test's namespace (the whole ruleset's text).
    fn ruleset(&self) -> String {
        self.ns.nft_ruleset().unwrap()
    }

    /// Adds a block as the REST API would (through the same desk).
    async fn block(&self, ip: &str, reason: &str) -> sentinel_core::ActionRecord {
        let body = serde_json::json!({"ip": ip, "duration": "1h", "reason": reason});
        let spec = sentinel_api::decisions::check_add_body(&body).unwrap();
        self.desk
            .add(sentinel_api::decisions::DecisionRequest {
                spec,
                reason: reason.into(),
                dry_run: false,
                trace_id: TraceId::new(),
            })
            .await
            .unwrap()
    }
}

/// The `<tr data-action-id="id">…</tr>` of a page.
fn row<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!("<tr data-action-id=\"{id}\""))?;
    let end = html[start..].find("</tr>")? + start;
    Some(&html[start..end])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revert_from_the_page_removes_the_nft_element_and_is_audited() {
    let env = env().await;
    let rec = env.block("203.0.113.7", "seen scanning").await;
    assert_eq!(rec.state, ActionState::Applied);
    assert!(env.ruleset().contains("203.0.113.7"), "{}", env.ruleset());

    let page = env.get(&env.op, "/ui/decisions").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<table id=\"decisions\">"),
        "{}",
        page.body
    );
    let tr = row(&page.body, &rec.id.to_string()).expect("the decision's row");
    for text in [
        "block_ip",
        "ip:203.0.113.7",
        "operator",
        "applied",
        "seen scanning",
        "<time datetime=\"",
        "(in 59m",
    ] {
        assert!(tr.contains(text), "{text} in {tr}");
    }
    let action = format!("action=\"/ui/decisions/{}/revert\"", rec.id);
    assert!(
        tr.contains("<form class=\"revert\" method=\"post\"") && tr.contains(&action),
        "{tr}"
    );
    assert!(tr.contains("<button type=\"submit\""), "{tr}");

    let path = format!("/ui/decisions/{}/revert", rec.id);
    let a = env
        .post(
            &env.op,
            &path,
            &[("next", "/ui/alerts/some-alert")],
            true,
            "http://sentinel.test",
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location.as_deref(),
        Some(format!("/ui/alerts/some-alert?done=reverted&id={}", rec.id).as_str())
    );
    // The element is gone from the kernel's set, the ledger and the store say reverted.
    assert!(!env.ruleset().contains("203.0.113.7"), "{}", env.ruleset());
    assert!(env.ledger.live().is_empty());
    let stored = env.store.get_action(rec.id).await.unwrap().unwrap();
    assert_eq!(stored.state, ActionState::Reverted);
    // The audit trail of the request's trace: the ledger's revert and who asked for it.
    let trail = env.store.audit_for_trace(&a.trace.unwrap()).await.unwrap();
    let summaries: Vec<&str> = trail.iter().map(|r| r.record.summary.as_str()).collect();
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("203.0.113.7 reverted: deleted by an operator")),
        "{summaries:?}"
    );
    assert!(
        trail
            .iter()
            .any(|r| r.record.subject_id == "k-op" && r.record.summary.contains("ui: revert")),
        "{summaries:?}"
    );

    // The confirmation, once, as a status message.
    let page = env
        .get(
            &env.op,
            &format!("/ui/decisions?done=reverted&id={}", rec.id),
        )
        .await;
    assert!(page.body.contains("role=\"status\""), "{}", page.body);
    assert!(row(&page.body, &rec.id.to_string()).is_none());
    // Nothing is live: the message alone, no empty table under it.
    assert!(page.body.contains("No live decisions."), "{}", page.body);
    assert!(
        !page.body.contains("<table id=\"decisions\">"),
        "{}",
        page.body
    );

    // Again: not live any more, a 409 and nothing changed; an unknown id is a 404.
    let again = env
        .post(&env.op, &path, &[], true, "http://sentinel.test")
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(again.body.contains("is not live (it is reverted)"));
    let unknown = env
        .post(
            &env.op,
            "/ui/decisions/01J00000000000000000000000/revert",
            &[],
            true,
            "http://sentinel.test",
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let junk = env
        .post(
            &env.op,
            "/ui/decisions/not-an-id/revert",
            &[],
            true,
            "http://sentinel.test",
        )
        .await;
    assert_eq!(junk.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn next_must_stay_on_the_dashboard() {
    let env = env().await;
    for next in [
        "//evil.example/ui/",
        "/\\evil.example/",
        "https://evil.example/ui/",
        "/v1/decisions",
    ] {
        let rec = env.block("203.0.113.9", "x").await;
        let a = env
            .post(
                &env.op,
                &format!("/ui/decisions/{}/revert", rec.id),
                &[("next", next)],
                true,
                "http://sentinel.test",
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert_eq!(
            a.location.as_deref(),
            Some(format!("/ui/decisions?done=reverted&id={}", rec.id).as_str()),
            "{next}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_applies_nothing_and_apply_adds() {
    let env = env().await;
    let before = env.ruleset();
    let fields = [
        ("ip", "203.0.113.20"),
        ("kind", "block_ip"),
        ("duration", "2h"),
        ("reason", "brute force"),
        ("op", "preview"),
    ];
    let p = env.manual(&env.op, &fields).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let sec = &p.body[p.body.find("<section id=\"preview\"").expect("a preview")..];
    for text in ["block_ip", "ip:203.0.113.20", "<time datetime=", "TTL 2h"] {
        assert!(sec.contains(text), "{text} in {sec}");
    }
    assert!(sec.contains("203.0.113.20"), "the exact operation: {sec}");
    // Nothing applied anywhere; the form keeps its values.
    assert!(env.ledger.live().is_empty());
    assert_eq!(env.ruleset(), before);
    assert!(!env.ruleset().contains("203.0.113.20"));
    assert!(
        p.body.contains("name=\"reason\" value=\"brute force\""),
        "{}",
        p.body
    );
    assert!(p.body.contains("<option value=\"block_ip\" selected>"));

    // An allowlisted address: the preview says it would be refused; nothing applied.
    let p = env
        .manual(
            &env.op,
            &[
                ("ip", "192.0.2.5"),
                ("duration", "1h"),
                ("reason", ""),
                ("op", "preview"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("<section id=\"preview\""), "{}", p.body);
    assert!(p.body.contains("would be refused"), "{}", p.body);
    assert!(p.body.contains("on the allowlist"), "{}", p.body);
    assert!(env.ledger.live().is_empty());

    // Apply: 303 to the list with a confirmation; the element is in the set.
    let mut fields = fields;
    fields[4] = ("op", "apply");
    let a = env.manual(&env.op, &fields).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let loc = a.location.unwrap();
    assert!(loc.starts_with("/ui/decisions?done=applied&id="), "{loc}");
    let live = env.ledger.live();
    assert_eq!(live.len(), 1);
    assert!(env.ruleset().contains("203.0.113.20"), "{}", env.ruleset());
    let page = env.get(&env.op, &loc).await;
    assert!(page.body.contains("role=\"status\""));
    let tr = row(&page.body, &live[0].id.to_string()).unwrap();
    assert!(
        tr.contains("brute force") && tr.contains("operator"),
        "{tr}"
    );

    // Applying the allowlisted address is a 400 next to the field, nothing applied.
    let a = env
        .manual(
            &env.op,
            &[("ip", "192.0.2.5"), ("duration", "1h"), ("op", "apply")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("aria-describedby=\"manual-ip-error\""),
        "{}",
        a.body
    );
    assert!(a.body.contains("on the allowlist"));
    assert_eq!(env.ledger.live().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_sees_no_forms_and_is_refused() {
    let env = env().await;
    let rec = env.block("203.0.113.30", "r").await;
    let role = "sentinel_ui_forms_refused_total{reason=\"role\"}";
    assert_eq!(env.metric(role).await, 0);
    let page = env.get(&env.viewer, "/ui/decisions").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(row(&page.body, &rec.id.to_string()).is_some());
    assert!(!page.body.contains("class=\"revert\""), "{}", page.body);
    assert!(!page.body.contains("id=\"manual\""));
    // Only the layout's logout form.
    assert_eq!(page.body.matches("<form").count(), 1, "{}", page.body);

    let r = env
        .post(
            &env.viewer,
            &format!("/ui/decisions/{}/revert", rec.id),
            &[],
            true,
            "http://sentinel.test",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("needs the operator role"), "{}", r.body);
    let m = env
        .manual(
            &env.viewer,
            &[("ip", "203.0.113.31"), ("duration", "1h"), ("op", "apply")],
        )
        .await;
    assert_eq!(m.status, StatusCode::FORBIDDEN);
    assert_eq!(env.ledger.live().len(), 1);
    assert!(env.ruleset().contains("203.0.113.30"));
    assert!(!env.ruleset().contains("203.0.113.31"));
    // Both refusals counted as the role's, none as a forged form.
    assert_eq!(env.metric(role).await, 2);
    assert_eq!(
        env.metric("sentinel_ui_forms_refused_total{reason=\"token\"}")
            .await,
        0
    );
    assert_eq!(
        env.metric("sentinel_ui_forms_refused_total{reason=\"origin\"}")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_without_the_token_or_from_elsewhere_are_refused() {
    let env = env().await;
    let rec = env.block("203.0.113.40", "r").await;
    let path = format!("/ui/decisions/{}/revert", rec.id);
    let no_token = env
        .post(&env.op, &path, &[], false, "http://sentinel.test")
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let elsewhere = env
        .post(&env.op, &path, &[], true, "http://evil.example")
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    let manual = env
        .post(
            &env.op,
            "/ui/decisions",
            &[("ip", "203.0.113.41"), ("duration", "1h"), ("op", "apply")],
            false,
            "http://sentinel.test",
        )
        .await;
    assert_eq!(manual.status, StatusCode::FORBIDDEN);
    // No session at all.
    let anon = env
        .send(
            Request::post(&path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("csrf=x"))
                .unwrap(),
        )
        .await;
    assert_eq!(anon.status, StatusCode::FORBIDDEN);
    assert_eq!(env.ledger.live().len(), 1);
    assert!(env.ruleset().contains("203.0.113.40"));
    assert!(!env.ruleset().contains("203.0.113.41"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_text_comes_out_escaped() {
    let env = env().await;
    let a = env
        .manual(
            &env.op,
            &[
                ("ip", "203.0.113.50"),
                ("duration", "1h"),
                ("reason", XSS),
                ("op", "apply"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = env.get(&env.op, "/ui/decisions").await;
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    // A preview keeps the hostile values in the form, escaped; hostile fields are a 400, escaped.
    let cases = [
        ("203.0.113.51", "", "1h", StatusCode::OK),
        (XSS, XSS, XSS, StatusCode::BAD_REQUEST),
    ];
    for (ip, kind, duration, status) in cases {
        let p = env
            .manual(
                &env.op,
                &[
                    ("ip", ip),
                    ("kind", kind),
                    ("duration", duration),
                    ("reason", XSS),
                    ("op", "preview"),
                ],
            )
            .await;
        assert_eq!(p.status, status, "{}", p.body);
        for html in [&page.body, &p.body] {
            assert!(!html.contains("<script>alert"), "{html}");
            assert!(!html.contains("<img src=x"), "{html}");
        }
        assert!(
            p.body
                .contains("value=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img"),
            "{}",
            p.body
        );
    }
    assert_eq!(env.ledger.live().len(), 1);
    // A hostile `id` in the confirmation is no action id: the 400 page, which does not echo it.
    let c = env
        .get(
            &env.op,
            "/ui/decisions?done=applied&id=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        )
        .await;
    assert_eq!(c.status, StatusCode::BAD_REQUEST);
    assert!(!c.body.contains("<script>alert"));
    assert!(!c.body.contains("alert(1)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_duration_is_a_400_next_to_its_field() {
    let env = env().await;
    let a = env
        .manual(
            &env.op,
            &[
                ("ip", "203.0.113.60"),
                ("duration", "forever"),
                ("reason", "keep me"),
                ("op", "apply"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body
            .contains("aria-invalid=\"true\" aria-describedby=\"manual-duration-error\""),
        "{}",
        a.body
    );
    assert!(a
        .body
        .contains("id=\"manual-duration-error\">`duration`: not a duration (e.g. 4h, 30m, 7d)"));
    assert!(a.body.contains("name=\"reason\" value=\"keep me\""));
    // Over `policy.max_ttl`: the daemon's limit, also next to the field.
    let a = env
        .manual(
            &env.op,
            &[("ip", "203.0.113.60"), ("duration", "30d"), ("op", "apply")],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.contains("manual-duration-error"), "{}", a.body);
    // A bad `before` or unknown parameter is a 400 page.
    assert_eq!(
        env.get(&env.op, "/ui/decisions?before=zzz").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        env.get(&env.op, "/ui/decisions?x=1").await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(env.ledger.live().is_empty());
    assert!(!env.ruleset().contains("203.0.113.60"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_is_paged() {
    let env = env().await;
    let mut ids = Vec::new();
    for i in 0..55 {
        ids.push(env.block(&format!("198.51.100.{i}"), "bulk").await.id);
    }
    // Reported, not asserted (speed is measured in benchmarks): a full page of 50.
    let started = std::time::Instant::now();
    let first = env.get(&env.op, "/ui/decisions").await;
    eprintln!("GET /ui/decisions, 50 rows: {:?}", started.elapsed());
    assert_eq!(first.body.matches("<tr data-action-id=").count(), 50);
    let next = first
        .body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a next link")
        .to_string();
    let second = env.get(&env.op, &next).await;
    assert_eq!(second.body.matches("<tr data-action-id=").count(), 5);
    assert!(!second.body.contains("rel=\"next\""));
    // Newest first: the oldest five are on page two.
    for id in &ids[..5] {
        assert!(row(&second.body, &id.to_string()).is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_decision_links_its_alert_and_shows_the_plan_reason() {
    use sentinel_core::{AlertId, InvestigationId, Plan, PlanId, Severity};
    use sentinel_pipeline::recorder::Change;
    let env = env().await;
    let body = serde_json::json!({"ip": "203.0.113.70", "duration": "1h"});
    let spec = sentinel_api::decisions::check_add_body(&body).unwrap();
    let plan = Plan {
        id: PlanId::new(),
        ts: sentinel_core::Timestamp::now(),
        alert_id: AlertId::new(),
        investigation_id: InvestigationId::new(),
        mode: Mode::Enforce,
        severity: Severity::High,
        risk_band: "high".into(),
        confidence_band: "high".into(),
        actions: vec![spec],
        reason: format!("rule ssh-brute {XSS}"),
        trace_id: TraceId::new(),
        scope: sentinel_core::Scope::Global,
    };
    let recs = env.ledger.execute(&plan).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].state, ActionState::Applied, "{:?}", recs[0].error);
    let mut entries: Vec<sentinel_pipeline::recorder::Entry> = vec![(&plan).into()];
    entries.push((&recs[0], Change::Acted).into());
    env.recorder.record_committed(entries).await.unwrap();

    let page = env.get(&env.op, "/ui/decisions").await;
    let tr = row(&page.body, &recs[0].id.to_string()).unwrap();
    let link = format!("<a href=\"/ui/alerts/{}\">", plan.alert_id);
    assert!(tr.contains("plan") && tr.contains(&link), "{tr}");
    assert!(tr.contains("rule ssh-brute &lt;script&gt;"), "{tr}");
    assert!(!page.body.contains("<script>alert") && !page.body.contains("<img src=x"));

    // Reverted from the alert's story page: back there, the element gone.
    let next = format!("/ui/alerts/{}", plan.alert_id);
    let a = env
        .post(
            &env.op,
            &format!("/ui/decisions/{}/revert", recs[0].id),
            &[("next", &next)],
            true,
            "http://sentinel.test",
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a
        .location
        .unwrap()
        .starts_with(&format!("{next}?done=reverted&id=")));
    assert!(!env.ruleset().contains("203.0.113.70"), "{}", env.ruleset());
}
