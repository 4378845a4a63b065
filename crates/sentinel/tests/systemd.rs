//! The daemon under systemd: the unit files in `deploy/` are valid (`systemd-analyze verify` when it is
//! installed) and carry the directives the deployment relies on; the real binary speaks the
//! notification protocol (READY=1 once it serves, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 at
//! SIGTERM) to a datagram socket standing in for systemd, and its heartbeat shows the pipeline's tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Daemon, BIN};
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const UNITS: [&str; 2] = ["sentinel.service", "sentinel-supervise.service"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `(section, key, value)` for every assignment of a unit file.
fn directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not an assignment: {line:?}"));
        out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
    }
    out
}

fn value<'a>(d: &'a [(String, String, String)], section: &str, key: &str) -> Option<&'a str> {
    d.iter()
        .rev()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
}

#[test]
fn the_unit_files_carry_the_required_directives() {
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy_dir().join(unit)).unwrap();
        let d = directives(&text);
        let svc = |k: &str| value(&d, "Service", k).unwrap_or_else(|| panic!("{unit}: no {k}"));
        assert_eq!(svc("Type"), "notify", "{unit}");
        assert_eq!(svc("NotifyAccess"), "main", "{unit}");
        assert_eq!(svc("WatchdogSec"), "30s", "{unit}");
        assert_eq!(svc("Restart"), "on-failure", "{unit}");
        assert_eq!(svc("RestartSec"), "1s", "{unit}");
        assert_eq!(svc("NoNewPrivileges"), "yes", "{unit}");
        assert_eq!(svc("ProtectSystem"), "strict", "{unit}");
        assert_eq!(svc("ProtectHome"), "yes", "{unit}");
        assert_eq!(svc("PrivateTmp"), "yes", "{unit}");
        assert_eq!(svc("PrivateDevices"), "yes", "{unit}");
        assert_eq!(svc("UMask"), "0077", "{unit}");
        assert_eq!(svc("SystemCallFilter"), "@system-service", "{unit}");
        assert_eq!(svc("SystemCallArchitectures"), "native", "{unit}");
        assert_eq!(svc("MemoryDenyWriteExecute"), "yes", "{unit}");
        assert_eq!(svc("User"), "sentinel", "{unit}");
        assert!(svc("ExecStart").starts_with("/usr/bin/sentinel "), "{unit}");
        let families: Vec<&str> = svc("RestrictAddressFamilies").split(' ').collect();
        assert_eq!(
            families,
            ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"],
            "{unit}"
        );
        for k in [
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "RestrictNamespaces",
            "LockPersonality",
            "RestrictRealtime",
        ] {
            assert_eq!(svc(k), "yes", "{unit}: {k}");
        }
        assert!(value(&d, "Unit", "StartLimitBurst").is_some(), "{unit}");
        assert!(
            value(&d, "Unit", "StartLimitIntervalSec").is_some(),
            "{unit}"
        );
        assert_eq!(value(&d, "Install", "WantedBy"), Some("multi-user.target"));
        // Capabilities: the responder gets CAP_NET_ADMIN and nothing else; the supervisor none.
        let caps = svc("CapabilityBoundingSet");
        assert_eq!(svc("AmbientCapabilities"), caps, "{unit}");
        match unit {
            "sentinel.service" => {
                assert_eq!(caps, "CAP_NET_ADMIN");
                assert!(svc("ExecStart").contains(" run --config /etc/sentinel/sentinel.yml"));
                assert_eq!(svc("StateDirectory"), "sentinel");
                assert_eq!(svc("ReadWritePaths"), "/var/lib/sentinel");
            }
            _ => {
                assert_eq!(caps, "");
                assert!(
                    svc("ExecStart").contains(" supervise --config /etc/sentinel/supervise.yml")
                );
                assert_eq!(svc("KillMode"), "mixed");
            }
        }
    }
}

/// `systemd-analyze verify` accepts both units without a warning (`scripts/test` installs systemd;
/// a machine without it fails here rather than skipping the check). ExecStart must name an existing
/// executable: the test binary stands in for /usr/bin.
#[test]
fn systemd_analyze_verifies_the_unit_files() {
    let which = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .unwrap();
    assert!(
        which.status.success(),
        "systemd-analyze is not installed (Debian package systemd; scripts/test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy_dir().join(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/sentinel "), "{unit}");
        let p = dir.path().join(unit);
        std::fs::write(&p, text.replace("/usr/bin/sentinel", BIN)).unwrap();
        paths.push(p);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    // Unknown keys and unparsable values are only warnings ("ignoring"): none is allowed.
    let ours: Vec<&str> = said
        .lines()
        .filter(|l| UNITS.iter().any(|u| l.contains(u)))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze warns:\n{said}");
}

/// The next datagram within `wait`.
fn recv(l: &UnixDatagram, wait: Duration) -> Option<String> {
    l.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    match l.recv(&mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// Datagrams until one equals `want`, for at most `within`; the ones before it.
fn until(l: &UnixDatagram, want: &str, within: Duration, out: &str) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(m) = recv(l, Duration::from_millis(200)) {
            if m == want {
                return seen;
            }
            seen.push(m);
        }
    }
    panic!("no {want} within {within:?} (got {seen:?}):\n{out}");
}

/// A GET with the API key over a plain socket; the body as JSON.
fn get_json(base: &str, path: &str, key: &str) -> serde_json::Value {
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_alive_and_stopping() {
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    let mut d = Daemon::start(&[
        ("NOTIFY_SOCKET", sock.to_str().unwrap()),
        ("WATCHDOG_USEC", "2000000"),
    ]);
    // READY=1 first, then the status naming the address.
    assert_eq!(
        recv(&listener, Duration::from_secs(20)).as_deref(),
        Some("READY=1"),
        "{}",
        d.output()
    );
    let status = recv(&listener, Duration::from_secs(10)).unwrap();
    assert!(
        status.starts_with("STATUS=ready: api on ")
            && status.contains(d.base.trim_start_matches("http://")),
        "{status}"
    );
    // Pings at half the 2 s interval: two within a generous window.
    for _ in 0..2 {
        let before = until(
            &listener,
            "WATCHDOG=1",
            Duration::from_secs(15),
            &d.output(),
        );
        assert!(before.is_empty(), "{before:?}");
    }
    // The heartbeat of the real daemon: ready, five stages running, the store writer's queue.
    let v = get_json(&d.base, "/v1/system/heartbeat", &d.key);
    assert_eq!(v["ready"], true, "{v}");
    assert_eq!(v["pid"], d.child.id(), "{v}");
    assert_eq!(v["tasks"]["by_kind"]["pipeline_stage"], 5, "{v}");
    assert_eq!(v["tasks"]["by_kind"]["http_request"], 1, "{v}");
    assert!(v["queues"]["store_writer"]["pending"].is_u64(), "{v}");
    assert!(v["queues"]["audit"]["size"].is_u64(), "{v}");
    assert_eq!(v["children"], serde_json::json!([]), "{v}");
    let status = d.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", d.output());
    // STOPPING=1 at SIGTERM (a ping may still come just before it).
    let before = until(&listener, "STOPPING=1", Duration::from_secs(5), &d.output());
    assert!(before.iter().all(|m| m == "WATCHDOG=1"), "{before:?}");
    assert!(d.output().contains("sd_notify_ready"), "{}", d.output());
}

/// Without NOTIFY_SOCKET the daemon runs as before and says nothing about systemd.
#[test]
fn without_notify_socket_nothing_is_sent() {
    let d = Daemon::start(&[("WATCHDOG_USEC", "2000000")]);
    let (_, out) = d.stop();
    assert!(!out.contains("sd_notify"), "{out}");
}
