//! Idempotent handlers on an at-least-once bus: a mark in Redis per message and group, so that a
//! redelivered message (reclaimed from a dead consumer, or published twice by a publisher that lost
//! Redis's answer) never causes a second action.
//!
//! The mark is `<prefix>done:<group>:<key>`. [`Deduper::begin`] sets it to `busy` with `SET NX` and a
//! short lease, [`Deduper::finish`] turns it into `done` for a long time, [`Deduper::abandon`] deletes
//! it. A handler that dies between `begin` and `finish` leaves a lease that runs out, so the
//! redelivery after it acts (the action is never lost); one that finished leaves `done`, so every
//! later copy is only acknowledged. Key the mark on a domain id (the event, alert or plan id) to catch
//! a message published twice as well; the delivery id catches redeliveries only.
//!
//! The usual handler:
//! ```text
//! match dedupe.begin(group, &plan_id).await? {
//!     Claim::First => { apply(&plan).await?; dedupe.finish(group, &plan_id).await?; rx.ack(&d.id).await? }
//!     Claim::Done => rx.ack(&d.id).await?,   // done before: only acknowledge
//!     Claim::Busy => {}                     // another consumer is on it: leave it pending
//! }
//! ```

use crate::link::{Failure, Link};
use redis::Value;
use sentinel_core::BusError;
use std::time::Duration;

/// What [`Deduper::begin`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody handled this message before: act, then [`Deduper::finish`].
    First,
    /// It was handled: do not act again (acknowledge it).
    Done,
    /// Someone is handling it now (their lease has not run out): leave it.
    Busy,
}

const BUSY: &str = "busy";
const DONE: &str = "done";

/// Marks of handled messages in Redis, shared by every consumer of a group on every host.
pub struct Deduper {
    link: tokio::sync::Mutex<Link>,
    prefix: String,
    lease: Duration,
    keep: Duration,
}

impl Deduper {
    pub(crate) fn new(link: Link, prefix: String, lease: Duration, keep: Duration) -> Self {
        Deduper {
            link: tokio::sync::Mutex::new(link),
            prefix,
            lease: lease.max(Duration::from_millis(1)),
            keep: keep.max(Duration::from_millis(1)),
        }
    }

    /// The Redis key of a mark.
    pub fn mark_key(&self, group: &str, key: &str) -> String {
        format!("{}done:{group}:{key}", self.prefix)
    }

    /// Claims `key` for `group` for the lease: [`Claim::First`] only for the first caller, and again
    /// once a lease ran out without [`Deduper::finish`].
    pub async fn begin(&self, group: &str, key: &str) -> Result<Claim, BusError> {
        let mark = self.mark_key(group, key);
        let mut link = self.link.lock().await;
        // The mark may expire between SET NX and GET: then claim again (at most a few times).
        for _ in 0..3 {
            let mut set = redis::cmd("SET");
            set.arg(&mark)
                .arg(BUSY)
                .arg("NX")
                .arg("PX")
                .arg(millis(self.lease));
            let made: Value = link.run(&set).await.map_err(Failure::into_bus_error)?;
            if !matches!(made, Value::Nil) {
                return Ok(Claim::First);
            }
            let mut get = redis::cmd("GET");
            get.arg(&mark);
            let now: Option<String> = link.run(&get).await.map_err(Failure::into_bus_error)?;
            match now.as_deref() {
                Some(DONE) => return Ok(Claim::Done),
                Some(_) => return Ok(Claim::Busy),
                None => continue,
            }
        }
        Ok(Claim::Busy)
    }

    /// Records that `key` was handled: every later [`Deduper::begin`] within `keep` answers
    /// [`Claim::Done`].
    pub async fn finish(&self, group: &str, key: &str) -> Result<(), BusError> {
        let mut set = redis::cmd("SET");
        set.arg(self.mark_key(group, key))
            .arg(DONE)
            .arg("PX")
            .arg(millis(self.keep));
        let mut link = self.link.lock().await;
        link.run::<Value>(&set)
            .await
            .map(|_| ())
            .map_err(Failure::into_bus_error)
    }

    /// Gives a claim up (the action failed and may be tried again by a redelivery).
    pub async fn abandon(&self, group: &str, key: &str) -> Result<(), BusError> {
        let mut del = redis::cmd("DEL");
        del.arg(self.mark_key(group, key));
        let mut link = self.link.lock().await;
        link.run::<Value>(&del)
            .await
            .map(|_| ())
            .map_err(Failure::into_bus_error)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
