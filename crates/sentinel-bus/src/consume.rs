//! One subscription: a named consumer of a consumer group, reading with `XREADGROUP` and taking over
//! what idle consumers left pending with `XAUTOCLAIM`.
//!
//! Each [`RedisRx`] has its own link (a blocking read must not hold up anyone else). Every
//! `claim_idle / 2` it first reclaims: pending entries of its group idle longer than `claim_idle` (a
//! consumer died with them, or is stuck) become its own, with their delivery count raised, and are
//! delivered before new messages. A message is acknowledged (`XACK`) only when the handler says so.
//! While Redis is away, [`RedisRx::recv`] waits and reconnects; if Redis comes back without the group
//! (it lost its data), or the stream or group is deleted under a blocked read (`UNBLOCKED`), the group
//! is made again from the start of the stream. This module never
//! publishes.

use crate::link::{describe, Failure, Link};
use crate::publish::PAYLOAD_FIELD;
use crate::stats::{add, BusStats};
use async_trait::async_trait;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::Value;
use sentinel_core::{BusError, BusRx, Delivery};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Where one subscription reads.
pub(crate) struct Reader {
    pub(crate) key: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) claim_idle: Duration,
    pub(crate) block: Duration,
    pub(crate) batch: usize,
}

/// Makes the consumer group `group` on `key` (and the stream, if missing), starting at `start`
/// (`$`: new messages only; `0`: everything the stream holds). A group that exists already is fine.
pub(crate) async fn create_group(
    link: &mut Link,
    key: &str,
    group: &str,
    start: &str,
) -> Result<(), Failure> {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE")
        .arg(key)
        .arg(group)
        .arg(start)
        .arg("MKSTREAM");
    match link.run::<Value>(&cmd).await {
        Ok(_) => Ok(()),
        Err(Failure::Refused(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// One consumer of a group.
pub(crate) struct RedisRx {
    link: Link,
    at: Reader,
    /// Read from Redis, not yet handed out (already pending under this consumer).
    queue: VecDeque<Delivery>,
    /// The group still to be made (Redis was away when subscribing), and where it starts.
    make_group: Option<&'static str>,
    /// Where the next XAUTOCLAIM scan starts.
    claim_cursor: String,
    next_claim: Instant,
    closed: watch::Receiver<bool>,
    stats: Arc<BusStats>,
}

impl RedisRx {
    pub(crate) fn new(
        link: Link,
        at: Reader,
        make_group: Option<&'static str>,
        closed: watch::Receiver<bool>,
        stats: Arc<BusStats>,
    ) -> Self {
        RedisRx {
            link,
            at,
            make_group,
            queue: VecDeque::new(),
            claim_cursor: "0-0".into(),
            next_claim: Instant::now(),
            closed,
            stats,
        }
    }

    /// How often reclaiming is looked at.
    fn claim_every(&self) -> Duration {
        (self.at.claim_idle / 2).max(Duration::from_millis(10))
    }

    /// Turns an entry into a delivery; an entry without a payload field is acknowledged and dropped.
    async fn entry(&mut self, e: StreamId, attempts: u32) {
        match e.map.get(PAYLOAD_FIELD) {
            Some(Value::BulkString(b)) => self.queue.push_back(Delivery {
                id: e.id,
                payload: b.clone(),
                attempts,
            }),
            _ => {
                add(&self.stats.refused, 1);
                tracing::warn!(
                    "bus: entry {} on {} has no `{PAYLOAD_FIELD}` field; dropped",
                    e.id,
                    self.at.key
                );
                let _ = self.xack(std::slice::from_ref(&e.id)).await;
            }
        }
    }

    /// Takes over entries idle past `claim_idle`, with their delivery counts.
    async fn reclaim(&mut self) -> Result<(), Failure> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.at.key)
            .arg(&self.at.group)
            .arg(&self.at.consumer)
            .arg(millis(self.at.claim_idle))
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(self.at.batch);
        let reply: StreamAutoClaimReply = self.link.run(&cmd).await?;
        let full = reply.claimed.len() + reply.deleted_ids.len() >= self.at.batch;
        self.claim_cursor = reply.next_stream_id;
        // A full batch may have more behind it: look again at once. Otherwise the scan starts over.
        self.next_claim = if full && self.claim_cursor != "0-0" {
            Instant::now()
        } else {
            Instant::now() + self.claim_every()
        };
        if !reply.deleted_ids.is_empty() {
            // Lost: counted as Redis 6.2's empty entries for the same loss are (see `entry`).
            add(&self.stats.refused, reply.deleted_ids.len() as u64);
            tracing::warn!(
                "bus: {} pending entries of {} were trimmed before anyone acknowledged them",
                reply.deleted_ids.len(),
                self.at.key
            );
        }
        let (Some(first), Some(last)) = (reply.claimed.first(), reply.claimed.last()) else {
            return Ok(());
        };
        // XAUTOCLAIM does not say how often an entry was delivered: ask the pending list.
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&self.at.key)
            .arg(&self.at.group)
            .arg(&first.id)
            .arg(&last.id)
            .arg(reply.claimed.len())
            .arg(&self.at.consumer);
        let pending: StreamPendingCountReply = self.link.run(&cmd).await?;
        let counts: HashMap<String, usize> = pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered))
            .collect();
        add(&self.stats.reclaimed, reply.claimed.len() as u64);
        for e in reply.claimed {
            let attempts = counts.get(&e.id).copied().unwrap_or(2);
            self.entry(e, u32::try_from(attempts).unwrap_or(u32::MAX))
                .await;
        }
        Ok(())
    }

    /// Reads new messages, waiting up to `block` (and never past the next reclaim).
    async fn read(&mut self) -> Result<(), Failure> {
        let block = self.at.block.min(self.claim_every());
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.at.group)
            .arg(&self.at.consumer)
            .arg("COUNT")
            .arg(self.at.batch)
            .arg("BLOCK")
            .arg(millis(block).max(1))
            .arg("STREAMS")
            .arg(&self.at.key)
            .arg(">");
        let reply: Option<StreamReadReply> = self.link.run(&cmd).await?;
        for k in reply.map(|r| r.keys).unwrap_or_default() {
            for e in k.ids {
                self.entry(e, 1).await;
            }
        }
        Ok(())
    }

    /// Fills the queue: reclaimed entries first when it is time, then new ones.
    async fn fill(&mut self) -> Result<(), Failure> {
        if let Some(start) = self.make_group {
            let (key, group) = (self.at.key.clone(), self.at.group.clone());
            create_group(&mut self.link, &key, &group, start).await?;
            tracing::info!("bus: made group {group} on {key}");
            self.make_group = None;
        }
        if Instant::now() >= self.next_claim {
            self.reclaim().await?;
            if !self.queue.is_empty() {
                return Ok(());
            }
        }
        self.read().await
    }

    async fn xack<S: AsRef<str>>(&mut self, ids: &[S]) -> Result<(), Failure> {
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.at.key).arg(&self.at.group);
        for id in ids {
            cmd.arg(id.as_ref());
        }
        let n: u64 = self.link.run(&cmd).await?;
        add(&self.stats.acked, n);
        Ok(())
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

#[async_trait]
impl BusRx for RedisRx {
    /// The next message: queued ones first, then reclaimed, then new. Waits out Redis being away;
    /// `None` once the bus is closed (what was read and not handed out stays pending in Redis and is
    /// reclaimed by the group's other consumers). Cancelling it (a `select!`, a timeout) loses nothing
    /// either: a message read from Redis and not handed out stays pending and comes back after
    /// `claim_idle`.
    async fn recv(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            if self.is_closed() {
                return None;
            }
            if let Some(d) = self.queue.pop_front() {
                add(&self.stats.delivered, 1);
                return Some(Ok(d));
            }
            let mut closed = self.closed.clone();
            let step = tokio::select! {
                r = self.fill() => r,
                _ = closed.changed() => return None,
            };
            match step {
                Ok(()) => {}
                Err(Failure::Away(why)) => {
                    tracing::debug!("bus: reading {}: {why}", self.at.key);
                    let mut closed = self.closed.clone();
                    tokio::select! {
                        () = self.link.wait() => {}
                        _ = closed.changed() => return None,
                    }
                }
                Err(Failure::Refused(e)) if group_gone(&e) => {
                    // Redis lost the group (restarted without its data, or the stream was deleted):
                    // everything the stream holds now came after the loss.
                    tracing::warn!(
                        "bus: group {} on {} is gone; making it again",
                        self.at.group,
                        self.at.key
                    );
                    let (key, group) = (self.at.key.clone(), self.at.group.clone());
                    if let Err(Failure::Refused(e)) =
                        create_group(&mut self.link, &key, &group, "0").await
                    {
                        return Some(Err(BusError::Refused(describe(&e))));
                    }
                }
                Err(Failure::Refused(e)) => return Some(Err(BusError::Refused(describe(&e)))),
            }
        }
    }

    /// `XACK`: one attempt; when Redis is away the message stays pending and comes back later.
    async fn ack(&mut self, id: &str) -> Result<(), BusError> {
        self.xack(std::slice::from_ref(&id))
            .await
            .map_err(Failure::into_bus_error)
    }

    /// One `XACK` for every id.
    async fn ack_many(&mut self, ids: &[String]) -> Result<(), BusError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.xack(ids).await.map_err(Failure::into_bus_error)
    }
}

/// Whether Redis says the group (or its stream) is gone: `NOGROUP` on a read, or `UNBLOCKED` for a
/// read that was blocked when the stream was deleted (`DEL`, `FLUSHALL`) or the group destroyed
/// (`XGROUP DESTROY`), as Redis 7 answers it. Either way the group is made again.
fn group_gone(e: &redis::RedisError) -> bool {
    matches!(e.code(), Some("NOGROUP" | "UNBLOCKED"))
}

/// A duration in whole milliseconds, as Redis takes them.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
