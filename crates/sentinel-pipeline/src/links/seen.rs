//! Idempotency for the consuming links: a message acts only once per consumer group, keyed on a
//! domain id (the alert id), so that a redelivered or twice-published message never makes a second
//! investigation or action.
//!
//! [`Idempotency`] is the three calls a link makes: `begin` (may I act?), `finish` (done: later
//! copies are only acknowledged), `abandon` (failed: a redelivery may try again). On Redis it is the
//! bus crate's [`Deduper`] (marks in Redis, shared by every consumer of the group on every host,
//! surviving restarts). For the in-process bus it is a [`SeenSet`]: bounded, in this process's
//! memory. The in-process bus never redelivers (a message dies with the process that holds it), so
//! the seen-set only has to catch a message published twice; it remembers the last `capacity`
//! finished keys, and a copy arriving after that many later keys were finished would act again.
//! This module owns no bus and no stage.

use async_trait::async_trait;
pub use sentinel_bus::Claim;
use sentinel_bus::Deduper;
use sentinel_core::BusError;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Act-once bookkeeping for one or more consumer groups.
#[async_trait]
pub trait Idempotency: Send + Sync {
    /// Claims `key` in `group`: [`Claim::First`] to act, [`Claim::Done`] when already handled,
    /// [`Claim::Busy`] when another handler holds it. An error means: do not act now.
    async fn begin(&self, group: &str, key: &str) -> Result<Claim, BusError>;
    /// `key` was handled: later copies answer [`Claim::Done`].
    async fn finish(&self, group: &str, key: &str) -> Result<(), BusError>;
    /// [`Idempotency::finish`] for several keys (one round trip where the store allows). The
    /// default finishes them one by one, stopping at the first error.
    async fn finish_many(&self, group: &str, keys: &[String]) -> Result<(), BusError> {
        for k in keys {
            self.finish(group, k).await?;
        }
        Ok(())
    }
    /// Gives a claim up: a later copy may act.
    async fn abandon(&self, group: &str, key: &str) -> Result<(), BusError>;
}

#[async_trait]
impl Idempotency for Deduper {
    async fn begin(&self, group: &str, key: &str) -> Result<Claim, BusError> {
        Deduper::begin(self, group, key).await
    }
    async fn finish(&self, group: &str, key: &str) -> Result<(), BusError> {
        Deduper::finish(self, group, key).await
    }
    async fn finish_many(&self, group: &str, keys: &[String]) -> Result<(), BusError> {
        Deduper::finish_many(self, group, keys).await
    }
    async fn abandon(&self, group: &str, key: &str) -> Result<(), BusError> {
        Deduper::abandon(self, group, key).await
    }
}

/// The bounded in-memory [`Idempotency`] for the in-process bus (see the module doc).
pub struct SeenSet {
    capacity: usize,
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Claimed, not finished nor abandoned (bounded by what a link keeps in flight).
    busy: HashSet<String>,
    done: HashSet<String>,
    /// `done`, oldest first, for forgetting past `capacity`.
    order: VecDeque<String>,
}

impl SeenSet {
    /// Remembers at most `capacity` (at least 1) finished keys.
    pub fn new(capacity: usize) -> Self {
        SeenSet {
            capacity: capacity.max(1),
            inner: Mutex::new(Seen::default()),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // Sets of strings are consistent after any panic: use them as they are.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn mark(group: &str, key: &str) -> String {
    format!("{group}\n{key}")
}

#[async_trait]
impl Idempotency for SeenSet {
    async fn begin(&self, group: &str, key: &str) -> Result<Claim, BusError> {
        let m = mark(group, key);
        let mut s = self.seen();
        if s.done.contains(&m) {
            return Ok(Claim::Done);
        }
        if !s.busy.insert(m) {
            return Ok(Claim::Busy);
        }
        Ok(Claim::First)
    }

    async fn finish(&self, group: &str, key: &str) -> Result<(), BusError> {
        let m = mark(group, key);
        let mut s = self.seen();
        s.busy.remove(&m);
        if s.done.insert(m.clone()) {
            s.order.push_back(m);
            while s.order.len() > self.capacity {
                if let Some(old) = s.order.pop_front() {
                    s.done.remove(&old);
                }
            }
        }
        Ok(())
    }

    async fn abandon(&self, group: &str, key: &str) -> Result<(), BusError> {
        self.seen().busy.remove(&mark(group, key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// First, then busy while held, done once finished, per group; abandoned keys may act again; the
    /// oldest finished keys are forgotten past the bound.
    #[tokio::test]
    async fn a_key_acts_once_per_group_within_the_bound() {
        let s = SeenSet::new(2);
        assert_eq!(s.begin("g", "a").await.unwrap(), Claim::First);
        assert_eq!(s.begin("g", "a").await.unwrap(), Claim::Busy);
        assert_eq!(s.begin("h", "a").await.unwrap(), Claim::First);
        s.finish("g", "a").await.unwrap();
        assert_eq!(s.begin("g", "a").await.unwrap(), Claim::Done);
        assert_eq!(s.begin("g", "b").await.unwrap(), Claim::First);
        s.abandon("g", "b").await.unwrap();
        assert_eq!(s.begin("g", "b").await.unwrap(), Claim::First);
        s.finish("g", "b").await.unwrap();
        assert_eq!(s.begin("g", "c").await.unwrap(), Claim::First);
        s.finish("g", "c").await.unwrap();
        // Three finished with room for two: the oldest (`a`) is forgotten.
        assert_eq!(s.begin("g", "a").await.unwrap(), Claim::First);
        assert_eq!(s.begin("g", "c").await.unwrap(), Claim::Done);
    }
}
