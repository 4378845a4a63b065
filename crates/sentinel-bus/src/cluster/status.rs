//! What `sentinel cluster status` shows: the nodes from their heartbeats, and for every topic's
//! stream its length and its consumer groups (pending, lag) and their consumers (pending, idle), as
//! Redis reports them (`XINFO`). Read-only.
//!
//! A number Redis does not give is `None`, never guessed: `lag` is unknown on Redis 6.2, and on 7.x
//! after entries were deleted or trimmed in ways it cannot count past.

use super::heartbeat::{value_text, value_u64};
use super::{link, millis, node_key, nodes_key};
use crate::config::RedisBusConfig;
use crate::link::{Failure, Link};
use redis::Value;
use sentinel_core::BusError;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// The topics whose streams are looked at.
pub const TOPICS: [&str; 5] = ["events", "alerts", "investigations", "plans", "decisions"];

/// How many nodes are read at most (the most recently seen).
const MAX_NODES: isize = 1000;

/// A node is alive while its last beat is younger than this many beats.
const MISSED_BEATS: u32 = 3;

/// The fleet at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The key prefix of this installation.
    pub prefix: String,
    /// Redis's clock when read (ms since the epoch): every age is measured from it.
    pub now_ms: u64,
    /// The heartbeat interval assumed (a node is gone after three missed beats).
    pub heartbeat_every_ms: u64,
    /// Every node seen (within a day), by name.
    pub nodes: Vec<NodeStatus>,
    /// The streams of [`TOPICS`] that exist, in that order.
    pub streams: Vec<StreamStatus>,
}

/// Whether a node is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// It beat within the last three beats.
    Alive,
    /// It missed three beats or more without saying it stopped (it died, or cannot reach Redis).
    Gone,
    /// Its last beat said it stopped.
    Stopped,
}

impl NodeState {
    /// `alive`, `gone` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Gone => "gone",
            NodeState::Stopped => "stopped",
        }
    }
}

/// One node, from its hash (or, once that expired, its last score in `<prefix>nodes` only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Its name.
    pub node: String,
    /// Alive, gone or stopped.
    pub state: NodeState,
    /// Its last beat (Redis's clock, ms since the epoch).
    pub last_beat_ms: u64,
    /// How long ago that was.
    pub age_ms: u64,
    /// Its hash expired (ten beats without one): only the name and last beat are known.
    pub expired: bool,
    /// The roles it runs.
    pub roles: Vec<String>,
    /// Its version.
    pub version: Option<String>,
    /// The process id of the process that beat last (two processes under one name overwrite each
    /// other: the pid changing shows it).
    pub pid: Option<u32>,
    /// Where its API listens.
    pub api: Option<String>,
    /// When that process's first beat was (Redis's clock).
    pub started_ms: Option<u64>,
}

/// One topic's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamStatus {
    /// The topic (`alerts`).
    pub topic: String,
    /// Its key (`sentinel:alerts`).
    pub key: String,
    /// Entries it holds (`XLEN`).
    pub length: u64,
    /// Its consumer groups (`XINFO GROUPS`).
    pub groups: Vec<GroupStatus>,
}

/// One consumer group of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    /// Its name (`investigators`, `responder:<node>`).
    pub name: String,
    /// How many consumers it has.
    pub consumers: u64,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// The last entry delivered to it.
    pub last_delivered_id: String,
    /// How many entries it has read (Redis 7; `None` when Redis does not know).
    pub entries_read: Option<u64>,
    /// Entries in the stream not yet delivered to it (Redis 7; `None` when Redis does not know).
    pub lag: Option<u64>,
    /// Its consumers (`XINFO CONSUMERS`).
    pub members: Vec<ConsumerStatus>,
}

/// One consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerStatus {
    /// Its name (`<host>-<pid>-<n>`).
    pub name: String,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// Milliseconds since it last did anything.
    pub idle_ms: u64,
}

/// Reads the fleet's state from the Redis of `config` (its `prefix`), nodes judged by a heartbeat
/// of `heartbeat_every`. One connection, made now: an error means Redis could not be reached or
/// refused.
pub async fn status(
    config: &RedisBusConfig,
    heartbeat_every: Duration,
) -> Result<ClusterStatus, BusError> {
    let mut link = link(config)?;
    let time: Vec<u64> = run(&mut link, &redis::cmd("TIME")).await?;
    let now_ms = match time.as_slice() {
        [s, us, ..] => s.saturating_mul(1000).saturating_add(us / 1000),
        _ => return Err(BusError::Refused("TIME gave no time".into())),
    };
    let nodes = read_nodes(&mut link, &config.prefix, now_ms, heartbeat_every).await?;
    let mut streams = Vec::new();
    for topic in TOPICS {
        if let Some(s) = read_stream(&mut link, config, topic).await? {
            streams.push(s);
        }
    }
    Ok(ClusterStatus {
        prefix: config.prefix.clone(),
        now_ms,
        heartbeat_every_ms: millis(heartbeat_every),
        nodes,
        streams,
    })
}

async fn run<T: redis::FromRedisValue>(link: &mut Link, cmd: &redis::Cmd) -> Result<T, BusError> {
    link.run(cmd).await.map_err(Failure::into_bus_error)
}

async fn read_nodes(
    link: &mut Link,
    prefix: &str,
    now_ms: u64,
    every: Duration,
) -> Result<Vec<NodeStatus>, BusError> {
    let mut range = redis::cmd("ZREVRANGE");
    range
        .arg(nodes_key(prefix))
        .arg(0)
        .arg(MAX_NODES - 1)
        .arg("WITHSCORES");
    let seen: Vec<(String, f64)> = run(link, &range).await?;
    let alive_for = millis(every.saturating_mul(MISSED_BEATS));
    let mut nodes = Vec::with_capacity(seen.len());
    for (node, score) in seen {
        let mut all = redis::cmd("HGETALL");
        all.arg(node_key(prefix, &node));
        let hash: HashMap<String, String> = run(link, &all).await?;
        let field = |k: &str| hash.get(k).filter(|v| !v.is_empty()).cloned();
        let last_beat_ms = field("beat_ms")
            .and_then(|b| b.parse().ok())
            .unwrap_or(score.max(0.0) as u64);
        let age_ms = now_ms.saturating_sub(last_beat_ms);
        let state = if field("state").as_deref() == Some("stopped") {
            NodeState::Stopped
        } else if !hash.is_empty() && age_ms < alive_for {
            NodeState::Alive
        } else {
            NodeState::Gone
        };
        nodes.push(NodeStatus {
            state,
            last_beat_ms,
            age_ms,
            expired: hash.is_empty(),
            roles: field("roles")
                .map(|r| r.split(',').map(str::to_owned).collect())
                .unwrap_or_default(),
            version: field("version"),
            pid: field("pid").and_then(|p| p.parse().ok()),
            api: field("api"),
            started_ms: field("started_ms").and_then(|s| s.parse().ok()),
            node,
        });
    }
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(nodes)
}

async fn read_stream(
    link: &mut Link,
    config: &RedisBusConfig,
    topic: &str,
) -> Result<Option<StreamStatus>, BusError> {
    let key = config.stream_key(topic);
    let mut kind = redis::cmd("TYPE");
    kind.arg(&key);
    let kind: String = run(link, &kind).await?;
    if kind != "stream" {
        return Ok(None);
    }
    let mut xlen = redis::cmd("XLEN");
    xlen.arg(&key);
    let length: u64 = run(link, &xlen).await?;
    let mut info = redis::cmd("XINFO");
    info.arg("GROUPS").arg(&key);
    let replies: Vec<Value> = run(link, &info).await?;
    let mut groups = Vec::with_capacity(replies.len());
    for reply in &replies {
        let f = fields(reply);
        let name = f
            .get("name")
            .and_then(|v| value_text(v))
            .unwrap_or_default();
        let mut cinfo = redis::cmd("XINFO");
        cinfo.arg("CONSUMERS").arg(&key).arg(&name);
        let members: Vec<Value> = run(link, &cinfo).await?;
        let members = members
            .iter()
            .map(|m| {
                let f = fields(m);
                ConsumerStatus {
                    name: f
                        .get("name")
                        .and_then(|v| value_text(v))
                        .unwrap_or_default(),
                    pending: number(&f, "pending").unwrap_or(0),
                    idle_ms: number(&f, "idle").unwrap_or(0),
                }
            })
            .collect();
        groups.push(GroupStatus {
            consumers: number(&f, "consumers").unwrap_or(0),
            pending: number(&f, "pending").unwrap_or(0),
            last_delivered_id: f
                .get("last-delivered-id")
                .and_then(|v| value_text(v))
                .unwrap_or_default(),
            entries_read: number(&f, "entries-read"),
            lag: number(&f, "lag"),
            members,
            name,
        });
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(StreamStatus {
        topic: topic.to_owned(),
        key,
        length,
        groups,
    }))
}

/// The fields of an `XINFO` entry: a map (RESP3) or a flat list of names and values (RESP2).
fn fields(v: &Value) -> HashMap<String, &Value> {
    let mut out = HashMap::new();
    match v {
        Value::Map(pairs) => {
            for (k, v) in pairs {
                if let Some(k) = value_text(k) {
                    out.insert(k, v);
                }
            }
        }
        Value::Array(items) => {
            for pair in items.chunks(2) {
                if let [k, v] = pair {
                    if let Some(k) = value_text(k) {
                        out.insert(k, v);
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// A numeric field; `None` when missing or nil.
fn number(f: &HashMap<String, &Value>, name: &str) -> Option<u64> {
    f.get(name).and_then(|v| value_u64(v))
}

impl ClusterStatus {
    /// The nodes that are alive.
    pub fn alive(&self) -> impl Iterator<Item = &NodeStatus> {
        self.nodes.iter().filter(|n| n.state == NodeState::Alive)
    }

    /// A readable report: the nodes, then every group of every stream, then every consumer.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "NODES (prefix {}, heartbeat every {}; gone after {MISSED_BEATS} missed beats)",
            self.prefix,
            age(self.heartbeat_every_ms)
        );
        if self.nodes.is_empty() {
            out.push_str("  (no node has sent a heartbeat)\n");
        } else {
            let rows = self
                .nodes
                .iter()
                .map(|n| {
                    vec![
                        n.node.clone(),
                        n.state.as_str().to_owned(),
                        dash(n.roles.join(",")),
                        format!("{} ago", age(n.age_ms)),
                        n.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                        n.version.clone().unwrap_or_else(|| "-".into()),
                        n.api.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            table(
                &mut out,
                &[
                    "NODE",
                    "STATE",
                    "ROLES",
                    "LAST HEARTBEAT",
                    "PID",
                    "VERSION",
                    "API",
                ],
                rows,
            );
        }
        out.push('\n');
        out.push_str("GROUPS\n");
        let mut rows = Vec::new();
        for s in &self.streams {
            if s.groups.is_empty() {
                rows.push(vec![
                    s.topic.clone(),
                    s.length.to_string(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            for g in &s.groups {
                rows.push(vec![
                    s.topic.clone(),
                    s.length.to_string(),
                    g.name.clone(),
                    g.consumers.to_string(),
                    g.pending.to_string(),
                    g.lag.map_or_else(|| "?".to_owned(), |l| l.to_string()),
                ]);
            }
        }
        if rows.is_empty() {
            out.push_str("  (no stream yet)\n");
        } else {
            table(
                &mut out,
                &["TOPIC", "LENGTH", "GROUP", "CONSUMERS", "PENDING", "LAG"],
                rows,
            );
        }
        let rows: Vec<Vec<String>> = self
            .streams
            .iter()
            .flat_map(|s| s.groups.iter().map(move |g| (s, g)))
            .flat_map(|(s, g)| {
                g.members.iter().map(move |c| {
                    vec![
                        s.topic.clone(),
                        g.name.clone(),
                        c.name.clone(),
                        c.pending.to_string(),
                        age(c.idle_ms),
                    ]
                })
            })
            .collect();
        if !rows.is_empty() {
            out.push('\n');
            out.push_str("CONSUMERS\n");
            table(
                &mut out,
                &["TOPIC", "GROUP", "CONSUMER", "PENDING", "IDLE"],
                rows,
            );
        }
        if self
            .streams
            .iter()
            .any(|s| s.groups.iter().any(|g| g.lag.is_none()))
        {
            out.push_str("\nLAG ? = Redis does not know it (Redis 6.2, or entries deleted past the group's position)\n");
        }
        out
    }
}

fn dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// Rows under a header, each column as wide as its widest cell, indented by two spaces.
fn table(out: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::from("  ");
        for (w, c) in widths.iter().zip(r) {
            let _ = write!(line, "{c:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// `850ms`, `5s`, `12.3s`, `4m05s`, `2h07m`, `3d04h`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 if ms % 1000 < 100 => format!("{s}s"),
        1000..=59_999 => format!("{}.{}s", s, (ms % 1000) / 100),
        60_000..=3_599_999 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..=86_399_999 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(850), "850ms");
        assert_eq!(age(12_345), "12.3s");
        assert_eq!(age(5_000), "5s");
        assert_eq!(age(245_000), "4m05s");
        assert_eq!(age(2 * 3_600_000 + 7 * 60_000), "2h07m");
        assert_eq!(age(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
    }

    #[test]
    fn xinfo_fields_read_from_resp2_lists_and_resp3_maps() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let flat = Value::Array(vec![
            b("name"),
            b("g"),
            b("pending"),
            Value::Int(2),
            b("lag"),
            Value::Nil,
        ]);
        let f = fields(&flat);
        assert_eq!(number(&f, "pending"), Some(2));
        assert_eq!(number(&f, "lag"), None);
        assert_eq!(number(&f, "entries-read"), None);
        let map = Value::Map(vec![(b("lag"), Value::Int(7)), (b("name"), b("g"))]);
        let f = fields(&map);
        assert_eq!(number(&f, "lag"), Some(7));
        assert_eq!(
            f.get("name").and_then(|v| value_text(v)).as_deref(),
            Some("g")
        );
    }

    #[test]
    fn the_text_report_lists_nodes_groups_and_an_unknown_lag_as_such() {
        let st = ClusterStatus {
            prefix: "sentinel:".into(),
            now_ms: 10_000,
            heartbeat_every_ms: 1000,
            nodes: vec![NodeStatus {
                node: "edge-1".into(),
                state: NodeState::Alive,
                last_beat_ms: 9_500,
                age_ms: 500,
                expired: false,
                roles: vec!["ingest".into(), "detect".into()],
                version: Some("0.1.0".into()),
                pid: Some(4242),
                api: None,
                started_ms: Some(1_000),
            }],
            streams: vec![StreamStatus {
                topic: "alerts".into(),
                key: "sentinel:alerts".into(),
                length: 5,
                groups: vec![GroupStatus {
                    name: "investigators".into(),
                    consumers: 1,
                    pending: 2,
                    last_delivered_id: "1-0".into(),
                    entries_read: None,
                    lag: None,
                    members: vec![ConsumerStatus {
                        name: "edge-1-4242-1".into(),
                        pending: 2,
                        idle_ms: 1_200,
                    }],
                }],
            }],
        };
        let text = st.render_text();
        assert!(text.contains("edge-1"), "{text}");
        assert!(text.contains("alive"), "{text}");
        assert!(text.contains("ingest,detect"), "{text}");
        assert!(text.contains("500ms ago"), "{text}");
        assert!(text.contains("4242"), "{text}");
        let group = text
            .lines()
            .find(|l| l.contains("investigators") && l.contains("alerts"))
            .unwrap_or_default();
        let cells: Vec<&str> = group.split_whitespace().collect();
        assert_eq!(
            cells,
            ["alerts", "5", "investigators", "1", "2", "?"],
            "{text}"
        );
        assert!(text.contains("LAG ? = Redis does not know it"), "{text}");
    }
}
