//! The demonstration network's parts as real processes of the built binary on loopback:
//! `demo-target` (http, tcp, receiver) writes log lines that `sentinel replay` turns into the
//! built-in scenarios' alerts, its Falco line has Falco's shape, the receiver checks a real signed
//! delivery from `sentinel notify test`, `demo-attack --kind probe` exits 0/1 as it should, hostile
//! clients do not stop the targets, SIGTERM stops them cleanly, and the binary answers as `whoami`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, BIN};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `demo-target`, killed when dropped (so none outlives a failed test).
struct Target {
    child: Option<Child>,
    addr: SocketAddr,
    output: Arc<Mutex<String>>,
}

impl Target {
    /// Starts `demo-target --listen 127.0.0.1:0 ARGS` in `dir` and waits for the port it got.
    fn start(dir: &Path, args: &[&str]) -> Target {
        let mut child = command(dir)
            .args(["demo-target", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        for r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let buf = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let mut b = buf.lock().unwrap();
                    b.push_str(&line);
                    b.push('\n');
                }
            });
        }
        let mut t = Target {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = t.output.lock().unwrap().lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["evt"] == "demo_target_listening").then(|| v["addr"].as_str()?.parse().ok())?
            });
            if let Some(addr) = found {
                t.addr = addr;
                return t;
            }
            if let Some(status) = t.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("demo-target exited ({status}):\n{}", t.output());
            }
            assert!(
                Instant::now() < deadline,
                "demo-target did not start:\n{}",
                t.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn alive(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// SIGTERM, then its exit status (within 10 s).
    fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("demo-target ignored SIGTERM:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `sentinel demo-attack ARGS`: its exit code and JSON line.
fn attack(args: &[&str]) -> (Option<i32>, Value) {
    let out = command(Path::new("/"))
        .arg("demo-attack")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

/// `sentinel replay --json FILE` (format auto, as an operator would run it).
fn replay(file: &Path) -> Value {
    let out = command(Path::new("/"))
        .args(["replay", "--json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn alerts_for(summary: &Value, scenario: &str) -> Vec<String> {
    summary["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scenario"] == scenario)
        .map(|a| a["source"].as_str().unwrap().to_owned())
        .collect()
}

/// Writes `send` on a fresh connection to `addr` and reads what comes back until the peer closes
/// (or 5 s pass).
/// (The writing runs in its own thread: a target that answers and closes before reading all of a
/// large request must not leave the answer unread behind a blocked write.)
fn exchange(addr: SocketAddr, send: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let send = send.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&send);
    });
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let _ = writer.join();
    String::from_utf8_lossy(&out).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

#[test]
fn the_tcp_target_writes_sshd_lines_that_raise_ssh_bruteforce() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let t = Target::start(
        dir.path(),
        &[
            "--kind",
            "tcp",
            "--name",
            "ssh1",
            "--log",
            log.to_str().unwrap(),
        ],
    );
    let target = t.addr.to_string();
    let (code, v) = attack(&[
        "--kind",
        "ssh",
        "--target",
        &target,
        "--attempts",
        "8",
        "--interval",
        "20",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["attempts"], 8);
    assert_eq!(v["connected"], 8);
    assert_eq!(v["answers"]["Permission denied"], 8, "{v}");
    // The right pair, and an unknown user, by hand.
    let ok = exchange(t.addr, b"admin\ncorrect-horse\n");
    assert!(
        ok.starts_with("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\nlogin: password: Welcome"),
        "{ok:?}"
    );
    let unknown = exchange(t.addr, b"oracle\nx\n");
    assert!(unknown.contains("Permission denied"), "{unknown:?}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8 + 1 + 2, "{text}");
    let failed = lines
        .iter()
        .filter(|l| {
            l.contains("sshd[")
                && l.contains(": Failed password for root from 127.0.0.1 port ")
                && l.ends_with(" ssh2")
        })
        .count();
    assert_eq!(failed, 8, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(": Accepted password for admin from 127.0.0.1 port ")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(": Invalid user oracle from 127.0.0.1 port ")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(": Failed password for invalid user oracle from 127.0.0.1 port ")),
        "{text}"
    );
    // `Dec  1 10:00:00 ssh1 sshd[PID]: …`: the header as rsyslog writes it.
    for l in &lines {
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        assert!(
            months.contains(&&l[..3]) && &l[3..4] == " " && &l[9..10] == ":",
            "{l}"
        );
        assert!(l[15..].starts_with(" ssh1 sshd["), "{l}");
    }
    assert_eq!(mode(&log), 0o640);

    let s = replay(&log);
    assert_eq!(s["lines"], 11, "{s}");
    assert_eq!(s["parsed"], 11, "{s}");
    assert_eq!(
        alerts_for(&s, "ssh_bruteforce"),
        vec!["127.0.0.1".to_owned()],
        "{s}"
    );
    assert!(t.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_target_logs_a_brute_force_and_an_exploit_that_replay_detects() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let falco = dir.path().join("falco.json");
    let t = tokio::task::block_in_place(|| {
        Target::start(
            dir.path(),
            &[
                "--kind",
                "http",
                "--name",
                "web1",
                "--exploitable",
                "--log",
                log.to_str().unwrap(),
                "--falco-log",
                falco.to_str().unwrap(),
            ],
        )
    });
    let c = client();
    let r = c.get(t.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ready");
    let page = c
        .get(t.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<h1>web1</h1>"), "{page}");
    let good = c
        .post(t.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=admin&pass=correct-horse")
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);

    let base = t.url("");
    let (code, v) = tokio::task::block_in_place(|| {
        attack(&[
            "--kind",
            "http",
            "--target",
            &base,
            "--attempts",
            "20",
            "--interval",
            "10",
        ])
    });
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["answers"]["401"], 20, "{v}");
    let (code, v) =
        tokio::task::block_in_place(|| attack(&["--kind", "exploit", "--target", &base]));
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["answers"]["200"], 1, "{v}");
    // The same request as curl sends it: backslashes and brackets raw.
    let raw = tokio::task::block_in_place(|| {
        exchange(
            t.addr,
            b"GET /index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=system&vars[1][]=id HTTP/1.1\r\nHost: web1\r\nUser-Agent: curl/7.88.1\r\nConnection: close\r\n\r\n",
        )
    });
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("uid=1000(svcuser)"), "{raw}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3 + 20 + 2, "{text}");
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{text}");
    assert!(
        lines[0].ends_with("\"GET /ready HTTP/1.1\" 200 5 \"-\" \"-\""),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("\"POST /login HTTP/1.1\" 401 13 \"-\" \"sentinel-demo-attack/"))
            .count()
            == 20,
        "{text}"
    );
    assert!(
        lines.iter().any(
            |l| l.contains("/index.php?s=/Index/\\x5Cthink\\x5Capp/invokefunction")
                && l.ends_with("\"curl/7.88.1\"")
        ),
        "{text}"
    );
    assert_eq!(mode(&log), 0o640);

    let s = replay(&log);
    assert_eq!(s["parsed"], 25, "{s}");
    assert_eq!(
        alerts_for(&s, "http_post_401_bruteforce"),
        vec!["127.0.0.1".to_owned()],
        "{s}"
    );
    assert_eq!(
        alerts_for(&s, "http_cve_2018_20062_thinkphp"),
        vec!["127.0.0.1".to_owned()],
        "{s}"
    );

    // One Falco alert per exploit request, in Falco's file_output JSON.
    let text = std::fs::read_to_string(&falco).unwrap();
    let alerts: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 2, "{text}");
    for a in &alerts {
        assert_eq!(a["rule"], "Terminal shell in container");
        assert_eq!(a["priority"], "Critical");
        assert_eq!(a["source"], "syscall");
        let time = a["time"].as_str().unwrap();
        assert!(
            sentinel_core::Timestamp::parse_rfc3339(time).is_ok(),
            "{time}"
        );
        assert_eq!(time.len(), "2026-12-01T10:00:00.123456789Z".len(), "{time}");
        assert!(a["hostname"].as_str().is_some_and(|h| !h.is_empty()));
        let tags: Vec<&str> = a["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for tag in ["container", "shell", "mitre_execution"] {
            assert!(tags.contains(&tag), "{tags:?}");
        }
        let out = a["output"].as_str().unwrap();
        assert!(out.contains("container_name=web1"), "{out}");
        let f = &a["output_fields"];
        assert_eq!(f["container.name"], "web1");
        let id = f["container.id"].as_str().unwrap();
        assert!(!id.is_empty() && id.len() <= 12, "{id}");
        assert_eq!(f["proc.cmdline"], "sh -c id");
        assert_eq!(f["user.name"], "svcuser");
        assert_eq!(f["fd.rip"], "127.0.0.1");
    }
    assert_eq!(mode(&falco), 0o640);
    assert!(tokio::task::block_in_place(|| t.stop()).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_checks_a_real_signed_delivery_and_refuses_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, "demo-secret-0123456789\n").unwrap();
    let t = tokio::task::block_in_place(|| {
        Target::start(
            dir.path(),
            &[
                "--kind",
                "receiver",
                "--name",
                "inbox",
                "--secret",
                secret.to_str().unwrap(),
            ],
        )
    });
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "notify:\n  channels:\n    hook: {{type: webhook, url: \"{}\", secret_file: \"{}\"}}\n",
            t.url("/hooks/sentinel"),
            secret.display()
        ),
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        command(dir.path())
            .args(["notify", "--data-dir", "data", "test", "--channel", "hook"])
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let c = client();
    let got: Vec<Value> = c
        .get(t.url("/received"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let d = &got[0];
    assert_eq!(d["verified"], true, "{d}");
    assert_eq!(d["status"], 200);
    assert_eq!(d["path"], "/hooks/sentinel");
    assert_eq!(d["body"]["kind"], "test", "{d}");
    assert!(
        d["delivery_id"].as_str().unwrap().starts_with("test-"),
        "{d}"
    );

    // The same signature over a changed body, and a body signed with another secret: 401, counted.
    let headers = &d["headers"];
    let ts = headers["x-sentinel-timestamp"].as_str().unwrap();
    let sig = headers["x-sentinel-signature"].as_str().unwrap();
    let mut body = d["body"].clone();
    body["title"] = Value::String("tampered".into());
    let r = c
        .post(t.url("/hooks/sentinel"))
        .header("X-Sentinel-Timestamp", ts)
        .header("X-Sentinel-Signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = sentinel_notify::channels::sign(b"not-the-secret", now, b"{}");
    let r = c
        .post(t.url("/x"))
        .header("X-Sentinel-Timestamp", now.to_string())
        .header("X-Sentinel-Signature", forged)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(t.url("/x"))
        .body("no signature")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A body over the limit is refused before anything is stored.
    let r = c
        .post(t.url("/x"))
        .body(vec![b'{'; 100 << 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let stats: Value = c
        .get(t.url("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["received"], 4, "{stats}");
    assert_eq!(stats["verified"], 1, "{stats}");
    assert_eq!(stats["rejected"], 3, "{stats}");
    assert_eq!(stats["too_large"], 1, "{stats}");
    let got: Vec<Value> = c
        .get(t.url("/received"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    assert!(
        got[1..]
            .iter()
            .all(|d| d["verified"] == false && d["status"] == 401),
        "{got:?}"
    );
    assert_eq!(got[1]["error"], "signature mismatch");
    assert_eq!(c.get(t.url("/ready")).send().await.unwrap().status(), 200);
    let out = t.output();
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("\"evt\":\"delivery\""))
            .count(),
        4,
        "{out}"
    );
    assert!(tokio::task::block_in_place(|| t.stop()).success());
}

#[test]
fn probe_exits_0_when_the_target_answers_and_1_when_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = Target::start(dir.path(), &["--kind", "tcp"]);
    let web = Target::start(dir.path(), &["--kind", "http"]);
    let (code, v) = attack(&["--kind", "probe", "--target", &tcp.addr.to_string()]);
    assert_eq!((code, &v["ok"]), (Some(0), &Value::Bool(true)), "{v}");
    assert!(v["error"].is_null() && v["ms"].is_u64(), "{v}");
    let (code, v) = attack(&["--kind", "probe", "--target", &web.url("")]);
    assert_eq!((code, &v["ok"]), (Some(0), &Value::Bool(true)), "{v}");
    // A name, resolved.
    let (code, v) = attack(&[
        "--kind",
        "probe",
        "--target",
        &format!("localhost:{}", tcp.addr.port()),
    ]);
    assert_eq!(code, Some(0), "{v}");
    // The tcp target is not an HTTP server: GET /ready fails.
    let (code, v) = attack(&[
        "--kind",
        "probe",
        "--target",
        &format!("http://{}", tcp.addr),
        "--timeout",
        "1000",
    ]);
    assert_eq!((code, &v["ok"]), (Some(1), &Value::Bool(false)), "{v}");
    let closed = tcp.addr.to_string();
    assert!(tcp.stop().success());
    let (code, v) = attack(&["--kind", "probe", "--target", &closed, "--timeout", "1000"]);
    assert_eq!((code, &v["ok"]), (Some(1), &Value::Bool(false)), "{v}");
    assert!(v["error"].as_str().unwrap().contains("refused"), "{v}");
    // Nothing reached at all: exit 1, and the summary says why.
    let (code, v) = attack(&[
        "--kind",
        "ssh",
        "--target",
        &closed,
        "--attempts",
        "2",
        "--interval",
        "0",
    ]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(
        (v["connected"].as_u64(), v["refused"].as_u64()),
        (Some(0), Some(2)),
        "{v}"
    );
    let (code, v) = attack(&["--kind", "http", "--target", &closed, "--attempts", "1"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["connected"], 0, "{v}");
    let out = command(Path::new("/"))
        .args(["demo-attack", "--kind", "probe", "--target", "no-port"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    drop(web);
}

#[test]
fn hostile_clients_do_not_stop_the_targets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut tcp = Target::start(
        dir.path(),
        &[
            "--kind",
            "tcp",
            "--idle-timeout",
            "500",
            "--max-connections",
            "4",
            "--log",
            log.to_str().unwrap(),
        ],
    );
    // A line far over the limit, binary garbage, and an SSH client's banner.
    let big = vec![b'A'; 1 << 20];
    let answer = exchange(tcp.addr, &big);
    assert!(answer.contains("Line too long"), "{answer:?}");
    let answer = exchange(tcp.addr, b"\x00\xff\x1b[31m\x07root\n\xfe\xfd\n");
    assert!(answer.contains("Permission denied"), "{answer:?}");
    let answer = exchange(tcp.addr, b"SSH-2.0-OpenSSH_9.6\r\n");
    assert!(answer.contains("Protocol mismatch"), "{answer:?}");
    // Slowloris: silent connections fill the cap and are closed after the idle timeout. (The
    // sessions above give their slots back just after closing: give them a moment.)
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(tcp.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let over = exchange(tcp.addr, b"");
    assert!(over.is_empty(), "over the cap: {over:?}");
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.ends_with("Timeout, closing\r\n"), "{out:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // A byte at a time, slower than a line may take.
    let mut drip = TcpStream::connect(tcp.addr).unwrap();
    drip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for b in b"roo" {
        std::thread::sleep(Duration::from_millis(200));
        let _ = drip.write_all(&[*b]);
    }
    let mut out = String::new();
    let _ = drip.read_to_string(&mut out);
    assert!(out.ends_with("Timeout, closing\r\n"), "{out:?}");
    let (code, v) = attack(&[
        "--kind",
        "ssh",
        "--target",
        &tcp.addr.to_string(),
        "--attempts",
        "1",
    ]);
    assert_eq!(
        (code, &v["answers"]["Permission denied"]),
        (Some(0), &Value::from(1)),
        "{v}"
    );
    assert!(tcp.alive());
    // The garbage user was logged escaped, on one line.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Invalid user \\000\\377\\033[31m\\007root from 127.0.0.1 port "),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2 + 1, "{text}");

    let mut web = Target::start(
        dir.path(),
        &[
            "--kind",
            "http",
            "--idle-timeout",
            "500",
            "--max-connections",
            "8",
        ],
    );
    let answer = exchange(
        web.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer:?}"
    );
    let mut huge_header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge_header.extend(vec![b'a'; 1 << 20]);
    huge_header.extend(b"\r\n\r\n");
    let answer = exchange(web.addr, &huge_header);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{:?}",
        &answer[..answer.len().min(200)]
    );
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    let answer = exchange(web.addr, long_target.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer:?}");
    let mut body =
        b"POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1048576\r\n\r\n"
            .to_vec();
    body.extend(vec![b'u'; 1 << 20]);
    let answer = exchange(web.addr, &body);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    let started = Instant::now();
    let answer = exchange(web.addr, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let (code, v) = attack(&["--kind", "probe", "--target", &web.url("")]);
    assert_eq!(code, Some(0), "{v}");
    assert!(web.alive());
    assert!(web.stop().success());
    assert!(tcp.stop().success());
}

#[test]
fn flags_of_another_kind_and_unusable_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        command(dir.path())
            .args(["demo-target", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--kind", "tcp", "--exploitable", "--falco-log", "f.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--exploitable is for --kind http"));
    let out = run(&["--kind", "http", "--exploitable"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--exploitable needs --falco-log"
    );
    let out = run(&["--kind", "http", "--log", "/nonexistent-dir/access.log"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent-dir/access.log")
    );
    let out = run(&["--kind", "receiver", "--secret", "missing.secret"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the secret file"));
}

#[test]
fn called_as_whoami_it_prints_the_effective_user() {
    let dir = tempfile::tempdir().unwrap();
    let link: PathBuf = dir.path().join("whoami");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = std::process::Command::new(&link).output().unwrap();
    assert!(out.status.success());
    let ours = String::from_utf8(out.stdout).unwrap();
    let id = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    assert!(id.status.success());
    assert_eq!(ours, String::from_utf8(id.stdout).unwrap());
    // Called by its own name it is still `sentinel`.
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sentinel "));
}
