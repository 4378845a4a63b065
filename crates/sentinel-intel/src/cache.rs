//! The answer cache: what providers said about addresses, kept for each answer's TTL.
//!
//! Two tiers. Memory: bounded (`max_entries`; the least recently used entry is forgotten first), with
//! each entry's expiry on tokio's clock. Redis, when configured: shared by every node, keys
//! `<prefix><provider>:<ip>`, values JSON (`{"answer": …, "fetched_at_ms": …}`) written with
//! `SET … PX <ttl>`, so Redis forgets them by itself. A Redis hit fills the memory tier for the key's
//! remaining TTL. Redis is an optimisation, never a dependency: any Redis error (down, slow, a value
//! that does not parse) is a miss, counted, warned about at most once a minute, and the investigation
//! goes on asking the provider.

use crate::config::RedisUrl;
use crate::provider::Answer;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How long one Redis operation (connecting included) may take before it counts as a miss.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed connection, Redis is not tried again for this long (every lookup would otherwise
/// pay a connection attempt while it is down).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Redis failures are warned about at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The largest Redis value read or written (bytes). An answer's details are bounded by the clients
/// to about 4 KiB; a bigger value was not written by a Sentinel and is not read whole.
pub const MAX_REDIS_VALUE: usize = 64 * 1024;

/// Which tier an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSource {
    /// This node's memory.
    Memory,
    /// The shared Redis.
    Redis,
}

impl CacheSource {
    /// `memory` or `redis`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheSource::Memory => "memory",
            CacheSource::Redis => "redis",
        }
    }
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    /// What the provider said.
    pub answer: Answer,
    /// When it said it (wall clock, Unix milliseconds).
    pub fetched_at_ms: u64,
    /// Where it was found.
    pub source: CacheSource,
}

/// The cache's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Entries in memory now (expired ones included until they are looked up or evicted).
    pub entries: usize,
    /// Found in memory.
    pub memory_hits: u64,
    /// Found in Redis (after a memory miss).
    pub redis_hits: u64,
    /// Found nowhere.
    pub misses: u64,
    /// Redis operations that failed (each read also counted as a miss).
    pub redis_errors: u64,
    /// Entries forgotten to stay within `max_entries`.
    pub evictions: u64,
}

/// The wall clock in Unix milliseconds (only for `fetched_at`; every wait and expiry uses tokio's
/// clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

type Key = (String, IpAddr);

struct Entry {
    answer: Answer,
    fetched_at_ms: u64,
    expires: Instant,
    /// Position in the recency order.
    seq: u64,
}

/// The memory tier: a map plus a recency order (oldest use first), both O(log n) at worst.
struct Memory {
    max: usize,
    map: HashMap<Key, Entry>,
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

impl Memory {
    fn get(&mut self, key: &Key, now: Instant) -> Option<(Answer, u64)> {
        let seq = self.next_seq;
        let entry = self.map.get_mut(key)?;
        if entry.expires <= now {
            let old = entry.seq;
            self.map.remove(key);
            self.order.remove(&old);
            return None;
        }
        self.order.remove(&entry.seq);
        entry.seq = seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        Some((entry.answer.clone(), entry.fetched_at_ms))
    }

    /// Inserts; returns how many entries were evicted to make room.
    fn put(&mut self, key: Key, answer: Answer, fetched_at_ms: u64, expires: Instant) -> u64 {
        if self.max == 0 {
            return 0;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.map.insert(
            key.clone(),
            Entry {
                answer,
                fetched_at_ms,
                expires,
                seq,
            },
        ) {
            self.order.remove(&old.seq);
        }
        self.order.insert(seq, key);
        let mut evicted = 0;
        while self.map.len() > self.max {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
            evicted += 1;
        }
        evicted
    }
}

/// What a Redis value holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    answer: Answer,
    fetched_at_ms: u64,
}

struct RedisTier {
    client: redis::Client,
    url: RedisUrl,
    prefix: String,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    /// No connection attempt before this (after a failed one).
    next_connect: Mutex<Option<Instant>>,
    last_warn: Mutex<Option<Instant>>,
}

/// The answer cache, shared by every provider's [`crate::Guarded`].
pub struct AnswerCache {
    memory: Mutex<Memory>,
    redis: Option<RedisTier>,
    memory_hits: AtomicU64,
    redis_hits: AtomicU64,
    misses: AtomicU64,
    redis_errors: AtomicU64,
    evictions: AtomicU64,
}

impl fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnswerCache")
            .field("redis", &self.redis.as_ref().map(|r| &r.url))
            .field("stats", &self.stats())
            .finish()
    }
}

impl AnswerCache {
    fn build(max_entries: usize, redis: Option<RedisTier>) -> Self {
        AnswerCache {
            memory: Mutex::new(Memory {
                max: max_entries,
                map: HashMap::new(),
                order: BTreeMap::new(),
                next_seq: 0,
            }),
            redis,
            memory_hits: AtomicU64::new(0),
            redis_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// A memory-only cache of at most `max_entries` answers.
    pub fn memory(max_entries: usize) -> Self {
        Self::build(max_entries, None)
    }

    /// A memory cache in front of a shared Redis. Only the URL is checked here; the connection is
    /// made on first use (and remade when lost), so a Redis that is down at start only costs misses.
    pub fn with_redis(max_entries: usize, url: &RedisUrl, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| format!("invalid Redis URL {}: {:?}", url.masked(), e.kind()))?;
        Ok(Self::build(
            max_entries,
            Some(RedisTier {
                client,
                url: url.clone(),
                prefix: prefix.to_owned(),
                conn: tokio::sync::Mutex::new(None),
                next_connect: Mutex::new(None),
                last_warn: Mutex::new(None),
            }),
        ))
    }

    fn mem(&self) -> std::sync::MutexGuard<'_, Memory> {
        // Every update under this lock leaves map and order consistent before it can panic (it
        // cannot), so a poisoned lock is used as is.
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Redis key of an answer: `<prefix><provider>:<ip>`.
    pub fn redis_key(prefix: &str, provider: &str, ip: IpAddr) -> String {
        format!("{prefix}{provider}:{ip}")
    }

    /// Looks an answer up: memory first, then Redis.
    pub async fn get(&self, provider: &str, ip: IpAddr) -> Option<Cached> {
        let key = (provider.to_owned(), ip);
        let found = self.mem().get(&key, Instant::now());
        if let Some((answer, fetched_at_ms)) = found {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some(Cached {
                answer,
                fetched_at_ms,
                source: CacheSource::Memory,
            });
        }
        if let Some(r) = &self.redis {
            let rkey = Self::redis_key(&r.prefix, provider, ip);
            match self.redis_get(r, &rkey).await {
                Ok(Some((stored, ttl))) => {
                    self.redis_hits.fetch_add(1, Ordering::Relaxed);
                    let evicted = self.mem().put(
                        key,
                        stored.answer.clone(),
                        stored.fetched_at_ms,
                        Instant::now() + ttl,
                    );
                    self.evictions.fetch_add(evicted, Ordering::Relaxed);
                    return Some(Cached {
                        answer: stored.answer,
                        fetched_at_ms: stored.fetched_at_ms,
                        source: CacheSource::Redis,
                    });
                }
                Ok(None) => {}
                Err(e) => self.redis_failed(r, "read", &e),
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Keeps an answer for `ttl` (in memory, and in Redis when configured), fetched now.
    pub async fn put(&self, provider: &str, ip: IpAddr, answer: &Answer, ttl: Duration) {
        self.put_fetched(provider, ip, answer, ttl, now_ms()).await;
    }

    /// Keeps an answer fetched at `fetched_at_ms` for `ttl` from now.
    pub async fn put_fetched(
        &self,
        provider: &str,
        ip: IpAddr,
        answer: &Answer,
        ttl: Duration,
        fetched_at_ms: u64,
    ) {
        if ttl.is_zero() {
            return;
        }
        self.put_memory(provider, ip, answer, ttl, fetched_at_ms);
        self.put_shared(provider, ip, answer, ttl, fetched_at_ms)
            .await;
    }

    /// Keeps an answer fetched now: in memory at once, and in Redis (when configured) from a task
    /// of its own, so that a slow or stalled Redis never holds back whoever is waiting for the
    /// answer (the write is bounded by [`REDIS_TIMEOUT`] all the same). Must be called inside a
    /// tokio runtime.
    pub fn put_detached(
        self: &Arc<Self>,
        provider: &str,
        ip: IpAddr,
        answer: &Answer,
        ttl: Duration,
    ) {
        if ttl.is_zero() {
            return;
        }
        let fetched_at_ms = now_ms();
        self.put_memory(provider, ip, answer, ttl, fetched_at_ms);
        if self.redis.is_some() {
            let cache = Arc::clone(self);
            let (provider, answer) = (provider.to_owned(), answer.clone());
            tokio::spawn(async move {
                cache
                    .put_shared(&provider, ip, &answer, ttl, fetched_at_ms)
                    .await;
            });
        }
    }

    fn put_memory(
        &self,
        provider: &str,
        ip: IpAddr,
        answer: &Answer,
        ttl: Duration,
        fetched_at_ms: u64,
    ) {
        let evicted = self.mem().put(
            (provider.to_owned(), ip),
            answer.clone(),
            fetched_at_ms,
            Instant::now() + ttl,
        );
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    async fn put_shared(
        &self,
        provider: &str,
        ip: IpAddr,
        answer: &Answer,
        ttl: Duration,
        fetched_at_ms: u64,
    ) {
        if let Some(r) = &self.redis {
            let rkey = Self::redis_key(&r.prefix, provider, ip);
            let stored = Stored {
                answer: answer.clone(),
                fetched_at_ms,
            };
            let result = match serde_json::to_string(&stored) {
                Ok(json) if json.len() > MAX_REDIS_VALUE => Err(format!(
                    "answer of {} bytes is above {MAX_REDIS_VALUE}: kept in memory only",
                    json.len()
                )),
                Ok(json) => self.redis_set(r, &rkey, json, ttl).await,
                Err(e) => Err(format!("answer not serialisable: {e}")),
            };
            if let Err(e) = result {
                self.redis_failed(r, "write", &e);
            }
        }
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.mem().map.len(),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            redis_hits: self.redis_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            redis_errors: self.redis_errors.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    fn redis_failed(&self, r: &RedisTier, op: &str, e: &str) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = r.last_warn.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now >= t + WARN_EVERY) {
            *last = Some(now);
            tracing::warn!(
                redis = %r.url,
                errors = self.redis_errors.load(Ordering::Relaxed),
                "intel cache: Redis {op} failed ({e}); answering from memory and the providers (warned at most once a minute)"
            );
        }
    }

    /// A connection, made if there is none (not more than once a second while Redis is down).
    async fn connection(&self, r: &RedisTier) -> Result<redis::aio::ConnectionManager, String> {
        let mut conn = r.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        {
            let next = r.next_connect.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = *next {
                if Instant::now() < at {
                    return Err("not connected (reconnecting)".into());
                }
            }
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        let made = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::aio::ConnectionManager::new_with_config(r.client.clone(), config),
        )
        .await;
        let result = match made {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("cannot connect: {e}")),
            Err(_) => Err("cannot connect: timed out".into()),
        };
        match result {
            Ok(c) => {
                *conn = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                *r.next_connect.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Instant::now() + RECONNECT_AFTER);
                Err(e)
            }
        }
    }

    async fn redis_get(
        &self,
        r: &RedisTier,
        key: &str,
    ) -> Result<Option<(Stored, Duration)>, String> {
        let mut c = self.connection(r).await?;
        let mut pipe = redis::pipe();
        // At most one byte more than a value may hold, so a huge value is never read whole.
        pipe.cmd("GETRANGE")
            .arg(key)
            .arg(0)
            .arg(MAX_REDIS_VALUE)
            .pttl(key);
        let reply = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<(String, i64)>(&mut c))
            .await
            .map_err(|_| "timed out".to_owned())?;
        let (value, pttl) = reply.map_err(|e| e.to_string())?;
        // PTTL is -2 when there is no such key (GETRANGE then reads ""), -1 when it has no expiry
        // (someone else wrote it): neither is a cached answer.
        let Ok(ttl_ms) = u64::try_from(pttl) else {
            return Ok(None);
        };
        if value.len() > MAX_REDIS_VALUE {
            return Err(format!(
                "value of {key} is larger than {MAX_REDIS_VALUE} bytes: not a cached answer"
            ));
        }
        let stored: Stored = serde_json::from_str(&value)
            .map_err(|e| format!("value of {key} is not a cached answer: {e}"))?;
        if stored.answer.score.is_some_and(|s| s > 100) {
            return Err(format!(
                "value of {key} is not a cached answer: a score above 100"
            ));
        }
        Ok(Some((stored, Duration::from_millis(ttl_ms))))
    }

    async fn redis_set(
        &self,
        r: &RedisTier,
        key: &str,
        json: String,
        ttl: Duration,
    ) -> Result<(), String> {
        let mut c = self.connection(r).await?;
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(json).arg("PX").arg(ms);
        tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<()>(&mut c))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_core::Verdict;

    fn answer(score: u8) -> Answer {
        Answer {
            verdict: Verdict::Suspicious,
            score: Some(score),
            details: serde_json::json!({"n": score}),
            negative: false,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_expiry() {
        let c = AnswerCache::memory(10);
        c.put("p", ip(1), &answer(1), Duration::from_secs(10)).await;
        tokio::time::advance(Duration::from_secs(9)).await;
        let hit = c.get("p", ip(1)).await.unwrap();
        assert_eq!(hit.source, CacheSource::Memory);
        assert_eq!(hit.answer, answer(1));
        assert!(c.get("q", ip(1)).await.is_none(), "keyed by provider too");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(c.get("p", ip(1)).await.is_none());
        let s = c.stats();
        assert_eq!((s.memory_hits, s.misses, s.entries), (1, 2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn least_recently_used_goes_first() {
        let c = AnswerCache::memory(3);
        for n in 1..=3 {
            c.put("p", ip(n), &answer(n), Duration::from_secs(60)).await;
        }
        // Using 1 makes 2 the least recently used.
        assert!(c.get("p", ip(1)).await.is_some());
        c.put("p", ip(4), &answer(4), Duration::from_secs(60)).await;
        assert!(c.get("p", ip(2)).await.is_none());
        for n in [1, 3, 4] {
            assert!(c.get("p", ip(n)).await.is_some(), "{n}");
        }
        // Overwriting an entry does not grow the cache.
        c.put("p", ip(4), &answer(40), Duration::from_secs(60))
            .await;
        assert_eq!(c.get("p", ip(4)).await.unwrap().answer, answer(40));
        let s = c.stats();
        assert_eq!((s.entries, s.evictions), (3, 1));
    }

    #[test]
    fn bad_redis_url_is_an_error_without_the_password() {
        let e =
            AnswerCache::with_redis(10, &RedisUrl::new("redis://:hunter2@[::1"), "p:").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("invalid Redis URL"), "{e}");
    }
}
