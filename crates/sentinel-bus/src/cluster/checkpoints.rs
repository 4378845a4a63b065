//! Each node's audit checkpoints, collected centrally in Redis. The audit log stays on its node; a
//! node puts every signed checkpoint it makes here (`HSET <prefix>audit:<node>` with the latest,
//! and `XADD <prefix>checkpoints` for the history, trimmed), so an operator can take every node's
//! latest checkpoint from one place and later check that node's log against it
//! (`sentinel audit verify --checkpoint FILE`): a node whose log was rolled back or rewritten
//! since cannot match what it published.

use super::link;
use crate::config::RedisBusConfig;
use crate::link::{Failure, Link};
use redis::Value;
use sentinel_core::BusError;
use serde::Serialize;

/// History entries the `checkpoints` stream keeps, about.
const HISTORY: u64 = 10_000;

/// Keeps the larger checkpoint as the node's latest, and every one in the history stream.
const PUT: &str = r"local t = redis.call('TIME')
local ms = t[1] * 1000 + math.floor(t[2] / 1000)
local have = tonumber(redis.call('HGET', KEYS[1], 'size') or '-1')
if tonumber(ARGV[2]) >= have then
  redis.call('HSET', KEYS[1], 'node', ARGV[1], 'size', ARGV[2], 'text', ARGV[3], 'put_ms', ms)
  redis.call('ZADD', KEYS[3], ms, ARGV[1])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'node', ARGV[1], 'size', ARGV[2], 'text', ARGV[3])
return ms";

/// Where checkpoints are put and read.
pub struct CheckpointBoard {
    link: tokio::sync::Mutex<Link>,
    prefix: String,
}

/// One node's latest collected checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCheckpoint {
    /// The node.
    pub node: String,
    /// The log size it covers.
    pub size: u64,
    /// The signed note, as the node's log wrote it.
    pub text: String,
    /// When it was put (Redis's clock, ms).
    pub put_ms: u64,
}

impl std::fmt::Debug for CheckpointBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointBoard")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl CheckpointBoard {
    /// The board on the Redis of `config`. Only the URL is checked here.
    pub fn new(config: &RedisBusConfig) -> Result<CheckpointBoard, BusError> {
        Ok(CheckpointBoard {
            link: tokio::sync::Mutex::new(link(config)?),
            prefix: config.prefix.clone(),
        })
    }

    /// Puts `node`'s checkpoint of `size` records; an older one (smaller size) never replaces a
    /// newer one.
    pub async fn put(&self, node: &str, size: u64, text: &str) -> Result<(), BusError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUT)
            .arg(3)
            .arg(format!("{}audit:{node}", self.prefix))
            .arg(format!("{}checkpoints", self.prefix))
            .arg(format!("{}audit_nodes", self.prefix))
            .arg(node)
            .arg(size)
            .arg(text)
            .arg(HISTORY);
        let mut link = self.link.lock().await;
        let _: Value = link.run(&cmd).await.map_err(Failure::into_bus_error)?;
        Ok(())
    }

    /// Every node's latest checkpoint, by node name.
    pub async fn latest(&self) -> Result<Vec<NodeCheckpoint>, BusError> {
        let mut link = self.link.lock().await;
        let mut zr = redis::cmd("ZRANGE");
        zr.arg(format!("{}audit_nodes", self.prefix))
            .arg(0)
            .arg(999);
        let nodes: Vec<String> = match link.run(&zr).await.map_err(Failure::into_bus_error)? {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|v| redis::from_redis_value::<String>(&v).ok())
                .collect(),
            _ => Vec::new(),
        };
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            let mut h = redis::cmd("HGETALL");
            h.arg(format!("{}audit:{node}", self.prefix));
            let v = link.run(&h).await.map_err(Failure::into_bus_error)?;
            let map: std::collections::HashMap<String, String> =
                redis::from_redis_value(&v).unwrap_or_default();
            let (Some(size), Some(text)) = (
                map.get("size").and_then(|s| s.parse().ok()),
                map.get("text"),
            ) else {
                continue;
            };
            out.push(NodeCheckpoint {
                node,
                size,
                text: text.clone(),
                put_ms: map.get("put_ms").and_then(|s| s.parse().ok()).unwrap_or(0),
            });
        }
        out.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(out)
    }
}
