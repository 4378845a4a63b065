//! The roles joined by a bus, over the in-process bus and over a real Redis: one sensor, two
//! investigators and three responders (`web-1`..`web-3`) in one process, each with its own bus handle
//! and consumers, all recording into one real store and audit log. Responders run the real ledger over
//! the nftables block actuator in its dry run (observe mode: the actuator's own `plan()`), so every
//! action record is the one a real responder would keep.
//!
//! What it shows: N alerts in → each investigated exactly once across the two investigators (one
//! investigation row and one plan per alert); every global plan carried out once by every responder;
//! a host-scoped plan only by its host; a plan published twice, a duplicate of an already-applied
//! plan and a malformed message make no second action (counted as duplicates, skips and dead
//! letters), the malformed one crashing nothing; and an alert an investigator, or a plan a responder,
//! died holding is reclaimed by a live one and handled once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests fail loudly by design.

use sentinel_audit::{AuditSettings, Log, LogTask};
use sentinel_bus::{RedisBus, RedisBusConfig};
use sentinel_core::{
    ActionKind, ActionSpec, ActionState, Alert, AlertId, BusRx, Event, EventId, EventKind,
    InvestigationId, Mode, Plan, PlanId, Redactor, Scope, Severity, Subject, Timestamp, Topic,
    TraceId,
};
use sentinel_detect::{EngineOptions, Heuristic, ScenarioEngine};
use sentinel_intel::Investigator;
use sentinel_pipeline::bus::MemoryBus;
use sentinel_pipeline::intake::Submission;
use sentinel_pipeline::links::wire::{self, AlertMsg, DecisionMsg, PlanMsg};
use sentinel_pipeline::links::{self, BusLink, Idempotency, LinkCounts, LinkStats, SeenSet};
use sentinel_pipeline::metrics::Metrics;
use sentinel_pipeline::policy::{heuristic_settings, policy_matrix};
use sentinel_pipeline::recorder::{IndexTask, LogAudit, Recorder};
use sentinel_pipeline::roles::{self, InvestigatorStages, ResponderStages, SensorStages};
use sentinel_pipeline::stages::{Detectors, LogNotifier};
use sentinel_respond::actuators::nft::{NftBlockIp, NftTable};
use sentinel_respond::{Allowlist, Ledger, LedgerConfig, PlanOnly, Responder};
use sentinel_store::{Store, StoreWriter, WriterOptions, WriterTask};
use sentinel_testkit::redis::RedisServer;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

const NODES: [&str; 3] = ["web-1", "web-2", "web-3"];
const ALERTS: usize = 12;

/// Gives each role its own bus handle and act-once marks.
trait Fleet {
    fn link(&self, name: &str) -> BusLink;
    fn close(&self);
}

struct Memory(Arc<MemoryBus>);

impl Fleet for Memory {
    fn link(&self, _: &str) -> BusLink {
        BusLink {
            bus: self.0.clone(),
            idempotency: Arc::new(SeenSet::new(10_000)),
            stats: Arc::new(LinkStats::default()),
            max_in_flight: 64,
            sealer: None,
        }
    }
    fn close(&self) {
        self.0.close();
    }
}

struct Redis {
    url: String,
    buses: std::sync::Mutex<Vec<Arc<RedisBus>>>,
}

impl Fleet for Redis {
    fn link(&self, name: &str) -> BusLink {
        let mut c = RedisBusConfig::new(&self.url);
        c.consumer = name.into();
        c.claim_idle = Duration::from_secs(2);
        c.block = Duration::from_millis(100);
        let bus = Arc::new(RedisBus::new(c).unwrap());
        let idempotency: Arc<dyn Idempotency> =
            Arc::new(bus.deduper(Duration::from_secs(10), Duration::from_secs(3600)));
        self.buses.lock().unwrap().push(bus.clone());
        BusLink {
            bus,
            idempotency,
            stats: Arc::new(LinkStats::default()),
            max_in_flight: 64,
            sealer: None,
        }
    }
    fn close(&self) {
        for b in self.buses.lock().unwrap().iter() {
            b.close();
        }
    }
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

/// A plan as an investigator would publish it, blocking `ip` in observe mode; its alert and bytes.
fn plan(ip: &str, scope: Scope) -> (AlertId, Vec<u8>) {
    let plan = Plan {
        id: PlanId::new(),
        ts: Timestamp::now(),
        alert_id: AlertId::new(),
        investigation_id: InvestigationId::new(),
        mode: Mode::Observe,
        severity: Severity::High,
        risk_band: "high".into(),
        confidence_band: "high".into(),
        actions: vec![ActionSpec::plain(
            ActionKind::BlockIp,
            Subject::Ip(ip.parse().unwrap()),
            600,
        )],
        reason: "test".into(),
        trace_id: TraceId::new(),
        scope,
    };
    let alert = plan.alert_id;
    let m = PlanMsg {
        plan,
        notice_key: "test".into(),
    };
    (alert, wire::encode(&m).unwrap())
}

fn ledger() -> Arc<Ledger> {
    Arc::new(Ledger::new(
        Responder::new(Allowlist::new([])).with_actuator(Box::new(PlanOnly::new(Box::new(
            NftBlockIp::new(NftTable::default()),
        )))),
        LedgerConfig::default(),
    ))
}

/// A subscription of the test's own group `observer` on `topic`.
async fn observe(link: &BusLink, topic: &str) -> Box<dyn BusRx> {
    link.bus
        .subscribe(&Topic(topic.into()), "observer")
        .await
        .unwrap()
}

fn alert_msg(alert: &Alert) -> Vec<u8> {
    wire::encode(&AlertMsg {
        node: None,
        alert: alert.clone(),
    })
    .unwrap()
}

/// The next message on an observer's subscription, failing after 30 s without one.
async fn next(rx: &mut Box<dyn BusRx>) -> Vec<u8> {
    let d = timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("nothing on the bus within 30 s")
        .expect("the bus closed")
        .expect("the bus failed");
    rx.ack(&d.id).await.unwrap();
    d.payload
}

/// Reads `decisions` until `until` holds; every (node, alert) reported, with its record count.
async fn collect(
    rx: &mut Box<dyn BusRx>,
    seen: &mut BTreeMap<(String, AlertId), Vec<usize>>,
    until: impl Fn(&BTreeMap<(String, AlertId), Vec<usize>>) -> bool,
) {
    while !until(seen) {
        let d: DecisionMsg = wire::decode(&next(rx).await).unwrap();
        assert!(d.records.iter().all(|r| r.state == ActionState::Planned
            && r.origin.alert_id() == Some(d.alert_id)
            && !r.preview.operations.is_empty()));
        seen.entry((d.node, d.alert_id))
            .or_default()
            .push(d.records.len());
    }
}

/// Rows of a table, read straight from the database file.
async fn rows(db: &std::path::Path, table: &str) -> i64 {
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new().filename(db),
    )
    .await
    .unwrap();
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n
}

/// One real store and audit log every role of a test records into.
struct Trail {
    dir: tempfile::TempDir,
    writer: StoreWriter,
    writer_task: WriterTask,
    audit: Arc<LogAudit>,
    index: IndexTask,
    log_task: LogTask,
    redactor: Redactor,
}

impl Trail {
    async fn open() -> Trail {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, writer_task) = store.writer(WriterOptions {
            flush_interval: Duration::from_millis(20),
            ..WriterOptions::default()
        });
        let (log, log_task) = Log::open(AuditSettings::new(
            dir.path().join("audit"),
            "sentinel/test",
        ))
        .await
        .unwrap();
        let (audit, index) = LogAudit::start(log, writer.clone(), Arc::new(Metrics::default()));
        Trail {
            dir,
            writer,
            writer_task,
            audit: Arc::new(audit),
            index,
            log_task,
            redactor: Redactor::new(Vec::<String>::new()),
        }
    }

    fn recorder(&self, m: &Arc<Metrics>) -> Recorder {
        Recorder::new(
            self.writer.clone(),
            self.audit.clone(),
            Arc::new(self.redactor.clone()),
            m.clone(),
        )
    }

    /// Flushes everything (after every role has ended); the directory holding `s.db`.
    async fn finish(self) -> tempfile::TempDir {
        drop(self.audit);
        self.index.close().await;
        self.log_task.finish().await.unwrap();
        drop(self.writer);
        self.writer_task.finish().await.unwrap();
        self.dir
    }
}

/// A responder on `node`, with its ledger.
async fn responder(
    node: &str,
    link: BusLink,
    trail: &Trail,
) -> (sentinel_pipeline::roles::Role, Arc<Ledger>) {
    let m = Arc::new(Metrics::default());
    let ledger = ledger();
    let role = roles::responder(
        ResponderStages {
            node: node.into(),
            // A host in enforce: plans are carried out in the mode they were decided in.
            mode: Mode::Enforce,
            ledger: ledger.clone(),
            notifier: Box::new(LogNotifier),
            recorder: trail.recorder(&m),
            metrics: m,
        },
        link,
        16,
    )
    .await
    .unwrap();
    (role, ledger)
}

/// An investigator with no providers and the default policy.
async fn investigator(link: BusLink, trail: &Trail) -> sentinel_pipeline::roles::Role {
    let cfg = sentinel_config::load_str("", None, &[]).unwrap();
    let m = Arc::new(Metrics::default());
    let stages = InvestigatorStages {
        investigator: Arc::new(Investigator::new(Vec::new(), Duration::from_secs(2))),
        policy: policy_matrix(&cfg),
        recorder: trail.recorder(&m),
        metrics: m,
    };
    roles::investigator(stages, link, 16).await.unwrap()
}

async fn fleet(f: &dyn Fleet) {
    let cfg = sentinel_config::load_str("", None, &[]).unwrap();
    let trail = Trail::open().await;
    let recorder = |m: &Arc<Metrics>| trail.recorder(m);

    // An observer of every plan and every report, joined before anything is published.
    let watch = f.link("observer");
    let mut plans_seen = observe(&watch, wire::PLANS).await;
    let mut decisions = observe(&watch, wire::DECISIONS).await;
    let mut investigations = observe(&watch, wire::INVESTIGATIONS).await;

    let mut responders = Vec::new();
    for node in NODES {
        let link = f.link(node);
        let stats = link.stats.clone();
        let (role, ledger) = responder(node, link, &trail).await;
        responders.push((node, role, stats, ledger));
    }
    let mut investigators = Vec::new();
    for name in ["investigator-a", "investigator-b"] {
        let link = f.link(name);
        let stats = link.stats.clone();
        investigators.push((investigator(link, &trail).await, stats));
    }
    let sensor_link = f.link("sensor");
    let sensor_stats = sensor_link.stats.clone();
    let m = Arc::new(Metrics::default());
    let (intake, sensor) = roles::sensor(
        SensorStages {
            node: None,
            detectors: Detectors::new(
                Heuristic::new(heuristic_settings(&cfg)),
                ScenarioEngine::new(Vec::new(), EngineOptions::default()),
            ),
            redactor: trail.redactor.clone(),
            recorder: recorder(&m),
            metrics: m,
        },
        sensor_link,
        16,
    );

    for i in 0..ALERTS {
        let ev = attack(&format!("203.0.113.{}", 10 + i));
        intake
            .send(Submission::telemetry(ev, None, None, None))
            .await
            .unwrap();
    }

    // Every alert becomes one plan, and every responder reports each plan once.
    let mut plan_bytes = Vec::new();
    let mut alerts = BTreeSet::new();
    while alerts.len() < ALERTS {
        let bytes = next(&mut plans_seen).await;
        let p: PlanMsg = wire::decode(&bytes).unwrap();
        assert_eq!(p.plan.scope, Scope::Global);
        assert!(
            alerts.insert(p.plan.alert_id),
            "a second plan for one alert"
        );
        plan_bytes.push(bytes);
    }
    let mut seen = BTreeMap::new();
    collect(&mut decisions, &mut seen, |s| {
        s.len() == ALERTS * NODES.len()
    })
    .await;

    // A host-scoped plan published twice, a copy of a plan already applied everywhere, a malformed
    // message, then a global marker: when every responder has reported the marker, it has handled
    // everything published before it (one consumer per group, in order).
    let plans = Topic(wire::PLANS.into());
    let (host_alert, host_plan) = plan("198.51.100.7", Scope::Host("web-2".into()));
    watch.bus.publish(&plans, host_plan.clone()).await.unwrap();
    watch.bus.publish(&plans, host_plan).await.unwrap();
    watch
        .bus
        .publish(&plans, plan_bytes[0].clone())
        .await
        .unwrap();
    watch
        .bus
        .publish(&plans, b"{not a plan".to_vec())
        .await
        .unwrap();
    let (marker_alert, marker) = plan("198.51.100.9", Scope::Global);
    watch.bus.publish(&plans, marker).await.unwrap();
    collect(&mut decisions, &mut seen, |s| {
        NODES
            .iter()
            .all(|n| s.contains_key(&(n.to_string(), marker_alert)))
    })
    .await;

    for ((node, alert), reports) in &seen {
        assert_eq!(reports, &vec![1], "{node} reported {alert} {reports:?}");
    }
    for node in NODES {
        let mine = seen.keys().filter(|(n, _)| n == node).count();
        let host = seen.contains_key(&(node.to_string(), host_alert));
        assert_eq!(host, node == "web-2", "the host plan on {node}");
        assert_eq!(mine, ALERTS + 1 + usize::from(host), "{node}");
    }

    // Each alert's investigation was published once, for the API nodes.
    let mut investigated = std::collections::BTreeSet::new();
    for _ in 0..ALERTS {
        let m: wire::InvestigationMsg = wire::decode(&next(&mut investigations).await).unwrap();
        assert!(
            investigated.insert(m.investigation.alert.id),
            "investigated twice"
        );
    }

    // Drain and stop: sensor, investigators, responders; then the buses, the audit log and store.
    sensor.stop();
    drop(intake);
    sensor.join().await;
    for (role, _) in &investigators {
        role.stop();
    }
    for (_, role, _, _) in &responders {
        role.stop();
    }
    let mut inv_counts = Vec::new();
    for (role, stats) in investigators {
        role.join().await;
        inv_counts.push(stats.snapshot());
    }
    let mut resp_counts: Vec<(&str, LinkCounts, usize)> = Vec::new();
    for (node, role, stats, ledger) in responders {
        role.join().await;
        resp_counts.push((node, stats.snapshot(), ledger.live().len()));
    }
    f.close();

    let sensor = sensor_stats.snapshot();
    assert_eq!(
        (sensor.published, sensor.publish_failed),
        (ALERTS as u64, 0)
    );
    let handled: u64 = inv_counts.iter().map(|c| c.acked).sum();
    assert_eq!(
        handled, ALERTS as u64,
        "every alert acknowledged once: {inv_counts:?}"
    );
    for c in &inv_counts {
        assert_eq!(
            (c.malformed, c.duplicates, c.abandoned, c.publish_failed),
            (0, 0, 0, 0)
        );
    }
    for (node, c, live) in &resp_counts {
        // The copy of an applied plan is a duplicate everywhere; the host plan is skipped twice by
        // the other hosts, and its second copy is a duplicate (or, while the first is in hand, left
        // to the bus) on web-2; the malformed message is dead-lettered by every responder.
        assert_eq!(c.malformed, 1, "{node}: {c:?}");
        // (A copy that arrives before the first's records are committed finds it still held: busy.)
        assert!(c.duplicates + c.busy >= 1, "{node}: {c:?}");
        if *node == "web-2" {
            assert_eq!(c.skipped, 0, "{node}: {c:?}");
            // (A copy left to the bus may come back, after `claim_idle`, as a duplicate.)
            assert!((2..=3).contains(&(c.duplicates + c.busy)), "{node}: {c:?}");
        } else {
            assert_eq!((c.skipped, c.duplicates + c.busy), (2, 1), "{node}: {c:?}");
        }
        assert_eq!(
            c.published,
            (ALERTS + 1 + usize::from(*node == "web-2")) as u64
        );
        // Observe mode: each block is tracked as planned, one per address.
        assert_eq!(*live, ALERTS + 1 + usize::from(*node == "web-2"), "{node}");
    }

    let dir = trail.finish().await;
    let db = dir.path().join("s.db");
    // Exactly one investigation and one plan per alert, whichever investigator took it; one action
    // record per plan and responder that applied it.
    assert_eq!(rows(&db, "alerts").await, ALERTS as i64);
    assert_eq!(rows(&db, "investigations").await, ALERTS as i64);
    assert_eq!(rows(&db, "plans").await, ALERTS as i64);
    assert_eq!(
        rows(&db, "actions").await,
        (NODES.len() * (ALERTS + 1) + 1) as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_over_the_in_process_bus() {
    fleet(&Memory(Arc::new(MemoryBus::new(1024)))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_over_redis() {
    let redis = RedisServer::start();
    fleet(&redis_fleet(&redis)).await;
}

/// A consumer of `group` on `topic` that takes the message `bytes` (published by `by`) and its
/// act-once claim on `key`, then dies without acknowledging it.
async fn die_holding(
    f: &Redis,
    by: &BusLink,
    topic: &str,
    group: &str,
    key: String,
    bytes: Vec<u8>,
) {
    let topic = Topic(topic.into());
    let dead = f.link(&format!("{group}-dead"));
    let mut held = dead.bus.subscribe(&topic, group).await.unwrap();
    by.bus.publish(&topic, bytes).await.unwrap();
    let d = timeout(Duration::from_secs(30), held.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.attempts, 1);
    let claim = dead.idempotency.begin(group, &key).await.unwrap();
    assert_eq!(claim, sentinel_pipeline::links::Claim::First);
}

fn redis_fleet(redis: &RedisServer) -> Redis {
    Redis {
        url: redis.url(),
        buses: std::sync::Mutex::new(Vec::new()),
    }
}

/// A responder that died holding a plan (delivered, its act-once claim taken, never acknowledged)
/// loses nothing and doubles nothing: a live responder of the same node reclaims the plan once the
/// dead one's claim lease ran out, applies it once, and a plan behind it still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_a_dead_responder_held_is_reclaimed_and_applied_once() {
    let redis = RedisServer::start();
    let f = redis_fleet(&redis);
    let trail = Trail::open().await;
    let watch = f.link("observer");
    let mut decisions = observe(&watch, wire::DECISIONS).await;
    let plans = Topic(wire::PLANS.into());
    let group = roles::responder_group("web-1");
    let (alert, bytes) = plan("198.51.100.20", Scope::Global);
    die_holding(&f, &watch, wire::PLANS, &group, alert.to_string(), bytes).await;

    // Its successor: the plan comes back to it (reclaimed), and is applied once the lease ran out.
    let link = f.link("web-1");
    let stats = link.stats.clone();
    let (role, ledger) = responder("web-1", link, &trail).await;
    let mut seen = BTreeMap::new();
    collect(&mut decisions, &mut seen, |s| {
        s.contains_key(&("web-1".to_string(), alert))
    })
    .await;
    let (marker_alert, marker) = plan("198.51.100.21", Scope::Global);
    watch.bus.publish(&plans, marker).await.unwrap();
    collect(&mut decisions, &mut seen, |s| {
        s.contains_key(&("web-1".to_string(), marker_alert))
    })
    .await;
    role.stop();
    role.join().await;
    f.close();
    assert_eq!(seen.len(), 2);
    assert!(seen.values().all(|r| r == &vec![1]), "{seen:?}");
    assert_eq!(ledger.live().len(), 2);
    let c = stats.snapshot();
    // The held plan came back at least once (more while the dead claim was still leased), the
    // marker once; each applied and acknowledged once.
    assert!(c.received >= 2, "{c:?}");
    assert_eq!(c.received, 2 + c.busy, "{c:?}");
    assert_eq!((c.published, c.acked, c.duplicates), (2, 2, 0), "{c:?}");
    trail.finish().await;
}

/// An investigator that died holding an alert: the live one reclaims it and decides exactly one plan
/// for it, and an alert behind it still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_a_dead_investigator_held_is_reclaimed_and_investigated_once() {
    let redis = RedisServer::start();
    let f = redis_fleet(&redis);
    let trail = Trail::open().await;
    let watch = f.link("observer");
    let mut plans = observe(&watch, wire::PLANS).await;
    let alert = |ip: &str| Alert {
        id: AlertId::new(),
        ts: Timestamp::now(),
        detector: "heuristic".into(),
        scenario: "web_attack".into(),
        severity: Severity::High,
        score: 90,
        confidence: 0.9,
        subject: Subject::Ip(ip.parse().unwrap()),
        reasons: Vec::new(),
        evidence: Vec::new(),
        trace_id: TraceId::new(),
    };
    let held = alert("198.51.100.30");
    let bytes = alert_msg(&held);
    die_holding(
        &f,
        &watch,
        wire::ALERTS,
        roles::INVESTIGATORS,
        held.id.to_string(),
        bytes,
    )
    .await;

    let link = f.link("investigator");
    let stats = link.stats.clone();
    let role = investigator(link, &trail).await;
    let mut decided = Vec::new();
    let mut next_plan = async |decided: &mut Vec<AlertId>| {
        let p: PlanMsg = wire::decode(&next(&mut plans).await).unwrap();
        decided.push(p.plan.alert_id);
    };
    next_plan(&mut decided).await;
    let marker = alert("198.51.100.31");
    let bytes = alert_msg(&marker);
    watch
        .bus
        .publish(&Topic(wire::ALERTS.into()), bytes)
        .await
        .unwrap();
    next_plan(&mut decided).await;
    role.stop();
    role.join().await;
    f.close();
    // One plan each, the held alert's first (the marker was published after it was decided).
    assert_eq!(decided, vec![held.id, marker.id]);
    let c = stats.snapshot();
    // Two investigations and two plans published.
    assert_eq!((c.published, c.acked, c.duplicates), (4, 2, 0), "{c:?}");
    assert_eq!(c.received, 2 + c.busy, "{c:?}");
    trail.finish().await;
}

/// A plan delivered more than `MAX_ATTEMPTS` times (its handlers kept dying) is given up: logged,
/// counted as poisoned, marked done and acknowledged, never applied; the plan behind it goes
/// through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_too_many_times_is_given_up_and_the_group_goes_on() {
    let redis = RedisServer::start();
    let f = redis_fleet(&redis);
    let trail = Trail::open().await;
    let watch = f.link("observer");
    let mut decisions = observe(&watch, wire::DECISIONS).await;
    let plans = Topic(wire::PLANS.into());
    let group = roles::responder_group("web-1");
    let (poison, bytes) = plan("198.51.100.30", Scope::Global);
    let dead = f.link("dead");
    let mut held = dead.bus.subscribe(&plans, &group).await.unwrap();
    watch.bus.publish(&plans, bytes).await.unwrap();
    let d = timeout(Duration::from_secs(30), held.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // As if it had been handed out and lost `MAX_ATTEMPTS` + 5 times.
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "XCLAIM",
            "sentinel:plans",
            &group,
            "dead-0",
            "0",
            &d.id,
        ])
        .args([
            "RETRYCOUNT",
            &(links::MAX_ATTEMPTS + 5).to_string(),
            "JUSTID",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let link = f.link("web-1");
    let stats = link.stats.clone();
    let (role, ledger) = responder("web-1", link, &trail).await;
    let (marker_alert, marker) = plan("198.51.100.31", Scope::Global);
    watch.bus.publish(&plans, marker).await.unwrap();
    let mut seen = BTreeMap::new();
    collect(&mut decisions, &mut seen, |s| {
        s.contains_key(&("web-1".to_string(), marker_alert))
    })
    .await;
    // The poisoned plan comes back after `claim_idle`: wait for it to be given up.
    let given_up = timeout(Duration::from_secs(30), async {
        while stats.snapshot().poisoned == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    role.stop();
    role.join().await;
    f.close();
    assert!(given_up.is_ok(), "{:?}", stats.snapshot());
    assert!(
        !seen.contains_key(&("web-1".to_string(), poison)),
        "never applied"
    );
    assert_eq!(ledger.live().len(), 1, "only the marker");
    let c = stats.snapshot();
    assert_eq!((c.poisoned, c.acked), (1, 2), "{c:?}");
    trail.finish().await;
}

/// Someone who can write to Redis replaces the plans stream with a key of another type: the
/// responder's reads are refused (`WRONGTYPE`), counted and logged; it keeps trying, and once the
/// stream is back the next plan is applied. Before, the first refusal ended the responder's link
/// for good while its process (and heartbeat) ran on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_reads_on_after_its_stream_was_replaced_by_another_type() {
    let redis = RedisServer::start();
    let f = redis_fleet(&redis);
    let trail = Trail::open().await;
    let watch = f.link("observer");
    let mut decisions = observe(&watch, wire::DECISIONS).await;
    let plans = Topic(wire::PLANS.into());
    let link = f.link("web-1");
    let stats = link.stats.clone();
    let (role, _ledger) = responder("web-1", link, &trail).await;
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg("sentinel:plans")
        .ignore()
        .cmd("SET")
        .arg("sentinel:plans")
        .arg("not a stream")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let refused = async {
        while stats.snapshot().bus_errors < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(Duration::from_secs(20), refused)
        .await
        .expect("the refused reads are counted, again and again");
    let _: () = redis::cmd("DEL")
        .arg("sentinel:plans")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (alert, bytes) = plan("198.51.100.30", Scope::Global);
    watch.bus.publish(&plans, bytes).await.unwrap();
    let mut seen = BTreeMap::new();
    collect(&mut decisions, &mut seen, |s| {
        s.contains_key(&("web-1".to_string(), alert))
    })
    .await;
    role.stop();
    role.join().await;
    f.close();
    trail.finish().await;
}
