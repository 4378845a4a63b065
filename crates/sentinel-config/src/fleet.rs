//! `bus`, `node` and `fleet`: how the processes of one Sentinel installation find each other.
//!
//! `bus: memory` (the default) keeps every stage in one process, joined by in-process queues.
//! `bus: redis://host:6379/0` joins processes started with `sentinel run --role …` (on one host or
//! many) through Redis Streams. `node` names this process's host in the fleet: a plan scoped to a
//! host names it, consumers and heartbeats carry it.

use crate::api_edge::within;
use crate::reader::{Node, Reader};
use serde::Serialize;
use std::time::Duration;

/// The Redis address `BUS=redis` selects.
pub const DEFAULT_REDIS_BUS: &str = "redis://127.0.0.1:6379/0";

/// `bus`: what joins the stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusSetting {
    /// In-process queues (one process).
    Memory,
    /// Redis Streams at this `redis://` URL (credentials masked when shown).
    Redis(String),
}

impl BusSetting {
    /// The URL of a Redis bus.
    pub fn redis_url(&self) -> Option<&str> {
        match self {
            BusSetting::Redis(u) => Some(u),
            BusSetting::Memory => None,
        }
    }
}

impl Serialize for BusSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BusSetting::Memory => s.serialize_str("memory"),
            BusSetting::Redis(u) => s.serialize_str(&crate::otlp::mask_url(u)),
        }
    }
}

/// `fleet`: the Redis bus's tuning and the nodes' heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetConfig {
    /// Put before every Redis key of the bus (streams, act-once marks, heartbeats, leases).
    pub prefix: String,
    /// Streams are trimmed to about this many entries (1000..=100000000).
    pub stream_maxlen: u64,
    /// A message left unacknowledged this long by its consumer is handed to a live one (1s..=1h).
    #[serde(with = "humantime_serde")]
    pub claim_idle: Duration,
    /// Messages buffered while Redis is away (1..=10000000); more are refused and counted.
    pub buffer: usize,
    /// Unacknowledged messages one consuming link holds at most (1..=100000).
    pub max_in_flight: usize,
    /// How long a consumer group remembers a message as handled (its act-once mark in Redis):
    /// longer than any redelivery or re-decision of the same alert can come (1m..=30d).
    #[serde(with = "humantime_serde")]
    pub done_keep: Duration,
    /// How often a node writes its heartbeat (1s..=5m); `sentinel cluster status` calls a node
    /// gone after three missed beats.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// The key every bus message is signed with (HMAC-SHA256) and checked against; messages
    /// without a valid signature are refused. `None`: messages are not signed (warned).
    pub secret: Option<sentinel_notify::config::Secret>,
}

/// The shortest `fleet.secret` accepted.
pub const MIN_SECRET: usize = 16;

pub(crate) fn bus(r: &mut Reader, n: &Node<'_>) -> Option<BusSetting> {
    let s = r.string(n)?.trim();
    if s == "memory" {
        return Some(BusSetting::Memory);
    }
    if s == "redis" {
        return Some(BusSetting::Redis(DEFAULT_REDIS_BUS.to_owned()));
    }
    if s.starts_with("rediss://") {
        r.fail(
            &n.path,
            "TLS to Redis (rediss://) is not built into Sentinel; use redis:// on a trusted \
             network or through a TLS tunnel",
        );
        return None;
    }
    if !crate::intel::redis_url_ok(s) {
        r.fail(
            &n.path,
            format!(
                "`{}` must be `memory`, `redis` ({DEFAULT_REDIS_BUS}) or a redis://[user:password@]host[:port][/db] URL",
                crate::otlp::mask_url(s)
            ),
        );
        return None;
    }
    if crate::otlp::has_masked_credentials(s) {
        r.fail(
            &n.path,
            "`***` in the URL is the mask a shown configuration puts in place of the credentials, \
             not credentials: write the real ones",
        );
        return None;
    }
    Some(BusSetting::Redis(s.to_owned()))
}

pub(crate) fn node(r: &mut Reader, n: &Node<'_>) -> Option<Option<String>> {
    let v = r.optional_string(n)?;
    match v {
        None => Some(None),
        Some(s)
            if !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') =>
        {
            Some(Some(s.to_owned()))
        }
        Some(_) => {
            r.fail(
                &n.path,
                "must be 1..=63 characters of letters, digits, `-`, `_` or `.` (a host name), or \
                 null for the hostname",
            );
            None
        }
    }
}

pub(crate) fn fleet(r: &mut Reader, s: Option<&Node<'_>>) -> Option<FleetConfig> {
    let prefix = r.get(s, "prefix").and_then(|p| {
        let v = r.string(&p)?;
        if v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            r.fail(
                &p.path,
                "must be 1..=64 characters without spaces (it keeps one installation's keys apart in a shared Redis)",
            );
            return None;
        }
        Some(v.to_owned())
    });
    let stream_maxlen = r
        .get(s, "stream_maxlen")
        .and_then(|n| r.int(&n, 1000, 100_000_000));
    let claim_idle = within(r, s, "claim_idle", secs(1), secs(3600));
    let buffer = r.get(s, "buffer").and_then(|n| r.int(&n, 1, 10_000_000));
    let max_in_flight = r
        .get(s, "max_in_flight")
        .and_then(|n| r.int(&n, 1, 100_000));
    let done_keep = within(r, s, "done_keep", secs(60), secs(30 * 86400));
    let heartbeat = within(r, s, "heartbeat", secs(1), secs(300));
    let secret = match s {
        Some(n) => {
            crate::channels::secret(r, n, "secret", false, crate::channels::SecretShape::Line)
                .and_then(|sec| match sec {
                    Some(k) if k.expose().len() < MIN_SECRET => {
                        r.fail(
                            &n.child_path("secret"),
                            format!(
                                "is shorter than {MIN_SECRET} characters (the value is not shown): \
                                 use a long random key, e.g. `openssl rand -hex 32`"
                            ),
                        );
                        None
                    }
                    k => Some(k),
                })
        }
        None => Some(None),
    };
    Some(FleetConfig {
        secret: secret?,
        prefix: prefix?,
        stream_maxlen: stream_maxlen?,
        claim_idle: claim_idle?,
        buffer: buffer?,
        max_in_flight: max_in_flight?,
        heartbeat: heartbeat?,
        done_keep: done_keep?,
    })
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
