//! `sentinel egress-proxy` as a container runs it: a real process on loopback, real TCP servers
//! behind it, raw requests in front of it. Allowed CONNECTs tunnel bytes both ways; everything else
//! gets its status (403, 405, 400, 408, 503) and leaves the destination untouched; the proxy keeps
//! serving after bad input; a name resolving to loopback needs its literal allowed; and Sentinel's
//! own threat-intelligence client tunnels through it when `HTTPS_PROXY` is set (never sending a key
//! in clear to it). All traffic stays on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, Daemon};
use sentinel_testkit::ti::{Behaviour, FakeProvider, TiKind};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running `sentinel egress-proxy` on `127.0.0.1:0`, killed when dropped.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Proxy {
    fn start(args: &[&str]) -> Proxy {
        let dir = std::env::temp_dir();
        let mut c = command(&dir);
        c.args(["egress-proxy", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        for r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let mut p = Proxy {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
        };
        let ready = p.wait_for(|l| l["evt"] == "egress_ready");
        p.addr = ready["listen"].as_str().unwrap().parse().unwrap();
        p
    }

    fn lines(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (at most 10 s) for a log line `pred` accepts.
    fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.lines().into_iter().find(&pred) {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("egress-proxy exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "no such line:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 10 s) for `n` log lines `pred` accepts, and returns them in order.
    fn wait_lines(&mut self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Value> = self.lines().into_iter().filter(&pred).collect();
            if found.len() >= n {
                assert_eq!(found.len(), n, "{}", self.log());
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} lines:\n{}",
                found.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `GET /ready`: the status and the counts `(allowed, refused, failed)`.
    async fn ready(&self) -> (u16, Option<(u64, u64, u64)>) {
        let (status, body) = exchange(self.addr, b"GET /ready HTTP/1.1\r\nHost: p\r\n\r\n").await;
        let counts = serde_json::from_str::<Value>(&body).ok().map(|v| {
            (
                v["allowed"].as_u64().unwrap(),
                v["refused"].as_u64().unwrap(),
                v["failed"].as_u64().unwrap(),
            )
        });
        (status, counts)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP echo server on loopback that counts the connections it accepted.
struct Echo {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn echo() -> Echo {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Echo { addr, accepted }
}

/// Sends `bytes`, reads until the proxy closes (at most 10 s); the status and the body.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_answer(&mut s).await
}

async fn read_answer(s: &mut TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the proxy did not close")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    (status, body.to_owned())
}

/// Sends a CONNECT for `target`; on 200 returns the open tunnel, otherwise the status.
async fn connect(proxy: SocketAddr, target: &str) -> Result<TcpStream, u16> {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
            .await
            .expect("no answer to CONNECT")
            .unwrap();
        assert!(
            n == 1,
            "closed mid-answer: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status: u16 = text[9..12].parse().unwrap();
    if status == 200 {
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        Ok(s)
    } else {
        Err(status)
    }
}

/// A predicate on log lines: a refusal for `reason`.
fn refusal(reason: &str) -> impl Fn(&Value) -> bool + '_ {
    move |l| l["evt"] == "egress_refused" && l["reason"] == reason
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_connect_tunnels_bytes_both_ways() {
    let e = echo().await;
    let allow = format!("127.0.0.1:{}", e.addr.port());
    let mut p = Proxy::start(&["--allow", &allow]);

    let mut t = connect(p.addr, &allow).await.unwrap();
    // More than one relay buffer each way, written and read concurrently.
    let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = t.split();
    let write = async {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let read = async {
        tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
    };
    tokio::join!(write, read);
    assert_eq!(back.len(), sent.len());
    assert!(back == sent, "the echo came back changed");
    assert_eq!(e.accepted.load(Ordering::SeqCst), 1);

    let tunnel = p.wait_for(|l| l["evt"] == "egress_tunnel");
    assert_eq!(tunnel["host"], allow);
    assert_eq!(tunnel["address"], allow);
    assert!(tunnel["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let closed = p.wait_for(|l| l["evt"] == "egress_closed");
    assert_eq!(closed["bytes_sent"], 200_000);
    assert_eq!(closed["bytes_received"], 200_000);
    assert_eq!(closed["end"], "closed");
    assert_eq!(p.ready().await, (200, Some((1, 0, 0))));
}

#[tokio::test(flavor = "multi_thread")]
async fn other_destinations_get_403_and_are_never_contacted() {
    let allowed = echo().await;
    let other = echo().await;
    let allow = format!("127.0.0.1:{}", allowed.addr.port());
    let mut p = Proxy::start(&["--allow", &allow]);

    for target in [
        // Another port on an allowed host, another host, the allowed port under another name.
        format!("127.0.0.1:{}", other.addr.port()),
        format!("127.0.0.2:{}", allowed.addr.port()),
        format!("localhost:{}", allowed.addr.port()),
        format!("LOCALHOST:{}", other.addr.port()),
    ] {
        assert_eq!(connect(p.addr, &target).await.err(), Some(403), "{target}");
    }
    assert_eq!(other.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(allowed.accepted.load(Ordering::SeqCst), 0);
    let refused = p.wait_lines(4, refusal("destination not allowed"));
    assert_eq!(
        refused[0]["host"],
        format!("127.0.0.1:{}", other.addr.port())
    );
    assert!(refused
        .iter()
        .all(|l| l["client"].as_str().unwrap().starts_with("127.0.0.1:")));
    assert_eq!(p.ready().await, (200, Some((0, 4, 0))));
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_is_not_forwarded() {
    let e = echo().await;
    let allow = format!("127.0.0.1:{}", e.addr.port());
    let mut p = Proxy::start(&["--allow", &allow]);
    for head in [
        format!("GET http://{allow}/ HTTP/1.1\r\nHost: {allow}\r\n\r\n"),
        format!("POST http://{allow}/x HTTP/1.1\r\nHost: {allow}\r\nContent-Length: 2\r\n\r\nhi"),
        "GET / HTTP/1.1\r\nHost: p\r\n\r\n".to_owned(),
        "POST /ready HTTP/1.1\r\nHost: p\r\n\r\n".to_owned(),
    ] {
        let (status, _) = exchange(p.addr, head.as_bytes()).await;
        assert_eq!(status, 405, "{head}");
    }
    assert_eq!(e.accepted.load(Ordering::SeqCst), 0);
    let refused = p.wait_lines(4, refusal("not a CONNECT request"));
    assert_eq!(refused[1]["method"], "POST");
    assert_eq!(p.ready().await, (200, Some((0, 4, 0))));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_heads_get_400_slow_ones_408_a_flood_503_and_serving_goes_on() {
    let e = echo().await;
    let allow = format!("127.0.0.1:{}", e.addr.port());
    let mut p = Proxy::start(&[
        "--allow",
        &allow,
        "--handshake-timeout",
        "1s",
        "--max-connections",
        "3",
    ]);
    let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
    let heads: Vec<Vec<u8>> = vec![
        // A TLS ClientHello sent to the proxy itself.
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n".to_vec(),
        b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n".to_vec(),
        b"CONNECT [::1 HTTP/1.1\r\n\r\n".to_vec(),
        format!("CONNECT {allow} HTTP/1.1\r\n{many}\r\n").into_bytes(),
        // 8 KiB and more with no end of head: refused at the limit, not read on.
        [
            format!("CONNECT {allow} HTTP/1.1\r\nX: ").into_bytes(),
            vec![b'y'; 64 * 1024],
        ]
        .concat(),
    ];
    for h in &heads {
        let (status, body) = exchange(p.addr, h).await;
        assert_eq!(
            status,
            400,
            "{:?}",
            String::from_utf8_lossy(&h[..40.min(h.len())])
        );
        assert!(!body.is_empty());
    }
    p.wait_lines(1, refusal("request head over 8192 bytes"));
    p.wait_lines(5, |l| l["evt"] == "egress_refused");
    assert_eq!(e.accepted.load(Ordering::SeqCst), 0);

    // A client that says nothing is answered 408 once the handshake time is up.
    let started = Instant::now();
    let mut silent = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(read_answer(&mut silent).await.0, 408);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    drop(silent);
    // Every connection so far has given its place back (none is counted twice below).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Three connections open (two silent clients and a tunnel): the fourth is answered 503 at once.
    let mut idle1 = TcpStream::connect(p.addr).await.unwrap();
    let mut idle2 = TcpStream::connect(p.addr).await.unwrap();
    let mut tunnel = connect(p.addr, &allow).await.unwrap();
    let mut fourth = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(read_answer(&mut fourth).await.0, 503);
    p.wait_for(|l| l["reason"] == "connection limit reached");
    // The silent ones time out (408) and give their places back; the tunnel still works.
    assert_eq!(read_answer(&mut idle1).await.0, 408);
    assert_eq!(read_answer(&mut idle2).await.0, 408);
    drop((idle1, idle2));
    tunnel.write_all(b"still there").await.unwrap();
    let mut back = [0u8; 11];
    tunnel.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"still there");
    drop(tunnel);

    // Still serving: a health check (once the places are given back) and a new tunnel.
    let deadline = Instant::now() + Duration::from_secs(5);
    let counts = loop {
        match p.ready().await {
            (200, Some(c)) => break c,
            (503, _) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("{other:?}\n{}", p.log()),
        }
    };
    // Refused: five bad heads, the fourth connection (and any health check refused while busy).
    let (allowed, refused, failed) = counts;
    assert_eq!((allowed, failed), (1, 3), "{}", p.log());
    assert!(refused >= 6, "{}", p.log());
    let mut t = connect(p.addr, &allow).await.unwrap();
    t.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    t.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_outside_allow_from_is_refused() {
    let e = echo().await;
    let allow = format!("127.0.0.1:{}", e.addr.port());
    let mut p = Proxy::start(&["--allow", &allow, "--allow-from", "192.0.2.0/24"]);
    assert_eq!(connect(p.addr, &allow).await.err(), Some(403));
    assert_eq!(p.ready().await.0, 403);
    assert_eq!(e.accepted.load(Ordering::SeqCst), 0);
    let refused = p.wait_for(|l| l["reason"] == "client not allowed");
    assert!(refused["client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let ready = p.wait_for(|l| l["evt"] == "egress_ready");
    assert_eq!(ready["allow_from"], "192.0.2.0/24");

    // The same proxy with loopback among its client networks serves it.
    drop(p);
    let p = Proxy::start(&[
        "--allow",
        &allow,
        "--allow-from",
        "192.0.2.0/24",
        "--allow-from",
        "127.0.0.1",
    ]);
    assert!(connect(p.addr, &allow).await.is_ok());
    assert_eq!(e.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_resolves_inside_needs_its_literal_allowed() {
    let e = echo().await;
    let port = e.addr.port();
    let name = format!("localhost:{port}");
    let literal = format!("127.0.0.1:{port}");

    let mut p = Proxy::start(&["--allow", &name]);
    assert_eq!(connect(p.addr, &name).await.err(), Some(403));
    assert_eq!(e.accepted.load(Ordering::SeqCst), 0);
    let refused = p.wait_for(|l| {
        l["reason"] == "resolves to an internal address whose literal is not allowed"
    });
    assert_eq!(refused["host"], name);
    assert!(
        refused["addresses"].as_str().unwrap().contains("127.0.0.1"),
        "{refused}"
    );
    drop(p);

    let mut p = Proxy::start(&["--allow", &name, "--allow", &literal]);
    let mut t = connect(p.addr, &name).await.unwrap();
    t.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    t.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    assert_eq!(e.accepted.load(Ordering::SeqCst), 1);
    let tunnel = p.wait_for(|l| l["evt"] == "egress_tunnel");
    assert_eq!(tunnel["host"], name);
    assert_eq!(tunnel["address"], literal);
}

#[test]
fn without_allow_the_providers_default_hosts_are_allowed_and_healthcheck_works() {
    let mut p = Proxy::start(&[]);
    let ready = p.wait_for(|l| l["evt"] == "egress_ready");
    assert_eq!(
        ready["allow"],
        "api.abuseipdb.com:443,www.virustotal.com:443,otx.alienvault.com:443"
    );
    assert_eq!(ready["allow_from"], "any");
    // `sentinel healthcheck --url` is its container health check.
    let url = format!("http://{}", p.addr);
    let out = command(&std::env::temp_dir())
        .args(["healthcheck", "--url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for bad in [
        &["--allow", "nope"][..],
        &["--allow", "h:0"],
        &["--allow-from", "300.0.0.0/8"],
    ] {
        let out = command(&std::env::temp_dir())
            .args(["egress-proxy", "--listen", "127.0.0.1:0"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// A TCP server on loopback that keeps the first bytes of every connection (up to one TLS record)
/// and closes it: where a TLS client's ClientHello lands.
struct Sink {
    addr: SocketAddr,
    hellos: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn sink() -> Sink {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hellos = Arc::new(Mutex::new(Vec::new()));
    let kept = hellos.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut b = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    // The record header says how long the record is.
                    while got.len() < 5
                        || got.len() < 5 + u16::from_be_bytes([got[3], got[4]]) as usize
                    {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&b[..n]),
                        }
                    }
                })
                .await;
                kept.lock().unwrap().push(got);
            });
        }
    });
    Sink { addr, hellos }
}

struct Lookup {
    code: Option<i32>,
    out: String,
    err: String,
}

/// `sentinel intel lookup 203.0.113.7 --local --json` in `dir` with `env`.
async fn lookup(dir: &Path, env: &[(&str, &str)]) -> Lookup {
    lookup_with(dir, &["--local"], env).await
}

/// `sentinel intel lookup 203.0.113.7 --json --data-dir data` and `args` in `dir` with `env`.
async fn lookup_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Lookup {
    let mut c = command(dir);
    c.args([
        "intel",
        "lookup",
        "203.0.113.7",
        "--json",
        "--data-dir",
        "data",
    ])
    .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    Lookup {
        code: out.status.code(),
        out: String::from_utf8_lossy(&out.stdout).into(),
        err: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn abuseipdb(out: &str) -> Value {
    let v: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["provider"] == "abuseipdb")
        .cloned()
        .unwrap_or_else(|| panic!("no abuseipdb evidence: {v}"))
}

/// Whether `hello` is a TLS handshake record carrying a ClientHello that names `host` (SNI).
fn is_client_hello_for(hello: &[u8], host: &str) -> bool {
    hello.len() > 9
        && hello[0] == 0x16
        && hello[1] == 0x03
        && hello[5] == 0x01
        && hello.windows(host.len()).any(|w| w == host.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn sentinels_intel_client_tunnels_through_https_proxy() {
    let provider = sink().await;
    let port = provider.addr.port();
    let key = "abuseipdb-test-key-3f9a2c";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "intel:\n  retry: {{ attempts: 1, base: 100ms, max: 1s }}\n  abuseipdb:\n    base_url: https://localhost:{port}\n"
        ),
    )
    .unwrap();
    let target = format!("localhost:{port}");
    let key_env = ("SENTINEL__INTEL__ABUSEIPDB__KEY", key);

    // Through a proxy that allows it: the CONNECT names the provider's host and port, and the bytes
    // that arrive at the provider through the tunnel are Sentinel's TLS ClientHello for that host.
    let mut p = Proxy::start(&["--allow", &target, "--allow", &format!("127.0.0.1:{port}")]);
    let via = format!("http://{}", p.addr);
    let r = lookup(dir.path(), &[key_env, ("HTTPS_PROXY", &via)]).await;
    assert_eq!(r.code, Some(0), "{}", r.err);
    let tunnel = p.wait_for(|l| l["evt"] == "egress_tunnel");
    assert_eq!(tunnel["host"], target);
    let hellos = provider.hellos.lock().unwrap().clone();
    assert_eq!(hellos.len(), 1, "one connection, through the proxy");
    assert!(
        is_client_hello_for(&hellos[0], "localhost"),
        "{:02x?}",
        &hellos[0]
    );
    // The handshake cannot finish (the sink is no TLS server): AbuseIPDB is an uncertainty.
    let report: Value = serde_json::from_str(&r.out).unwrap();
    assert!(
        report["uncertainty"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u.as_str().unwrap().contains("abuseipdb")),
        "{report}"
    );
    assert!(!r.out.contains(key) && !r.err.contains(key) && !p.log().contains(key));
    assert_eq!(p.ready().await.1.unwrap().0, 1);

    // Lower-case https_proxy as well; a proxy that does not allow it refuses the CONNECT (logged with
    // host and client) and nothing reaches the provider.
    let mut strict = Proxy::start(&["--allow", "api.abuseipdb.com:443"]);
    let via_strict = format!("http://{}", strict.addr);
    let r = lookup(dir.path(), &[key_env, ("https_proxy", &via_strict)]).await;
    assert_eq!(r.code, Some(0), "{}", r.err);
    let refused = strict.wait_for(|l| l["reason"] == "destination not allowed");
    assert_eq!(refused["host"], target);
    assert!(refused["client"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(provider.hellos.lock().unwrap().len(), 1);

    // NO_PROXY names the host: direct to the provider, the proxy sees nothing more.
    let before = p.ready().await.1.unwrap();
    let r = lookup(
        dir.path(),
        &[
            key_env,
            ("HTTPS_PROXY", &via),
            ("NO_PROXY", "example.org, localhost"),
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(provider.hellos.lock().unwrap().len(), 2);
    assert_eq!(p.ready().await.1.unwrap(), before);

    // A proxy setting that cannot be used is a clear error, not a silent direct connection.
    let r = lookup(
        dir.path(),
        &[key_env, ("HTTPS_PROXY", "socks5://127.0.0.1:1080")],
    )
    .await;
    assert_eq!(r.code, Some(2), "{}", r.err);
    assert!(
        r.err.contains("HTTPS_PROXY") && r.err.contains("socks5"),
        "{}",
        r.err
    );
    assert_eq!(provider.hellos.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_asks_providers_through_https_proxy() {
    let provider = sink().await;
    let port = provider.addr.port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "intel:\n  retry: {{ attempts: 1, base: 100ms, max: 1s }}\n  abuseipdb:\n    base_url: https://localhost:{port}\n"
        ),
    )
    .unwrap();
    let target = format!("localhost:{port}");
    let mut p = Proxy::start(&["--allow", &target, "--allow", &format!("127.0.0.1:{port}")]);
    let via = format!("http://{}", p.addr);
    let d = Daemon::start_in(
        dir,
        &[
            (
                "SENTINEL__INTEL__ABUSEIPDB__KEY",
                "abuseipdb-test-key-3f9a2c",
            ),
            ("HTTPS_PROXY", &via),
        ],
    );
    let ready: Value = d
        .output()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["evt"] == "intel_ready")
        .unwrap_or_else(|| panic!("no intel_ready line:\n{}", d.output()));
    assert_eq!(ready["proxy"], format!("{via} (HTTPS_PROXY)"), "{ready}");

    // A lookup through the daemon (the CLI itself has no proxy set): the daemon's provider client
    // opens the tunnel, and its ClientHello for the provider's host arrives through it.
    let r = lookup_with(d.dir.path(), &[], &[]).await;
    assert_eq!(r.code, Some(0), "{}", r.err);
    let tunnel = p.wait_for(|l| l["evt"] == "egress_tunnel");
    assert_eq!(tunnel["host"], target);
    let hellos = provider.hellos.lock().unwrap().clone();
    assert_eq!(hellos.len(), 1);
    assert!(
        is_client_hello_for(&hellos[0], "localhost"),
        "{:02x?}",
        &hellos[0]
    );
    assert_eq!(p.ready().await.1.unwrap(), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_http_provider_is_never_proxied() {
    // Plain http (allowed to loopback only) would hand the key to a proxy in clear: it goes direct,
    // whatever HTTP_PROXY, HTTPS_PROXY or ALL_PROXY say.
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    fake.set("203.0.113.7".parse().unwrap(), Behaviour::listed(95, 120));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!("intel:\n  abuseipdb:\n    base_url: {}\n", fake.base_url()),
    )
    .unwrap();
    let p = Proxy::start(&["--allow", &fake.base_url()["http://".len()..]]);
    let via = format!("http://{}", p.addr);
    let r = lookup(
        dir.path(),
        &[
            ("SENTINEL__INTEL__ABUSEIPDB__KEY", fake.key()),
            ("HTTP_PROXY", &via),
            ("http_proxy", &via),
            ("HTTPS_PROXY", &via),
            ("ALL_PROXY", &via),
        ],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(abuseipdb(&r.out)["verdict"], "malicious", "{}", r.out);
    assert_eq!(fake.hits("203.0.113.7".parse().unwrap()), 1);
    assert_eq!(p.ready().await, (200, Some((0, 0, 0))), "{}", p.log());
}
