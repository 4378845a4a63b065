//! Request coalescing: one request in flight per key; everyone asking meanwhile waits for it and
//! shares its result.
//!
//! The request runs in its own spawned task, not in any caller: a caller that gives up (its
//! investigation's deadline passed, its future was dropped) does not cancel it, so it still completes
//! and whatever it does on completion (filling the cache) still happens, and the next alert on the same
//! address finds the answer.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type InFlight<K, V> = Arc<Mutex<HashMap<K, watch::Receiver<Option<V>>>>>;

/// One request in flight per key.
pub struct Coalescer<K, V> {
    in_flight: InFlight<K, V>,
}

impl<K, V> fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescer")
            .field("in_flight", &lock(&self.in_flight).len())
            .finish()
    }
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Coalescer {
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// A caller's share of a request.
#[derive(Debug)]
pub struct Joined<V> {
    rx: watch::Receiver<Option<V>>,
    leader: bool,
}

impl<V: Clone> Joined<V> {
    /// Whether this caller started the request (the others joined one in flight).
    pub fn started(&self) -> bool {
        self.leader
    }

    /// Waits for the result. `None` when the request's task ended without one (it panicked, or the
    /// runtime is shutting down).
    pub async fn result(mut self) -> Option<V> {
        match self.rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        }
    }
}

/// Removes the key when the request's task ends, however it ends.
struct Done<K: Eq + Hash, V> {
    in_flight: InFlight<K, V>,
    key: Option<K>,
}

impl<K: Eq + Hash, V> Drop for Done<K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.in_flight).remove(&key);
        }
    }
}

fn lock<K, V>(
    m: &InFlight<K, V>,
) -> std::sync::MutexGuard<'_, HashMap<K, watch::Receiver<Option<V>>>> {
    // Only inserts and removes happen under this lock: a poisoned map is still a valid map.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K, V> Coalescer<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A coalescer with nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins the request in flight for `key`, or spawns `start()` as that request. Must be called
    /// inside a tokio runtime.
    pub fn join<F, Fut>(&self, key: K, start: F) -> Joined<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut map = lock(&self.in_flight);
        if let Some(rx) = map.get(&key) {
            return Joined {
                rx: rx.clone(),
                leader: false,
            };
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.clone(), rx.clone());
        drop(map);
        let done = Done {
            in_flight: Arc::clone(&self.in_flight),
            key: Some(key),
        };
        let request = start();
        tokio::spawn(async move {
            let value = request.await;
            // Forget the request before publishing: whoever asks after this starts afresh (and
            // finds the cache the request has filled).
            drop(done);
            tx.send_replace(Some(value));
        });
        Joined { rx, leader: true }
    }

    /// Requests in flight now.
    pub fn len(&self) -> usize {
        lock(&self.in_flight).len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn one_request_shared_and_finished_without_waiters() {
        let c: Coalescer<u32, u32> = Coalescer::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let start = || {
            let runs = Arc::clone(&runs);
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                runs.fetch_add(1, Ordering::SeqCst) as u32 + 100
            }
        };
        let joined: Vec<_> = (0..5).map(|_| c.join(7, start)).collect();
        assert_eq!(joined.iter().filter(|j| j.started()).count(), 1);
        assert_eq!(c.len(), 1);
        let results = futures::future::join_all(joined.into_iter().map(Joined::result)).await;
        assert_eq!(results, vec![Some(100); 5]);
        assert!(c.is_empty());
        // Nobody waits for this one; it still runs to completion.
        drop(c.join(7, start));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(c.is_empty());
    }
}
