//! The bus's counters: what was published, delivered, acknowledged, reclaimed, buffered and refused,
//! and how often the link to Redis was made again.
//!
//! Plain atomics, shared by every part of one [`crate::RedisBus`]; [`BusStats::snapshot`] reads them
//! for a metrics exporter. Nothing here talks to Redis.

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters of one [`crate::RedisBus`] (and every subscription and deduper made from it).
#[derive(Debug, Default)]
pub struct BusStats {
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) reclaimed: AtomicU64,
    pub(crate) buffered: AtomicU64,
    pub(crate) buffer_overflow: AtomicU64,
    pub(crate) waiting: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) refused: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusCounts {
    /// Messages written to Redis (XADD answered), directly or flushed from the buffer.
    pub published: u64,
    /// Messages handed to consumers (first deliveries and reclaimed ones).
    pub delivered: u64,
    /// Messages acknowledged (XACK removed them from the pending list).
    pub acked: u64,
    /// Pending messages taken over from an idle consumer (XAUTOCLAIM).
    pub reclaimed: u64,
    /// Messages that went into the local buffer because Redis was away.
    pub buffered: u64,
    /// Messages refused because the local buffer was full.
    pub buffer_overflow: u64,
    /// Messages in the local buffer now (a gauge).
    pub waiting: u64,
    /// Connections made again after one was lost or could not be made.
    pub reconnects: u64,
    /// Messages Redis refused (a wrong key type), entries without a payload, and pending entries
    /// trimmed from the stream before anyone acknowledged them: logged and dropped.
    pub refused: u64,
}

impl BusStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> BusCounts {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BusCounts {
            published: r(&self.published),
            delivered: r(&self.delivered),
            acked: r(&self.acked),
            reclaimed: r(&self.reclaimed),
            buffered: r(&self.buffered),
            buffer_overflow: r(&self.buffer_overflow),
            waiting: r(&self.waiting),
            reconnects: r(&self.reconnects),
            refused: r(&self.refused),
        }
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
