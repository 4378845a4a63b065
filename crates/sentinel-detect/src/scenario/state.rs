//! Per-key state with a hard cap: idle entries are swept as event time passes, and past the cap the
//! stalest entries are evicted in one linear pass (amortised O(1) per insert).

use rustc_hash::FxHashMap;

/// Below this size a map is never swept early.
const SWEEP_FLOOR: usize = 4096;

/// What the map needs to know about an entry.
pub(crate) trait Entry {
    /// Whether the entry holds nothing that could still matter at `now` (an empty bucket, no cooldown).
    fn idle(&self, now: i64) -> bool;
    /// When the entry last mattered; the smallest are evicted first.
    fn freshness(&self) -> i64;
}

/// A capped map from a key (an address as `u128`) to per-key state.
#[derive(Debug)]
pub(crate) struct KeyMap<V> {
    map: FxHashMap<u128, V>,
    cap: usize,
    /// Size at which idle entries are next swept (about twice the live size after the last sweep),
    /// so memory follows the live state rather than the cap.
    next_sweep: usize,
    pub(crate) evicted: u64,
    pub(crate) expired: u64,
}

impl<V: Entry> KeyMap<V> {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(16);
        Self {
            map: FxHashMap::default(),
            cap,
            next_sweep: SWEEP_FLOOR.min(cap),
            evicted: 0,
            expired: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get_mut(&mut self, k: u128) -> Option<&mut V> {
        self.map.get_mut(&k)
    }

    /// Forgets `k` (a cancelled count); whether it was there.
    pub(crate) fn remove(&mut self, k: u128) -> bool {
        self.map.remove(&k).is_some()
    }

    /// The entry for `k`, made with `make` if absent (making room first if the map is full).
    pub(crate) fn entry(&mut self, k: u128, now: i64, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&k) {
            if self.map.len() >= self.cap {
                self.make_room(now);
            } else if self.map.len() >= self.next_sweep {
                self.sweep(now);
            }
        }
        self.map.entry(k).or_insert_with(make)
    }

    /// Drops every entry idle at `now` (a clock tick, between events).
    pub(crate) fn expire_idle(&mut self, now: i64) {
        self.sweep(now);
    }

    fn sweep(&mut self, now: i64) {
        let before = self.map.len();
        self.map.retain(|_, v| !v.idle(now));
        self.expired += (before - self.map.len()) as u64;
        self.next_sweep = (self.map.len() * 2).max(SWEEP_FLOOR).min(self.cap);
        if self.map.capacity() > 4 * self.next_sweep {
            self.map.shrink_to(self.next_sweep);
        }
    }

    fn make_room(&mut self, now: i64) {
        self.sweep(now);
        // Still nearly full of live state: evict the stalest eighth.
        if self.map.len() >= self.cap - self.cap / 16 {
            let mut fresh: Vec<i64> = self.map.values().map(Entry::freshness).collect();
            let nth = fresh.len() / 8;
            let (_, threshold, _) = fresh.select_nth_unstable(nth);
            let threshold = *threshold;
            let before = self.map.len();
            self.map.retain(|_, v| v.freshness() > threshold);
            self.evicted += (before - self.map.len()) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Until(i64);
    impl Entry for Until {
        fn idle(&self, now: i64) -> bool {
            self.0 <= now
        }
        fn freshness(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn the_cap_holds_and_idle_entries_go_first() {
        let mut m = KeyMap::new(100);
        for k in 0..100u128 {
            m.entry(k, 0, || Until(k as i64 * 10));
        }
        // At t=500 the first 51 (until <= 500) are idle: inserting sweeps them and evicts nothing live.
        m.entry(1000, 500, || Until(10_000));
        assert_eq!(m.len(), 50);
        assert_eq!(m.expired, 51);
        assert_eq!(m.evicted, 0);
        for k in 2000..3000u128 {
            m.entry(k, 500, || Until(20_000 + k as i64));
            assert!(m.len() <= 100);
        }
        assert!(m.evicted > 0);
        assert!(m.get_mut(2999).is_some(), "the freshest survive");
    }
}
