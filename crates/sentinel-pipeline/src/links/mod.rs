//! The pipeline's stage boundaries over any [`Bus`]: the links that let the roles of [`crate::roles`]
//! run on different hosts, without changing what a stage does.
//!
//! Three topics cross the bus, each carrying one envelope kind of [`wire`]: `alerts` (detect →
//! investigate), `plans` (decide → act) and `decisions` (each responder's action records, reported
//! back). A publishing link takes a stage's output from its queue and publishes it; a consuming link
//! reads a topic as one consumer of a group and feeds the next stage's queue, exactly where the
//! in-process queue fed it before.
//!
//! **When a delivery is acknowledged.** Only once the work it started has been handed on for good:
//! - an alert (investigators) once the investigation and the plan decided from it are committed to
//!   the store (their commit acknowledgements, an [`AckGroup`], settled) *and* the bus took that
//!   plan on `plans`;
//! - a plan (responders) once the ledger carried it out and its action records are committed to
//!   the store (the report on `decisions` goes out first; if the bus refuses it, that is counted
//!   and logged, and the plan is still acknowledged: its actions are in place).
//!
//! Both roles mark a message done only once its records are committed: an investigator that dies
//! between committing and marking leaves an alert that the survivor investigates again (its first
//! investigation stays in the dead node's store); a responder that dies between applying and
//! committing applies the plan again on redelivery (the kernel keeps one rule).
//! A record that fails to commit (or takes longer than a minute) fails the message: it is
//! abandoned and redelivered. Then the idempotency key is marked done ([`Idempotency::finish`]) and
//! the delivery acknowledged, in that order. Delivery is at least once: a role that dies before the
//! acknowledgement leaves the message pending, and the bus hands it again (on Redis, to a live
//! consumer of the group after `claim_idle`, once the dead handler's claim lease ran out). What a
//! crash costs is one repetition: an alert investigated again (a second investigation record, and a
//! fresh plan), or a plan applied again on that host (the actuators hold one live action per
//! target, so the kernel holds one rule). A crash after the mark but before the acknowledgement
//! costs nothing: the redelivery finds the mark and is only acknowledged. Nothing acknowledged is
//! missing from the store that acknowledged it.
//!
//! A sensor's alert that the bus refuses (its local buffer full while Redis is away) is counted
//! ([`LinkCounts::publish_failed`]) and logged; it stays in the sensor's store, uninvestigated.
//!
//! **Scope.** A sensor sends its node with each alert. The investigator publishes a plan's network
//! actions (block, rate limit, honeypot redirect) as one global plan, which every responder
//! applies on its own host, and its host-local actions (isolating a container, quarantining a
//! file) as a plan scoped to that sensor's node ([`split_by_scope`]), which only that node's
//! responder applies; the others acknowledge it as skipped.
//!
//! **Idempotency.** Keys are alert ids (an investigator's, and a responder's, via the plan's
//! `alert_id`, with `@<host>` for a host-scoped part: [`plan_key`]): one alert yields one plan, and a plan decided again after an investigator crash has
//! a new plan id but the same alert, so keying on the alert keeps it from acting twice as well. A
//! message that fails (the plan could not be published) is abandoned, so its redelivery acts. A
//! malformed message is counted ([`LinkCounts::malformed`]), logged and acknowledged: it would fail
//! the same way every time. A message already handled is counted as a duplicate and acknowledged;
//! one another consumer holds is left pending for the bus to hand again.
//!
//! A read error the bus reports as permanent (it says retrying will not mend it, e.g. `WRONGTYPE`
//! when the stream's key was replaced by another type; a bus that is only away is waited out inside
//! the bus) is logged and counted every time, and the link reads again after a pause (200 ms,
//! doubled up to 30 s): a node whose process runs never silently stops consuming.
//!
//! **Bounds.** A consuming link keeps at most `max_in_flight` unacknowledged messages and waits on the
//! stage queue (pressure travels back to the bus, which keeps the rest); the notices of settled
//! messages are at most that many.
//!
//! The daemon will start these through `sentinel run --role sensor|investigator|responder`, a
//! `RedisBus` (with `RedisBus::deduper` as the [`Idempotency`]) when `bus: redis://…` is configured,
//! and the node name from the configuration; the all-in-one `sentinel run` keeps the in-process
//! queues of [`crate::stages::start`] and uses no link. This module parses no configuration.

pub mod collect;
pub mod seen;
pub mod wire;

pub use seen::{Claim, Idempotency, SeenSet};
pub use wire::{AlertMsg, DecisionMsg, InvestigationMsg, PlanMsg, WireError, WireMessage};

use crate::intake::Outcomes;
use crate::stages::{Acted, Pending, ToAct};
use sentinel_core::{
    ActionKind, ActionSpec, Alert, AlertId, Bus, BusError, BusRx, Delivery, Plan, Scope, Topic,
};
use sentinel_store::AckGroup;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Why a role could not start on the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Subscribing failed.
    #[error("cannot subscribe to `{topic}` as `{group}`: {source}")]
    Subscribe {
        /// The topic.
        topic: &'static str,
        /// The consumer group.
        group: String,
        /// What the bus said.
        source: BusError,
    },
}

/// What the links of one role counted.
#[derive(Debug, Default)]
pub struct LinkStats {
    received: AtomicU64,
    malformed: AtomicU64,
    skipped: AtomicU64,
    duplicates: AtomicU64,
    busy: AtomicU64,
    acked: AtomicU64,
    abandoned: AtomicU64,
    published: AtomicU64,
    publish_failed: AtomicU64,
    bus_errors: AtomicU64,
    poisoned: AtomicU64,
    forged: AtomicU64,
}

/// A snapshot of [`LinkStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Deliveries read from the bus.
    pub received: u64,
    /// Deliveries that could not be read (dead-lettered: counted, logged, acknowledged).
    pub malformed: u64,
    /// Plans for another host, acknowledged without acting.
    pub skipped: u64,
    /// Copies of messages already handled, acknowledged without acting.
    pub duplicates: u64,
    /// Copies another handler held, left pending.
    pub busy: u64,
    /// Deliveries acknowledged: handled and handed on, skipped, duplicate or malformed.
    pub acked: u64,
    /// Messages given up (their work failed), left pending for a redelivery.
    pub abandoned: u64,
    /// Messages the bus took.
    pub published: u64,
    /// Messages the bus refused.
    pub publish_failed: u64,
    /// Bus errors while reading, acknowledging or marking.
    pub bus_errors: u64,
    /// Messages delivered more than [`MAX_ATTEMPTS`] times (each time their handler died or gave
    /// up): logged with their content, marked done and acknowledged, so one message cannot stop a
    /// group.
    pub poisoned: u64,
    /// Messages refused for a missing or wrong signature (`fleet.secret`): logged, acknowledged,
    /// never acted on.
    pub forged: u64,
}

/// Settled messages marked and acknowledged together at most.
const SETTLE_BATCH: usize = 256;

/// Deliveries of one message after which it is given up ([`LinkCounts::poisoned`]).
pub const MAX_ATTEMPTS: u32 = 20;

impl LinkStats {
    /// The counts now.
    pub fn snapshot(&self) -> LinkCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkCounts {
            received: g(&self.received),
            malformed: g(&self.malformed),
            skipped: g(&self.skipped),
            duplicates: g(&self.duplicates),
            busy: g(&self.busy),
            acked: g(&self.acked),
            abandoned: g(&self.abandoned),
            published: g(&self.published),
            publish_failed: g(&self.publish_failed),
            bus_errors: g(&self.bus_errors),
            poisoned: g(&self.poisoned),
            forged: g(&self.forged),
        }
    }
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// The bus a role's links use: where to publish and subscribe, how to act once, what to count.
#[derive(Clone)]
pub struct BusLink {
    /// The bus (each role process has its own handle).
    pub bus: Arc<dyn Bus>,
    /// Act-once marks for this role's consumer groups.
    pub idempotency: Arc<dyn Idempotency>,
    /// The links' counters.
    pub stats: Arc<LinkStats>,
    /// Unacknowledged deliveries a consuming link holds at most.
    pub max_in_flight: usize,
    /// Signs what is published and checks what is read (`fleet.secret`); `None`: unsigned.
    pub sealer: Option<Arc<wire::Sealer>>,
}

/// Word from downstream that the work keyed `key` was handed on (`ok`) or failed.
#[derive(Debug)]
pub(crate) struct Settled {
    pub(crate) key: String,
    pub(crate) ok: bool,
}

/// What a consuming link does with a message it read.
pub(crate) enum Accept<U> {
    /// Hand `item` to the stage, keyed for idempotency.
    Take {
        key: String,
        item: U,
        /// Run when this consumer is the first to take `key` (the item goes to the stage).
        first: Option<Box<dyn FnOnce() + Send>>,
    },
    /// Not for this consumer (a plan for another host): acknowledge it only.
    Skip,
}

/// Publishes one message; counts and logs a refusal. True when the bus took it.
async fn publish<T: WireMessage>(link: &BusLink, m: &T) -> bool {
    let topic = Topic(T::TOPIC.to_owned());
    let sent = match wire::encode(m) {
        Ok(bytes) => link
            .bus
            .publish(&topic, wire::seal(link.sealer.as_deref(), T::TOPIC, bytes))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match sent {
        Ok(()) => {
            inc(&link.stats.published);
            true
        }
        Err(e) => {
            inc(&link.stats.publish_failed);
            tracing::error!(evt = "bus_publish_failed", topic = T::TOPIC, error = %e);
            false
        }
    }
}

/// Sensor: publishes every alert the detect stage raised (and recorded) on `alerts`. A `/v1/defend`
/// caller waiting on one is answered with what detection found: its investigation and plan are made
/// on another node.
pub(crate) async fn publish_alerts(
    mut rx: mpsc::Receiver<Pending<Alert>>,
    outcomes: Arc<Outcomes>,
    node: Option<String>,
    link: BusLink,
) {
    while let Some(Pending { item, waiting, ack }) = rx.recv().await {
        if let Some(event) = waiting {
            outcomes.detected(event);
        }
        // The investigation this token would have covered is stored elsewhere.
        if let Some(token) = ack {
            token.withdraw();
        }
        let msg = AlertMsg {
            alert: item,
            node: node.clone(),
        };
        publish(&link, &msg).await;
    }
}

/// Investigator: publishes a copy of every investigation (recorded by the investigate stage) on
/// `investigations`, for the API nodes, and hands it on to the decide stage. A refusal is counted
/// and logged; the investigation goes on to be decided either way.
pub(crate) async fn publish_investigations(
    mut rx: mpsc::Receiver<Pending<sentinel_core::Investigation>>,
    out: mpsc::Sender<Pending<sentinel_core::Investigation>>,
    link: BusLink,
) {
    while let Some(p) = rx.recv().await {
        let msg = InvestigationMsg {
            investigation: p.item.clone(),
        };
        publish(&link, &msg).await;
        if out.send(p).await.is_err() {
            break;
        }
    }
}

/// Investigator: publishes every plan the decide stage recorded on `plans`, then tells the alerts'
/// link that the alert behind it is handed on (or, when the bus refused the plan, that it failed).
pub(crate) async fn publish_plans(
    mut rx: mpsc::Receiver<ToAct>,
    origins: Origins,
    settled: mpsc::UnboundedSender<Settled>,
    link: BusLink,
) {
    while let Some((plan, notice_key, _)) = rx.recv().await {
        let key = plan.alert_id.to_string();
        let (origin, group) = origins.take(plan.alert_id);
        let mut ok = true;
        for plan in split_by_scope(plan, origin) {
            let msg = PlanMsg {
                plan,
                notice_key: notice_key.clone(),
            };
            ok &= publish(&link, &msg).await;
        }
        settle_when_committed(group, key, ok, &settled);
    }
}

/// The first pause before reading again after the bus refused a read; doubled after each refusal
/// in a row, up to [`READ_RETRY_MAX`].
const READ_RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(200);
/// The longest pause between two reads the bus refused.
const READ_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest wait for a message's records to be committed before it counts as failed (and is
/// left for a redelivery).
const COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Tells the consuming link `key` is settled once `group`'s records are committed (at once without
/// a group): ok only when the work was handed on and every record was stored.
pub(crate) fn settle_when_committed(
    group: Option<Arc<AckGroup>>,
    key: String,
    ok: bool,
    settled: &mpsc::UnboundedSender<Settled>,
) {
    let Some(group) = group else {
        let _ = settled.send(Settled { key, ok });
        return;
    };
    let settled = settled.clone();
    tokio::spawn(async move {
        let stored = match tokio::time::timeout(COMMIT_WAIT, group.settled()).await {
            Ok(sum) if sum.failed == 0 => true,
            Ok(sum) => {
                tracing::warn!(evt = "bus_commit_failed", key = %key, failed = sum.failed, errors = ?group.failures());
                false
            }
            Err(_) => {
                tracing::warn!(evt = "bus_commit_timeout", key = %key, wait_ms = COMMIT_WAIT.as_millis() as u64);
                false
            }
        };
        let _ = settled.send(Settled {
            key,
            ok: ok && stored,
        });
    });
}

/// Whether an action of `kind` acts on one host's own things (its containers, its files) rather
/// than on traffic every host sees.
pub fn host_local(kind: ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::IsolateContainer | ActionKind::QuarantineFile
    )
}

/// A plan as it goes on the bus: its network actions for every responder (global), its host-local
/// actions ([`host_local`]) for the responder of the node whose sensor raised the alert. Without
/// that node (an alert from an older sensor) the whole plan stays global. A plan with no action is
/// published as it is (the responders record that nothing was asked).
pub fn split_by_scope(plan: Plan, origin: Option<String>) -> Vec<Plan> {
    let Some(node) = origin else {
        return vec![plan];
    };
    let (local, network): (Vec<ActionSpec>, Vec<ActionSpec>) = plan
        .actions
        .iter()
        .cloned()
        .partition(|a| host_local(a.kind));
    if local.is_empty() {
        return vec![plan];
    }
    let mut out = Vec::with_capacity(2);
    if !network.is_empty() {
        out.push(Plan {
            actions: network,
            ..plan.clone()
        });
    }
    out.push(Plan {
        actions: local,
        scope: Scope::Host(node),
        ..plan
    });
    out
}

/// A responder's idempotency key of a plan: its alert (a plan decided again after an investigator
/// crash has a new id, the same alert), and the host of a host-scoped part.
pub fn plan_key(plan: &Plan) -> String {
    match &plan.scope {
        Scope::Global => plan.alert_id.to_string(),
        Scope::Host(h) => format!("{}@{h}", plan.alert_id),
    }
}

const MAX_ORIGINS: usize = 65_536;

/// The node each alert in an investigator's hands came from, from the alerts' link to the plans'
/// (bounded by what the link holds in flight: each entry is taken when its plan is published).
#[derive(Clone, Default)]
pub(crate) struct Origins(Arc<std::sync::Mutex<HashMap<AlertId, Origin>>>);

type Origin = (Option<String>, Arc<AckGroup>);

impl Origins {
    pub(crate) fn note(&self, alert: AlertId, node: Option<String>, group: Arc<AckGroup>) {
        if let Ok(mut m) = self.0.lock() {
            // An alert whose plan never came (its investigation failed) leaves its entry: bounded.
            if m.len() >= MAX_ORIGINS {
                tracing::warn!(evt = "alert_origins_reset", entries = m.len());
                m.clear();
            }
            m.insert(alert, (node, group));
        }
    }

    /// The alert's origin node and commit group (none for an alert this link did not note).
    fn take(&self, alert: AlertId) -> (Option<String>, Option<Arc<AckGroup>>) {
        match self.0.lock().ok().and_then(|mut m| m.remove(&alert)) {
            Some((node, group)) => (node, Some(group)),
            None => (None, None),
        }
    }
}

/// Publishes what a responder's action records became later (reverted on expiry), so the API
/// nodes' copies follow.
#[derive(Clone)]
pub struct Reporter {
    link: BusLink,
    node: String,
}

impl Reporter {
    /// Reports for `node` on `link`.
    pub fn new(link: BusLink, node: String) -> Self {
        Reporter { link, node }
    }

    /// Reports one record that belongs to a plan (others are this host's own: not reported).
    pub async fn report(&self, r: &sentinel_core::ActionRecord) {
        if let sentinel_core::Origin::Plan {
            plan_id, alert_id, ..
        } = &r.origin
        {
            let msg = DecisionMsg {
                node: self.node.clone(),
                plan_id: *plan_id,
                alert_id: *alert_id,
                records: vec![r.clone()],
            };
            publish(&self.link, &msg).await;
        }
    }
}

/// Responder: reports each plan's action records on `decisions`, and tells the plans' link the plan
/// is handed on (its records are queued to the store whether or not the report went out).
pub(crate) async fn publish_decisions(
    mut rx: mpsc::Receiver<Acted>,
    node: String,
    settled: mpsc::UnboundedSender<Settled>,
    link: BusLink,
) {
    while let Some((plan, records, group)) = rx.recv().await {
        // The key the plans' link took it under (a host-scoped part has its own).
        let key = plan_key(&plan);
        let report = DecisionMsg {
            node: node.clone(),
            plan_id: plan.id,
            alert_id: plan.alert_id,
            records,
        };
        publish(&link, &report).await;
        settle_when_committed(group, key, true, &settled);
    }
}

/// A consuming link: one consumer of `group` on `T`'s topic, feeding `into`.
///
/// It holds two handles of the group: one only reads (in a task of its own, so a read in progress is
/// never cancelled: cancelling a blocking Redis read loses its reply until the entry is reclaimed),
/// the other only acknowledges (an acknowledgement is the group's, by message id), so that what
/// downstream settles is acknowledged at once, whether or not a read is waiting.
pub(crate) struct Consumer<T, U> {
    reader: Option<Box<dyn BusRx>>,
    acker: Box<dyn BusRx>,
    pub(crate) group: String,
    pub(crate) link: BusLink,
    pub(crate) accept: Box<dyn Fn(T) -> Accept<U> + Send>,
}

impl<T: WireMessage, U: Send + 'static> Consumer<T, U> {
    /// Subscribes as one consumer of `group` on `T`'s topic.
    pub(crate) async fn subscribe(
        link: &BusLink,
        group: &str,
        accept: Box<dyn Fn(T) -> Accept<U> + Send>,
    ) -> Result<Self, LinkError> {
        let topic = Topic(T::TOPIC.to_owned());
        let failed = |source| LinkError::Subscribe {
            topic: T::TOPIC,
            group: group.to_owned(),
            source,
        };
        let reader = link.bus.subscribe(&topic, group).await.map_err(failed)?;
        let acker = link.bus.subscribe(&topic, group).await.map_err(failed)?;
        Ok(Consumer {
            reader: Some(reader),
            acker,
            group: group.to_owned(),
            link: link.clone(),
            accept,
        })
    }

    /// Reads until `stop` is set or the bus closes, then stops feeding the stage (which drains) and
    /// keeps acknowledging what downstream settles until downstream has ended.
    pub(crate) async fn run(
        mut self,
        into: mpsc::Sender<U>,
        mut settled: mpsc::UnboundedReceiver<Settled>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (delivered, mut deliveries) = mpsc::channel::<Result<Delivery, BusError>>(1);
        let reader = self.reader.take().map(|mut rx| {
            tokio::spawn(async move {
                let mut wait = READ_RETRY_MIN;
                while let Some(d) = rx.recv().await {
                    let failed = d.is_err();
                    if delivered.send(d).await.is_err() {
                        break;
                    }
                    // A refusal is reported (above) and read again after a growing pause: the
                    // link never stops reading while its node runs.
                    if failed {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(READ_RETRY_MAX);
                    } else {
                        wait = READ_RETRY_MIN;
                    }
                }
            })
        });
        let mut into = Some(into);
        // Idempotency key → delivery id, for messages handed to the stage and not settled yet.
        let mut in_flight: HashMap<String, String> = HashMap::new();
        let limit = self.link.max_in_flight.max(1);
        loop {
            let reading = into.is_some();
            let room = in_flight.len() < limit;
            tokio::select! {
                biased;
                s = settled.recv() => match s {
                    Some(s) => {
                        // Whatever else settled meanwhile goes with it: one mark and one
                        // acknowledgement round trip for the lot.
                        let mut batch = vec![s];
                        while batch.len() < SETTLE_BATCH {
                            match settled.try_recv() {
                                Ok(more) => batch.push(more),
                                Err(_) => break,
                            }
                        }
                        self.settle(batch, &mut in_flight).await;
                    }
                    // Every downstream stage has ended.
                    None => break,
                },
                _ = async { stop.wait_for(|s| *s).await.is_ok() }, if reading => into = None,
                d = deliveries.recv(), if reading && room => match d {
                    Some(Ok(d)) => {
                        if let Some(tx) = &into {
                            if !self.handle(d, tx, &mut in_flight).await {
                                into = None;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        // Counted and logged every time; the reader tries again after a pause.
                        inc(&self.link.stats.bus_errors);
                        tracing::error!(evt = "bus_read_failed", topic = T::TOPIC, group = %self.group, error = %e, "reading again after a pause");
                    }
                    None => into = None,
                },
            }
        }
        // A read still waiting is cut short: what it would have read stays pending in the group.
        if let Some(reader) = reader {
            reader.abort();
        }
    }

    /// Takes one delivery; false when the stage is gone.
    async fn handle(
        &mut self,
        d: Delivery,
        into: &mpsc::Sender<U>,
        in_flight: &mut HashMap<String, String>,
    ) -> bool {
        let stats = Arc::clone(&self.link.stats);
        inc(&stats.received);
        let msg = match wire::unseal(self.link.sealer.as_deref(), T::TOPIC, &d.payload)
            .and_then(wire::decode::<T>)
        {
            Ok(m) => m,
            Err(e @ WireError::Forged(_)) => {
                inc(&stats.forged);
                tracing::error!(evt = "bus_message_forged", topic = T::TOPIC, group = %self.group, id = %d.id, error = %e);
                self.ack(&d.id).await;
                return true;
            }
            Err(e) => {
                inc(&stats.malformed);
                tracing::warn!(evt = "bus_message_malformed", topic = T::TOPIC, group = %self.group, id = %d.id, error = %e);
                self.ack(&d.id).await;
                return true;
            }
        };
        let (key, item, first) = match (self.accept)(msg) {
            Accept::Take { key, item, first } => (key, item, first),
            Accept::Skip => {
                inc(&stats.skipped);
                self.ack(&d.id).await;
                return true;
            }
        };
        match self.link.idempotency.begin(&self.group, &key).await {
            Ok(Claim::First) if d.attempts > MAX_ATTEMPTS => {
                inc(&stats.poisoned);
                let head =
                    String::from_utf8_lossy(&d.payload[..d.payload.len().min(512)]).into_owned();
                tracing::error!(evt = "bus_message_poisoned", topic = T::TOPIC, group = %self.group, id = %d.id, key = %key, attempts = d.attempts, message = %head, "delivered too many times: given up");
                if let Err(e) = self.link.idempotency.finish(&self.group, &key).await {
                    inc(&stats.bus_errors);
                    tracing::warn!(evt = "bus_mark_failed", group = %self.group, key = %key, error = %e);
                }
                self.ack(&d.id).await;
                true
            }
            Ok(Claim::First) => {
                if let Some(f) = first {
                    f();
                }
                in_flight.insert(key, d.id);
                into.send(item).await.is_ok()
            }
            Ok(Claim::Done) => {
                inc(&stats.duplicates);
                tracing::info!(evt = "bus_duplicate", topic = T::TOPIC, group = %self.group, key = %key, attempts = d.attempts);
                self.ack(&d.id).await;
                true
            }
            Ok(Claim::Busy) => {
                // Another handler holds it: left pending, the bus hands it again later.
                inc(&stats.busy);
                true
            }
            Err(e) => {
                inc(&stats.bus_errors);
                tracing::warn!(evt = "bus_claim_failed", topic = T::TOPIC, group = %self.group, key = %key, error = %e);
                true
            }
        }
    }

    /// Marks done and acknowledges (or abandons) settled messages of this link: the marks in one
    /// round trip, then the acknowledgements in one.
    async fn settle(&mut self, batch: Vec<Settled>, in_flight: &mut HashMap<String, String>) {
        let idem = Arc::clone(&self.link.idempotency);
        let stats = Arc::clone(&self.link.stats);
        let mut to_mark: Vec<String> = Vec::new();
        let mut to_ack: Vec<String> = Vec::new();
        for s in batch {
            let Some(id) = in_flight.remove(&s.key) else {
                continue;
            };
            if !s.ok {
                inc(&stats.abandoned);
                if let Err(e) = idem.abandon(&self.group, &s.key).await {
                    inc(&stats.bus_errors);
                    tracing::warn!(evt = "bus_abandon_failed", group = %self.group, key = %s.key, error = %e);
                }
                continue;
            }
            to_mark.push(s.key);
            to_ack.push(id);
        }
        if let Err(e) = idem.finish_many(&self.group, &to_mark).await {
            // The deduper remembers them as handled: copies Redis hands again are only
            // acknowledged.
            inc(&stats.bus_errors);
            tracing::warn!(evt = "bus_mark_failed", group = %self.group, keys = to_mark.len(), error = %e);
        }
        if to_ack.is_empty() {
            return;
        }
        match self.acker.ack_many(&to_ack).await {
            Ok(()) => {
                stats
                    .acked
                    .fetch_add(to_ack.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                inc(&stats.bus_errors);
                tracing::warn!(evt = "bus_ack_failed", topic = T::TOPIC, group = %self.group, messages = to_ack.len(), error = %e);
            }
        }
    }

    async fn ack(&mut self, id: &str) {
        match self.acker.ack(id).await {
            Ok(()) => inc(&self.link.stats.acked),
            Err(e) => {
                inc(&self.link.stats.bus_errors);
                tracing::warn!(evt = "bus_ack_failed", topic = T::TOPIC, group = %self.group, id = %id, error = %e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn plan(kinds: &[ActionKind]) -> Plan {
        let mut p: Plan = serde_json::from_value(json!({
            "id": sentinel_core::PlanId::new(), "ts": sentinel_core::Timestamp::now(),
            "alert_id": AlertId::new(), "investigation_id": sentinel_core::InvestigationId::new(),
            "mode": "enforce", "severity": "high", "risk_band": "high", "confidence_band": "high",
            "actions": [], "reason": "test", "trace_id": sentinel_core::TraceId::new(),
        }))
        .unwrap();
        p.actions = kinds
            .iter()
            .map(|k| {
                let subject = match k {
                    ActionKind::IsolateContainer => json!({"type": "container", "value": "web"}),
                    ActionKind::QuarantineFile => json!({"type": "file", "value": "/srv/x.php"}),
                    _ => json!({"type": "ip", "value": "203.0.113.9"}),
                };
                serde_json::from_value::<ActionSpec>(
                    json!({"kind": k.to_string(), "subject": subject, "ttl_secs": 60}),
                )
                .unwrap()
            })
            .collect();
        p
    }

    /// A responder settles a host-scoped plan under the key its plans' link took it with, so that
    /// it is marked done and acknowledged (not left in flight and redelivered).
    #[tokio::test]
    async fn a_responder_settles_each_part_under_its_own_key() {
        let link = BusLink {
            bus: Arc::new(crate::bus::MemoryBus::new(16)),
            idempotency: Arc::new(SeenSet::new(16)),
            stats: Arc::new(LinkStats::default()),
            max_in_flight: 16,
            sealer: None,
        };
        let parts = split_by_scope(
            plan(&[ActionKind::BlockIp, ActionKind::IsolateContainer]),
            Some("web-1".into()),
        );
        let (tx, rx) = mpsc::channel(4);
        let (settled_tx, mut settled) = mpsc::unbounded_channel();
        for p in &parts {
            tx.send((p.clone(), Vec::new(), None)).await.unwrap();
        }
        drop(tx);
        publish_decisions(rx, "web-1".into(), settled_tx, link).await;
        for p in &parts {
            let s = settled.recv().await.unwrap();
            assert_eq!(s.key, plan_key(p));
            assert!(s.ok);
        }
    }

    #[test]
    fn host_local_actions_go_to_the_sensor_host_and_network_actions_to_all() {
        let p = plan(&[ActionKind::BlockIp, ActionKind::IsolateContainer]);
        let parts = split_by_scope(p.clone(), Some("web-1".into()));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].scope, Scope::Global);
        assert_eq!(parts[0].actions[0].kind, ActionKind::BlockIp);
        assert_eq!(parts[1].scope, Scope::Host("web-1".into()));
        assert_eq!(parts[1].actions[0].kind, ActionKind::IsolateContainer);
        assert_eq!(plan_key(&parts[0]), p.alert_id.to_string());
        assert_eq!(plan_key(&parts[1]), format!("{}@web-1", p.alert_id));
        // Only host-local: one host plan. No origin: unchanged and global.
        let q = plan(&[ActionKind::QuarantineFile]);
        let parts = split_by_scope(q.clone(), Some("db-1".into()));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].scope, Scope::Host("db-1".into()));
        assert_eq!(split_by_scope(q.clone(), None), vec![q]);
        let n = plan(&[ActionKind::BlockIp, ActionKind::RateLimit]);
        assert_eq!(split_by_scope(n.clone(), Some("x".into())), vec![n]);
    }
}
