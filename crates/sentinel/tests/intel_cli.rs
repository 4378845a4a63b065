//! `sentinel intel lookup|feeds` as a user runs them: against a running daemon (whose cache answers
//! the second lookup), built locally with `--local`, with a fake AbuseIPDB speaking the real wire
//! format on loopback; exit codes for an unreachable daemon and bad input; feed load reports that
//! never let a broken feed pass silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, Daemon};
use sentinel_testkit::ti::{Behaviour, FakeProvider, TiKind};
use serde_json::Value;
use std::path::Path;

struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

/// Runs the binary in `dir` (blocking, off the runtime's threads so the fake keeps answering).
async fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = command(dir);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into(),
        err: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// A configuration pointing AbuseIPDB at the fake (the key comes from the environment) with one
/// FireHOL-style feed listing the address's network.
fn config(dir: &Path, fake: &FakeProvider) {
    let feed = dir.join("level1.netset");
    std::fs::write(&feed, "# FireHOL level1\n203.0.113.0/24\n").unwrap();
    std::fs::write(
        dir.join("sentinel.yml"),
        format!(
            "intel:\n  abuseipdb:\n    base_url: {}\n  feeds:\n    - {{ name: firehol_level1, path: {}, format: list, verdict: malicious, score: 90 }}\n",
            fake.base_url(),
            feed.display()
        ),
    )
    .unwrap();
}

fn abuseipdb(v: &Value) -> &Value {
    v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["provider"] == "abuseipdb")
        .unwrap_or_else(|| panic!("no abuseipdb evidence: {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn lookup_asks_the_daemon_whose_cache_answers_the_second_time() {
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    fake.set("203.0.113.7".parse().unwrap(), Behaviour::listed(95, 120));
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &fake);
    let key = [("SENTINEL__INTEL__ABUSEIPDB__KEY", fake.key())];
    let d = Daemon::start_in(dir, &key);
    let dir = d.dir.path();

    let first = run(
        dir,
        &[
            "intel",
            "lookup",
            "203.0.113.7",
            "--severity",
            "high",
            "--data-dir",
            "data",
        ],
        &[],
    )
    .await;
    assert_eq!(first.code, Some(0), "{}{}", first.out, first.err);
    let line = first
        .out
        .lines()
        .find(|l| l.starts_with("abuseipdb"))
        .unwrap_or_else(|| panic!("{}", first.out));
    assert!(
        line.contains("malicious") && line.contains("95") && line.contains("miss"),
        "{line}"
    );
    assert!(line.contains("totalReports=120"), "{line}");
    let feeds = first.out.lines().find(|l| l.starts_with("feeds")).unwrap();
    assert!(
        feeds.contains("malicious") && feeds.contains("firehol_level1 203.0.113.0/24"),
        "{feeds}"
    );
    assert!(first.out.contains("assumed alert: high severity"));
    assert!(first.out.contains("risk score "), "{}", first.out);
    assert!(first.out.contains("contributions:\n"), "{}", first.out);
    assert!(
        first
            .out
            .lines()
            .any(|l| l.trim_start().starts_with("abuseipdb ") && l.contains('+')),
        "a contribution line for the provider: {}",
        first.out
    );

    let second = run(
        dir,
        &[
            "intel",
            "lookup",
            "203.0.113.7",
            "--json",
            "--data-dir",
            "data",
        ],
        &[],
    )
    .await;
    assert_eq!(second.code, Some(0), "{}", second.err);
    let v: Value = serde_json::from_str(&second.out).unwrap();
    let e = abuseipdb(&v);
    assert_eq!(e["details"]["cache"]["hit"], true, "{v}");
    assert_eq!(e["details"]["cache"]["source"], "memory", "{v}");
    assert!(!v["contributions"].as_array().unwrap().is_empty());
    assert_eq!(fake.hits("203.0.113.7".parse().unwrap()), 1);
    let human = run(
        dir,
        &["intel", "lookup", "203.0.113.7", "--data-dir", "data"],
        &[],
    )
    .await;
    assert!(
        human
            .out
            .lines()
            .any(|l| l.starts_with("abuseipdb") && l.contains("hit memory ")),
        "{}",
        human.out
    );
    // The daemon's /metrics reads the same investigation.
    let metrics = d
        .client()
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "sentinel_intel_provider_requests_total{provider=\"abuseipdb\"} 1\n",
        "sentinel_intel_provider_cache_hits_total{provider=\"abuseipdb\"} 2\n",
        "sentinel_intel_feed_entries{feed=\"firehol_level1\"} 1\n",
    ] {
        assert!(metrics.contains(series), "{series}: {metrics}");
    }
    // The key the daemon uses is in no answer.
    for text in [&first.out, &second.out, &human.out, &metrics] {
        assert!(!text.contains(fake.key()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lookup_local_builds_the_investigation_from_the_configuration() {
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    fake.set("203.0.113.7".parse().unwrap(), Behaviour::listed(95, 120));
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &fake);
    let key = [("SENTINEL__INTEL__ABUSEIPDB__KEY", fake.key())];
    let r = run(
        dir.path(),
        &[
            "intel",
            "lookup",
            "203.0.113.7",
            "--local",
            "--json",
            "--data-dir",
            "data",
        ],
        &key,
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.err.contains("history: none (no store at"), "{}", r.err);
    let v: Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v["offline"], false);
    assert_eq!(abuseipdb(&v)["details"]["cache"]["hit"], false);
    assert_eq!(abuseipdb(&v)["verdict"], "malicious");
    assert_eq!(fake.hits("203.0.113.7".parse().unwrap()), 1);
    assert!(!r.out.contains(fake.key()) && !r.err.contains(fake.key()));

    // Without a key: offline, the feed still says so, and nothing is asked.
    let r = run(
        dir.path(),
        &[
            "intel",
            "lookup",
            "203.0.113.7",
            "--local",
            "--data-dir",
            "data",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.out.contains("[offline"), "{}", r.out);
    assert!(
        !r.out.lines().any(|l| l.starts_with("abuseipdb")),
        "{}",
        r.out
    );
    assert!(
        r.out
            .lines()
            .any(|l| l.starts_with("feeds") && l.contains("malicious")),
        "{}",
        r.out
    );
    assert_eq!(fake.hits("203.0.113.7".parse().unwrap()), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn lookup_exit_codes_say_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let r = run(
        dir.path(),
        &[
            "intel",
            "lookup",
            "203.0.113.7",
            "--url",
            &url,
            "--api-key",
            "snl_x",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert!(
        r.err.contains("does not answer") && r.err.contains("--local"),
        "{}",
        r.err
    );

    for args in [
        &["intel", "lookup", "not-an-ip", "--local"][..],
        &[
            "intel",
            "lookup",
            "203.0.113.7",
            "--severity",
            "extreme",
            "--local",
        ],
    ] {
        let r = run(dir.path(), args, &[]).await;
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.err);
    }
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "intel:\n  deadline: forever\n",
    )
    .unwrap();
    let r = run(
        dir.path(),
        &["intel", "lookup", "203.0.113.7", "--local"],
        &[],
    )
    .await;
    assert_eq!(r.code, Some(2), "{}", r.err);
    assert!(r.err.contains("deadline"), "{}", r.err);
}

/// With the daemon down and nothing given but the data directory, a lookup says the daemon does
/// not answer and exits 1 (as documented), whether the daemon never ran here (no key) or ran and
/// stopped (its identity cannot be proven: nothing holds its address).
#[tokio::test(flavor = "multi_thread")]
async fn lookup_with_the_daemon_down_exits_1() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let listen = free();
    let args = [
        "intel",
        "lookup",
        "203.0.113.7",
        "--data-dir",
        "data",
        "--listen",
        &listen,
    ];
    let r = run(dir.path(), &args, &[]).await;
    assert_eq!(r.code, Some(1), "never ran: {}", r.err);
    assert!(r.err.contains("is the daemon running"), "{}", r.err);

    let (dir, _) = Daemon::start(&[]).stop();
    assert!(dir.path().join("data/server.id").exists());
    let listen = free();
    let args = [
        "intel",
        "lookup",
        "203.0.113.7",
        "--data-dir",
        "data",
        "--listen",
        &listen,
    ];
    let r = run(dir.path(), &args, &[]).await;
    assert_eq!(r.code, Some(1), "stopped: {}", r.err);
    assert!(r.err.contains("did not prove"), "{}", r.err);
}

#[tokio::test(flavor = "multi_thread")]
async fn feeds_reports_every_feed_and_fails_when_one_did_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("drop.txt");
    std::fs::write(
        &good,
        "; Spamhaus DROP List\n192.0.2.0/24 ; SBL1\nnot-a-network\n198.51.100.0/24 ; SBL2\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.netset");
    let yml = |feeds: &str| {
        std::fs::write(
            dir.path().join("sentinel.yml"),
            format!("intel:\n  feeds:\n{feeds}"),
        )
        .unwrap();
    };
    let good_feed = format!(
        "    - {{ name: spamhaus_drop, path: {}, format: list, verdict: malicious, score: 90 }}\n",
        good.display()
    );
    yml(&good_feed);
    let r = run(dir.path(), &["intel", "feeds"], &[]).await;
    assert_eq!(r.code, Some(0), "{}{}", r.out, r.err);
    assert!(
        r.out.contains("spamhaus_drop") && r.out.contains("entries 2  malformed lines 1"),
        "{}",
        r.out
    );
    assert!(r.out.contains("line 3:"), "{}", r.out);

    yml(&format!(
        "{good_feed}    - {{ name: firehol_level2, path: {}, format: list, verdict: suspicious, score: 60 }}\n",
        missing.display()
    ));
    let r = run(dir.path(), &["intel", "feeds", "--json"], &[]).await;
    assert_eq!(r.code, Some(1), "{}{}", r.out, r.err);
    assert!(r.err.contains("1 of 2 feed(s) did not load"), "{}", r.err);
    let v: Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(v[0]["entries"], 2);
    assert_eq!(v[0]["malformed"], 1);
    assert_eq!(v[0]["samples"][0]["line"], 3);
    assert_eq!(v[1]["feed"], "firehol_level2");
    assert!(v[1]["error"].is_string(), "{v}");
}
