//! The fleet's view through a real `redis-server` (started by the testkit): heartbeats seen alive,
//! stopped and gone; the streams' lengths, pending and lag as `sentinel cluster status` reports them;
//! a lease won by exactly one contender; heartbeats failing (counted) while Redis is down and going
//! through again after it restarts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sentinel_bus::{
    status, ClusterStatus, Heartbeat, Lease, NodeInfo, NodeState, NodeStatus, RedisBus,
    RedisBusConfig,
};
use sentinel_testkit::redis::RedisServer;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::{sleep, Instant};

const BEAT: Duration = Duration::from_millis(100);

/// Every log line of this test binary (one global subscriber: the heartbeat logs on runtime
/// threads). Tests pick their own lines by node name.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines that hold every one of `words`.
fn lines_with(words: &[&str]) -> Vec<String> {
    let all = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    all.lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_owned)
        .collect()
}

fn config(url: &str) -> RedisBusConfig {
    let mut c = RedisBusConfig::new(url);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(100);
    c.timeout = Duration::from_secs(2);
    c
}

fn info(node: &str, pid: u32) -> NodeInfo {
    NodeInfo {
        node: node.into(),
        roles: vec!["detect".into(), "respond".into()],
        version: "9.9.9".into(),
        pid,
        api: Some("127.0.0.1:7070".into()),
    }
}

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn cmd<T: redis::FromRedisValue>(url: &str, c: &mut redis::Cmd) -> T {
    c.query_async(&mut conn(url).await).await.unwrap()
}

/// Polls `check` until it gives `Some`, failing after `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "not within {within:?}: {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

fn node<'a>(st: &'a ClusterStatus, name: &str) -> Option<&'a NodeStatus> {
    st.nodes.iter().find(|n| n.node == name)
}

/// A beating node is alive with its roles, pid, version and API; stopped, it says so at once; one
/// whose task just ended (dropped, as a killed process) is gone after three missed beats, and once
/// its hash expired (ten beats) still listed as gone with its last beat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_show_nodes_alive_then_stopped_or_gone() {
    let redis = RedisServer::start();
    let c = config(&redis.url());
    let a = Heartbeat::start(&c, info("node-a", 101), BEAT);
    let b = Heartbeat::start(&c, info("node-b", 202), BEAT);
    let st = eventually(Duration::from_secs(5), "both nodes alive", || async {
        let st = status(&c, BEAT).await.unwrap();
        (st.alive().count() == 2).then_some(st)
    })
    .await;
    let n = node(&st, "node-a").unwrap();
    assert_eq!(n.state, NodeState::Alive);
    assert_eq!(n.pid, Some(101));
    assert_eq!(n.roles, ["detect", "respond"]);
    assert_eq!(n.version.as_deref(), Some("9.9.9"));
    assert_eq!(n.api.as_deref(), Some("127.0.0.1:7070"));
    assert!(!n.expired);
    assert!(n.age_ms < 300, "{n:?}");
    assert!(n.started_ms.unwrap() <= n.last_beat_ms);
    let ttl: i64 = cmd(&redis.url(), redis::cmd("PTTL").arg("sentinel:node:node-a")).await;
    assert!(
        ttl > 0 && ttl <= 1000,
        "the hash expires ten beats on: {ttl}"
    );

    // Beats go on; the start stays, the last beat moves.
    sleep(BEAT * 3).await;
    let later = status(&c, BEAT).await.unwrap();
    let m = node(&later, "node-a").unwrap();
    assert_eq!(m.started_ms, n.started_ms);
    assert!(m.last_beat_ms > n.last_beat_ms);
    assert!(a.beats() >= 3 && a.failures() == 0, "{a:?}");

    a.stop().await.unwrap();
    let st = status(&c, BEAT).await.unwrap();
    assert_eq!(node(&st, "node-a").unwrap().state, NodeState::Stopped);
    assert_eq!(node(&st, "node-b").unwrap().state, NodeState::Alive);

    drop(b);
    let gone = eventually(Duration::from_secs(3), "node-b gone", || async {
        let st = status(&c, BEAT).await.unwrap();
        node(&st, "node-b")
            .filter(|n| n.state == NodeState::Gone)
            .cloned()
    })
    .await;
    assert!(gone.age_ms >= 300, "{gone:?}");
    assert_eq!(gone.pid, Some(202));
    let expired = eventually(Duration::from_secs(5), "node-b's hash expired", || async {
        let st = status(&c, BEAT).await.unwrap();
        node(&st, "node-b").filter(|n| n.expired).cloned()
    })
    .await;
    assert_eq!(expired.state, NodeState::Gone);
    assert_eq!(expired.last_beat_ms, gone.last_beat_ms);
    assert_eq!(expired.pid, None);
    let text = status(&c, BEAT).await.unwrap().render_text();
    assert!(
        text.lines()
            .any(|l| l.contains("node-b") && l.contains("gone")),
        "{text}"
    );
}

/// Two processes under one node name overwrite each other: the pid shown is the last writer's, and
/// it changes, which shows the misconfiguration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_node_name_shows_the_last_writers_pid() {
    logs();
    let redis = RedisServer::start();
    let c = config(&redis.url());
    let first = Heartbeat::start(&c, info("twin", 111), BEAT);
    eventually(Duration::from_secs(5), "pid 111", || async {
        let st = status(&c, BEAT).await.unwrap();
        node(&st, "twin").filter(|n| n.pid == Some(111)).map(|_| ())
    })
    .await;
    let second = Heartbeat::start(&c, info("twin", 222), BEAT);
    eventually(Duration::from_secs(5), "pid 222", || async {
        let st = status(&c, BEAT).await.unwrap();
        node(&st, "twin").filter(|n| n.pid == Some(222)).map(|_| ())
    })
    .await;
    // Both keep beating: the hash flips between them, the fleet still counts one node.
    let st = status(&c, BEAT).await.unwrap();
    assert_eq!(st.nodes.len(), 1, "{st:?}");
    // Each sees the other overwrite its hash: an error, once per other process.
    eventually(Duration::from_secs(5), "duplicate_node logged", || async {
        let l = lines_with(&["duplicate_node", "node=twin"]);
        (l.iter()
            .any(|l| l.contains("other_pid=\"111\"") || l.contains("other_pid=111"))
            && l.iter()
                .any(|l| l.contains("other_pid=\"222\"") || l.contains("other_pid=222")))
        .then_some(())
    })
    .await;
    sleep(BEAT * 5).await;
    let l = lines_with(&["duplicate_node", "node=twin"]);
    assert_eq!(l.len(), 2, "{l:#?}");
    assert!(l.iter().all(|l| l.contains("ERROR")), "{l:#?}");
    drop(first);
    second.stop().await.unwrap();
    let st = status(&c, BEAT).await.unwrap();
    let n = node(&st, "twin").unwrap();
    assert_eq!((n.pid, n.state), (Some(222), NodeState::Stopped));
}

/// `alerts`: 5 entries; `investigators` read 3 and acknowledged 1 → pending 2, lag 2, entries read
/// 3, one consumer holding 2; a group made at the end has lag 0; a stream without groups is listed
/// with none; a deleted entry after a group's position makes its lag unknown (`None`), not guessed;
/// keys of another prefix are not looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_lengths_pending_and_lag_as_redis_counts_them() {
    let redis = RedisServer::start();
    let url = redis.url();
    let c = config(&url);
    let mut ids = Vec::new();
    for i in 0..5 {
        let id: String = cmd(
            &url,
            redis::cmd("XADD")
                .arg("sentinel:alerts")
                .arg("*")
                .arg("p")
                .arg(i),
        )
        .await;
        ids.push(id);
    }
    let _: () = cmd(
        &url,
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("sentinel:alerts")
            .arg("investigators")
            .arg("0"),
    )
    .await;
    let _: () = cmd(
        &url,
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("sentinel:alerts")
            .arg("late")
            .arg("$"),
    )
    .await;
    let _: redis::Value = cmd(
        &url,
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("investigators")
            .arg("inv-1")
            .arg("COUNT")
            .arg(3)
            .arg("STREAMS")
            .arg("sentinel:alerts")
            .arg(">"),
    )
    .await;
    let acked: u64 = cmd(
        &url,
        redis::cmd("XACK")
            .arg("sentinel:alerts")
            .arg("investigators")
            .arg(&ids[0]),
    )
    .await;
    assert_eq!(acked, 1);
    let _: String = cmd(
        &url,
        redis::cmd("XADD")
            .arg("sentinel:decisions")
            .arg("*")
            .arg("p")
            .arg("x"),
    )
    .await;
    let _: String = cmd(
        &url,
        redis::cmd("XADD")
            .arg("other:plans")
            .arg("*")
            .arg("p")
            .arg("x"),
    )
    .await;

    let st = status(&c, BEAT).await.unwrap();
    let topics: Vec<&str> = st.streams.iter().map(|s| s.topic.as_str()).collect();
    assert_eq!(topics, ["alerts", "decisions"]);
    let alerts = &st.streams[0];
    assert_eq!((alerts.key.as_str(), alerts.length), ("sentinel:alerts", 5));
    let inv = alerts
        .groups
        .iter()
        .find(|g| g.name == "investigators")
        .unwrap();
    assert_eq!(inv.consumers, 1);
    assert_eq!(inv.pending, 2);
    assert_eq!(inv.lag, Some(2));
    assert_eq!(inv.entries_read, Some(3));
    assert_eq!(inv.last_delivered_id, ids[2]);
    assert_eq!(inv.members.len(), 1);
    assert_eq!(inv.members[0].name, "inv-1");
    assert_eq!(inv.members[0].pending, 2);
    assert!(inv.members[0].idle_ms < 10_000);
    let late = alerts.groups.iter().find(|g| g.name == "late").unwrap();
    assert_eq!((late.pending, late.lag, late.consumers), (0, Some(0), 0));
    assert!(st.streams[1].groups.is_empty());

    let text = st.render_text();
    let row = text
        .lines()
        .find(|l| l.contains("investigators") && !l.contains("inv-1"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["alerts", "5", "investigators", "1", "2", "2"],
        "{text}"
    );
    let json = serde_json::to_value(&st).unwrap();
    let g = &json["streams"][0]["groups"][0];
    assert_eq!(g["name"], "investigators");
    assert_eq!(
        (g["pending"].as_u64(), g["lag"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(g["members"][0]["name"], "inv-1");

    // An entry deleted beyond the group's position: Redis cannot count the lag any more.
    let _: u64 = cmd(&url, redis::cmd("XDEL").arg("sentinel:alerts").arg(&ids[4])).await;
    let st = status(&c, BEAT).await.unwrap();
    let inv = st.streams[0]
        .groups
        .iter()
        .find(|g| g.name == "investigators")
        .unwrap();
    assert_eq!((inv.pending, inv.lag), (2, None));
    assert!(st.render_text().contains("LAG ?"));

    let mut other = config(&url);
    other.prefix = "other:".into();
    let st = status(&other, BEAT).await.unwrap();
    assert_eq!(st.streams.len(), 1);
    assert_eq!(st.streams[0].key, "other:plans");
}

/// Two contenders for one key: exactly one wins, the other is told no (so is the winner asking
/// again); once the ttl ran out, it can be won again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_won_by_exactly_one_contender_until_it_runs_out() {
    let redis = RedisServer::start();
    let c = config(&redis.url());
    let a = Lease::new(&c, "node-a").unwrap();
    let bus = RedisBus::new(c.clone()).unwrap();
    let b = bus.lease();
    assert_ne!(a.owner(), b.owner());
    let ttl = Duration::from_millis(300);
    for round in 0..3 {
        let key = format!("expire:plan-{round}");
        let (wa, wb) = tokio::join!(a.acquire(&key, ttl), b.acquire(&key, ttl));
        let (wa, wb) = (wa.unwrap(), wb.unwrap());
        assert!(wa ^ wb, "round {round}: exactly one wins ({wa}, {wb})");
        let winner = if wa { a.owner() } else { b.owner() };
        assert_eq!(a.holder(&key).await.unwrap().as_deref(), Some(winner));
        assert!(!a.acquire(&key, ttl).await.unwrap());
        assert!(!b.acquire(&key, ttl).await.unwrap());
    }
    let pttl: i64 = cmd(
        &redis.url(),
        redis::cmd("PTTL").arg("sentinel:lease:expire:plan-0"),
    )
    .await;
    assert!(pttl > 0 && pttl <= 300, "{pttl}");
    sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(a.holder("expire:plan-0").await.unwrap(), None);
    assert!(b.acquire("expire:plan-0", ttl).await.unwrap());
    assert!(!a.acquire("expire:plan-0", ttl).await.unwrap());
    assert_eq!(
        a.holder("expire:plan-0").await.unwrap().as_deref(),
        Some(b.owner())
    );
}

/// Redis down: every beat fails and is counted, the node soon looks gone to nobody (status cannot
/// answer: an error); Redis back on the same port: beats go through again without a restart of the
/// heartbeat, and the node is alive again. A lease asked while Redis is down is an error, not a win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_failures_are_counted_while_redis_is_down_and_it_recovers() {
    logs();
    let mut redis = RedisServer::start();
    let c = config(&redis.url());
    let hb = Heartbeat::start(&c, info("node-r", 303), Duration::from_millis(50));
    let lease = Lease::new(&c, "node-r").unwrap();
    eventually(Duration::from_secs(5), "first beats", || async {
        (hb.beats() >= 2).then_some(())
    })
    .await;
    assert_eq!(hb.failures(), 0);
    redis.kill();
    eventually(Duration::from_secs(5), "failures counted", || async {
        (hb.failures() >= 3).then_some(())
    })
    .await;
    assert!(status(&c, BEAT).await.is_err());
    assert!(lease.acquire("k", BEAT).await.is_err());
    let failed = hb.failures();
    let beats = hb.beats();
    tokio::task::block_in_place(|| redis.restart());
    eventually(Duration::from_secs(5), "beats again", || async {
        (hb.beats() > beats).then_some(())
    })
    .await;
    let st = eventually(Duration::from_secs(5), "alive again", || async {
        let st = status(&c, BEAT).await.ok()?;
        (st.alive().count() == 1).then_some(st)
    })
    .await;
    assert_eq!(node(&st, "node-r").unwrap().pid, Some(303));
    assert!(hb.failures() >= failed);
    // The outage is over: failures stop growing.
    let settled = hb.failures();
    sleep(Duration::from_millis(300)).await;
    assert_eq!(hb.failures(), settled);
    assert!(lease.acquire("k", BEAT).await.unwrap());
    // One warning for the whole outage, however many beats failed; one line when it ended.
    let failed = lines_with(&["heartbeat_failed", "node=node-r"]);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(failed[0].contains("WARN"), "{failed:#?}");
    let back = lines_with(&["heartbeat_recovered", "node=node-r"]);
    assert_eq!(back.len(), 1, "{back:#?}");
    hb.stop().await.unwrap();
}
