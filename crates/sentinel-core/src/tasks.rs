//! The task tracker: how many pieces of work the daemon has in flight, by kind.
//!
//! Every per-item task the daemon runs (an investigation, an action batch, an HTTP request, a pipeline
//! stage) holds a [`TaskGuard`] from [`Tasks::track`] for as long as it lives, or is started with
//! [`Tasks::spawn`]. The guard counts the task finished when it is dropped, so a task that returns,
//! fails, panics (its future is dropped while unwinding) or is cancelled (aborted, or its future simply
//! dropped, as hyper does when a client goes away) always leaves the active count. A count that does
//! not return to its baseline is therefore a real leak, which `GET /v1/system/heartbeat` and the
//! `sentinel_tasks_*` metrics make visible.
//!
//! The hot path takes no lock: a kind's counters live in one of [`MAX_KINDS`] fixed slots, claimed
//! once by name on the kind's first use (kinds are code constants, not input); after that, starting a
//! task is a scan of a few claimed slots and two atomic additions, finishing two more. Kinds beyond the slots are counted under [`OVERFLOW_KIND`]. This module does no I/O.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// How many distinct kinds are counted apart (the last slot takes the rest).
pub const MAX_KINDS: usize = 32;
/// The kind reported for tasks of kinds beyond [`MAX_KINDS`] − 1 distinct names.
pub const OVERFLOW_KIND: &str = "other";

/// One kind's counters.
#[derive(Debug, Default)]
struct Slot {
    kind: OnceLock<&'static str>,
    started: AtomicU64,
    finished: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    slots: [Slot; MAX_KINDS],
    started: AtomicU64,
    finished: AtomicU64,
}

/// Counts of one kind of task (see [`Tasks::kinds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KindCounts {
    /// The kind.
    pub kind: &'static str,
    /// Started and not finished yet.
    pub active: u64,
    /// Started since the tracker was made.
    pub started: u64,
    /// Finished (returned, failed, panicked or cancelled) since the tracker was made.
    pub finished: u64,
}

/// Every count at one moment, the shape of the heartbeat's `tasks` object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TasksSnapshot {
    /// Tasks started and not finished yet.
    pub active: u64,
    /// Active tasks by kind (every kind seen so far, at 0 when none runs).
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Tasks started since the tracker was made.
    pub started: u64,
    /// Tasks finished since the tracker was made.
    pub finished: u64,
}

/// The tracker. Clones share the counts.
#[derive(Debug, Clone)]
pub struct Tasks(Arc<Inner>);

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

impl Tasks {
    /// A tracker with every count at zero.
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            slots: std::array::from_fn(|_| Slot::default()),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        }))
    }

    /// The slot of `kind`, claimed on first use (lock-free: a scan of at most [`MAX_KINDS`] slots).
    fn slot(&self, kind: &'static str) -> usize {
        let last = MAX_KINDS - 1;
        for (i, s) in self.0.slots[..last].iter().enumerate() {
            let claimed = match s.kind.get() {
                Some(k) => *k,
                // Another thread may claim it first: then it holds that thread's kind, maybe ours.
                None => *s.kind.get_or_init(|| kind),
            };
            if std::ptr::eq(claimed, kind) || claimed == kind {
                return i;
            }
        }
        let _ = self.0.slots[last].kind.set(OVERFLOW_KIND);
        last
    }

    /// Counts a task of `kind` started; it counts as finished when the guard is dropped.
    pub fn track(&self, kind: &'static str) -> TaskGuard {
        let slot = self.slot(kind);
        self.0.slots[slot].started.fetch_add(1, Ordering::Relaxed);
        self.0.started.fetch_add(1, Ordering::Relaxed);
        TaskGuard {
            tasks: Arc::clone(&self.0),
            slot,
        }
    }

    /// Spawns `fut` on the current tokio runtime, tracked as `kind` until it returns, panics or is
    /// aborted (it counts as started at once, before its first poll).
    pub fn spawn<F>(&self, kind: &'static str, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let guard = self.track(kind);
        tokio::spawn(async move {
            let _guard = guard;
            fut.await
        })
    }

    /// Tasks started and not finished yet.
    pub fn active(&self) -> u64 {
        // Finished first: a task that finishes between the two loads was started before it.
        let finished = self.0.finished.load(Ordering::Acquire);
        self.0
            .started
            .load(Ordering::Acquire)
            .saturating_sub(finished)
    }

    /// Tasks started since the tracker was made.
    pub fn started(&self) -> u64 {
        self.0.started.load(Ordering::Relaxed)
    }

    /// Tasks finished since the tracker was made.
    pub fn finished(&self) -> u64 {
        self.0.finished.load(Ordering::Relaxed)
    }

    /// Every kind seen so far with its counts, in slot order.
    pub fn kinds(&self) -> Vec<KindCounts> {
        self.0
            .slots
            .iter()
            .filter_map(|s| {
                let kind = *s.kind.get()?;
                let finished = s.finished.load(Ordering::Acquire);
                let started = s.started.load(Ordering::Acquire);
                Some(KindCounts {
                    kind,
                    active: started.saturating_sub(finished),
                    started,
                    finished,
                })
            })
            .collect()
    }

    /// Active tasks by kind (every kind seen so far, at 0 when none runs).
    pub fn by_kind(&self) -> BTreeMap<&'static str, u64> {
        self.kinds()
            .into_iter()
            .map(|k| (k.kind, k.active))
            .collect()
    }

    /// Every count now.
    pub fn snapshot(&self) -> TasksSnapshot {
        let finished = self.finished();
        let started = self.started();
        TasksSnapshot {
            active: started.saturating_sub(finished),
            by_kind: self.by_kind(),
            started,
            finished,
        }
    }
}

/// A task in flight: counted finished when dropped, however the task ends.
#[must_use = "the task counts as finished as soon as the guard is dropped"]
#[derive(Debug)]
pub struct TaskGuard {
    tasks: Arc<Inner>,
    slot: usize,
}

impl TaskGuard {
    /// The kind this task is counted under.
    pub fn kind(&self) -> &'static str {
        self.tasks.slots[self.slot]
            .kind
            .get()
            .copied()
            .unwrap_or(OVERFLOW_KIND)
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        // Per kind first: the total never shows a task finished that its kind still counts.
        self.tasks.slots[self.slot]
            .finished
            .fetch_add(1, Ordering::Release);
        self.tasks.finished.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_guard_counts_until_dropped() {
        let t = Tasks::new();
        let a = t.track("a");
        let b = t.track("b");
        let a2 = t.track("a");
        assert_eq!(a.kind(), "a");
        assert_eq!(t.active(), 3);
        assert_eq!(t.by_kind(), BTreeMap::from([("a", 2), ("b", 1)]));
        drop(a);
        drop(b);
        assert_eq!(t.by_kind(), BTreeMap::from([("a", 1), ("b", 0)]));
        drop(a2);
        let s = t.snapshot();
        assert_eq!((s.active, s.started, s.finished), (0, 3, 3));
        assert_eq!(s.by_kind, BTreeMap::from([("a", 0), ("b", 0)]));
    }

    #[test]
    fn kinds_past_the_slots_are_counted_as_other() {
        let t = Tasks::new();
        let names: Vec<&'static str> = (0..MAX_KINDS + 5)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        let guards: Vec<TaskGuard> = names.iter().map(|n| t.track(n)).collect();
        let by = t.by_kind();
        assert_eq!(by.len(), MAX_KINDS);
        assert_eq!(by[OVERFLOW_KIND], 6);
        assert_eq!(by["k0"], 1);
        assert_eq!(t.active(), (MAX_KINDS + 5) as u64);
        drop(guards);
        assert_eq!(t.active(), 0);
        assert!(t.by_kind().values().all(|v| *v == 0));
    }

    /// Kinds claimed from many threads at once each get one slot (no kind counted twice).
    #[test]
    fn concurrent_claims_give_one_slot_per_kind() {
        let t = Tasks::new();
        let kinds = ["a", "b", "c", "d", "e", "f", "g", "h"];
        std::thread::scope(|s| {
            for i in 0..8 {
                let t = t.clone();
                s.spawn(move || {
                    for j in 0..2_000 {
                        let _g = t.track(kinds[(i + j) % kinds.len()]);
                    }
                });
            }
        });
        let all = t.kinds();
        assert_eq!(all.len(), kinds.len(), "{all:?}");
        assert!(all.iter().all(|k| k.active == 0 && k.started == 2_000));
        assert_eq!((t.started(), t.finished(), t.active()), (16_000, 16_000, 0));
    }

    #[derive(Debug)]
    struct Failed;

    /// 10,000 tasks over 8 workers: some finish, some return errors, some panic, some are aborted while
    /// they wait, some are dropped before their first poll. Every one leaves the count.
    #[test]
    fn counts_converge_after_tasks_that_finish_fail_panic_or_are_aborted() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(8)
            .enable_time()
            .build()
            .unwrap();
        let t = Tasks::new();
        rt.block_on(async {
            let mut handles = Vec::new();
            let mut to_abort = Vec::new();
            for i in 0..10_000u32 {
                let kind = match i % 4 {
                    0 => "ok",
                    1 => "error",
                    2 => "panic",
                    _ => "aborted",
                };
                let h = t.spawn(kind, async move {
                    tokio::task::yield_now().await;
                    match i % 4 {
                        0 => Ok(i),
                        1 => Err(Failed),
                        2 => panic!("task {i} panics on purpose"),
                        _ => {
                            // Waits until aborted.
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            Ok(i)
                        }
                    }
                });
                if i % 4 == 3 {
                    to_abort.push(h);
                } else {
                    handles.push((i, h));
                }
            }
            // Half aborted mid-await, half possibly before they ever ran.
            tokio::time::sleep(Duration::from_millis(50)).await;
            for h in &to_abort {
                h.abort();
            }
            for (i, h) in handles {
                match (i % 4, h.await) {
                    (0, Ok(Ok(v))) => assert_eq!(v, i),
                    (1, Ok(Err(Failed))) => {}
                    (2, Err(e)) => assert!(e.is_panic()),
                    (k, r) => panic!("task {i} (case {k}) ended as {r:?}"),
                }
            }
            for h in to_abort {
                assert!(h.await.unwrap_err().is_cancelled());
            }
        });
        // The runtime is dropped: every task's future (and guard) is gone.
        drop(rt);
        let s = t.snapshot();
        assert_eq!((s.active, s.started, s.finished), (0, 10_000, 10_000));
        assert_eq!(
            s.by_kind,
            BTreeMap::from([("aborted", 0), ("error", 0), ("ok", 0), ("panic", 0)])
        );
        assert!(t.kinds().iter().all(|k| k.started == 2_500));
    }

    /// Tasks still pending when their runtime shuts down are counted finished too.
    #[test]
    fn tasks_dropped_with_their_runtime_leave_the_count() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let t = Tasks::new();
        rt.block_on(async {
            for _ in 0..100 {
                drop(t.spawn("stuck", std::future::pending::<()>()));
            }
            tokio::task::yield_now().await;
        });
        assert_eq!(t.active(), 100);
        drop(rt);
        assert_eq!(t.active(), 0);
    }
}
