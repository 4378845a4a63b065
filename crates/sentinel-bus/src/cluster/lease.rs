//! A lease without a leader: `SET <prefix>lease:<key> <owner> NX PX <ttl>`. Whoever sets it first
//! holds it until it runs out; everyone else is told no. Used where every node sees the same moment
//! and one of them must act on it, e.g. "a decision expires once": each responder reverts its own
//! enforcement when a plan's action expires, and only the one that wins `expire:<plan>` sends the
//! expiry notice.
//!
//! A lease is never released early: pick a `ttl` longer than the spread between the nodes noticing
//! the same thing (their clocks and timers), and shorter than the time after which the same key may
//! rightly be won again.

use super::{link, millis};
use crate::config::RedisBusConfig;
use crate::link::{Failure, Link};
use redis::Value;
use sentinel_core::BusError;
use std::time::Duration;

/// Takes leases for one owner (a node, a process) on the bus's Redis.
pub struct Lease {
    link: tokio::sync::Mutex<Link>,
    prefix: String,
    owner: String,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("prefix", &self.prefix)
            .field("owner", &self.owner)
            .finish()
    }
}

impl Lease {
    /// Leases on the Redis of `config`, taken as `owner` (unique among the contenders: the node
    /// name, or the bus's consumer name). Only the URL is checked here.
    pub fn new(config: &RedisBusConfig, owner: impl Into<String>) -> Result<Lease, BusError> {
        Ok(Lease::from_link(
            link(config)?,
            config.prefix.clone(),
            owner.into(),
        ))
    }

    pub(crate) fn from_link(link: Link, prefix: String, owner: String) -> Lease {
        Lease {
            link: tokio::sync::Mutex::new(link),
            prefix,
            owner,
        }
    }

    /// Who takes these leases.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The Redis key of the lease on `key`.
    pub fn lease_key(&self, key: &str) -> String {
        format!("{}lease:{key}", self.prefix)
    }

    /// Takes the lease on `key` for `ttl` (at least 1 ms): `true` when this caller won it, `false`
    /// when someone (this owner included) holds it. An error means Redis is away or refused: the
    /// caller did not win (and must not act as the winner).
    pub async fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, BusError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.lease_key(key))
            .arg(&self.owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let mut link = self.link.lock().await;
        let set: Value = link.run(&cmd).await.map_err(Failure::into_bus_error)?;
        Ok(!matches!(set, Value::Nil))
    }

    /// Who holds the lease on `key` now, if anyone.
    pub async fn holder(&self, key: &str) -> Result<Option<String>, BusError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.lease_key(key));
        let mut link = self.link.lock().await;
        link.run(&cmd).await.map_err(Failure::into_bus_error)
    }
}
