//! The embedded pipeline: detect → investigate → decide → act → notify, one tokio task per stage,
//! joined by bounded queues. Every record a stage produces goes to the store writer (which waits when
//! full, so pressure travels back to intake), and each stage hands on only after its record is queued.
//!
//! Every record goes through the [`Recorder`], which builds its audit entry and masks both.
//!
//! A `/v1/defend` caller's answer is built once, at the end: the detect stage keeps what the caller
//! will be told about detection in an [`Outcomes`] registry under the event's id, the alert travels on
//! with that id only, and the decide stage takes the entry out and answers with the investigation and
//! plan it has in hand. No stage patches a reply on its way.
//!
//! A submission's [`AckToken`] goes with its event to the writer. For a `/v1/defend` caller, the
//! alert, investigation and plan its answer promises are stored with siblings of that token, each made
//! before the token it comes from can settle, so the caller's group settles only when all of them are
//! committed (or one failed). Audit records and actions are not part of the answer and carry none.
//!
//! Shutdown is by draining: when every intake sender is dropped, each stage finishes what is queued,
//! closes its output, and ends; the caller then flushes the store writer.

use crate::intake::{Outcome, Outcomes, Submission};
use crate::metrics::{Metrics, Stage};
use crate::policy::ScenarioPolicy;
use crate::recorder::{Change, Recorder};
use sentinel_core::{
    ActionRecord, ActionState, Alert, Detector, EventId, Investigation, Notice, NoticeKind,
    Notifier, Plan, Policy, Reason, Redactor, Scored, Severity, StateCounts, Timestamp,
};
use sentinel_detect::{Heuristic, ScenarioEngine};
use sentinel_intel::Investigator;
use sentinel_respond::Ledger;
use sentinel_store::{AckGroup, AckToken};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The detectors the detect stage runs, every one through [`Detector`].
pub struct Detectors {
    /// Score telemetry posted to the API (the submission says it is telemetry, whatever its
    /// `source`); the first that scores the event answers a waiting caller (the heuristic).
    pub telemetry: Vec<Box<dyn Detector>>,
    /// See every event (the scenario engine; log lines above all).
    pub every: Vec<Box<dyn Detector>>,
    /// How often every detector is told the time ([`Detector::tick`]), events or not.
    pub tick: Duration,
}

impl Detectors {
    /// The daemon's set: the heuristic for telemetry, the scenarios for every event, a tick a second.
    pub fn new(heuristic: Heuristic, scenarios: ScenarioEngine) -> Self {
        Detectors {
            telemetry: vec![Box::new(heuristic)],
            every: vec![Box::new(scenarios)],
            tick: Duration::from_secs(1),
        }
    }

    /// Adds a detector that sees every event (the Falco detector).
    pub fn with(mut self, detector: impl Detector + 'static) -> Self {
        self.every.push(Box::new(detector));
        self
    }

    /// What the `every` detectors dropped, together.
    fn state_counts(&self) -> StateCounts {
        self.every
            .iter()
            .map(|d| d.state_counts())
            .fold(StateCounts::default(), |a, b| StateCounts {
                expired: a.expired + b.expired,
                evicted: a.evicted + b.evicted,
            })
    }
}

/// Everything the stages need.
pub struct Stages {
    /// The detectors.
    pub detectors: Detectors,
    /// The investigator (shared with the API's one-off lookups).
    pub investigator: Arc<Investigator>,
    /// The policy.
    pub policy: ScenarioPolicy,
    /// The action ledger (actuators, allowlist, expiry).
    pub ledger: Arc<Ledger>,
    /// Who to tell.
    pub notifier: Box<dyn Notifier>,
    /// Where records and their audit entries go.
    pub recorder: Recorder,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Masks what the detector derives from an event as posted before it is stored or answered.
    pub redactor: Redactor,
}

/// The running stage tasks.
pub struct Running {
    pub(crate) tasks: Vec<(&'static str, JoinHandle<()>)>,
    pub(crate) close_intake: Arc<tokio::sync::Notify>,
}

impl Running {
    /// Closes the intake queue even while senders are still held (by connections that outlived the
    /// drain deadline): they then get a closed queue, and what is already queued still goes through.
    pub fn close_intake(&self) {
        self.close_intake.notify_one();
    }

    /// Waits until every stage has drained and ended.
    pub async fn join(self) {
        for (name, t) in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(evt = "stage_crashed", stage = name, error = %e);
            }
        }
    }
}

/// An alert on its way, with the id of the event a `/v1/defend` caller waits on (if any).
pub(crate) struct Pending<T> {
    pub(crate) item: T,
    /// The key of the caller's entry in [`Outcomes`].
    pub(crate) waiting: Option<EventId>,
    /// The token the next stage stores its record with (the caller waits for it).
    pub(crate) ack: Option<AckToken>,
}

/// A plan the act stage carried out, with its action records, once they are queued to the store
/// writer: what a responder reports back (see [`crate::links`]).
pub(crate) type Acted = (Plan, Vec<ActionRecord>, Option<Arc<AckGroup>>);

/// A plan for the act stage, with its notice key and, on a responder, the group its action records
/// are committed in (the bus message is acknowledged once they are).
pub(crate) type ToAct = (Plan, String, Option<Arc<AckGroup>>);

/// The task kind of each running stage (`sentinel_tasks_active{kind="pipeline_stage"}` is 5 while the
/// pipeline runs).
pub const STAGE_TASK: &str = "pipeline_stage";
/// The task kind of one alert's investigation.
pub const INVESTIGATION_TASK: &str = "investigation";
/// The task kind of one batch of plans applied by the ledger (their actions, records and notices).
pub const ACTION_BATCH_TASK: &str = "action_batch";
/// The task kind of one notice being sent.
pub const NOTICE_TASK: &str = "notice";
/// How many stages run ([`STAGE_TASK`] tasks while the pipeline is up).
pub const STAGES: u64 = 5;

/// Starts the stages; returns the intake queue's sender and the running tasks.
pub fn start(stages: Stages, capacity: usize) -> (mpsc::Sender<Submission>, Running) {
    let cap = capacity.max(1);
    let (intake_tx, intake_rx) = mpsc::channel::<Submission>(cap);
    let (alert_tx, alert_rx) = mpsc::channel::<Pending<Alert>>(cap);
    let (inv_tx, inv_rx) = mpsc::channel::<Pending<Investigation>>(cap);
    // Each plan travels with its notice key (the alert's scenario, else its detector).
    let (plan_tx, plan_rx) = mpsc::channel::<ToAct>(cap);
    let (notice_tx, notice_rx) = mpsc::channel::<Notice>(cap);
    let Stages {
        detectors,
        investigator,
        policy,
        ledger,
        notifier,
        recorder,
        metrics,
        redactor,
    } = stages;
    metrics.register_queue("intake", &intake_tx);
    metrics.register_queue("alerts", &alert_tx);
    metrics.register_queue("investigations", &inv_tx);
    metrics.register_queue("plans", &plan_tx);
    metrics.register_queue("notices", &notice_tx);
    let outcomes = Arc::new(Outcomes::default());
    let close_intake = Arc::new(tokio::sync::Notify::new());
    // Each stage counts as one `pipeline_stage` task while it runs (five while the pipeline is up).
    let tracker = metrics.tasks.clone();
    let tasks = vec![
        (
            "detect",
            tracker.spawn(
                STAGE_TASK,
                detect(
                    detectors,
                    redactor,
                    Intake {
                        rx: intake_rx,
                        close: Arc::clone(&close_intake),
                        closed: false,
                    },
                    alert_tx,
                    Arc::clone(&outcomes),
                    recorder.clone(),
                    metrics.clone(),
                ),
            ),
        ),
        (
            "investigate",
            tracker.spawn(
                STAGE_TASK,
                investigate(
                    investigator,
                    alert_rx,
                    inv_tx,
                    recorder.clone(),
                    metrics.clone(),
                ),
            ),
        ),
        (
            "decide",
            tracker.spawn(
                STAGE_TASK,
                decide(
                    policy,
                    inv_rx,
                    plan_tx,
                    outcomes,
                    recorder.clone(),
                    metrics.clone(),
                ),
            ),
        ),
        (
            "act",
            tracker.spawn(
                STAGE_TASK,
                act(
                    ledger,
                    plan_rx,
                    notice_tx,
                    None,
                    recorder.clone(),
                    metrics.clone(),
                ),
            ),
        ),
        (
            "notify",
            tracker.spawn(STAGE_TASK, notify(notifier, notice_rx, recorder, metrics)),
        ),
    ];
    (
        intake_tx,
        Running {
            tasks,
            close_intake,
        },
    )
}

/// The intake queue's receiving end, which can be closed from outside.
pub(crate) struct Intake {
    pub(crate) rx: mpsc::Receiver<Submission>,
    pub(crate) close: Arc<tokio::sync::Notify>,
    pub(crate) closed: bool,
}

impl Intake {
    /// The next submission; `None` once every sender is gone, or the queue was closed and drained.
    async fn recv(&mut self) -> Option<Submission> {
        loop {
            if self.closed {
                return self.rx.recv().await;
            }
            tokio::select! {
                sub = self.rx.recv() => return sub,
                _ = self.close.notified() => {
                    self.rx.close();
                    self.closed = true;
                }
            }
        }
    }
}

/// A further token of the same request, when there is one.
fn sibling(ack: &Option<AckToken>) -> Option<AckToken> {
    ack.as_ref().map(AckToken::sibling)
}

/// Masks anything quoted from the event as posted in a reason's detail.
fn redact_reasons(r: &Redactor, reasons: &mut [Reason]) {
    for reason in reasons {
        if let std::borrow::Cow::Owned(d) = r.redact_text(&reason.detail) {
            reason.detail = d;
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn detect(
    mut detectors: Detectors,
    redactor: Redactor,
    mut rx: Intake,
    out: mpsc::Sender<Pending<Alert>>,
    outcomes: Arc<Outcomes>,
    rec: Recorder,
    m: Arc<Metrics>,
) {
    let mut found: Vec<Alert> = Vec::new();
    let mut seen: u64 = 0;
    let mut ticker = tokio::time::interval(detectors.tick.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sub = tokio::select! {
            sub = rx.recv() => match sub {
                Some(sub) => sub,
                None => return,
            },
            _ = ticker.tick() => {
                // Time passes for every detector, events or not (windows run out, state is freed).
                let now = Timestamp::now();
                for d in detectors.telemetry.iter_mut().chain(detectors.every.iter_mut()) {
                    d.tick(now, &mut found);
                }
                let st = detectors.state_counts();
                m.scenario_keys_expired.set(st.expired);
                m.scenario_keys_evicted.set(st.evicted);
                let pending: Vec<Pending<Alert>> = found
                    .drain(..)
                    .map(|alert| {
                        m.by_scenario.add("alerts_by_scenario", &alert.scenario, 1);
                        Pending { item: alert, waiting: None, ack: None }
                    })
                    .collect();
                if !raise(pending, None, &out, &rec, &m).await {
                    return;
                }
                continue;
            }
        };
        let Submission {
            event,
            telemetry,
            reply,
            ack,
        } = sub;
        // Telemetry from the API (marked so, whatever its `source` says) is scored by the telemetry
        // detectors and answered; every event goes through the others. A telemetry detector scores
        // the event as posted, so an attack under a secret-looking key is seen; only the redacted
        // event is stored and alerts are built from it (their evidence), with the reasons redacted.
        let _latency = m.stage_timer(Stage::Detect);
        let _span = m.otel.stage_span(&event.trace_id, "detect");
        let mut pending: Vec<Pending<Alert>> = Vec::new();
        // The alert the answer promises is stored with this token; the next stages get a sibling.
        let mut alert_ack: Option<AckToken> = None;
        if telemetry.is_some() || reply.is_some() {
            let raw = telemetry.and_then(|t| t.raw);
            let seen_as_posted = raw.as_deref().unwrap_or(&event);
            let mut answer: Option<(Scored, Option<Alert>)> = None;
            for d in &mut detectors.telemetry {
                let scored = d.assess(seen_as_posted, &event, &mut found);
                let mut alerts = found.drain(..);
                if let (Some(scored), None) = (scored, &answer) {
                    answer = Some((scored, alerts.next()));
                }
                for mut alert in alerts {
                    redact_reasons(&redactor, &mut alert.reasons);
                    pending.push(Pending {
                        item: alert,
                        waiting: None,
                        ack: None,
                    });
                }
            }
            drop(raw);
            let (mut scored, alert) = answer.unwrap_or_else(|| {
                (
                    Scored {
                        score: 0,
                        scenario: "none".into(),
                        reasons: Vec::new(),
                    },
                    None,
                )
            });
            redact_reasons(&redactor, &mut scored.reasons);
            let outcome = Outcome {
                trace_id: event.trace_id.clone(),
                event_id: event.id,
                score: scored.score,
                severity: Severity::from_score(scored.score),
                alerted: false,
                scenario: scored.scenario,
                reasons: scored.reasons,
                alert_id: None,
                risk_score: None,
                confidence: None,
                uncertainty: Vec::new(),
                plan: None,
            };
            match (alert, reply) {
                (Some(mut alert), Some(tx)) => {
                    redact_reasons(&redactor, &mut alert.reasons);
                    // The caller's answer waits under the event's id for the plan.
                    outcomes.wait(
                        event.id,
                        tx,
                        Outcome {
                            alerted: true,
                            alert_id: Some(alert.id),
                            ..outcome
                        },
                    );
                    // Only a waiting caller's records are promised.
                    alert_ack = sibling(&ack);
                    pending.insert(
                        0,
                        Pending {
                            item: alert,
                            waiting: Some(event.id),
                            ack: sibling(&ack),
                        },
                    );
                }
                (Some(mut alert), None) => {
                    redact_reasons(&redactor, &mut alert.reasons);
                    pending.insert(
                        0,
                        Pending {
                            item: alert,
                            waiting: None,
                            ack: None,
                        },
                    );
                }
                (None, Some(tx)) => {
                    let _ = tx.send(outcome);
                }
                (None, None) => {}
            }
        }
        for d in &mut detectors.every {
            d.observe(&event, &mut found);
        }
        seen += 1;
        if seen.is_multiple_of(1024) || !found.is_empty() {
            let st = detectors.state_counts();
            m.scenario_keys_expired.set(st.expired);
            m.scenario_keys_evicted.set(st.evicted);
        }
        for mut alert in found.drain(..) {
            m.by_scenario.add("alerts_by_scenario", &alert.scenario, 1);
            // A scenario alert continues the trace of the event that tipped it over.
            alert.trace_id = event.trace_id.clone();
            for e in &mut alert.evidence {
                e.trace_id = event.trace_id.clone();
            }
            pending.push(Pending {
                item: alert,
                waiting: None,
                ack: None,
            });
        }
        rec.record(event, ack).await;
        if !raise(pending, alert_ack, &out, &rec, &m).await {
            return;
        }
    }
}

/// Logs, records and hands on alerts; the one a caller waits on is stored with `alert_ack`. False
/// when the investigate stage is gone.
async fn raise(
    pending: Vec<Pending<Alert>>,
    mut alert_ack: Option<AckToken>,
    out: &mpsc::Sender<Pending<Alert>>,
    rec: &Recorder,
    m: &Metrics,
) -> bool {
    for p in pending {
        let alert = &p.item;
        m.alerts_raised.inc();
        let _span = tracing::info_span!("alert", trace = %alert.trace_id).entered();
        tracing::info!(
            evt = "alert_raised",
            alert = %alert.id,
            detector = %alert.detector,
            scenario = %alert.scenario,
            severity = %alert.severity,
            score = alert.score,
            subject = %alert.subject,
        );
        drop(_span);
        let ack = if p.waiting.is_some() {
            alert_ack.take()
        } else {
            None
        };
        rec.record(alert, ack).await;
        if out.send(p).await.is_err() {
            return false;
        }
    }
    true
}

/// Runs up to [`Investigator::concurrency`] investigations at once, each in its own task (so one that
/// waits on slow providers does not hold up the others, nor stalls while this stage waits to hand on),
/// and hands them on in the order their alerts arrived. No alert is taken from the queue while that
/// many are in flight (finished or not, until handed on), so pressure still travels back to detect.
/// When the alert queue closes, everything in flight is finished and handed on before the stage ends.
pub(crate) async fn investigate(
    inv: Arc<Investigator>,
    mut rx: mpsc::Receiver<Pending<Alert>>,
    out: mpsc::Sender<Pending<Investigation>>,
    rec: Recorder,
    m: Arc<Metrics>,
) {
    type InFlight = (JoinHandle<Investigation>, Option<EventId>, Option<AckToken>);
    let limit = inv.concurrency().max(1);
    let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
    let mut open = true;
    loop {
        let room = in_flight.len() < limit;
        tokio::select! {
            // Handing on first keeps the oldest moving; a new alert is taken only when there is room.
            biased;
            done = async {
                match in_flight.front_mut() {
                    Some((task, ..)) => task.await,
                    None => std::future::pending().await,
                }
            }, if !in_flight.is_empty() => {
                let Some((_, waiting, ack)) = in_flight.pop_front() else {
                    continue;
                };
                let i = match done {
                    Ok(i) => i,
                    Err(e) => {
                        // `investigate` never fails; a task can only end this way by a bug. The
                        // caller's token goes unsettled-and-dropped, which fails its group.
                        tracing::error!(evt = "investigation_crashed", error = %e);
                        continue;
                    }
                };
                m.investigations.inc();
                let next = sibling(&ack);
                rec.record(&i, ack).await;
                if out
                    .send(Pending {
                        item: i,
                        waiting,
                        ack: next,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            alert = rx.recv(), if open && room => match alert {
                Some(Pending {
                    item,
                    waiting,
                    ack,
                }) => {
                    let inv = Arc::clone(&inv);
                    let m = Arc::clone(&m);
                    let task = m.tasks.clone().spawn(INVESTIGATION_TASK, async move {
                        let _latency = m.stage_timer(Stage::Investigate);
                        let _span = m.otel.stage_span(&item.trace_id, "investigate");
                        inv.investigate(item).await
                    });
                    in_flight.push_back((task, waiting, ack));
                }
                None => open = false,
            },
            else => break,
        }
    }
}

pub(crate) async fn decide(
    policy: ScenarioPolicy,
    mut rx: mpsc::Receiver<Pending<Investigation>>,
    out: mpsc::Sender<ToAct>,
    outcomes: Arc<Outcomes>,
    rec: Recorder,
    m: Arc<Metrics>,
) {
    while let Some(Pending {
        item: inv,
        waiting,
        ack,
    }) = rx.recv().await
    {
        let _latency = m.stage_timer(Stage::Decide);
        let _span = m.otel.stage_span(&inv.alert.trace_id, "decide");
        let plan = policy.decide(&inv);
        m.plans_decided.inc();
        rec.record(&plan, ack).await;
        // The plan's token was made before this answer is sent: the caller's wait covers it.
        if let Some(id) = waiting {
            outcomes.answer(id, &inv, &plan);
        }
        if out
            .send((plan, notice_key(&inv.alert), None))
            .await
            .is_err()
        {
            break;
        }
    }
}

/// The de-duplication key of an alert's notice: its scenario (so a wave of one scenario from many
/// addresses folds into one message), else its detector.
fn notice_key(alert: &Alert) -> String {
    match alert.scenario.as_str() {
        "" | "none" => alert.detector.clone(),
        s => s.to_owned(),
    }
}

/// Applies queued plans in batches. With `acted` (a responder), each plan and its records are handed
/// there once the records are queued to the store writer; the stage ends when that receiver is gone.
pub(crate) async fn act(
    ledger: Arc<Ledger>,
    mut rx: mpsc::Receiver<ToAct>,
    out: mpsc::Sender<Notice>,
    acted: Option<mpsc::Sender<Acted>>,
    rec: Recorder,
    m: Arc<Metrics>,
) {
    // Plans queued together are applied together: one nftables transaction for all their blocks.
    let mut batch: Vec<ToAct> = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let started = std::time::Instant::now();
        let _task = m.tasks.track(ACTION_BATCH_TASK);
        let mut plans = Vec::with_capacity(batch.len());
        let mut keys = Vec::with_capacity(batch.len());
        let mut groups = Vec::with_capacity(batch.len());
        for (p, k, g) in batch.drain(..) {
            plans.push(p);
            keys.push(k);
            groups.push(g);
        }
        // One span per plan, from the batch's start to the plan's notice handed on.
        let spans: Vec<_> = plans
            .iter()
            .map(|p| m.otel.stage_span(&p.trace_id, "act"))
            .collect();
        let all = ledger.execute_many(&plans).await;
        let each = plans.into_iter().zip(keys).zip(groups).zip(all).zip(spans);
        for ((((plan, key), group), records), span) in each {
            if !act_one(&plan, key, &records, group.as_ref(), &out, &rec, &m).await {
                return;
            }
            if let Some(acted) = &acted {
                if acted.send((plan, records, group)).await.is_err() {
                    return;
                }
            }
            drop(span);
            m.stage_latency(Stage::Act)
                .observe(started.elapsed().as_secs_f64());
        }
    }
}

/// Records, logs and notifies one plan's actions; false when the notify stage is gone.
async fn act_one(
    plan: &Plan,
    key: String,
    records: &[ActionRecord],
    group: Option<&Arc<AckGroup>>,
    out: &mpsc::Sender<Notice>,
    rec: &Recorder,
    m: &Metrics,
) -> bool {
    for (i, r) in records.iter().enumerate() {
        m.actions_recorded.inc();
        if matches!(r.state, ActionState::Refused | ActionState::Failed) {
            m.actions_refused.inc();
        }
        let _span = tracing::info_span!("action", trace = %r.trace_id).entered();
        tracing::info!(
            evt = "action_recorded",
            action = %r.id,
            kind = %r.spec.kind,
            subject = %r.spec.subject,
            mode = r.mode.as_str(),
            state = r.state.as_str(),
            error = r.error.as_deref().unwrap_or(""),
        );
        drop(_span);
        let token = group.map(|g| g.token(i as u64));
        rec.record((r, Change::Acted), token).await;
    }
    if plan.severity >= Severity::High || !plan.actions.is_empty() {
        let lines: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{} {} for {}s: {}",
                    r.spec.kind,
                    r.spec.subject,
                    r.spec.ttl_secs,
                    r.state.as_str()
                )
            })
            .collect();
        let notice = Notice {
            title: format!("{} alert: {}", plan.severity, plan.reason),
            severity: plan.severity,
            body: if lines.is_empty() {
                "no action".into()
            } else {
                lines.join("\n")
            },
            trace_id: plan.trace_id.clone(),
            kind: if records
                .iter()
                .any(|r| matches!(r.state, ActionState::Failed))
            {
                NoticeKind::ActionFailed
            } else if records.is_empty() {
                NoticeKind::Alert
            } else {
                NoticeKind::ActionApplied
            },
            key: Some(key),
        };
        if out.send(notice).await.is_err() {
            return false;
        }
    }
    true
}

pub(crate) async fn notify(
    n: Box<dyn Notifier>,
    mut rx: mpsc::Receiver<Notice>,
    rec: Recorder,
    m: Arc<Metrics>,
) {
    let mut burst: Vec<Notice> = Vec::with_capacity(NOTICE_BURST);
    while let Some(first) = rx.recv().await {
        let _task = m.tasks.track(NOTICE_TASK);
        let _latency = m.stage_timer(Stage::Notify);
        // What queued up behind the first goes in the same commit (an attack wave is a burst).
        burst.clear();
        burst.push(first);
        while burst.len() < NOTICE_BURST {
            match rx.try_recv() {
                Ok(next) => burst.push(next),
                Err(_) => break,
            }
        }
        let _spans: Vec<_> = burst
            .iter()
            .map(|n| m.otel.stage_span(&n.trace_id, "notify"))
            .collect();
        match n.notify_many(&burst).await {
            Ok(()) => {
                for notice in &burst {
                    m.notices_sent.inc();
                    rec.record(notice, None).await;
                }
            }
            Err(e) => {
                // Not accepted: each is logged whole, so what it said is not lost with it (at warn:
                // an error line would itself become a notice, and fail the same way).
                for notice in &burst {
                    tracing::warn!(
                        evt = "notice_failed",
                        trace = %notice.trace_id,
                        kind = %notice.kind,
                        severity = %notice.severity,
                        title = %notice.title,
                        body = %notice.body,
                        error = %e,
                    );
                }
            }
        }
    }
}

/// Notices handed to the notifier in one call at most.
const NOTICE_BURST: usize = 256;

/// Tells people through the structured log (other channels come with the notify crate).
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, n: &Notice) -> Result<(), sentinel_core::NotifyError> {
        tracing::warn!(
            evt = "notice",
            trace = %n.trace_id,
            severity = %n.severity,
            title = %n.title,
            body = %n.body,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::recorder::tests::trail;
    use sentinel_core::{AlertId, EnrichError, Enricher, Evidence, Subject, TraceId, Verdict};
    use sentinel_store::{AckGroup, Store, WriterOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Sleeps 300 ms less 10 ms per alert number (so later alerts finish first), counting how many
    /// lookups run at once.
    struct Slow {
        active: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        started: Arc<AtomicUsize>,
    }

    #[async_trait::async_trait]
    impl Enricher for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        async fn enrich(&self, _: &Subject, alert: &Alert) -> Result<Evidence, EnrichError> {
            self.started.fetch_add(1, Ordering::SeqCst);
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let n = u64::from(alert.score);
            tokio::time::sleep(Duration::from_millis(300 - 10 * n)).await;
            self.active.fetch_sub(1, Ordering::SeqCst);
            Ok(Evidence {
                provider: "slow".into(),
                verdict: Verdict::Unknown,
                score: None,
                details: serde_json::Value::Null,
            })
        }
    }

    fn alert(n: u8) -> Alert {
        Alert {
            id: AlertId::new(),
            ts: Timestamp::now(),
            detector: "heuristic".into(),
            scenario: "web_attack".into(),
            severity: Severity::Medium,
            score: n,
            confidence: 0.7,
            subject: Subject::Ip(format!("203.0.113.{}", n + 1).parse().unwrap()),
            reasons: vec![],
            evidence: vec![],
            trace_id: TraceId::new(),
        }
    }

    /// Twenty alerts through an investigate stage allowed 8 at once, with a 300 ms enricher: the
    /// lookups overlap 8 deep (so the stage takes about three rounds, not twenty), never deeper (the
    /// bound holds), investigations come out in the alerts' order although later ones finish first,
    /// each is stored with its caller's token, and closing the queue drains everything in flight.
    #[tokio::test]
    async fn investigations_overlap_up_to_the_limit_and_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions {
            flush_interval: Duration::from_millis(5),
            ..WriterOptions::default()
        });
        let metrics = Arc::new(Metrics::default());
        let t = trail(dir.path(), &writer, &metrics).await;
        let rec = Recorder::new(
            writer.clone(),
            Arc::new(t.audit.clone()),
            Arc::new(Redactor::new(Vec::<String>::new())),
            metrics.clone(),
        );
        let (active, most, started) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let inv = Investigator::new(
            vec![Box::new(Slow {
                active: active.clone(),
                most: most.clone(),
                started: started.clone(),
            })],
            Duration::from_secs(30),
        )
        .with_concurrency(8);
        let (alert_tx, alert_rx) = mpsc::channel(64);
        let (inv_tx, mut inv_rx) = mpsc::channel(64);
        let stage = tokio::spawn(investigate(
            Arc::new(inv),
            alert_rx,
            inv_tx,
            rec,
            metrics.clone(),
        ));

        let group = AckGroup::new();
        let mut sent = Vec::new();
        for n in 0..20u8 {
            let a = alert(n);
            sent.push(a.id);
            alert_tx
                .send(Pending {
                    item: a,
                    waiting: None,
                    ack: Some(group.token(u64::from(n))),
                })
                .await
                .unwrap();
        }
        drop(alert_tx);
        let mut got = Vec::new();
        while let Some(p) = inv_rx.recv().await {
            assert!(p.ack.is_some(), "the next stage's token travels on");
            got.push(p.item.alert.id);
        }
        stage.await.unwrap();
        assert_eq!(got, sent, "arrival order kept");
        assert_eq!(started.load(Ordering::SeqCst), 20);
        assert_eq!(most.load(Ordering::SeqCst), 8, "8 at once, never more");
        drop(writer);
        let summary = group.settled().await;
        // Every investigation is committed with its caller's token; the 20 failures are the decide
        // stage's tokens, which this test (standing in for that stage) drops unused.
        assert_eq!((summary.committed, summary.failed), (20, 20));
        t.finish().await;
        task.finish().await.unwrap();
    }
}
