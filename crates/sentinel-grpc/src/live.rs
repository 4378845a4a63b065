//! The live stream: alerts and actions as they are stored.
//!
//! It tails the store instead of subscribing to the pipeline: what a client sees is what is
//! committed (the same rows REST lists), a slow client is never handed more than it reads (the
//! task waits on the channel, and the store's order is its place), and nothing is lost to a
//! lagging broadcast buffer. Each poll reads the newest page and sends, oldest first, the alerts
//! whose id is newer than the last one sent, and the actions that are new or whose `updated` time
//! moved (state changes: an action row is replaced on each). An alert burst larger than the pages
//! read in one poll is reported (counted and logged), not silently skipped.

use crate::convert;
use crate::proto::{stream_item::Item, StreamItem};
use prometheus_client::metrics::counter::Counter;
use sentinel_core::{ActionId, AlertId};
use sentinel_store::{ActionFilter, AlertFilter, Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;

/// Rows read per page.
const PAGE: u32 = 200;
/// Pages of alerts read in one poll at most.
const MAX_PAGES: usize = 10;
/// Actions remembered (with their `updated` time) to tell a state change from nothing new.
const REMEMBERED: usize = 4 * PAGE as usize;

type Tx = mpsc::Sender<Result<StreamItem, Status>>;

/// Starts the tail: records stored from now on, until the client goes away. `permit` (a slot of the
/// streams cap) is held as long as the stream runs.
pub(crate) async fn start(
    store: Store,
    alerts: bool,
    actions: bool,
    poll: Duration,
    permit: OwnedSemaphorePermit,
    skipped: Counter,
    ready: Arc<AtomicBool>,
) -> Result<mpsc::Receiver<Result<StreamItem, Status>>, StoreError> {
    let mut last_alert: Option<AlertId> = None;
    if alerts {
        last_alert = store
            .list_alerts(&AlertFilter {
                limit: 1,
                ..Default::default()
            })
            .await?
            .items
            .first()
            .map(|a| a.id);
    }
    let mut seen: HashMap<ActionId, i64> = HashMap::new();
    if actions {
        for a in store
            .list_actions(&ActionFilter {
                limit: PAGE,
                ..Default::default()
            })
            .await?
            .items
        {
            seen.insert(a.id, a.updated.as_millis());
        }
    }
    let (tx, rx) = mpsc::channel(64);
    let was_ready = ready.load(Ordering::Acquire);
    tokio::spawn(async move {
        let _permit = permit;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                _ = tick.tick() => {}
            }
            if was_ready && !ready.load(Ordering::Acquire) {
                // Sentinel is stopping: the stream ends with a reason instead of holding the
                // server's shutdown until it is cut.
                let _ = tx
                    .send(Err(Status::unavailable(
                        "Sentinel is stopping; reconnect later",
                    )))
                    .await;
                break;
            }
            let r = async {
                if alerts {
                    last_alert = new_alerts(&store, &tx, last_alert, &skipped).await?;
                }
                if actions {
                    changed_actions(&store, &tx, &mut seen).await?;
                }
                Ok::<bool, StoreError>(true)
            }
            .await;
            match r {
                Ok(_) => {}
                Err(e) => {
                    // A read that failed is retried at the next poll; the client is not cut.
                    tracing::warn!(evt = "grpc_stream_read_failed", error = %e);
                }
            }
            if tx.is_closed() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Sends alerts newer than `last`, oldest first; the newest id sent.
async fn new_alerts(
    store: &Store,
    tx: &Tx,
    last: Option<AlertId>,
    skipped: &Counter,
) -> Result<Option<AlertId>, StoreError> {
    let mut fresh = Vec::new();
    let mut cursor = None;
    let mut complete = false;
    for _ in 0..MAX_PAGES {
        let page = store
            .list_alerts(&AlertFilter {
                limit: PAGE,
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await?;
        for a in page.items {
            if last.is_some_and(|l| a.id <= l) {
                complete = true;
                break;
            }
            fresh.push(a);
        }
        cursor = page.next_cursor;
        if complete || cursor.is_none() {
            complete = true;
            break;
        }
    }
    if !complete {
        skipped.inc();
        tracing::warn!(
            evt = "grpc_stream_skipped",
            sent = fresh.len(),
            "more new alerts than one poll reads: the oldest were not streamed (list them)"
        );
    }
    let newest = fresh.first().map(|a| a.id).or(last);
    for a in fresh.iter().rev() {
        let item = convert::alert(a).map(|a| StreamItem {
            item: Some(Item::Alert(a)),
        });
        if tx.send(item).await.is_err() {
            break;
        }
    }
    Ok(newest)
}

/// Sends actions that are new or changed since they were last seen, oldest first.
async fn changed_actions(
    store: &Store,
    tx: &Tx,
    seen: &mut HashMap<ActionId, i64>,
) -> Result<(), StoreError> {
    let page = store
        .list_actions(&ActionFilter {
            limit: PAGE,
            ..Default::default()
        })
        .await?;
    let mut changed = Vec::new();
    for a in page.items.iter().rev() {
        let updated = a.updated.as_millis();
        if seen.get(&a.id) != Some(&updated) {
            seen.insert(a.id, updated);
            changed.push(a);
        }
    }
    if seen.len() > REMEMBERED {
        // Keep what the newest page holds: older rows are not looked at again.
        let keep: std::collections::HashSet<ActionId> = page.items.iter().map(|a| a.id).collect();
        seen.retain(|k, _| keep.contains(k));
    }
    for a in changed {
        let item = convert::action(a).map(|a| StreamItem {
            item: Some(Item::Action(a)),
        });
        if tx.send(item).await.is_err() {
            break;
        }
    }
    Ok(())
}
