//! The fleet's acceptance test: three sensors, two investigators and three responders, each its own
//! `sentinel run --role …` process, joined by a real Redis. Every responder runs in a network
//! namespace of its own, enforcing `block_ip` with nftables there, and reaches Redis (and the test
//! reaches its API) over a bridge in the test's namespace (198.51.100.0/24: 198.51.100.1 the bridge,
//! 198.51.100.11-13 the responders). Attackers come from 203.0.113.0/24 and 2001:db8:a77::/64,
//! benign clients from 192.0.2.0/24; the responders' allowlist is the infrastructure's.
//!
//! 1. 100,000 events over the three sensors: every alert investigated exactly once (both
//!    investigators working), every block applied once on every responder and in its kernel.
//! 2. An investigator killed mid-stream: the other reclaims what it held; nothing lost, no responder
//!    acting twice, and at most the alerts it held investigated twice (reported).
//! 3. Redis restarted mid-stream (append-only, fsynced): the nodes reconnect, and every attack in an
//!    accepted request ends as a block on every responder.
//!
//! The tests take turns (each starts eight daemons on one machine) and print what they measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use sentinel_testkit::netns::Netns;
use sentinel_testkit::redis::RedisServer;
use sentinel_testkit::ti::{Behaviour, FakeProvider, TiKind};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tests take turns: each starts eight daemons.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const BATCH: usize = 1000;

/// Every node's configuration; `intel` is the `intel:` block (investigators use it).
fn config(intel: &str) -> String {
    "policy:\n  allowlist: [198.51.100.0/24, 127.0.0.0/8]\n  rules:\n    - { severity: [critical, high], risk: [low, medium, high], confidence: [low, medium, high], actions: [{kind: block_ip, ttl: 1h}] }\n\
     detect:\n  scenarios: { builtin: false }\n\
     respond:\n  actuators:\n    block_ip: { mode: enforce, max_live: 100000 }\n\
     api:\n  rate_limit:\n    exempt: [\"127.0.0.0/8\", \"::1/128\", \"198.51.100.0/24\"]\n"
        .to_owned()
        + intel
}

const OFFLINE: &str = "intel: { offline: true }\n";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge in the test's namespace (198.51.100.1/24) and one namespace per responder linked to it
/// by a veth pair (198.51.100.11, .12, …). Dropping it deletes the namespaces (with their veths and
/// nftables tables) and the bridge.
struct Bridge {
    name: String,
    hosts: Vec<(Netns, Ipv4Addr)>,
}

impl Bridge {
    fn new(n: u8) -> Bridge {
        let addrs = Command::new("ip").args(["-4", "addr"]).output().unwrap();
        assert!(
            !String::from_utf8_lossy(&addrs.stdout).contains(&format!("{BRIDGE_IP}/")),
            "{BRIDGE_IP} is already on this host (another run of this test?)"
        );
        let name = format!("sab{}", std::process::id());
        ip(&["link", "add", &name, "type", "bridge"]);
        let mut b = Bridge {
            name,
            hosts: Vec::new(),
        };
        ip(&["addr", "add", &format!("{BRIDGE_IP}/24"), "dev", &b.name]);
        ip(&["link", "set", &b.name, "up"]);
        for i in 1..=n {
            let ns = Netns::new(&format!("resp{i}")).unwrap();
            let veth = format!("sav{}x{i}", std::process::id());
            ip(&[
                "link",
                "add",
                &veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ]);
            ip(&["link", "set", &veth, "master", &b.name]);
            ip(&["link", "set", &veth, "up"]);
            let addr = Ipv4Addr::new(198, 51, 100, 10 + i);
            ns.run("ip", &["addr", "add", &format!("{addr}/24"), "dev", "eth0"])
                .unwrap();
            ns.run("ip", &["link", "set", "eth0", "up"]).unwrap();
            b.hosts.push((ns, addr));
        }
        b
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.hosts.clear();
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
    }
}

/// The eight daemons, their namespaces and Redis; everything is killed and removed on drop (fields
/// drop in order: daemons first).
struct Fleet {
    sensors: Vec<Daemon>,
    investigators: Vec<Option<Daemon>>,
    responders: Vec<Daemon>,
    bridge: Bridge,
    redis: RedisServer,
    _redis_dir: tempfile::TempDir,
}

impl Fleet {
    fn start(durable: bool, intel: &str) -> Fleet {
        let bridge = Bridge::new(3);
        let redis_dir = tempfile::tempdir().unwrap();
        let redis = if durable {
            RedisServer::start_durable_on(redis_dir.path(), &[BRIDGE_IP])
        } else {
            RedisServer::start_on(&[BRIDGE_IP])
        };
        let port = redis.port();
        let start =
            |role: &str, node: &str, bus_host: Ipv4Addr, netns: Option<(&str, Ipv4Addr)>| {
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("sentinel.yml"), config(intel)).unwrap();
                let bus = format!("redis://{bus_host}:{port}/0");
                let env = [
                    ("BUS", bus.as_str()),
                    ("SENTINEL_ROLE", role),
                    ("SENTINEL__NODE", node),
                    ("SENTINEL__FLEET__CLAIM_IDLE", "2s"),
                ];
                match netns {
                    Some((ns, addr)) => Daemon::start_at(dir, &env, &format!("{addr}:0"), Some(ns)),
                    None => Daemon::start_at(dir, &env, "127.0.0.1:0", None),
                }
            };
        let responders = bridge
            .hosts
            .iter()
            .enumerate()
            .map(|(i, (ns, addr))| {
                start(
                    "responder",
                    &format!("edge-{}", i + 1),
                    BRIDGE_IP,
                    Some((ns.name(), *addr)),
                )
            })
            .collect();
        let lo = Ipv4Addr::LOCALHOST;
        let investigators = (1..=2)
            .map(|i| Some(start("investigator", &format!("intel-{i}"), lo, None)))
            .collect();
        let sensors = (1..=3)
            .map(|i| start("sensor", &format!("web-{i}"), lo, None))
            .collect();
        Fleet {
            sensors,
            investigators,
            responders,
            bridge,
            redis,
            _redis_dir: redis_dir,
        }
    }

    fn investigators(&self) -> impl Iterator<Item = &Daemon> {
        self.investigators.iter().flatten()
    }

    /// Every address in the `inet sentinel` sets of responder `i`'s namespace.
    fn blocked(&self, i: usize) -> HashSet<IpAddr> {
        let ns = &self.bridge.hosts[i].0;
        let mut out = HashSet::new();
        for set in ["blocked_v4", "blocked_v6"] {
            let o = ns
                .exec("nft", &["-j", "list", "set", "inet", "sentinel", set])
                .unwrap();
            if let Ok(v) = serde_json::from_slice::<Value>(&o.stdout) {
                addresses(&v, &mut out);
            }
        }
        out
    }

    /// Waits until every responder's kernel holds every address of `want`; the time it took.
    async fn wait_blocked(&self, want: &HashSet<IpAddr>, within: Duration) -> Duration {
        let t = Instant::now();
        loop {
            let missing: Vec<usize> = (0..self.responders.len())
                .map(|i| want.difference(&self.blocked(i)).count())
                .collect();
            if missing.iter().all(|m| *m == 0) {
                return t.elapsed();
            }
            if t.elapsed() > within {
                let mut logs = String::new();
                for d in self.investigators().chain(&self.responders) {
                    let out = d.output();
                    let tail: Vec<&str> = out.lines().rev().take(15).collect();
                    logs.push_str(&tail.join("\n"));
                    logs.push_str("\n----\n");
                }
                panic!("not blocked within {within:?}: missing per responder {missing:?}\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn addresses(v: &Value, out: &mut HashSet<IpAddr>) {
    match v {
        Value::String(s) => {
            if let Ok(a) = s.parse() {
                out.insert(a);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| addresses(x, out)),
        Value::Object(o) => o.values().for_each(|x| addresses(x, out)),
        _ => {}
    }
}

/// `events` events in batches of [`BATCH`], `v4 + v6` of them attacks, one from each attacker
/// (203.0.113.1.., 2001:db8:a77::1..), spread evenly; the rest from benign clients in 192.0.2.0/24.
struct Workload {
    attackers: Vec<IpAddr>,
    batches: Vec<Batch>,
}

/// One request's body, how many events it holds, and the attackers among them.
#[derive(Clone)]
struct Batch {
    body: String,
    events: usize,
    attackers: Vec<IpAddr>,
}

impl Workload {
    fn new(events: usize, v4: u8, v6: u16) -> Workload {
        let mut attackers: Vec<IpAddr> = (1..=v4)
            .map(|i| IpAddr::V4(Ipv4Addr::new(203, 0, 113, i)))
            .collect();
        attackers
            .extend((1..=v6).map(|i| format!("2001:db8:a77::{i:x}").parse::<IpAddr>().unwrap()));
        let every = events / attackers.len();
        let mut batches = Vec::new();
        let mut items = Vec::with_capacity(BATCH);
        let mut in_batch = Vec::new();
        for n in 0..events {
            let attacker = (n % every == every / 2)
                .then(|| attackers.get(n / every))
                .flatten();
            items.push(match attacker {
                Some(a) => {
                    in_batch.push(*a);
                    json!({"src_ip": a.to_string(), "failed_logins": 40, "user_agent": "hydra v9", "path": "/login"})
                }
                None => json!({
                    "src_ip": format!("192.0.2.{}", 1 + n % 250),
                    "path": format!("/shop/item/{}", n % 977),
                    "status": 200,
                    "user_agent": "Mozilla/5.0",
                }),
            });
            if items.len() == BATCH || n + 1 == events {
                batches.push(Batch {
                    events: items.len(),
                    body: Value::Array(std::mem::take(&mut items)).to_string(),
                    attackers: std::mem::take(&mut in_batch),
                });
            }
        }
        Workload { attackers, batches }
    }
}

/// Posts `batches` over the sensors (batch `k` to sensor `k % 3`), `parallel` requests at a time.
/// Returns the attackers of the batches answered 200 with every item accepted, those of the others,
/// and how many events were accepted.
async fn post_all(
    sensors: &[Daemon],
    batches: &[Batch],
    parallel: usize,
) -> (HashSet<IpAddr>, HashSet<IpAddr>, usize) {
    post_to(targets(sensors), batches.to_vec(), parallel).await
}

/// Where and how to post events to each sensor.
fn targets(sensors: &[Daemon]) -> Vec<(String, String)> {
    sensors
        .iter()
        .map(|s| (s.url("/v1/events"), s.key.clone()))
        .collect()
}

async fn post_to(
    targets: Vec<(String, String)>,
    batches: Vec<Batch>,
    parallel: usize,
) -> (HashSet<IpAddr>, HashSet<IpAddr>, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let targets = Arc::new(targets);
    let batches = Arc::new(batches);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let (next, targets, batches, client) = (
            next.clone(),
            targets.clone(),
            batches.clone(),
            client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(Batch { body, .. }) = batches.get(k) else {
                    return results;
                };
                let (url, key) = &targets[k % targets.len()];
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let accepted = match r {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap_or_default();
                        v["accepted"].as_u64().unwrap_or(0) as usize
                    }
                    _ => 0,
                };
                results.push((k, accepted));
            }
        }));
    }
    let (mut ok, mut failed, mut events) = (HashSet::new(), HashSet::new(), 0);
    for t in tasks {
        for (k, accepted) in t.await.unwrap() {
            let b = &batches[k];
            events += accepted;
            if accepted == b.events {
                ok.extend(b.attackers.iter().copied());
            } else {
                failed.extend(b.attackers.iter().copied());
            }
        }
    }
    (ok, failed, events)
}

async fn metrics(d: &Daemon) -> String {
    d.client()
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series (`name{labels}` exactly), 0 when absent.
async fn metric(d: &Daemon, series: &str) -> u64 {
    let text = metrics(d).await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn link(role: &str, outcome: &str) -> String {
    format!(r#"sentinel_bus_link_messages_total{{role="{role}",outcome="{outcome}"}}"#)
}

async fn redis_cmd<T: redis::FromRedisValue>(redis: &RedisServer, c: &mut redis::Cmd) -> T {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    c.query_async(&mut conn).await.unwrap()
}

/// Whether `group` has read everything `stream` holds and acknowledged all of it.
async fn group_settled(redis: &RedisServer, stream: &str, group: &str) -> bool {
    type Info = HashMap<String, redis::Value>;
    let text = |i: &Info, k: &str| redis::from_redis_value::<String>(&i[k]).unwrap();
    let info: Info = redis_cmd(redis, redis::cmd("XINFO").arg("STREAM").arg(stream)).await;
    let last = text(&info, "last-generated-id");
    let groups: Vec<Info> = redis_cmd(redis, redis::cmd("XINFO").arg("GROUPS").arg(stream)).await;
    groups.iter().any(|g| {
        text(g, "name") == group
            && text(g, "last-delivered-id") == last
            && redis::from_redis_value::<u64>(&g["pending"]).unwrap() == 0
    })
}

/// Waits until the investigators' group and every responder's group have read and acknowledged
/// everything on their streams.
async fn wait_settled(f: &Fleet, within: Duration) {
    let t = Instant::now();
    loop {
        let mut done = group_settled(&f.redis, "sentinel:alerts", "investigators").await;
        for i in 1..=f.responders.len() {
            done &= group_settled(&f.redis, "sentinel:plans", &format!("responder:edge-{i}")).await;
        }
        if done {
            return;
        }
        assert!(t.elapsed() < within, "not settled within {within:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn rows(dir: &Path, sql: &str) -> Vec<(Option<String>, String)> {
    let url = format!(
        "sqlite://{}?mode=ro",
        dir.join("data/sentinel.db").display()
    );
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let rows = sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    rows
}

/// What the stopped fleet's stores hold.
struct Stores {
    /// Alert id → its source, over the sensors.
    alerts: HashMap<String, IpAddr>,
    /// Per investigator: the alert of each investigation.
    investigations: Vec<Vec<String>>,
    /// Per investigator: the alert of each plan.
    plans: Vec<Vec<String>>,
    /// Per responder: (alert, subject, state) of each block_ip action.
    blocks: Vec<Vec<(String, IpAddr, String)>>,
}

async fn read_stores(
    sensors: &[tempfile::TempDir],
    investigators: &[tempfile::TempDir],
    responders: &[tempfile::TempDir],
) -> Stores {
    let mut alerts = HashMap::new();
    for d in sensors {
        for (id, body) in rows(d.path(), "SELECT id, body FROM alerts").await {
            let v: Value = serde_json::from_str(&body).unwrap();
            let src = v["subject"]["value"].as_str().unwrap().parse().unwrap();
            assert!(
                alerts.insert(id.unwrap(), src).is_none(),
                "an alert id twice"
            );
        }
    }
    let ids = |r: Vec<(Option<String>, String)>| r.into_iter().map(|(a, _)| a.unwrap()).collect();
    let mut investigations = Vec::new();
    let mut plans = Vec::new();
    for d in investigators {
        investigations.push(ids(rows(
            d.path(),
            "SELECT alert_id, id FROM investigations",
        )
        .await));
        plans.push(ids(rows(d.path(), "SELECT alert_id, id FROM plans").await));
    }
    let mut blocks = Vec::new();
    for d in responders {
        let r = rows(
            d.path(),
            "SELECT alert_id, body FROM actions WHERE kind = 'block_ip'",
        )
        .await;
        blocks.push(
            r.into_iter()
                .map(|(alert, body)| {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    let subject = v["spec"]["subject"]["value"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    (
                        alert.unwrap_or_default(),
                        subject,
                        v["state"].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        );
    }
    Stores {
        alerts,
        investigations,
        plans,
        blocks,
    }
}

impl Stores {
    /// Every attacker raised an alert and nobody else did.
    fn check_alerts(&self, attackers: &HashSet<IpAddr>) {
        let sources: HashSet<IpAddr> = self.alerts.values().copied().collect();
        assert_eq!(
            &sources, attackers,
            "an alert for every attacker, and none else"
        );
    }

    /// Alerts investigated more than once, over every investigator; asserts none was missed.
    fn investigated_twice(&self) -> usize {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for a in self.investigations.iter().flatten() {
            *seen.entry(a.as_str()).or_default() += 1;
        }
        for a in self.alerts.keys() {
            assert!(
                seen.contains_key(a.as_str()),
                "alert {a} never investigated"
            );
        }
        assert_eq!(
            seen.len(),
            self.alerts.len(),
            "investigations of unknown alerts"
        );
        seen.values().filter(|n| **n > 1).count()
    }

    /// Every responder holds exactly one applied block per alert, on the alert's source.
    fn check_blocks(&self) {
        for (i, blocks) in self.blocks.iter().enumerate() {
            let mut by_alert: BTreeMap<&str, Vec<(&IpAddr, &str)>> = BTreeMap::new();
            for (a, s, st) in blocks {
                by_alert
                    .entry(a.as_str())
                    .or_default()
                    .push((s, st.as_str()));
            }
            for (a, src) in &self.alerts {
                let got = by_alert.get(a.as_str()).cloned().unwrap_or_default();
                assert_eq!(got, vec![(src, "applied")], "responder {i}, alert {a}");
            }
            assert_eq!(
                by_alert.len(),
                self.alerts.len(),
                "responder {i}: blocks of unknown alerts"
            );
        }
    }
}

/// Stops every daemon (sensors first, so what they raised flows on) and reads their stores.
async fn stop_and_read(f: Fleet, killed: Vec<tempfile::TempDir>) -> Stores {
    let Fleet {
        sensors,
        investigators,
        responders,
        bridge,
        redis,
        _redis_dir,
    } = f;
    let stop = |ds: Vec<Daemon>| -> Vec<tempfile::TempDir> {
        ds.into_iter().map(|d| d.stop().0).collect()
    };
    let s = stop(sensors);
    let mut i = stop(investigators.into_iter().flatten().collect());
    i.extend(killed);
    let r = stop(responders);
    drop((bridge, redis));
    read_stores(&s, &i, &r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_thousand_events_over_the_fleet_act_once_on_every_responder() {
    let _turn = TURN.lock().await;
    let f = Fleet::start(false, OFFLINE);
    let w = Workload::new(100_000, 200, 100);
    let attackers: HashSet<IpAddr> = w.attackers.iter().copied().collect();

    let t = Instant::now();
    let (ok, failed, accepted) = post_all(&f.sensors, &w.batches, 6).await;
    let posted = t.elapsed();
    assert_eq!(accepted, 100_000, "every event accepted");
    assert!(failed.is_empty());
    assert_eq!(ok, attackers);
    f.wait_blocked(&attackers, Duration::from_secs(90)).await;
    let last = t.elapsed();
    wait_settled(&f, Duration::from_secs(30)).await;
    for i in 0..f.responders.len() {
        assert_eq!(
            f.blocked(i),
            attackers,
            "responder {i} blocks the attackers only"
        );
    }
    println!(
        "100k: {accepted} events in {posted:?} ({:.0} events/s in), last block on every responder {last:?} after the first post",
        accepted as f64 / posted.as_secs_f64()
    );

    // Both investigators took a share, with no repeat.
    let mut shares = Vec::new();
    for d in f.investigators() {
        let acked = metric(d, &link("investigator", "acked")).await;
        let dup = metric(d, &link("investigator", "duplicate")).await;
        shares.push(acked - dup);
    }
    println!("100k: investigations by investigator {shares:?}");
    assert!(shares.iter().all(|s| *s > 0), "load shared: {shares:?}");

    let s = stop_and_read(f, Vec::new()).await;
    s.check_alerts(&attackers);
    assert_eq!(
        s.alerts.len(),
        attackers.len(),
        "one alert per attack event"
    );
    assert_eq!(s.investigated_twice(), 0, "no alert investigated twice");
    let per: Vec<usize> = s.investigations.iter().map(Vec::len).collect();
    assert_eq!(per.iter().sum::<usize>(), s.alerts.len());
    assert_eq!(per, shares.iter().map(|n| *n as usize).collect::<Vec<_>>());
    assert_eq!(s.plans.iter().map(Vec::len).sum::<usize>(), s.alerts.len());
    s.check_blocks();
}

/// XPENDING of the investigators' group: (total, by consumer).
async fn pending(redis: &RedisServer) -> (u64, Vec<(String, u64)>) {
    let v: redis::Value = redis_cmd(
        redis,
        redis::cmd("XPENDING")
            .arg("sentinel:alerts")
            .arg("investigators"),
    )
    .await;
    let redis::Value::Array(parts) = v else {
        panic!("XPENDING: {v:?}")
    };
    let total: u64 = redis::from_redis_value(&parts[0]).unwrap();
    let by: Vec<(String, u64)> = match parts.get(3) {
        Some(redis::Value::Array(cs)) => cs
            .iter()
            .map(|c| {
                let (name, n): (String, String) = redis::from_redis_value(c).unwrap();
                (name, n.parse().unwrap())
            })
            .collect(),
        _ => Vec::new(),
    };
    (total, by)
}

/// Investigations wait 300ms on a (fake) AbuseIPDB, so that an investigator holds alerts in flight.
async fn slow_intel() -> (FakeProvider, String) {
    let abuse = FakeProvider::start(TiKind::AbuseIpDb).await;
    abuse.set_default(Behaviour::Slow(
        Duration::from_millis(300),
        Box::new(Behaviour::listed(100, 50)),
    ));
    let yaml = format!(
        "intel:\n  abuseipdb:\n    key: \"{}\"\n    base_url: \"{}\"\n    rate: {{ requests: 1000000, per: 1s, burst: 1000000 }}\n",
        abuse.key(),
        abuse.base_url()
    );
    (abuse, yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_investigator_killed_mid_stream_loses_nothing_and_doubles_no_action() {
    let _turn = TURN.lock().await;
    let (_abuse, intel) = slow_intel().await;
    let mut f = Fleet::start(false, &intel);
    let w = Workload::new(30_000, 200, 100);
    let attackers: HashSet<IpAddr> = w.attackers.iter().copied().collect();

    // Kill intel-1 once it has taken a share of the stream, while events keep coming.
    let t = Instant::now();
    let posting = tokio::spawn(post_to(targets(&f.sensors), w.batches.clone(), 3));
    let victim = f.investigators[0].as_ref().unwrap();
    common::eventually(Duration::from_secs(60), || async {
        (metric(victim, &link("investigator", "received")).await >= 40).then_some(())
    })
    .await;
    let killed = f.investigators[0].take().unwrap().kill();
    let at = t.elapsed();
    let (_, by) = pending(&f.redis).await;
    let held: u64 = by
        .iter()
        .filter(|(c, _)| c.starts_with("intel-1-"))
        .map(|(_, n)| n)
        .sum();
    let (ok, failed, accepted) = posting.await.unwrap();
    println!(
        "kill: intel-1 killed {at:?} into the stream holding {held} alerts ({by:?}); {accepted} events posted"
    );
    assert!(failed.is_empty());
    assert_eq!(ok, attackers);

    // The survivor reclaims after claim_idle, and acts once the dead one's claims ran out (30s).
    f.wait_blocked(&attackers, Duration::from_secs(120)).await;
    let last = t.elapsed();
    wait_settled(&f, Duration::from_secs(30)).await;
    let survivor = f.investigators().next().unwrap();
    let reclaimed = metric(survivor, "sentinel_bus_reclaimed_total").await;
    let (left, _) = pending(&f.redis).await;
    println!(
        "kill: survivor reclaimed {reclaimed}; pending now {left}; every block on every responder {last:?} after the first post"
    );
    assert_eq!(left, 0, "nothing left pending");
    assert!(held > 0, "the killed investigator held alerts");
    assert!(
        reclaimed >= held,
        "the survivor reclaimed the dead one's messages"
    );

    let s = stop_and_read(f, vec![killed]).await;
    s.check_alerts(&attackers);
    let twice = s.investigated_twice();
    println!("kill: alerts investigated twice: {twice} (held by the killed investigator: {held})");
    assert!(
        twice as u64 <= held,
        "only alerts in flight at the kill repeat"
    );
    s.check_blocks();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_mid_stream_every_accepted_attack_is_blocked_everywhere() {
    let _turn = TURN.lock().await;
    let mut f = Fleet::start(true, OFFLINE);
    let w = Workload::new(30_000, 200, 100);
    let third = w.batches.len() / 3;

    let (mut ok, mut failed, _) = post_all(&f.sensors, &w.batches[..third], 6).await;
    f.redis.kill();
    let down = Instant::now();
    let (ok2, failed2, _) = post_all(&f.sensors, &w.batches[third..2 * third], 6).await;
    tokio::time::sleep(Duration::from_secs(1).saturating_sub(down.elapsed())).await;
    tokio::task::block_in_place(|| f.redis.restart());
    println!(
        "restart: Redis down for {:?}; attackers in requests accepted meanwhile {}",
        down.elapsed(),
        ok2.len()
    );
    assert!(
        !ok2.is_empty(),
        "the sensors took events while Redis was away"
    );
    let (ok3, failed3, _) = post_all(&f.sensors, &w.batches[2 * third..], 6).await;
    ok.extend(ok2.into_iter().chain(ok3));
    failed.extend(failed2.into_iter().chain(failed3));
    println!(
        "restart: attackers in accepted requests {}, in refused ones {}",
        ok.len(),
        failed.len()
    );
    assert!(!ok.is_empty());

    let last = f.wait_blocked(&ok, Duration::from_secs(90)).await;
    wait_settled(&f, Duration::from_secs(30)).await;
    println!(
        "restart: every accepted attack blocked on every responder {last:?} after the last post"
    );
    for i in 0..f.responders.len() {
        assert_eq!(f.blocked(i), ok, "responder {i} blocks the attackers only");
    }
    for d in f
        .sensors
        .iter()
        .chain(f.investigators())
        .chain(&f.responders)
    {
        let n = metric(d, "sentinel_bus_reconnects_total").await;
        assert!(n > 0, "{} reconnected", d.base);
    }
    let mut buffered = 0;
    for d in &f.sensors {
        buffered += metric(d, "sentinel_bus_buffered_total").await;
    }
    println!(
        "restart: messages the sensors buffered (Redis away or not yet reconnected): {buffered}"
    );
    assert!(buffered > 0);
    let s = stop_and_read(f, Vec::new()).await;
    let sources: HashSet<IpAddr> = s.alerts.values().copied().collect();
    assert!(ok.is_subset(&sources), "an alert for every accepted attack");
    s.investigated_twice();
    s.check_blocks();
}
