//! Enforcement for real, end to end: a Sentinel daemon runs inside the victim's network namespace with
//! `block_ip` enforcing. Failed SSH logins tailed from a log become a kernel block on the attacker; a
//! manual decision blocks and unblocks; a restart keeps blocks and their expiry; reconcile restores an
//! element deleted behind Sentinel's back and leaves a foreign table untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_testkit::netns::{Host, Lan};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sentinel");

/// A daemon in a namespace; killed on drop.
struct InNs {
    child: Option<Child>,
    log: PathBuf,
}

impl InNs {
    fn start(ns: &str, dir: &Path) -> InNs {
        let log = dir.join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                BIN,
                "run",
                "--data-dir",
                "data",
                "--listen",
                "127.0.0.1:0",
            ])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let d = InNs {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = sentinel(ns, dir, &["healthcheck", "--data-dir", "data"])
                .status
                .success();
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "not ready:\n{}", d.output());
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `ip netns exec` execs the daemon, so the pid is the daemon's.
            Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(s) = c.try_wait().unwrap() {
                    assert!(s.success(), "exit {s}:\n{}", self.output());
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "did not stop:\n{}",
                    self.output()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for InNs {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sentinel(ns: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, BIN])
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn reaches(attacker: &Host, victim: &Host) -> bool {
    attacker
        .ns
        .connect_tcp(victim.sock_v4(8080), Duration::from_secs(1))
        .unwrap()
        .is_some()
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn set_elements(victim: &Host) -> String {
    victim
        .ns
        .run("nft", &["list", "set", "inet", "sentinel", "blocked_v4"])
        .unwrap_or_default()
}

#[test]
fn logs_to_kernel_block_decisions_restart_and_reconcile() {
    let lan = Lan::new(&["victim", "attacker"]).unwrap();
    let victim = lan.hub();
    let attacker = lan.host("attacker").unwrap();
    let _l = victim
        .ns
        .listen_tcp(victim.sock_v4(8080), "victim")
        .unwrap();
    assert!(reaches(attacker, victim));

    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.log");
    std::fs::write(&auth, "").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "policy:\n  allowlist: [198.51.100.0/24]\nrespond:\n  actuators:\n    block_ip: {{ mode: enforce, max_live: 1000 }}\nsources:\n  - {{ type: file, paths: [\"{}\"], format: sshd, poll_interval: 50ms }}\n",
            auth.display()
        ),
    )
    .unwrap();
    let ns = victim.ns.name().to_owned();
    let mut d = InNs::start(&ns, dir.path());

    // 1. Logs → alert → plan → block in the victim's kernel.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&auth)
        .unwrap();
    for i in 0..8 {
        let ts = sentinel_core::Timestamp::now().to_rfc3339();
        writeln!(
            f,
            "{ts} victim sshd[{}]: Failed password for root from {} port {} ssh2",
            300 + i,
            attacker.v4,
            50000 + i
        )
        .unwrap();
    }
    f.flush().unwrap();
    wait_until("the attacker is blocked", Duration::from_secs(15), || {
        !reaches(attacker, victim)
    });
    assert!(set_elements(victim).contains(&attacker.v4.to_string()));

    // 2. Manual decisions: delete unblocks, add blocks again.
    let out = sentinel(
        &ns,
        dir.path(),
        &[
            "decisions",
            "delete",
            "--ip",
            &attacker.v4.to_string(),
            "--data-dir",
            "data",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reaches(attacker, victim));
    let out = sentinel(
        &ns,
        dir.path(),
        &[
            "decisions",
            "add",
            "--ip",
            &attacker.v4.to_string(),
            "--duration",
            "1h",
            "--data-dir",
            "data",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied (enforce mode)"));
    assert!(!reaches(attacker, victim));
    // One action path: the record's dry run is exactly what apply ran.
    let out = sentinel(
        &ns,
        dir.path(),
        &["decisions", "list", "--json", "--data-dir", "data"],
    );
    let live: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rec = &live[0];
    // (A repeat offender by now: the TTL is escalated, and the operation shows the escalated one.)
    let ttl = rec["spec"]["ttl_secs"].as_u64().unwrap();
    assert!(ttl >= 3600);
    let want = format!(
        "add element inet sentinel blocked_v4 {{ {} timeout {ttl}s }}",
        attacker.v4
    );
    assert_eq!(rec["preview"]["operations"], serde_json::json!([want]));
    assert_eq!(rec["applied"]["operations"], rec["preview"]["operations"]);

    // 3. Behind Sentinel's back while it is down: its element deleted, a foreign table added.
    d.stop();
    assert!(!reaches(attacker, victim), "the block outlives the process");
    victim
        .ns
        .nft_script(&format!(
            "delete element inet sentinel blocked_v4 {{ {} }}",
            attacker.v4
        ))
        .unwrap();
    victim
        .ns
        .nft_script("table inet other {\n chain c {\n type filter hook input priority 10; policy accept;\n ip saddr 203.0.113.99 counter\n }\n}\n")
        .unwrap();
    let foreign = victim
        .ns
        .run("nft", &["list", "table", "inet", "other"])
        .unwrap();
    assert!(reaches(attacker, victim));

    // 4. Restart: reconcile puts the element back (with its remaining time) and leaves the foreign table.
    let mut d = InNs::start(&ns, dir.path());
    assert!(
        !reaches(attacker, victim),
        "reconcile re-applied the block:\n{}",
        d.output()
    );
    assert_eq!(
        victim
            .ns
            .run("nft", &["list", "table", "inet", "other"])
            .unwrap(),
        foreign
    );
    assert!(
        d.output().contains("reconcile_correction"),
        "{}",
        d.output()
    );
    let elements = set_elements(victim);
    assert!(elements.contains("expires"), "{elements}");

    // 5. A short decision expires on time, across a restart.
    let out = sentinel(
        &ns,
        dir.path(),
        &["decisions", "delete", "--all", "--data-dir", "data"],
    );
    assert!(out.status.success());
    assert!(reaches(attacker, victim));
    let out = sentinel(
        &ns,
        dir.path(),
        &[
            "decisions",
            "add",
            "--ip",
            &attacker.v4.to_string(),
            "--duration",
            "4s",
            "--data-dir",
            "data",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!reaches(attacker, victim));
    d.stop();
    let mut d = InNs::start(&ns, dir.path());
    assert!(
        !reaches(attacker, victim),
        "still blocked after the restart"
    );
    wait_until("the block expires", Duration::from_secs(10), || {
        reaches(attacker, victim)
    });
    wait_until("the ledger forgets it", Duration::from_secs(5), || {
        let out = sentinel(
            &ns,
            dir.path(),
            &["decisions", "list", "--json", "--data-dir", "data"],
        );
        String::from_utf8_lossy(&out.stdout).trim() == "[]"
    });
    d.stop();
    // Sentinel's table is its own; remove it with the namespace (dropped at the end).
}
