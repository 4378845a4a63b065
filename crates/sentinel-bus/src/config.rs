//! How a [`crate::RedisBus`] is set up: where Redis is, how stream keys and consumers are named, and
//! the bounds (stream length, buffer, batch, backoff, timeouts).
//!
//! A plain value with defaults; it does no I/O. Turning `bus: redis://…` in `sentinel.yml` into one is
//! the config crate's job.

use std::time::Duration;

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupStart {
    /// Only messages published after the group was made (as the in-process bus does).
    #[default]
    New,
    /// Everything the stream still holds (at most `maxlen` messages).
    Oldest,
}

/// The settings of a [`crate::RedisBus`]. Its `Debug` shows the URL with its credentials masked.
#[derive(Clone)]
pub struct RedisBusConfig {
    /// `redis://host:port/db` (no TLS: the `redis` client is built without it, so `rediss://` fails to connect).
    pub url: String,
    /// Put before every key: topic `events` is the stream `<prefix>events`, the deduper's marks are
    /// `<prefix>done:<group>:<key>`. Default `sentinel:`.
    pub prefix: String,
    /// The start of every consumer name of this process: a subscription is the consumer
    /// `<consumer>-<n>`, `n` counting subscriptions in the process. Default `<hostname>-<pid>`.
    pub consumer: String,
    /// Streams are trimmed to about this many entries on every publish (`XADD MAXLEN ~`): Redis keeps
    /// at least this many and trims whole nodes, so a stream may hold up to one node (100 entries by
    /// default) more.
    pub maxlen: u64,
    /// A pending message idle this long (its consumer died, or is stuck) is taken over by a live
    /// consumer of its group. Longer than any handler may take.
    pub claim_idle: Duration,
    /// How long one read waits for new messages (capped at half of `claim_idle`, so that reclaiming
    /// is looked at that often).
    pub block: Duration,
    /// How many messages one read or reclaim takes at most.
    pub batch: usize,
    /// How many messages the local buffer keeps while Redis is away; more are refused and counted.
    pub buffer: usize,
    /// The first wait before connecting again; doubled after each failure, up to `backoff_max`.
    pub backoff_min: Duration,
    /// The longest wait between two connection attempts.
    pub backoff_max: Duration,
    /// How long connecting, or one command, may take before Redis counts as away.
    pub timeout: Duration,
    /// Where a group this bus makes starts reading.
    pub group_start: GroupStart,
    /// Groups that start at the oldest entry whatever `group_start` says: work queues (a fleet's
    /// `investigators`) whose messages nobody else takes, so that what was published before their
    /// first consumer ever ran is still handled.
    pub oldest_groups: Vec<String>,
}

impl std::fmt::Debug for RedisBusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBusConfig")
            .field("url", &masked_url(&self.url))
            .field("prefix", &self.prefix)
            .field("consumer", &self.consumer)
            .field("maxlen", &self.maxlen)
            .field("claim_idle", &self.claim_idle)
            .field("block", &self.block)
            .field("batch", &self.batch)
            .field("buffer", &self.buffer)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("timeout", &self.timeout)
            .field("group_start", &self.group_start)
            .field("oldest_groups", &self.oldest_groups)
            .finish()
    }
}

/// `url` with what stands before an `@` in its authority (`user:password`, or a password alone)
/// replaced by `***`.
fn masked_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

impl RedisBusConfig {
    /// The defaults, for Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisBusConfig {
            url: url.into(),
            prefix: "sentinel:".into(),
            consumer: default_consumer(),
            maxlen: 100_000,
            claim_idle: Duration::from_secs(30),
            block: Duration::from_secs(1),
            batch: 64,
            buffer: 10_000,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            group_start: GroupStart::New,
            oldest_groups: Vec::new(),
        }
    }

    /// Where a new group `group` starts (`$`: new messages only; `0`: the oldest entry).
    pub(crate) fn start_of(&self, group: &str) -> &'static str {
        if self.oldest_groups.iter().any(|g| g == group) {
            return "0";
        }
        match self.group_start {
            GroupStart::New => "$",
            GroupStart::Oldest => "0",
        }
    }

    /// The stream key of a topic.
    pub fn stream_key(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }
}

/// `<hostname>-<pid>`: unique per process on a host, and readable in `XINFO CONSUMERS`.
fn default_consumer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sentinel".into());
    format!("{host}-{}", std::process::id())
}

/// Waits that double from `min` to `max`, and start over after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next attempt; the one after is twice as long, capped.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let w = self.next;
        self.next = (self.next * 2).min(self.max);
        w
    }

    /// Back to the shortest wait.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_starts_over() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(300));
        let waits: Vec<_> = (0..5).map(|_| b.next_wait()).collect();
        assert_eq!(waits, vec![ms(50), ms(100), ms(200), ms(300), ms(300)]);
        b.reset();
        assert_eq!(b.next_wait(), ms(50));
    }

    /// `RedisBus::config` hands the settings out: their `Debug` (a log line, a panic message) must
    /// not show the password in the URL, as `RedisBus`'s own `Debug` does not.
    #[test]
    fn debug_does_not_show_the_credentials_of_the_url() {
        for url in [
            "redis://sentinel:hunter2-pw@redis.example:6379/0",
            "rediss://:hunter2-pw@redis.example/",
            "redis://hunter2-pw@redis.example",
        ] {
            let shown = format!("{:?}", RedisBusConfig::new(url));
            assert!(!shown.contains("hunter2-pw"), "{shown}");
            assert!(shown.contains("redis.example"), "{shown}");
        }
        let shown = format!("{:?}", RedisBusConfig::new("redis://127.0.0.1:6379/2"));
        assert!(shown.contains("redis://127.0.0.1:6379/2"), "{shown}");
    }

    #[test]
    fn topics_are_keys_under_the_prefix() {
        let mut c = RedisBusConfig::new("redis://127.0.0.1/");
        assert_eq!(c.stream_key("alerts"), "sentinel:alerts");
        c.prefix = "fleet-a:".into();
        assert_eq!(c.stream_key("alerts"), "fleet-a:alerts");
        assert!(c.consumer.ends_with(&format!("-{}", std::process::id())));
    }
}
