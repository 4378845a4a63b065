//! A big store for the dashboard's page benchmarks, and a router over it with a live session.
//!
//! [`seed`] fills a store through the real store writer (big batches, so the rollups are kept as in
//! production) with `events` events over the last 7 days (6 kinds, 5,000 source addresses) and `alerts`
//! alerts (12 scenarios, 300 subjects), each with its investigation, plan and action (applied,
//! reverted or expired). [`audited`] adds alerts recorded the way the pipeline records them (each in a
//! trace of its own, with its audit entries in a real Merkle log, a checkpoint signed over them) whose
//! actions are live decisions in a real ledger. [`app`] builds the router with an admin session and
//! returns the cookie to send. Other page benches reuse them (`mod common;`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../sentinel-store/tests/common/mod.rs"]
pub mod fixtures;

use axum::Router;
use sentinel_api::auth::{Auth, Principal, Role};
use sentinel_api::{ApiSettings, AppState};
use sentinel_audit::{AuditSettings, Log, LogTask};
use sentinel_core::{
    ActionKind, ActionLimits, ActionState, AlertId, Mode, Redactor, Severity, Timestamp, TraceId,
};
use sentinel_pipeline::intake::Submission;
use sentinel_pipeline::ledger::Desk;
use sentinel_pipeline::metrics::Metrics;
use sentinel_pipeline::recorder::{Change, Entry, LogAudit, Recorder};
use sentinel_respond::{Allowlist, Ledger, LedgerConfig, Responder};
use sentinel_store::{Record, Store, WriterOptions};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What [`seed`] stores.
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    /// Events, spread evenly over the last 7 days.
    pub events: usize,
    /// Alerts (each with an investigation, a plan and an action), spread over the last 7 days.
    pub alerts: usize,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            events: 1_000_000,
            alerts: 10_000,
        }
    }
}

const KINDS: [&str; 6] = [
    "auth_failure",
    "auth_success",
    "http_request",
    "http_error",
    "port_probe",
    "sudo",
];
const WEEK_MS: i64 = 7 * 86_400_000;

/// Fills `store` as [`Seed`] says, through the store writer; returns how long it took.
pub async fn seed(store: &Store, s: Seed) -> Duration {
    let t = Instant::now();
    let (w, task) = store.writer(WriterOptions {
        queue_capacity: 32_768,
        batch_size: 8_192,
        flush_interval: Duration::from_millis(50),
    });
    let now = Timestamp::now().as_millis();
    let start = now - WEEK_MS;
    let producer = {
        let w = w.clone();
        tokio::spawn(async move {
            for i in 0..s.events {
                let ts = start + (i as i64) * WEEK_MS / s.events.max(1) as i64;
                let ip = format!("198.51.{}.{}", 100 + i % 20, (i / 20) % 250 + 1);
                let kind = KINDS[(i * 7 + i / 13) % KINDS.len()];
                w.write(Record::Event(fixtures::event(ts, &ip, kind, "trace-bench")))
                    .await
                    .unwrap();
            }
        })
    };
    for i in 0..s.alerts {
        let ts = start + (i as i64) * WEEK_MS / s.alerts.max(1) as i64;
        let sev = [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ][i % 4];
        let subject = fixtures::ip(&format!("203.0.113.{}", (i * 31) % 250 + 1));
        let subject = if i % 5 == 0 {
            fixtures::ip(&format!("2001:db8::{:x}", i % 50))
        } else {
            subject
        };
        let a = fixtures::alert(
            ts,
            &format!("scenario_{:02}", (i * 3) % 12),
            sev,
            subject,
            "trace-bench",
        );
        let inv = fixtures::investigation(&a);
        let p = fixtures::plan(&a, &inv);
        let state = match i % 3 {
            0 => ActionState::Applied,
            1 => ActionState::Reverted,
            _ => ActionState::Expired,
        };
        let kind = if i % 4 == 0 {
            ActionKind::RateLimit
        } else {
            ActionKind::BlockIp
        };
        let act = fixtures::action(&p, kind, state, ts + 3);
        for r in [
            Record::Alert(a),
            Record::Investigation(inv),
            Record::Plan(p),
            Record::Action(act),
        ] {
            w.write(r).await.unwrap();
        }
    }
    producer.await.unwrap();
    drop(w);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.dropped, 0);
    t.elapsed()
}

/// What [`audited`] made: the log (for `AppState::audit`), the desk over the ledger holding the
/// audited alerts' actions live (for `AppState::decisions`), and the audited alerts, oldest first.
pub struct Audited {
    pub log: Log,
    pub desk: Arc<Desk>,
    pub alerts: Vec<AlertId>,
    _task: LogTask,
}

/// Records `n` alerts spread over the last 7 days, each in a trace of its own, as the pipeline does:
/// the alert, its investigation, its plan and its action (planned, observe mode, live for a day), each
/// a stored record and an audit entry in a real log under `dir` indexed in `store`; then signs a
/// checkpoint over them all and tracks the actions in a ledger (no actuator: observe mode).
pub async fn audited(store: &Store, n: usize, dir: &std::path::Path) -> Audited {
    let mut settings = AuditSettings::new(dir.join("audit"), "sentinel/bench");
    settings.checkpoint_every = 1_000_000;
    settings.checkpoint_interval = Duration::from_secs(3600);
    let (log, task) = Log::open(settings).await.unwrap();
    let metrics = Arc::new(Metrics::default());
    let (writer, _writer_task) = store.writer(WriterOptions::default());
    let (trail, _index) = LogAudit::start(log.clone(), writer.clone(), metrics.clone());
    let recorder = Recorder::new(
        writer,
        Arc::new(trail),
        Arc::new(Redactor::default()),
        metrics,
    );
    let now = Timestamp::now().as_millis();
    let start = now - WEEK_MS;
    let mut alerts = Vec::with_capacity(n);
    let mut live = Vec::with_capacity(n);
    let mut batches = Vec::with_capacity(n);
    for i in 0..n {
        // Between the seed's alerts (offset by half a step), so the audited ones are spread through
        // every page of the list.
        let ts = start + (2 * i as i64 + 1) * WEEK_MS / (2 * n.max(1) as i64);
        let trace = TraceId::new();
        let subject = fixtures::ip(&format!("198.51.100.{}", i % 250 + 1));
        let mut a = fixtures::alert(
            ts,
            &format!("scenario_{:02}", i % 12),
            Severity::High,
            subject,
            "trace-bench",
        );
        a.trace_id = trace.clone();
        for e in &mut a.evidence {
            e.trace_id = trace.clone();
        }
        let inv = fixtures::investigation(&a);
        let p = fixtures::plan(&a, &inv);
        let mut act = fixtures::action(&p, ActionKind::BlockIp, ActionState::Planned, ts + 3);
        act.mode = Mode::Observe;
        act.expires_at = Timestamp::from_millis(now + 86_400_000);
        alerts.push(a.id);
        let entries: Vec<Entry> = vec![
            (&a).into(),
            (&inv).into(),
            (&p).into(),
            (&act, Change::Acted).into(),
        ];
        live.push(act);
        batches.push(entries);
    }
    // Many at once, as the pipeline's stages write: the log and the writer commit in groups.
    let mut pending = batches.into_iter();
    loop {
        let chunk: Vec<Vec<Entry>> = pending.by_ref().take(64).collect();
        if chunk.is_empty() {
            break;
        }
        let results =
            futures::future::join_all(chunk.into_iter().map(|e| recorder.record_committed(e)))
                .await;
        for r in results {
            r.unwrap();
        }
    }
    log.checkpoint_now().await.unwrap();
    let ledger = Arc::new(Ledger::new(
        Responder::new(Allowlist::new([])),
        LedgerConfig::default(),
    ));
    assert_eq!(ledger.track_planned(live), n);
    let desk = Arc::new(Desk {
        ledger,
        recorder,
        mode: Mode::Observe,
        limits: ActionLimits {
            max_ttl: Some(Duration::from_secs(7 * 86_400)),
            quarantine_roots: vec![],
        },
    });
    Audited {
        log,
        desk,
        alerts,
        _task: task,
    }
}

/// The router over `store` with the dashboard on, and the cookie of a live admin session.
pub fn app(store: &Store) -> (Router, String) {
    app_with(store, None)
}

/// [`app`], with the audit log and the decisions desk of `audited` when given.
pub fn app_with(store: &Store, audited: Option<&Audited>) -> (Router, String) {
    let (intake, rx) = mpsc::channel::<Submission>(16);
    // Nobody plays the pipeline: the pages only read.
    std::mem::forget(rx);
    let auth = Auth::new([7u8; 32], false);
    let key = Auth::generate_key();
    let principal = Principal {
        key_id: "k-bench".into(),
        name: "bench".into(),
        role: Role::Admin,
    };
    assert!(auth.insert(&auth.hash(&key), principal.clone()));
    let state = AppState {
        store: store.clone(),
        intake,
        auth: Arc::new(auth),
        metrics: Arc::new(Metrics::default()),
        ready: Arc::new(AtomicBool::new(true)),
        redactor: Arc::new(Redactor::default()),
        settings: ApiSettings::default(),
        audit: audited.map(|a| a.log.clone()),
        decisions: audited.map(|a| a.desk.clone() as Arc<dyn sentinel_api::decisions::Decisions>),
        intel: None,
        notify: None,
        operator_audit: None,
        system: Default::default(),
        ui: Default::default(),
    };
    let (token, _) = state.ui.sessions.open(principal, None);
    let cookie = format!("{}={token}", state.ui.sessions.settings().cookie_name());
    (sentinel_api::router(state), cookie)
}
