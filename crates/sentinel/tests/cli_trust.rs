//! The CLI trusts only this install's daemon, and the auth bypass stays on loopback.
//!
//! - A foreign listener where the CLI would look (a stale `api.addr`, the configured `api.listen`
//!   with the daemon down, an explicit `--url` with the key file) receives no key: the raw bytes it
//!   got are checked, and the command fails (exit ≠ 0) saying why.
//! - With the daemon running, the CLI talks over `<data_dir>/api.sock` (0600), proves a TCP server
//!   with `POST /v1/identity`, and `healthcheck` uses the socket.
//! - A socket owned by another uid is refused by the CLI; a peer of another uid is refused by the
//!   daemon and counted (these two need root to play another uid).
//! - The bypass on a non-loopback address, or from a `.env` file, is refused by `config check` and
//!   at start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, Daemon};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A listener that is not Sentinel: it records every byte it receives and answers every request
/// with `200 []` (what a careless fake would, to make the CLI print an empty table and exit 0).
struct Fake {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Fake {
    fn start() -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let r = r.clone();
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                r.lock().unwrap().extend_from_slice(&buf[..n]);
                                // Answer once a request's headers are in (bodies are small here).
                                let _ = s.write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]",
                                );
                            }
                            Err(_) => break,
                        }
                    }
                });
            }
        });
        Fake { addr, received }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    /// The fake saw the CLI (so the test reached it) and got no credential of any kind.
    fn assert_no_key(&self, key: &str) {
        let got = self.text();
        assert!(
            got.contains("POST /v1/identity"),
            "the CLI never reached the fake:\n{got}"
        );
        let lower = got.to_ascii_lowercase();
        assert!(!lower.contains("authorization"), "{got}");
        assert!(!lower.contains("x-api-key"), "{got}");
        assert!(!got.contains(key), "{got}");
        assert!(!got.contains("snl_"), "{got}");
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A data directory as a daemon that died (SIGKILL) leaves it: key, identity, a stale `api.addr`
/// and a stale socket nobody listens on.
fn crashed_install() -> (tempfile::TempDir, String) {
    let mut d = Daemon::start(&[]);
    let _ = d.child.kill();
    let _ = d.child.wait();
    let data = d.data();
    assert!(data.join("api.addr").exists() && data.join("api.sock").exists());
    assert!(data.join("server.id").exists());
    let key = d.key.clone();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    (dir, key)
}

#[test]
fn a_foreign_listener_on_a_stale_api_addr_gets_no_key() {
    let (dir, key) = crashed_install();
    let fake = Fake::start();
    std::fs::write(dir.path().join("data/api.addr"), format!("{}\n", fake.addr)).unwrap();
    let out = command(dir.path())
        .args(["decisions", "list", "--data-dir", "data"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "exit 0 against a fake: {err}");
    assert!(
        err.contains("did not prove") && err.contains("no key was sent"),
        "{err}"
    );
    fake.assert_no_key(&key);
}

#[test]
fn a_stranger_on_the_configured_port_or_an_explicit_url_gets_no_key() {
    let (dir, key) = crashed_install();
    std::fs::remove_file(dir.path().join("data/api.addr")).unwrap();
    let fake = Fake::start();
    // The daemon is down: the configured listen address is held by someone else.
    let listen = fake.addr.to_string();
    let out = command(dir.path())
        .args([
            "decisions",
            "list",
            "--data-dir",
            "data",
            "--listen",
            &listen,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not prove"), "{}", stderr(&out));
    fake.assert_no_key(&key);

    // An explicit --url with the key file: the admin key still goes only to a proven daemon.
    let fake = Fake::start();
    let url = format!("http://{}", fake.addr);
    for args in [
        &["decisions", "list", "--data-dir", "data", "--url", &url][..],
        &["notify", "status", "--data-dir", "data", "--url", &url],
        &[
            "intel",
            "lookup",
            "203.0.113.9",
            "--data-dir",
            "data",
            "--url",
            &url,
        ],
    ] {
        let out = command(dir.path()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("did not prove"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    fake.assert_no_key(&key);
    // The key given in the environment with a derived address: the same rule.
    let fake = Fake::start();
    std::fs::write(dir.path().join("data/api.addr"), format!("{}\n", fake.addr)).unwrap();
    let out = command(dir.path())
        .args(["decisions", "list", "--data-dir", "data"])
        .env("SENTINEL_API_KEY", &key)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    fake.assert_no_key(&key);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_uses_the_socket_and_proves_a_tcp_daemon() {
    let d = Daemon::start(&[]);
    let sock = d.data().join("api.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "api.sock mode {mode:o}");
    let id = std::fs::metadata(d.data().join("server.id")).unwrap();
    assert_eq!(id.permissions().mode() & 0o777, 0o600);

    // Default: over the socket. api.addr pointed away proves it is not TCP.
    std::fs::write(d.data().join("api.addr"), "127.0.0.1:9\n").unwrap();
    let out = command(d.dir.path())
        .args(["decisions", "list", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ID"));
    let out = command(d.dir.path())
        .args(["healthcheck", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // Over TCP with the key file: the daemon proves itself, then gets the key.
    let out = command(d.dir.path())
        .args(["decisions", "list", "--data-dir", "data", "--url", &d.base])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // The challenge itself: no key needed, the proof is the HMAC of this nonce, nothing else.
    let secret = sentinel_api::ServerId::parse(
        &std::fs::read_to_string(d.data().join("server.id")).unwrap(),
    )
    .unwrap();
    let nonce = [7u8; 32];
    let nonce_hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let c = d.client();
    let r = c
        .post(d.url("/v1/identity"))
        .json(&serde_json::json!({ "nonce": nonce_hex }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let proof = v["proof"].as_str().unwrap();
    // Bound to the address the connection reached (the daemon's own), so a relay cannot pass it.
    let at: std::net::SocketAddr = d.base.trim_start_matches("http://").parse().unwrap();
    assert!(secret.verify(&nonce, Some(at), proof));
    assert!(!secret.verify(&nonce, None, proof));
    assert!(!secret.verify(&[8u8; 32], Some(at), proof));
    assert!(!proof.contains(
        std::fs::read_to_string(d.data().join("server.id"))
            .unwrap()
            .trim()
    ));
    for bad in [
        serde_json::json!({ "nonce": "abcd" }),
        serde_json::json!({ "nonce": "zz".repeat(32) }),
        serde_json::json!({ "nonce": nonce_hex, "extra": 1 }),
    ] {
        let r = c
            .post(d.url("/v1/identity"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Its neighbours still need a key.
    let r = c.get(d.url("/v1/decisions")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn a_socket_owned_by_another_uid_is_refused() {
    if !is_root() {
        eprintln!("SKIPPED: playing another uid needs root");
        return;
    }
    let d = Daemon::start(&[]);
    let sock = d.data().join("api.sock");
    std::os::unix::fs::chown(&sock, Some(65534), Some(65534)).unwrap();
    let out = command(d.dir.path())
        .args(["decisions", "list", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("owned by uid 65534"),
        "{}",
        stderr(&out)
    );
}

fn open_path(p: &Path) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_of_another_uid_is_refused_and_counted() {
    if !is_root() {
        eprintln!("SKIPPED: playing another uid needs root");
        return;
    }
    let d = Daemon::start(&[]);
    // Loosen every permission so only the peer-credential check stands between uid 65534 and the
    // daemon (the private directory and the 0600 socket would stop it first).
    open_path(d.dir.path());
    open_path(&d.data());
    let sock = d.data().join("api.sock");
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let data = d.data();
    let out = std::process::Command::new(common::BIN)
        .env_clear()
        .current_dir(d.dir.path())
        .args(["healthcheck", "--data-dir", data.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success(), "served a stranger: {}", stderr(&out));

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
    // The CLI's probe connection and its request: each refused, each counted.
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sentinel_api_local_peers_refused_total "))
        .unwrap_or_else(|| panic!("no counter:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(refused >= 1, "{metrics}");
    let log = common_eventually_log(&d, "local_peer_refused").await;
    assert!(log.contains("65534"), "{log}");
}

async fn common_eventually_log(d: &Daemon, evt: &str) -> String {
    common::eventually(Duration::from_secs(20), || async {
        let o = d.output();
        o.contains(evt).then_some(o)
    })
    .await
}

use std::os::unix::process::CommandExt;

#[test]
fn the_bypass_off_loopback_is_refused_by_config_check_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let check = |listen: &str| {
        command(dir.path())
            .args(["config", "check", "--listen", listen])
            .env("SENTINEL_ALLOW_INSECURE_NO_AUTH", "true")
            .output()
            .unwrap()
    };
    let out = check("127.0.0.1:8000");
    assert!(out.status.success(), "loopback refused: {}", stderr(&out));
    for listen in ["0.0.0.0:8000", "[::]:8000", "192.0.2.10:8000"] {
        let out = check(listen);
        assert_eq!(out.status.code(), Some(2), "{listen}: {}", stderr(&out));
        let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(
            all.contains("api.allow_insecure_no_auth") && all.contains("not a loopback"),
            "{all}"
        );
    }
    let out = command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", "0.0.0.0:0"])
        .env("SENTINEL_ALLOW_INSECURE_NO_AUTH", "true")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a loopback"), "{}", stderr(&out));
    assert!(!dir.path().join("data/admin.key").exists());
}

#[test]
fn the_bypass_from_a_dotenv_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "SENTINEL_ALLOW_INSECURE_NO_AUTH=true\nSENTINEL__API__LISTEN=127.0.0.1:0\n",
    )
    .unwrap();
    let out = command(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(
        all.contains("a .env file may not turn authentication off"),
        "{all}"
    );
    let out = command(dir.path())
        .args(["run", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only the real environment"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("data/admin.key").exists());
    // The same variable from the real environment, on loopback, is honoured.
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let out = command(dir.path())
        .args(["config", "check"])
        .env("SENTINEL_ALLOW_INSECURE_NO_AUTH", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The socket is served by the edge's connection server, with its header-read timeout: a local
/// client that starts a request and never finishes it is cut off (not held forever), counted in the
/// socket's own metrics, while the socket goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn the_socket_closes_a_request_head_never_completed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "api:\n  edge:\n    header_read_timeout: 1s\n",
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let sock = d.data().join("api.sock");
    let mut slow = tokio::net::UnixStream::connect(&sock).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // The server closes it (an EOF, maybe after a 408): well within a minute on a loaded machine.
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut got))
        .await
        .expect("the half-sent request was never cut off")
        .unwrap();
    assert!(
        got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // The socket still serves, and says what it closed.
    let local = reqwest::Client::builder()
        .unix_socket(sock.as_path())
        .build()
        .unwrap();
    let metrics = local
        .get("http://localhost/metrics")
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l == "sentinel_api_local_connections_closed_total{reason=\"header_timeout\"} 1"
        ),
        "{metrics}"
    );
    // The TCP port's own counters are apart (nothing timed out there).
    assert!(
        !metrics
            .lines()
            .any(|l| l
                .starts_with("sentinel_api_connections_closed_total{reason=\"header_timeout\"}")),
        "{metrics}"
    );
}
