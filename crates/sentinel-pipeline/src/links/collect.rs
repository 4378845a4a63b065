//! The API node's picture of the fleet: every sensor's alerts, every investigator's investigations
//! and plans, and every responder's action records (as applied, and again when they expire),
//! recorded in the API node's own store as they cross the bus, so that one API answers for the
//! whole fleet.
//!
//! Each API node reads every topic in a group of its own (`api:<node>`). Records are upserts keyed
//! by their ids, so a copy delivered twice only writes the same row again: no act-once marks are
//! kept ([`Upserts`]). A message is acknowledged once its records are committed. Each record is
//! also noted in the API node's audit log (the node attests what it received; the record's own
//! node attests what it did), so `sentinel audit verify --store` holds on the API node as well.

use super::{
    settle_when_committed, wire, Accept, BusLink, Consumer, Idempotency, LinkError, Settled,
    WireMessage,
};
use crate::recorder::{Change, Entry, Recorder};
use async_trait::async_trait;
use sentinel_core::BusError;
use sentinel_store::AckGroup;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use sentinel_bus::Claim;

/// An [`Idempotency`] that lets every copy through: for consumers whose work is an upsert.
pub struct Upserts;

#[async_trait]
impl Idempotency for Upserts {
    async fn begin(&self, _group: &str, _key: &str) -> Result<Claim, BusError> {
        Ok(Claim::First)
    }
    async fn finish(&self, _group: &str, _key: &str) -> Result<(), BusError> {
        Ok(())
    }
    async fn abandon(&self, _group: &str, _key: &str) -> Result<(), BusError> {
        Ok(())
    }
}

/// The group of the API node `node`: its own, so it reads everything.
pub fn api_group(node: &str) -> String {
    format!("api:{node}")
}

/// What one message becomes: the records to store.
type Records = Vec<Entry>;

/// Collects topic `T` into `rec`: returns the consuming task and the recording task.
pub(crate) async fn collect<T: WireMessage>(
    link: &BusLink,
    node: &str,
    rec: Recorder,
    entries: fn(T) -> Records,
    stop: watch::Receiver<bool>,
) -> Result<[JoinHandle<()>; 2], LinkError> {
    let link = BusLink {
        idempotency: Arc::new(Upserts),
        ..link.clone()
    };
    // Keys only tell deliveries in flight apart (the records themselves are upserts).
    let n = Arc::new(AtomicU64::new(0));
    let consumer = Consumer::<T, (String, Records)>::subscribe(
        &link,
        &api_group(node),
        Box::new(move |m: T| {
            let key = format!("{}#{}", T::KIND, n.fetch_add(1, Ordering::Relaxed));
            Accept::Take {
                item: (key.clone(), entries(m)),
                key,
                first: None,
            }
        }),
    )
    .await?;
    let cap = link.max_in_flight.max(1);
    let (tx, rx) = mpsc::channel::<(String, Records)>(cap);
    let (settled_tx, settled_rx) = mpsc::unbounded_channel::<Settled>();
    let reading = tokio::spawn(consumer.run(tx, settled_rx, stop));
    let recording = tokio::spawn(record_all(rx, rec, settled_tx));
    Ok([reading, recording])
}

async fn record_all(
    mut rx: mpsc::Receiver<(String, Records)>,
    rec: Recorder,
    settled: mpsc::UnboundedSender<Settled>,
) {
    while let Some((key, entries)) = rx.recv().await {
        let group = AckGroup::patient();
        for (i, e) in entries.into_iter().enumerate() {
            rec.record(e, Some(group.token(i as u64))).await;
        }
        settle_when_committed(Some(group), key, true, &settled);
    }
}

/// An alert's record.
pub(crate) fn alert(m: wire::AlertMsg) -> Records {
    vec![Entry::from(&m.alert)]
}

/// An investigation's record.
pub(crate) fn investigation(m: wire::InvestigationMsg) -> Records {
    vec![Entry::from(&m.investigation)]
}

/// A plan's record.
pub(crate) fn plan(m: wire::PlanMsg) -> Records {
    vec![Entry::from(&m.plan)]
}

/// A responder's action records.
pub(crate) fn decision(m: wire::DecisionMsg) -> Records {
    m.records
        .iter()
        .map(|r| Entry::from((r, Change::Acted)))
        .collect()
}
