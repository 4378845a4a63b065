//! `sentinel cluster status` with the real binary against a real `redis-server` (testkit): two nodes
//! beating through the library are listed alive with their pids; a group that read 3 of 5 entries
//! and acknowledged 1 shows pending 2 and lag 2; `--json` parses to the same numbers; Redis that
//! cannot be reached is exit 1 with the URL's password masked; `bus: memory` is exit 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_bus::{Heartbeat, NodeInfo, RedisBusConfig};
use sentinel_testkit::redis::RedisServer;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sentinel");

/// Runs `sentinel cluster status --config sentinel.yml [extra]` in `dir`, with a clean environment.
fn cluster_status(dir: &Path, yaml: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("sentinel.yml"), yaml).unwrap();
    Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir)
        .args(["cluster", "status", "--config", "sentinel.yml"])
        .args(extra)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn cmd<T: redis::FromRedisValue>(url: &str, c: &mut redis::Cmd) -> T {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    c.query_async(&mut conn).await.unwrap()
}

/// `alerts`: 5 entries; `investigators` reads 3 and acknowledges 1.
async fn fill_alerts(url: &str) {
    let mut first = String::new();
    for i in 0..5 {
        let id: String = cmd(
            url,
            redis::cmd("XADD")
                .arg("sentinel:alerts")
                .arg("*")
                .arg("p")
                .arg(i),
        )
        .await;
        if i == 0 {
            first = id;
        }
    }
    let _: () = cmd(
        url,
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("sentinel:alerts")
            .arg("investigators")
            .arg("0"),
    )
    .await;
    let _: redis::Value = cmd(
        url,
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
        url,
        redis::cmd("XACK")
            .arg("sentinel:alerts")
            .arg("investigators")
            .arg(first),
    )
    .await;
    assert_eq!(acked, 1);
}

fn node(name: &str, pid: u32, roles: &[&str]) -> NodeInfo {
    NodeInfo {
        node: name.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        version: "1.2.3".into(),
        pid,
        api: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_lists_nodes_and_group_numbers_as_text_and_json() {
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}/0", redis.port());
    let bus = RedisBusConfig::new(url.as_str());
    let every = Duration::from_secs(1);
    let a = Heartbeat::start(&bus, node("edge-a", 4101, &["ingest", "detect"]), every);
    let b = Heartbeat::start(&bus, node("resp-b", 4202, &["respond"]), every);
    fill_alerts(&url).await;
    while a.beats() == 0 || b.beats() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("bus: {url}\nfleet:\n  heartbeat: 1s\n");

    let out = tokio::task::block_in_place(|| cluster_status(dir.path(), &yaml, &[]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for (name, pid, roles) in [
        ("edge-a", "4101", "ingest,detect"),
        ("resp-b", "4202", "respond"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[1], "alive", "{stdout}");
        assert_eq!(cells[2], roles, "{stdout}");
        assert!(cells.contains(&pid), "{stdout}");
        assert!(cells.contains(&"1.2.3"), "{stdout}");
    }
    let group = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("investigators"))
        .unwrap_or_else(|| panic!("no group line:\n{stdout}"));
    let cells: Vec<&str> = group.split_whitespace().collect();
    // topic, length, group, consumers, pending, lag
    assert_eq!(
        cells,
        ["alerts", "5", "investigators", "1", "2", "2"],
        "{stdout}"
    );

    let out = tokio::task::block_in_place(|| cluster_status(dir.path(), &yaml, &["--json"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{json}");
    assert_eq!(nodes[0]["node"], "edge-a");
    assert_eq!(nodes[0]["state"], "alive");
    assert_eq!(nodes[0]["pid"], 4101);
    assert_eq!(nodes[1]["roles"], serde_json::json!(["respond"]));
    let alerts = &json["streams"][0];
    assert_eq!(
        (alerts["topic"].as_str(), alerts["length"].as_u64()),
        (Some("alerts"), Some(5))
    );
    let g = &alerts["groups"][0];
    assert_eq!(g["name"], "investigators");
    assert_eq!(g["consumers"], 1);
    assert_eq!(g["pending"], 2);
    assert_eq!(g["lag"], 2);
    assert_eq!(g["entries_read"], 3);
    assert_eq!(g["members"][0]["name"], "inv-1");
    assert_eq!(g["members"][0]["pending"], 2);

    // One node stops: it is listed as such, the other stays alive.
    b.stop().await.unwrap();
    let out = tokio::task::block_in_place(|| cluster_status(dir.path(), &yaml, &[]));
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("resp-b"))
        .unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some("stopped"), "{stdout}");
    a.stop().await.unwrap();
}

/// Nothing listens on the port: exit 1, a message that names the URL with its password masked.
#[test]
fn unreachable_redis_is_exit_1_with_the_url_masked() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("bus: redis://fleet:hunter2-secret@127.0.0.1:{port}/0\n");
    let out = cluster_status(dir.path(), &yaml, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read the cluster status from Redis at"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
    assert!(!text(&out.stdout).contains("hunter2-secret"));
}

/// `bus: memory` (the default): one process, no fleet: exit 2 saying so.
#[test]
fn a_memory_bus_has_no_fleet_and_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = cluster_status(dir.path(), "bus: memory\n", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no fleet"), "{stderr}");
    assert!(stderr.contains("single process"), "{stderr}");
}
