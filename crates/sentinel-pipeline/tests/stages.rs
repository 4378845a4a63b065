//! The stages end to end on a real store: a telemetry event that alerts is answered once, with the
//! detection, investigation and plan, only after every promised record is committed; and what one
//! alert costs in stored bytes (printed, with the cost of the investigation's old form).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use sentinel_audit::{AuditSettings, Log, LogTask};
use sentinel_core::{Event, EventId, EventKind, Mode, Redactor, Timestamp, TraceId};
use sentinel_detect::{EngineOptions, Heuristic, ScenarioEngine};
use sentinel_intel::Investigator;
use sentinel_pipeline::intake::Submission;
use sentinel_pipeline::metrics::Metrics;
use sentinel_pipeline::policy::{heuristic_settings, policy_matrix};
use sentinel_pipeline::recorder::{IndexTask, LogAudit, Recorder};
use sentinel_pipeline::stages::{self, Detectors, LogNotifier, Stages};
use sentinel_respond::{Allowlist, Ledger, LedgerConfig, PlanOnly, Responder};
use sentinel_store::{AckGroup, Store, WriterOptions};
use std::sync::Arc;
use std::time::Duration;

/// A real audit log in `dir/audit`, indexed through `writer`.
async fn trail(
    dir: &std::path::Path,
    writer: &sentinel_store::StoreWriter,
    metrics: &Arc<Metrics>,
) -> (Arc<LogAudit>, IndexTask, LogTask) {
    let (log, task) = Log::open(AuditSettings::new(dir.join("audit"), "sentinel/test"))
        .await
        .unwrap();
    let (audit, index) = LogAudit::start(log, writer.clone(), metrics.clone());
    (Arc::new(audit), index, task)
}

fn attack(ip: &str) -> Event {
    let mut attrs = serde_json::Map::new();
    attrs.insert("failed_logins".into(), 40.into());
    attrs.insert("user_agent".into(), "hydra v9".into());
    attrs.insert("path".into(), "/login".into());
    Event {
        id: EventId::new(),
        kind: EventKind::telemetry(),
        ts: Timestamp::now(),
        source: "api".into(),
        src_ip: Some(ip.parse().unwrap()),
        target: None,
        attrs,
        trace_id: TraceId::new(),
    }
}

#[tokio::test]
async fn a_defend_event_is_answered_once_after_its_records_commit() {
    let cfg = sentinel_config::load_str("", None, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    // A long flush interval: only the caller's wait makes a batch commit early.
    let (writer, task) = store.writer(WriterOptions {
        flush_interval: Duration::from_secs(30),
        ..WriterOptions::default()
    });
    let metrics = Arc::new(Metrics::default());
    let redactor = Redactor::new(Vec::<String>::new());
    let (audit, index, log_task) = trail(dir.path(), &writer, &metrics).await;
    let recorder = Recorder::new(
        writer.clone(),
        audit.clone(),
        Arc::new(redactor.clone()),
        metrics.clone(),
    );
    let ledger = Arc::new(Ledger::new(
        Responder::new(Allowlist::new([])).with_actuator(Box::new(PlanOnly::new(Box::new(
            sentinel_respond::actuators::nft::NftBlockIp::new(
                sentinel_respond::actuators::nft::NftTable::default(),
            ),
        )))),
        LedgerConfig::default(),
    ));
    let (intake, running) = stages::start(
        Stages {
            detectors: Detectors::new(
                Heuristic::new(heuristic_settings(&cfg)),
                ScenarioEngine::new(Vec::new(), EngineOptions::default()),
            ),
            investigator: Arc::new(Investigator::new(Vec::new(), Duration::from_secs(2))),
            policy: policy_matrix(&cfg),
            ledger,
            notifier: Box::new(LogNotifier),
            recorder,
            metrics: metrics.clone(),
            redactor,
        },
        16,
    );

    const ALERTS: usize = 20;
    let mut alert_ids = Vec::new();
    for i in 0..ALERTS {
        let ev = attack(&format!("203.0.113.{}", 10 + i));
        let event_id = ev.id;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let group = AckGroup::new();
        intake
            .send(Submission::telemetry(
                ev,
                None,
                Some(tx),
                Some(group.token(0)),
            ))
            .await
            .unwrap();
        let out = rx.await.unwrap();
        assert_eq!(out.event_id, event_id);
        assert!(out.alerted);
        assert!(out.risk_score.is_some());
        let plan = out.plan.as_ref().unwrap();
        assert_eq!(plan.mode, Mode::Observe);
        assert_eq!(Some(plan.alert_id), out.alert_id);
        // Event, alert, investigation and plan: all committed once the group settles.
        let summary = group.settled().await;
        assert_eq!((summary.committed, summary.failed), (4, 0));
        let detail = store
            .get_alert(out.alert_id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(detail.plans, vec![plan.clone()]);
        assert_eq!(
            detail.investigation.as_ref().map(|i| i.alert.id),
            out.alert_id
        );
        alert_ids.push(out.alert_id.unwrap());
    }
    drop(intake);
    running.join().await;
    let log = audit.log().clone();
    drop(audit);
    // Every alert's audit records (alert, investigation, plan, action, notice) are in the log and
    // indexed.
    assert_eq!(index.close().await, 5 * ALERTS as u64);
    assert_eq!(log.size(), 5 * ALERTS as u64);
    log_task.finish().await.unwrap();
    drop(writer);
    task.finish().await.unwrap();

    // What one alert costs in the store, and what its investigation cost in the form stored before
    // (a full copy of the alert, evidence and all).
    let mut old_investigations = 0usize;
    for id in &alert_ids {
        let d = store.get_alert(*id).await.unwrap().unwrap();
        old_investigations += serde_json::to_string(&d.investigation.unwrap())
            .unwrap()
            .len();
    }
    let mut total = 0i64;
    let mut rows = 0i64;
    let mut investigations = 0i64;
    let mut line = String::new();
    for (table, size) in [
        ("events", "length(body)"),
        ("alerts", "length(body)"),
        ("investigations", "length(body)"),
        ("plans", "length(body)"),
        ("actions", "length(body)"),
        (
            "audit",
            "length(summary) + length(subject_id) + length(trace_id) + length(kind) + 8",
        ),
    ] {
        let (n, bytes) = raw_size(&dir.path().join("s.db"), table, size).await;
        line.push_str(&format!(" {table}={n}/{bytes}B"));
        total += bytes;
        rows += n;
        if table == "investigations" {
            investigations = bytes;
        }
    }
    let per = |b: i64| b / ALERTS as i64;
    let before = total - investigations + old_investigations as i64;
    eprintln!(
        "per /v1/defend alert: {} records, {} bytes (investigation {} bytes; stored with its alert copied in: {} records, {} bytes, investigation {} bytes); rows/bytes:{line}",
        rows / ALERTS as i64,
        per(total),
        per(investigations),
        rows / ALERTS as i64,
        per(before),
        old_investigations / ALERTS,
    );
    assert!(investigations * 2 < old_investigations as i64);
}

/// Row count and summed size of one table, read straight from the database file.
async fn raw_size(db: &std::path::Path, table: &str, size: &str) -> (i64, i64) {
    let sql = format!("SELECT count(*), coalesce(sum({size}), 0) FROM {table}");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new().filename(db),
    )
    .await
    .unwrap();
    sqlx::query_as(&sql).fetch_one(&mut conn).await.unwrap()
}

/// The detect stage tells the detectors the time on its own: a scenario's state for a source that
/// went quiet is freed once its bucket has leaked, with no further event arriving.
#[tokio::test]
async fn the_clock_expires_scenario_state_without_new_events() {
    let cfg = sentinel_config::load_str("", None, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    let (writer, task) = store.writer(WriterOptions::default());
    let metrics = Arc::new(Metrics::default());
    let redactor = Redactor::new(Vec::<String>::new());
    let (audit, index, log_task) = trail(dir.path(), &writer, &metrics).await;
    let recorder = Recorder::new(
        writer.clone(),
        audit.clone(),
        Arc::new(redactor.clone()),
        metrics.clone(),
    );
    let defs = sentinel_detect::scenario::parse_scenarios(
        "test",
        "- name: quick_failures\n  description: failed logins leaking fast\n  counting: { type: leaky, capacity: 5, leak: 200ms }\n  filter:\n    kind: [auth_failure]\n  severity: low\n  confidence: 0.5\n",
    )
    .unwrap();
    let mut detectors = Detectors::new(
        Heuristic::new(heuristic_settings(&cfg)),
        ScenarioEngine::new(defs, EngineOptions::default()),
    );
    detectors.tick = Duration::from_millis(50);
    let (intake, running) = stages::start(
        Stages {
            detectors,
            investigator: Arc::new(Investigator::new(Vec::new(), Duration::from_secs(2))),
            policy: policy_matrix(&cfg),
            ledger: Arc::new(Ledger::new(
                Responder::new(Allowlist::new([])),
                LedgerConfig::default(),
            )),
            notifier: Box::new(LogNotifier),
            recorder,
            metrics: metrics.clone(),
            redactor,
        },
        16,
    );
    let mut ev = attack("203.0.113.40");
    ev.kind = EventKind("auth_failure".into());
    ev.source = "file:/var/log/auth.log".into();
    intake.send(Submission::log(ev)).await.unwrap();
    // Nothing else is sent: only the clock can free the key.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metrics.scenario_keys_expired.get() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scenario key was never expired without new events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.scenario_keys_expired.get(), 1);
    assert_eq!(metrics.alerts_raised.get(), 0);
    drop(intake);
    running.join().await;
    drop(audit);
    index.close().await;
    log_task.finish().await.unwrap();
    drop(writer);
    task.finish().await.unwrap();
}
