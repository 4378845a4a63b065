//! Idempotent handlers on an at-least-once bus: a mark in Redis per message and group, so that a
//! redelivered message (reclaimed from a dead consumer, or published twice by a publisher that lost
//! Redis's answer) never causes a second action.
//!
//! The mark is `<prefix>done:<group>:<key>`. [`Deduper::begin`] sets it to `busy:<owner>` with
//! `SET NX` and a short lease, [`Deduper::finish`] turns it into `done` for a long time, [`Deduper::abandon`] deletes
//! it. A handler that dies between `begin` and `finish` leaves a lease that runs out, so the
//! redelivery after it acts (the action is never lost); one that finished leaves `done`, so every
//! later copy is only acknowledged. When Redis goes away in the middle of `begin`, the claim may
//! have been made without its answer arriving; the next `begin` of the same deduper recognises its own
//! mark (and that no handler of its own holds it) and answers [`Claim::First`] instead of waiting
//! for the lease to run out. When Redis goes away in the middle of `finish`, the deduper remembers
//! the key (at most 65,536 of them): the copy Redis hands again is answered
//! [`Claim::Done`] and the mark written then, rather than acted on again once the lease ran out.
//! Key the mark on a domain id (the event, alert or plan id) to catch
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
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

const DONE: &str = "done";

/// Keys a deduper remembers as handled while Redis did not take their `done` mark; past this many
/// the oldest are forgotten (a redelivery of one of those acts again, as after a crash).
const MAX_UNMARKED: usize = 65_536;

/// Marks whose `finish` Redis did not take, oldest first.
#[derive(Default)]
struct Unmarked {
    set: HashSet<String>,
    order: VecDeque<String>,
}

/// Marks of handled messages in Redis, shared by every consumer of a group on every host.
pub struct Deduper {
    link: tokio::sync::Mutex<Link>,
    prefix: String,
    lease: Duration,
    keep: Duration,
    /// The value of this deduper's claims: `busy:<owner>`.
    busy: String,
    /// The marks claimed here whose handlers have not finished or abandoned them yet, and when.
    mine: Mutex<HashMap<String, Instant>>,
    /// The marks handled here whose `done` did not reach Redis.
    unmarked: Mutex<Unmarked>,
}

impl Deduper {
    /// `owner` names this deduper in its claims; unique among every deduper of a group.
    pub(crate) fn new(
        link: Link,
        prefix: String,
        owner: &str,
        lease: Duration,
        keep: Duration,
    ) -> Self {
        Deduper {
            link: tokio::sync::Mutex::new(link),
            prefix,
            lease: lease.max(Duration::from_millis(1)),
            keep: keep.max(Duration::from_millis(1)),
            busy: format!("busy:{owner}"),
            mine: Mutex::new(HashMap::new()),
            unmarked: Mutex::new(Unmarked::default()),
        }
    }

    fn mine(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A map of strings is consistent after any panic: use it as it is.
        self.mine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unmarked(&self) -> std::sync::MutexGuard<'_, Unmarked> {
        // A set of strings is consistent after any panic: use it as it is.
        self.unmarked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a claim of this deduper unless a handler here holds it within its lease. Claims whose
    /// handler vanished (cancelled, panicked) lapse with their lease, here as in Redis.
    fn hold(&self, mark: &str) -> bool {
        let mut mine = self.mine();
        if mine.len() > 1024 {
            mine.retain(|_, t| t.elapsed() < self.lease);
        }
        match mine.get(mark) {
            Some(t) if t.elapsed() < self.lease => false,
            _ => {
                mine.insert(mark.to_owned(), Instant::now());
                true
            }
        }
    }

    /// The Redis key of a mark.
    pub fn mark_key(&self, group: &str, key: &str) -> String {
        format!("{}done:{group}:{key}", self.prefix)
    }

    /// Claims `key` for `group` for the lease: [`Claim::First`] only for the first caller, and again
    /// once a lease ran out without [`Deduper::finish`]. After `First`, call [`Deduper::finish`] or
    /// [`Deduper::abandon`]. An error means Redis is away: do not act (the message comes back).
    pub async fn begin(&self, group: &str, key: &str) -> Result<Claim, BusError> {
        let mark = self.mark_key(group, key);
        if self.unmarked().set.contains(&mark) {
            // Handled here; Redis did not take the mark then: write it now (an error: not now).
            self.mark_done(&mark).await?;
            return Ok(Claim::Done);
        }
        if !self.hold(&mark) {
            return Ok(Claim::Busy);
        }
        let claim = self.claim(&mark).await;
        if !matches!(claim, Ok(Claim::First)) {
            self.mine().remove(&mark);
        }
        claim
    }

    async fn claim(&self, mark: &str) -> Result<Claim, BusError> {
        let mut link = self.link.lock().await;
        // The mark may expire between SET NX and GET: then claim again (at most a few times).
        for _ in 0..3 {
            let mut set = redis::cmd("SET");
            set.arg(mark)
                .arg(&self.busy)
                .arg("NX")
                .arg("PX")
                .arg(millis(self.lease));
            let made: Value = link.run(&set).await.map_err(Failure::into_bus_error)?;
            if !matches!(made, Value::Nil) {
                return Ok(Claim::First);
            }
            let mut get = redis::cmd("GET");
            get.arg(mark);
            let now: Option<String> = link.run(&get).await.map_err(Failure::into_bus_error)?;
            match now.as_deref() {
                Some(DONE) => return Ok(Claim::Done),
                // Ours, and no handler here holds it: a claim whose answer was lost. Take it anew.
                Some(v) if v == self.busy => {
                    let mut renew = redis::cmd("SET");
                    renew
                        .arg(mark)
                        .arg(&self.busy)
                        .arg("XX")
                        .arg("PX")
                        .arg(millis(self.lease));
                    let renewed: Value = link.run(&renew).await.map_err(Failure::into_bus_error)?;
                    if !matches!(renewed, Value::Nil) {
                        return Ok(Claim::First);
                    }
                }
                Some(_) => return Ok(Claim::Busy),
                None => {}
            }
        }
        Ok(Claim::Busy)
    }

    /// Records that `key` was handled: every later [`Deduper::begin`] within `keep` answers
    /// [`Claim::Done`].
    /// On an error (Redis away) the key is remembered here as handled: a later `begin` of this
    /// deduper answers [`Claim::Done`] and writes the mark then.
    pub async fn finish(&self, group: &str, key: &str) -> Result<(), BusError> {
        let mark = self.mark_key(group, key);
        let done = self.mark_done(&mark).await;
        if done.is_err() {
            let mut u = self.unmarked();
            if u.set.insert(mark.clone()) {
                u.order.push_back(mark);
                while u.order.len() > MAX_UNMARKED {
                    if let Some(old) = u.order.pop_front() {
                        u.set.remove(&old);
                    }
                }
            }
        }
        done
    }

    /// [`Deduper::finish`] for several keys of `group`, in one round trip. On an error every key
    /// is remembered here as handled (as `finish` does).
    pub async fn finish_many(&self, group: &str, keys: &[String]) -> Result<(), BusError> {
        if keys.is_empty() {
            return Ok(());
        }
        let marks: Vec<String> = keys.iter().map(|k| self.mark_key(group, k)).collect();
        let mut eval = redis::cmd("EVAL");
        eval.arg(MARK_ALL).arg(marks.len());
        for m in &marks {
            eval.arg(m);
        }
        eval.arg(DONE).arg(millis(self.keep));
        let mut link = self.link.lock().await;
        let done = link
            .run::<Value>(&eval)
            .await
            .map(|_| ())
            .map_err(Failure::into_bus_error);
        drop(link);
        match &done {
            Ok(()) => {
                let mut mine = self.mine();
                for m in &marks {
                    mine.remove(m);
                }
                drop(mine);
                let mut u = self.unmarked();
                for m in &marks {
                    u.set.remove(m);
                }
            }
            Err(_) => {
                let mut u = self.unmarked();
                for m in marks {
                    if u.set.insert(m.clone()) {
                        u.order.push_back(m);
                    }
                }
                while u.order.len() > MAX_UNMARKED {
                    if let Some(old) = u.order.pop_front() {
                        u.set.remove(&old);
                    }
                }
            }
        }
        done
    }

    /// Sets `mark` to `done` for `keep`; forgets it as claimed or unmarked here.
    async fn mark_done(&self, mark: &str) -> Result<(), BusError> {
        let mut set = redis::cmd("SET");
        set.arg(mark).arg(DONE).arg("PX").arg(millis(self.keep));
        let mut link = self.link.lock().await;
        link.run::<Value>(&set)
            .await
            .map_err(Failure::into_bus_error)?;
        drop(link);
        self.mine().remove(mark);
        // Its place in `order` goes when it is the oldest.
        self.unmarked().set.remove(mark);
        Ok(())
    }

    /// Gives a claim up (the action failed and may be tried again by a redelivery). On an error the
    /// claim stays until its lease runs out.
    pub async fn abandon(&self, group: &str, key: &str) -> Result<(), BusError> {
        let mark = self.mark_key(group, key);
        let mut del = redis::cmd("DEL");
        del.arg(&mark);
        let mut link = self.link.lock().await;
        link.run::<Value>(&del)
            .await
            .map_err(Failure::into_bus_error)?;
        self.mine().remove(&mark);
        Ok(())
    }
}

/// Sets every key to ARGV[1] for ARGV[2] ms.
const MARK_ALL: &str =
    "for _, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) end return #KEYS";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
