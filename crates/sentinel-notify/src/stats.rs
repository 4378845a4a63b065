//! Delivery counters and outbox gauges: atomics bumped by the engine, read as a [`NotifyStats`]
//! snapshot without touching the store (cheap enough for every API call and Prometheus scrape).
//!
//! Counters count since start; the outbox gauges are set from the store at start and every few
//! seconds, and moved by the engine in between.

use sentinel_store::{OutboxCount, OutboxState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters of one channel.
#[derive(Debug, Default)]
pub(crate) struct ChannelCounters {
    delivered: AtomicU64,
    folded: AtomicU64,
    attempts_failed: AtomicU64,
    dead: AtomicU64,
    pending: AtomicI64,
    dead_rows: AtomicI64,
}

/// Every counter of the engine.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    unrouted: AtomicU64,
    store_errors: AtomicU64,
    delivered: AtomicU64,
    folded: AtomicU64,
    attempts_failed: AtomicU64,
    dead: AtomicU64,
    pending: AtomicI64,
    dead_rows: AtomicI64,
    channels: BTreeMap<String, ChannelCounters>,
}

fn add(a: &AtomicI64, n: i64) {
    a.fetch_add(n, Ordering::Relaxed);
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Counters {
    /// Counters for these channels (others are counted in the totals only).
    pub(crate) fn new<I: IntoIterator<Item = String>>(channels: I) -> Counters {
        Counters {
            channels: channels
                .into_iter()
                .map(|c| (c, ChannelCounters::default()))
                .collect(),
            ..Counters::default()
        }
    }

    pub(crate) fn accepted(&self, rows_per_channel: &[String]) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        for c in rows_per_channel {
            add(&self.pending, 1);
            if let Some(ch) = self.channels.get(c) {
                add(&ch.pending, 1);
            }
        }
    }

    pub(crate) fn unrouted(&self) {
        self.unrouted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn delivered(&self, channel: &str, rows: usize) {
        let folded = u64::try_from(rows.saturating_sub(1)).unwrap_or(0);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.folded.fetch_add(folded, Ordering::Relaxed);
        add(&self.pending, -as_i64(rows));
        if let Some(ch) = self.channels.get(channel) {
            ch.delivered.fetch_add(1, Ordering::Relaxed);
            ch.folded.fetch_add(folded, Ordering::Relaxed);
            add(&ch.pending, -as_i64(rows));
        }
    }

    pub(crate) fn attempt_failed(&self, channel: &str) {
        self.attempts_failed.fetch_add(1, Ordering::Relaxed);
        if let Some(ch) = self.channels.get(channel) {
            ch.attempts_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn dead(&self, channel: &str, rows: usize) {
        self.dead.fetch_add(1, Ordering::Relaxed);
        add(&self.pending, -as_i64(rows));
        add(&self.dead_rows, as_i64(rows));
        if let Some(ch) = self.channels.get(channel) {
            ch.dead.fetch_add(1, Ordering::Relaxed);
            add(&ch.pending, -as_i64(rows));
            add(&ch.dead_rows, as_i64(rows));
        }
    }

    /// Sets the outbox gauges from the store's counts.
    pub(crate) fn set_outbox(&self, counts: &[OutboxCount]) {
        let mut pending = 0i64;
        let mut dead = 0i64;
        let mut per: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for c in counts {
            let n = i64::try_from(c.rows).unwrap_or(i64::MAX);
            let e = per.entry(c.channel.as_str()).or_default();
            match c.state {
                OutboxState::Pending => {
                    pending += n;
                    e.0 += n;
                }
                OutboxState::Dead => {
                    dead += n;
                    e.1 += n;
                }
                OutboxState::Delivered => {}
            }
        }
        self.pending.store(pending, Ordering::Relaxed);
        self.dead_rows.store(dead, Ordering::Relaxed);
        for (name, ch) in &self.channels {
            let (p, d) = per.get(name.as_str()).copied().unwrap_or_default();
            ch.pending.store(p, Ordering::Relaxed);
            ch.dead_rows.store(d, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> NotifyStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gauge = |a: &AtomicI64| u64::try_from(a.load(Ordering::Relaxed)).unwrap_or(0);
        NotifyStats {
            accepted: get(&self.accepted),
            unrouted: get(&self.unrouted),
            store_errors: get(&self.store_errors),
            delivered: get(&self.delivered),
            folded: get(&self.folded),
            attempts_failed: get(&self.attempts_failed),
            dead: get(&self.dead),
            outbox_pending: gauge(&self.pending),
            outbox_dead: gauge(&self.dead_rows),
            channels: self
                .channels
                .iter()
                .map(|(name, c)| {
                    (
                        name.clone(),
                        ChannelStats {
                            delivered: get(&c.delivered),
                            folded: get(&c.folded),
                            attempts_failed: get(&c.attempts_failed),
                            dead: get(&c.dead),
                            outbox_pending: gauge(&c.pending),
                            outbox_dead: gauge(&c.dead_rows),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// What the notification engine has done since start, and what its outbox holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotifyStats {
    /// Notices accepted and written to the outbox (routed to at least one channel).
    pub accepted: u64,
    /// Notices no route matched (logged only).
    pub unrouted: u64,
    /// Notices refused because the outbox could not be written.
    pub store_errors: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Notices folded into another's message (a message of count N folds N − 1).
    pub folded: u64,
    /// Attempts that failed (each retry counts).
    pub attempts_failed: u64,
    /// Messages that became dead letters.
    pub dead: u64,
    /// Outbox rows waiting to be sent.
    pub outbox_pending: u64,
    /// Outbox rows that are dead letters.
    pub outbox_dead: u64,
    /// The same per channel.
    pub channels: BTreeMap<String, ChannelStats>,
}

/// What one channel has done since start, and what it has waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelStats {
    /// Messages delivered.
    pub delivered: u64,
    /// Notices folded into another's message.
    pub folded: u64,
    /// Attempts that failed.
    pub attempts_failed: u64,
    /// Messages that became dead letters.
    pub dead: u64,
    /// Outbox rows waiting.
    pub outbox_pending: u64,
    /// Dead-letter rows.
    pub outbox_dead: u64,
}
