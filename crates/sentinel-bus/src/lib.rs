//! The [`Bus`] on Redis Streams, for Sentinel's roles on many hosts.
//!
//! A topic is a stream (`<prefix><topic>`, trimmed to about `maxlen` entries on every publish); a
//! subscription is a consumer of a consumer group (`XGROUP CREATE … MKSTREAM`, `XREADGROUP`), so every
//! group gets every message and the consumers of a group share them. Delivery is at least once: a
//! message stays pending until acknowledged ([`sentinel_core::BusRx::ack`], `XACK`), and what a dead
//! consumer left pending longer than `claim_idle` is taken over by a live one (`XAUTOCLAIM`), its
//! [`sentinel_core::Delivery::attempts`] raised. Handlers stay idempotent with a [`Deduper`].
//!
//! Redis may go away: every link reconnects with capped exponential backoff; subscriptions wait it
//! out; publishing goes to a bounded local buffer that is flushed in order when Redis is back, and a
//! full buffer refuses (and counts) what does not fit. [`BusStats`] counts all of it.
//!
//! Needs Redis 6.2 or later (`XAUTOCLAIM`); 7.0 or later also reports pending entries trimmed away
//! before anyone acknowledged them. The crate owns no configuration parsing and no stage logic: it
//! carries bytes.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cluster;
mod config;
mod consume;
mod dedupe;
mod link;
mod publish;
mod stats;

pub use cluster::{
    status, CheckpointBoard, ClusterStatus, ConsumerStatus, GroupStatus, Heartbeat, Lease,
    NodeCheckpoint, NodeInfo, NodeState, NodeStatus, StreamStatus, TOPICS,
};
pub use config::{GroupStart, RedisBusConfig};
pub use dedupe::{Claim, Deduper};
pub use stats::{BusCounts, BusStats};

use async_trait::async_trait;
use config::Backoff;
use consume::{create_group, Reader, RedisRx};
use link::{describe, Failure, Link};
use publish::Publisher;
use sentinel_core::{Bus, BusError, BusRx, Topic};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Numbers the subscriptions and dedupers of this process, so that every consumer and claim owner
/// name is unique in it.
static NEXT_CONSUMER: AtomicU64 = AtomicU64::new(1);

/// The bus on Redis Streams. Dropping it closes it (see [`RedisBus::close`]).
pub struct RedisBus {
    config: RedisBusConfig,
    client: redis::Client,
    publisher: Arc<Publisher>,
    closed: watch::Sender<bool>,
    stats: Arc<BusStats>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("RedisBus")
            .field("prefix", &self.config.prefix)
            .field("consumer", &self.config.consumer)
            .field("stats", &self.stats.snapshot())
            .finish()
    }
}

impl RedisBus {
    /// A bus on the Redis at `config.url`. Only the URL is checked here: connections are made on first
    /// use and again whenever lost, so a Redis that is down at start only means buffering.
    pub fn new(config: RedisBusConfig) -> Result<Self, BusError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| BusError::Refused(format!("bad Redis URL: {}", describe(&e))))?;
        let stats = Arc::new(BusStats::default());
        let (closed, _) = watch::channel(false);
        let link = Self::link_with(&client, &config, config.timeout, &stats);
        let publisher = Arc::new(Publisher::new(
            link,
            config.buffer,
            config.maxlen,
            Arc::clone(&stats),
        ));
        Ok(RedisBus {
            config,
            client,
            publisher,
            closed,
            stats,
        })
    }

    fn link_with(
        client: &redis::Client,
        config: &RedisBusConfig,
        response: Duration,
        stats: &Arc<BusStats>,
    ) -> Link {
        Link::new(
            client.clone(),
            config.timeout,
            response,
            Backoff::new(config.backoff_min, config.backoff_max),
            Arc::clone(stats),
        )
    }

    /// The settings it runs with.
    pub fn config(&self) -> &RedisBusConfig {
        &self.config
    }

    /// The counters of the bus, its subscriptions and dedupers.
    pub fn stats(&self) -> &Arc<BusStats> {
        &self.stats
    }

    /// A [`Deduper`] with its own link: claims last `lease` (longer than a handler takes), marks of
    /// handled messages `keep` (longer than a message can be redelivered).
    pub fn deduper(&self, lease: Duration, keep: Duration) -> Deduper {
        let link = Self::link_with(&self.client, &self.config, self.config.timeout, &self.stats);
        let n = NEXT_CONSUMER.fetch_add(1, Ordering::Relaxed);
        let owner = format!("{}-{n}", self.config.consumer);
        Deduper::new(link, self.config.prefix.clone(), &owner, lease, keep)
    }

    /// A [`Lease`] taker with its own link, owning its leases as `<consumer>-<n>` (unique in the
    /// fleet as the consumer names are).
    pub fn lease(&self) -> Lease {
        let link = Self::link_with(&self.client, &self.config, self.config.timeout, &self.stats);
        let n = NEXT_CONSUMER.fetch_add(1, Ordering::Relaxed);
        let owner = format!("{}-{n}", self.config.consumer);
        Lease::from_link(link, self.config.prefix.clone(), owner)
    }

    /// Gives what is still in the local buffer (Redis away) until `within` to reach Redis, for a
    /// graceful stop before [`RedisBus::close`]; the number of messages still waiting after it.
    pub async fn flush(&self, within: Duration) -> usize {
        self.publisher
            .flush_until(tokio::time::Instant::now() + within)
            .await
    }

    /// Stops the bus: publishing is refused, subscriptions end (`recv` gives `None`), and what is still
    /// in the local buffer is not sent (a warning says how much). What was read and not acknowledged
    /// stays pending in Redis for the group's other consumers.
    pub fn close(&self) {
        self.publisher.close();
        self.closed.send_replace(true);
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait]
impl Bus for RedisBus {
    /// `XADD MAXLEN ~`; while Redis is away, into the local buffer (`Ok`), or refused with
    /// [`BusError::BufferFull`] when that is full.
    async fn publish(&self, topic: &Topic, m: Vec<u8>) -> Result<(), BusError> {
        let key = self.config.stream_key(&topic.0);
        self.publisher.publish(key, m).await
    }

    /// Makes the group if it is new (starting where [`RedisBusConfig::group_start`] and
    /// [`RedisBusConfig::oldest_groups`] say) and joins it
    /// as a new consumer `<consumer>-<n>`. When Redis is away, the group is made on the first read
    /// once it is back (a node may start before its Redis); only a refusal from Redis is an error.
    async fn subscribe(&self, topic: &Topic, group: &str) -> Result<Box<dyn BusRx>, BusError> {
        if *self.closed.borrow() {
            return Err(BusError::Unavailable("the bus is closed".into()));
        }
        let key = self.config.stream_key(&topic.0);
        // A blocking read may take `block`: the response timeout covers it.
        let response = self.config.timeout + self.config.block;
        let mut link = Self::link_with(&self.client, &self.config, response, &self.stats);
        let start = self.config.start_of(group);
        // Redis away now (a node started before its Redis): the group is made on the first read
        // that reaches Redis, and reading waits for it as it waits out any outage.
        let make_group = match create_group(&mut link, &key, group, start).await {
            Ok(()) => None,
            Err(Failure::Away(why)) => {
                tracing::warn!(
                    "bus: cannot make group {group} on {key} now ({why}); it is made once Redis answers"
                );
                Some(start)
            }
            Err(e) => return Err(e.into_bus_error()),
        };
        let n = NEXT_CONSUMER.fetch_add(1, Ordering::Relaxed);
        let reader = Reader {
            key,
            group: group.to_owned(),
            consumer: format!("{}-{n}", self.config.consumer),
            claim_idle: self.config.claim_idle,
            block: self.config.block,
            batch: self.config.batch.max(1),
        };
        Ok(Box::new(RedisRx::new(
            link,
            reader,
            make_group,
            self.closed.subscribe(),
            Arc::clone(&self.stats),
        )))
    }
}
