//! The fleet seen through Redis: which nodes are up ([`Heartbeat`], read back by [`status`]), what
//! every stream and consumer group holds ([`ClusterStatus`]), and a leader-free lease ([`Lease`]) so
//! that something many nodes notice at once is acted on by one of them only.
//!
//! Keys, all under the bus's prefix: the hash `<prefix>node:<node>` (one per node, expiring ten beats
//! after its last one), the sorted set `<prefix>nodes` (node name scored by its last beat, so a node
//! whose hash expired is still shown as gone), and `<prefix>lease:<key>`. Times are Redis's clock
//! (`TIME`), never a node's own, so that nodes whose clocks disagree are judged alike. This module
//! reads and writes only those keys and the streams' metadata (`XINFO`): it never reads, acknowledges
//! or trims messages.

mod checkpoints;
mod heartbeat;
mod lease;
mod status;

pub use checkpoints::{CheckpointBoard, NodeCheckpoint};
pub use heartbeat::{Heartbeat, NodeInfo};
pub use lease::Lease;
pub use status::{
    status, ClusterStatus, ConsumerStatus, GroupStatus, NodeState, NodeStatus, StreamStatus, TOPICS,
};

use crate::config::{Backoff, RedisBusConfig};
use crate::link::{describe, Link};
use crate::stats::BusStats;
use sentinel_core::BusError;
use std::sync::Arc;
use std::time::Duration;

/// The hash of one node.
fn node_key(prefix: &str, node: &str) -> String {
    format!("{prefix}node:{node}")
}

/// The sorted set of every node by its last beat.
fn nodes_key(prefix: &str) -> String {
    format!("{prefix}nodes")
}

/// A link of its own to the Redis of `config`, with the bus's timeouts and backoff.
fn link(config: &RedisBusConfig) -> Result<Link, BusError> {
    let client = redis::Client::open(config.url.as_str())
        .map_err(|e| BusError::Refused(format!("bad Redis URL: {}", describe(&e))))?;
    Ok(Link::new(
        client,
        config.timeout,
        config.timeout,
        Backoff::new(config.backoff_min, config.backoff_max),
        Arc::new(BusStats::default()),
    ))
}

/// Whole milliseconds, at least 1 (`PX 0` is an error in Redis).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
