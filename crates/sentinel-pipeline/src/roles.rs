//! Parts of the pipeline started on their own, joined to the others by a [`Bus`](sentinel_core::Bus)
//! through [`crate::links`]: a **sensor** (intake + detect, publishes alerts), an **investigator**
//! (consumes alerts in the shared group `investigators`, investigates and decides, publishes plans)
//! and a **responder** (consumes plans in its own group `responder:<node>`, so every responder sees
//! every plan; applies those whose scope is global or names its node, skips the others, reports its
//! action records on `decisions`).
//!
//! Each role runs the same stage functions as [`crate::stages::start`], in the same order, with the
//! same records, audit entries and metrics; only the queue at a role's edge is a bus link. Stopping
//! is by draining, as for the embedded pipeline: a sensor stops when its intake closes; a consuming
//! role stops reading, lets its stages finish what they hold, acknowledges what they handed on, and
//! ends. The caller then closes its bus and flushes its store writer. This module starts tasks; it
//! reads no configuration.

use crate::intake::{Outcomes, Submission};
use crate::links::{
    self, collect, Accept, AlertMsg, BusLink, Consumer, DecisionMsg, InvestigationMsg, LinkError,
    PlanMsg, Settled,
};
use crate::metrics::Metrics;
use crate::policy::ScenarioPolicy;
use crate::recorder::Recorder;
use crate::stages::{self, Acted, Detectors, Intake, Pending, ToAct, STAGE_TASK};
use sentinel_core::{Alert, Investigation, Mode, Notice, Notifier, Redactor};
use sentinel_intel::Investigator;
use sentinel_respond::Ledger;
use sentinel_store::AckGroup;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

/// The consumer group every investigator joins: they share the alerts, each handled by one.
pub const INVESTIGATORS: &str = "investigators";
/// The task kind of a bus link (publishing or consuming).
pub const LINK_TASK: &str = "bus_link";

/// The consumer group of the responder on `node`: its own, so it gets every plan.
pub fn responder_group(node: &str) -> String {
    format!("responder:{node}")
}

/// A running role.
pub struct Role {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    stop: watch::Sender<bool>,
    close_intake: Option<Arc<Notify>>,
}

impl Role {
    /// Stops taking new work (closes a sensor's intake; stops a consumer reading the bus); what is
    /// already taken goes through.
    pub fn stop(&self) {
        self.stop.send_replace(true);
        if let Some(c) = &self.close_intake {
            c.notify_one();
        }
    }

    /// Waits until every task of the role has drained and ended.
    pub async fn join(self) {
        for (name, t) in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(evt = "stage_crashed", stage = name, error = %e);
            }
        }
    }
}

/// What a sensor runs.
pub struct SensorStages {
    /// This node's name, sent with each alert (host-local actions decided from it are scoped to
    /// this host).
    pub node: Option<String>,
    /// The detectors.
    pub detectors: Detectors,
    /// Masks what detectors derive from events as posted.
    pub redactor: Redactor,
    /// Where events and alerts are recorded.
    pub recorder: Recorder,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Starts a sensor: intake and detect, every alert recorded here and published on `alerts`. A
/// `/v1/defend` caller is answered with the detection (the plan is made on another node).
pub fn sensor(s: SensorStages, link: BusLink, capacity: usize) -> (mpsc::Sender<Submission>, Role) {
    let cap = capacity.max(1);
    let (intake_tx, intake_rx) = mpsc::channel::<Submission>(cap);
    let (alert_tx, alert_rx) = mpsc::channel::<Pending<Alert>>(cap);
    s.metrics.register_queue("intake", &intake_tx);
    s.metrics.register_queue("alerts", &alert_tx);
    let outcomes = Arc::new(Outcomes::default());
    let close = Arc::new(Notify::new());
    let tracker = s.metrics.tasks.clone();
    let tasks = vec![
        (
            "detect",
            tracker.spawn(
                STAGE_TASK,
                stages::detect(
                    s.detectors,
                    s.redactor,
                    Intake {
                        rx: intake_rx,
                        close: Arc::clone(&close),
                        closed: false,
                    },
                    alert_tx,
                    Arc::clone(&outcomes),
                    s.recorder,
                    s.metrics.clone(),
                ),
            ),
        ),
        (
            "publish_alerts",
            tracker.spawn(
                LINK_TASK,
                links::publish_alerts(alert_rx, outcomes, s.node, link),
            ),
        ),
    ];
    let (stop, _) = watch::channel(false);
    (
        intake_tx,
        Role {
            tasks,
            stop,
            close_intake: Some(close),
        },
    )
}

/// What an investigator runs.
pub struct InvestigatorStages {
    /// The investigator.
    pub investigator: Arc<Investigator>,
    /// The policy.
    pub policy: ScenarioPolicy,
    /// Where investigations and plans are recorded.
    pub recorder: Recorder,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Starts an investigator: alerts from the group [`INVESTIGATORS`] on `alerts`, investigated and
/// decided (both recorded here), each plan published on `plans` with the global scope the policy
/// gives. An alert is acknowledged once its plan is recorded and published (see [`crate::links`]).
pub async fn investigator(
    s: InvestigatorStages,
    link: BusLink,
    capacity: usize,
) -> Result<Role, LinkError> {
    let origins = links::Origins::default();
    let noted = origins.clone();
    let consumer = Consumer::<AlertMsg, Pending<Alert>>::subscribe(
        &link,
        INVESTIGATORS,
        Box::new(move |m: AlertMsg| {
            // The investigation and the plan are committed in this group before the alert is
            // acknowledged.
            let group = AckGroup::patient();
            let ack = Some(group.token(0));
            let noted = noted.clone();
            let (id, node) = (m.alert.id, m.node);
            Accept::Take {
                key: id.to_string(),
                item: Pending {
                    item: m.alert,
                    waiting: None,
                    ack,
                },
                first: Some(Box::new(move || noted.note(id, node, group))),
            }
        }),
    )
    .await?;
    let cap = capacity.max(1);
    let (alert_tx, alert_rx) = mpsc::channel::<Pending<Alert>>(cap);
    let (investigated_tx, investigated_rx) = mpsc::channel::<Pending<Investigation>>(cap);
    let (inv_tx, inv_rx) = mpsc::channel::<Pending<Investigation>>(cap);
    let (plan_tx, plan_rx) = mpsc::channel::<ToAct>(cap);
    let (settled_tx, settled_rx) = mpsc::unbounded_channel::<Settled>();
    s.metrics.register_queue("alerts", &alert_tx);
    s.metrics.register_queue("investigations", &inv_tx);
    s.metrics.register_queue("plans", &plan_tx);
    let (stop, stop_rx) = watch::channel(false);
    let tracker = s.metrics.tasks.clone();
    let tasks = vec![
        (
            "consume_alerts",
            tracker.spawn(LINK_TASK, consumer.run(alert_tx, settled_rx, stop_rx)),
        ),
        (
            "investigate",
            tracker.spawn(
                STAGE_TASK,
                stages::investigate(
                    s.investigator,
                    alert_rx,
                    investigated_tx,
                    s.recorder.clone(),
                    s.metrics.clone(),
                ),
            ),
        ),
        (
            "publish_investigations",
            tracker.spawn(
                LINK_TASK,
                links::publish_investigations(investigated_rx, inv_tx, link.clone()),
            ),
        ),
        (
            "decide",
            tracker.spawn(
                STAGE_TASK,
                stages::decide(
                    s.policy,
                    inv_rx,
                    plan_tx,
                    Arc::new(Outcomes::default()),
                    s.recorder,
                    s.metrics.clone(),
                ),
            ),
        ),
        (
            "publish_plans",
            tracker.spawn(
                LINK_TASK,
                links::publish_plans(plan_rx, origins, settled_tx, link),
            ),
        ),
    ];
    Ok(Role {
        tasks,
        stop,
        close_intake: None,
    })
}

/// What a responder runs.
pub struct ResponderStages {
    /// This node's name: plans scoped to it are applied here, and its reports carry it.
    pub node: String,
    /// This host's `policy.mode`: in `observe`, a plan decided in `enforce` by an investigator (or
    /// written to the bus by anyone) is carried out in observe here; only an actuator this host
    /// switched to `enforce` itself enforces, as in the one-process pipeline.
    pub mode: Mode,
    /// The action ledger of this host (its actuators, allowlist, expiry).
    pub ledger: Arc<Ledger>,
    /// Who to tell.
    pub notifier: Box<dyn Notifier>,
    /// Where action records and notices are recorded.
    pub recorder: Recorder,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Starts a responder: plans from its own group ([`responder_group`]) on `plans`; those whose scope
/// includes its node are carried out by the ledger, recorded and notified here, and reported on
/// `decisions`; the others are acknowledged and skipped. A plan is acknowledged once its action
/// records are queued to the store writer (see [`crate::links`]).
pub async fn responder(
    s: ResponderStages,
    link: BusLink,
    capacity: usize,
) -> Result<Role, LinkError> {
    let node = s.node.clone();
    let local_mode = s.mode;
    let consumer = Consumer::<PlanMsg, ToAct>::subscribe(
        &link,
        &responder_group(&s.node),
        Box::new(move |mut m: PlanMsg| {
            if local_mode == Mode::Observe {
                m.plan.mode = Mode::Observe;
            }
            if m.plan.scope.includes(&node) {
                Accept::Take {
                    key: links::plan_key(&m.plan),
                    // The action records are committed in this group before the plan is
                    // acknowledged.
                    item: (m.plan, m.notice_key, Some(AckGroup::patient())),
                    first: None,
                }
            } else {
                Accept::Skip
            }
        }),
    )
    .await?;
    let cap = capacity.max(1);
    let (plan_tx, plan_rx) = mpsc::channel::<ToAct>(cap);
    let (notice_tx, notice_rx) = mpsc::channel::<Notice>(cap);
    let (acted_tx, acted_rx) = mpsc::channel::<Acted>(cap);
    let (settled_tx, settled_rx) = mpsc::unbounded_channel::<Settled>();
    s.metrics.register_queue("plans", &plan_tx);
    s.metrics.register_queue("notices", &notice_tx);
    let (stop, stop_rx) = watch::channel(false);
    let tracker = s.metrics.tasks.clone();
    let tasks = vec![
        (
            "consume_plans",
            tracker.spawn(LINK_TASK, consumer.run(plan_tx, settled_rx, stop_rx)),
        ),
        (
            "act",
            tracker.spawn(
                STAGE_TASK,
                stages::act(
                    s.ledger,
                    plan_rx,
                    notice_tx,
                    Some(acted_tx),
                    s.recorder.clone(),
                    s.metrics.clone(),
                ),
            ),
        ),
        (
            "notify",
            tracker.spawn(
                STAGE_TASK,
                stages::notify(s.notifier, notice_rx, s.recorder, s.metrics.clone()),
            ),
        ),
        (
            "publish_decisions",
            tracker.spawn(
                LINK_TASK,
                links::publish_decisions(acted_rx, s.node, settled_tx, link),
            ),
        ),
    ];
    Ok(Role {
        tasks,
        stop,
        close_intake: None,
    })
}

/// What an API node collects.
pub struct CollectorStages {
    /// This node's name (its consumer group is `api:<node>`).
    pub node: String,
    /// Where the fleet's records are recorded.
    pub recorder: Recorder,
    /// Whether to collect the responders' action records: not on a node that is also a responder,
    /// whose start-up reconcile would take other hosts' actions for its own.
    pub decisions: bool,
}

/// Starts an API node's collector: alerts, investigations, plans and (unless told not to) the
/// responders' action records, from every node, recorded in this node's store (see
/// [`crate::links::collect`]).
pub async fn collector(s: CollectorStages, link: BusLink) -> Result<Role, LinkError> {
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let rec = &s.recorder;
    let [a, b] =
        collect::collect::<AlertMsg>(&link, &s.node, rec.clone(), collect::alert, stop_rx.clone())
            .await?;
    tasks.extend([("collect_alerts", a), ("record_alerts", b)]);
    let [a, b] = collect::collect::<InvestigationMsg>(
        &link,
        &s.node,
        rec.clone(),
        collect::investigation,
        stop_rx.clone(),
    )
    .await?;
    tasks.extend([("collect_investigations", a), ("record_investigations", b)]);
    let [a, b] =
        collect::collect::<PlanMsg>(&link, &s.node, rec.clone(), collect::plan, stop_rx.clone())
            .await?;
    tasks.extend([("collect_plans", a), ("record_plans", b)]);
    if s.decisions {
        let [a, b] = collect::collect::<DecisionMsg>(
            &link,
            &s.node,
            rec.clone(),
            collect::decision,
            stop_rx,
        )
        .await?;
        tasks.extend([("collect_decisions", a), ("record_decisions", b)]);
    }
    Ok(Role {
        tasks,
        stop,
        close_intake: None,
    })
}
