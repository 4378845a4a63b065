//! A node's heartbeat: every `every`, one atomic script writes the node's hash (roles, version, pid,
//! API address, start and last beat on Redis's clock), makes it expire ten beats later, and scores the
//! node in `<prefix>nodes`. While Redis is away beats fail, are counted, and one warning is logged per
//! outage; the next beat after it is back goes through. A second live process under the same node
//! name (a misconfiguration: the two overwrite each other's hash) is logged as an error.
//!
//! It never decides anything from the beats: [`super::status`] reads them.

use super::{link, millis, node_key, nodes_key};
use crate::config::RedisBusConfig;
use crate::link::{Failure, Link};
use redis::Value;
use sentinel_core::BusError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a node that stopped beating stays in `<prefix>nodes` (shown as gone), at least.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Writes the node's hash and its score, on Redis's clock, in one step; answers Redis's time and
/// what the hash held before (instance, pid, last beat, state), to spot a second process under the
/// same node name.
///
/// KEYS: the node's hash, the nodes' sorted set. ARGV: node, roles, version, pid, api, instance,
/// state, the hash's time to live (ms), how long the sorted set keeps a silent node (ms).
const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = redis.call('HMGET', KEYS[1], 'instance', 'pid', 'beat_ms', 'state', 'started_ms')
local started = now
if prev[1] == ARGV[6] and prev[5] then started = prev[5] end
redis.call('HSET', KEYS[1], 'roles', ARGV[2], 'version', ARGV[3], 'pid', ARGV[4], 'api', ARGV[5],
  'instance', ARGV[6], 'state', ARGV[7], 'started_ms', started, 'beat_ms', now)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[9]))
return {now, prev[1], prev[2], prev[3], prev[4]}
";

/// Who a node is, as its heartbeat tells the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's name (`node` in the configuration, else the hostname): unique in the fleet.
    pub node: String,
    /// The roles this process runs (`ingest`, `detect`, `respond`, …).
    pub roles: Vec<String>,
    /// Sentinel's version.
    pub version: String,
    /// This process's id.
    pub pid: u32,
    /// Where its API listens, when it serves one.
    pub api: Option<String>,
}

/// A running heartbeat. [`Heartbeat::stop`] writes a last beat that says `stopped`; dropping it
/// ends the task without one (the node then looks gone after three missed beats).
pub struct Heartbeat {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), BusError>>>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    beats: AtomicU64,
    failures: AtomicU64,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat")
            .field("beats", &self.beats())
            .field("failures", &self.failures())
            .finish()
    }
}

impl Heartbeat {
    /// Starts beating now and then every `every` (at least 10 ms), on a task of the current tokio
    /// runtime (it must be called inside one). Never fails: a Redis that is away, or a URL that
    /// cannot work, shows as counted [`Heartbeat::failures`] and a warning.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn start(config: &RedisBusConfig, info: NodeInfo, every: Duration) -> Heartbeat {
        let every = every.max(Duration::from_millis(10));
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = oneshot::channel();
        let beater = Beater {
            link: link(config),
            node_key: node_key(&config.prefix, &info.node),
            nodes_key: nodes_key(&config.prefix),
            instance: instance(info.pid),
            info,
            every,
            counts: Arc::clone(&counts),
            failing: false,
            beaten: false,
            duplicate: None,
        };
        let task = tokio::spawn(beater.run(stopped));
        Heartbeat {
            stop: Some(stop),
            task: Some(task),
            counts,
        }
    }

    /// Beats written.
    pub fn beats(&self) -> u64 {
        self.counts.beats.load(Ordering::Relaxed)
    }

    /// Beats that did not reach Redis.
    pub fn failures(&self) -> u64 {
        self.counts.failures.load(Ordering::Relaxed)
    }

    /// Writes a last beat with `state = stopped` and ends the task. The error says why that last
    /// beat did not reach Redis (the node then looks gone once its beats are missed).
    pub async fn stop(mut self) -> Result<(), BusError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| BusError::Unavailable(format!("the heartbeat task failed: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Tells this process's beats from another's under the same node name (even with the same pid on
/// another host).
fn instance(pid: u32) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{pid}-{nanos:x}")
}

/// What the hash held before a beat.
struct Before {
    now_ms: u64,
    instance: Option<String>,
    pid: Option<String>,
    beat_ms: Option<u64>,
    state: Option<String>,
}

struct Beater {
    link: Result<Link, BusError>,
    node_key: String,
    nodes_key: String,
    instance: String,
    info: NodeInfo,
    every: Duration,
    counts: Arc<Counts>,
    /// In an outage (its warning logged).
    failing: bool,
    /// A beat of ours went through before.
    beaten: bool,
    /// The other instance last reported under our name.
    duplicate: Option<String>,
}

impl Beater {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) -> Result<(), BusError> {
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    // Failures are counted and logged inside.
                    let _ = self.beat("running").await;
                }
                _ = &mut stopped => break,
            }
        }
        self.beat("stopped").await
    }

    async fn beat(&mut self, state: &str) -> Result<(), BusError> {
        match self.write(state).await {
            Ok(before) => {
                self.counts.beats.fetch_add(1, Ordering::Relaxed);
                if self.failing {
                    self.failing = false;
                    tracing::info!(
                        evt = "heartbeat_recovered",
                        node = %self.info.node,
                        failures = self.counts.failures.load(Ordering::Relaxed),
                        "heartbeat: written to Redis again"
                    );
                }
                self.check_duplicate(&before);
                self.beaten = true;
                Ok(())
            }
            Err(e) => {
                self.counts.failures.fetch_add(1, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        evt = "heartbeat_failed",
                        node = %self.info.node,
                        error = %e,
                        "heartbeat: cannot write to Redis; trying again every {} ms",
                        self.every.as_millis()
                    );
                }
                Err(e)
            }
        }
    }

    async fn write(&mut self, state: &str) -> Result<Before, BusError> {
        let link = match &mut self.link {
            Ok(l) => l,
            Err(e) => return Err(BusError::Refused(e.to_string())),
        };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(BEAT)
            .arg(2)
            .arg(&self.node_key)
            .arg(&self.nodes_key)
            .arg(&self.info.node)
            .arg(self.info.roles.join(","))
            .arg(&self.info.version)
            .arg(self.info.pid)
            .arg(self.info.api.as_deref().unwrap_or(""))
            .arg(&self.instance)
            .arg(state)
            .arg(millis(self.every.saturating_mul(10)))
            .arg(millis(FORGET_AFTER.max(self.every.saturating_mul(10))));
        let reply: Vec<Value> = link.run(&cmd).await.map_err(Failure::into_bus_error)?;
        let text = |i: usize| reply.get(i).and_then(value_text);
        Ok(Before {
            now_ms: reply
                .first()
                .and_then(value_u64)
                .ok_or_else(|| BusError::Refused("heartbeat: Redis gave no time".into()))?,
            instance: text(1),
            pid: text(2),
            beat_ms: text(3).and_then(|s| s.parse().ok()),
            state: text(4),
        })
    }

    /// Logs, once per other process, that another live process beats under this node name. Its beat
    /// before our first one may be this node's previous life (a restart soon after a crash) and is
    /// let pass; one found after a beat of ours is another process overwriting our hash.
    fn check_duplicate(&mut self, before: &Before) {
        let Some(other) = before.instance.as_deref() else {
            return;
        };
        if other == self.instance || before.state.as_deref() == Some("stopped") {
            return;
        }
        let recent = before.beat_ms.is_some_and(|b| {
            before.now_ms.saturating_sub(b) < millis(self.every.saturating_mul(3))
        });
        if !recent || !self.beaten || self.duplicate.as_deref() == Some(other) {
            return;
        }
        self.duplicate = Some(other.to_owned());
        tracing::error!(
            evt = "duplicate_node",
            node = %self.info.node,
            pid = self.info.pid,
            other_pid = before.pid.as_deref().unwrap_or("?"),
            "heartbeat: another live process beats under this node name; give each process its own `node`"
        );
    }
}

/// A string, number or bulk string as text.
pub(super) fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A non-negative integer, from an integer or its text.
pub(super) fn value_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Double(d) if *d >= 0.0 => Some(*d as u64),
        other => value_text(other)?.trim().parse().ok(),
    }
}
