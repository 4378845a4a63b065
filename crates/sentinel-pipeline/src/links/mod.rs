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
//! - an alert (investigators) once the plan decided from it is recorded (queued to the store writer)
//!   *and* the bus took that plan on `plans`;
//! - a plan (responders) once the ledger carried it out and its action records are queued to the
//!   store writer (the report on `decisions` follows; if the bus refuses it, that is counted and
//!   logged, and the plan is still acknowledged: its actions are in place).
//!
//! Then the idempotency key is marked done ([`Idempotency::finish`]) and the delivery acknowledged,
//! in that order. Delivery is at least once: a role that dies before the acknowledgement leaves the
//! message pending, and the bus hands it again (on Redis, to a live consumer of the group after
//! `claim_idle`, once the dead handler's claim lease ran out). What a crash costs is one repetition:
//! an alert investigated again (a second investigation record, and a fresh plan), or a plan applied
//! again on that host (the actuators hold one live action per target, so the kernel holds one rule).
//! A crash after the mark but before the acknowledgement costs nothing: the redelivery finds the
//! mark and is only acknowledged. Records queued but not yet committed when the process dies are
//! lost from that node's store (the ledger's reconcile at start-up sees what the kernel holds).
//!
//! A sensor's alert that the bus refuses (its local buffer full while Redis is away) is counted
//! ([`LinkCounts::publish_failed`]) and logged; it stays in the sensor's store, uninvestigated.
//!
//! **Idempotency.** Keys are alert ids (an investigator's, and a responder's, via the plan's
//! `alert_id`): one alert yields one plan, and a plan decided again after an investigator crash has
//! a new plan id but the same alert, so keying on the alert keeps it from acting twice as well. A
//! message that fails (the plan could not be published) is abandoned, so its redelivery acts. A
//! malformed message is counted ([`LinkCounts::malformed`]), logged and acknowledged: it would fail
//! the same way every time. A message already handled is counted as a duplicate and acknowledged;
//! one another consumer holds is left pending for the bus to hand again.
//!
//! A read error the bus reports as permanent (it says retrying will not mend it; a bus that is
//! only away is waited out inside the bus) is logged and counted, and stops the link reading: its
//! stages drain and the role ends, for its supervisor to restart it.
//!
//! **Bounds.** A consuming link keeps at most `max_in_flight` unacknowledged messages and waits on the
//! stage queue (pressure travels back to the bus, which keeps the rest); the notices of settled
//! messages are at most that many.
//!
//! The daemon will start these through `sentinel run --role sensor|investigator|responder`, a
//! `RedisBus` (with `RedisBus::deduper` as the [`Idempotency`]) when `bus: redis://…` is configured,
//! and the node name from the configuration; the all-in-one `sentinel run` keeps the in-process
//! queues of [`crate::stages::start`] and uses no link. This module parses no configuration.

pub mod seen;
pub mod wire;

pub use seen::{Claim, Idempotency, SeenSet};
pub use wire::{AlertMsg, DecisionMsg, PlanMsg, WireError, WireMessage};

use crate::intake::Outcomes;
use crate::stages::{Acted, Pending};
use sentinel_core::{Alert, Bus, BusError, BusRx, Delivery, Plan, Topic};
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
}

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
    Take { key: String, item: U },
    /// Not for this consumer (a plan for another host): acknowledge it only.
    Skip,
}

/// Publishes one message; counts and logs a refusal. True when the bus took it.
async fn publish<T: WireMessage>(link: &BusLink, m: &T) -> bool {
    let topic = Topic(T::TOPIC.to_owned());
    let sent = match wire::encode(m) {
        Ok(bytes) => link
            .bus
            .publish(&topic, bytes)
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
        publish(&link, &AlertMsg { alert: item }).await;
    }
}

/// Investigator: publishes every plan the decide stage recorded on `plans`, then tells the alerts'
/// link that the alert behind it is handed on (or, when the bus refused the plan, that it failed).
pub(crate) async fn publish_plans(
    mut rx: mpsc::Receiver<(Plan, String)>,
    settled: mpsc::UnboundedSender<Settled>,
    link: BusLink,
) {
    while let Some((plan, notice_key)) = rx.recv().await {
        let key = plan.alert_id.to_string();
        let ok = publish(&link, &PlanMsg { plan, notice_key }).await;
        let _ = settled.send(Settled { key, ok });
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
    while let Some((plan, records)) = rx.recv().await {
        let key = plan.alert_id.to_string();
        let report = DecisionMsg {
            node: node.clone(),
            plan_id: plan.id,
            alert_id: plan.alert_id,
            records,
        };
        publish(&link, &report).await;
        let _ = settled.send(Settled { key, ok: true });
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
                while let Some(d) = rx.recv().await {
                    let failed = d.is_err();
                    if delivered.send(d).await.is_err() || failed {
                        break;
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
                    Some(s) => self.settle(s, &mut in_flight).await,
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
                        inc(&self.link.stats.bus_errors);
                        tracing::error!(evt = "bus_read_failed", topic = T::TOPIC, group = %self.group, error = %e);
                        into = None;
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
        let msg = match wire::decode::<T>(&d.payload) {
            Ok(m) => m,
            Err(e) => {
                inc(&stats.malformed);
                tracing::warn!(evt = "bus_message_malformed", topic = T::TOPIC, group = %self.group, id = %d.id, error = %e);
                self.ack(&d.id).await;
                return true;
            }
        };
        let (key, item) = match (self.accept)(msg) {
            Accept::Take { key, item } => (key, item),
            Accept::Skip => {
                inc(&stats.skipped);
                self.ack(&d.id).await;
                return true;
            }
        };
        match self.link.idempotency.begin(&self.group, &key).await {
            Ok(Claim::First) => {
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

    /// Marks done and acknowledges (or abandons) a settled message of this link.
    async fn settle(&mut self, s: Settled, in_flight: &mut HashMap<String, String>) {
        let Some(id) = in_flight.remove(&s.key) else {
            return;
        };
        let idem = Arc::clone(&self.link.idempotency);
        if !s.ok {
            inc(&self.link.stats.abandoned);
            if let Err(e) = idem.abandon(&self.group, &s.key).await {
                inc(&self.link.stats.bus_errors);
                tracing::warn!(evt = "bus_abandon_failed", group = %self.group, key = %s.key, error = %e);
            }
            return;
        }
        if let Err(e) = idem.finish(&self.group, &s.key).await {
            // The claim runs out with its lease: a redelivery would act again (at least once).
            inc(&self.link.stats.bus_errors);
            tracing::warn!(evt = "bus_mark_failed", group = %self.group, key = %s.key, error = %e);
        }
        self.ack(&id).await;
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
