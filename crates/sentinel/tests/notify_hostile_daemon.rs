//! A hostile review of notifications and supervision through the real daemon: a SIGKILL while a
//! receiver holds a delivery open loses nothing and redelivers under the same delivery id; SIGTERM
//! during a long outage exits promptly; an `error` route whose channel fails does not feed itself
//! (dead letters and delivery failures do not become error notices); a flood of `POST /v1/notify`
//! leaves the API responsive; the heartbeat shows no child's environment nor arguments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// A webhook receiver on a port that outlives daemon restarts: it records the delivery id of each
/// request; while `hang` is set it reads the request and never answers (a stuck receiver), else it
/// answers 200 and records the id as delivered.
struct Receiver {
    url: String,
    hang: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<String>>>,
    delivered: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        l.set_nonblocking(true).unwrap();
        let r = Receiver {
            url,
            hang: Arc::new(AtomicBool::new(true)),
            attempts: Arc::default(),
            delivered: Arc::default(),
            stop: Arc::default(),
        };
        let (hang, attempts, delivered, stop) = (
            r.hang.clone(),
            r.attempts.clone(),
            r.delivered.clone(),
            r.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let (hang, attempts, delivered) =
                            (hang.clone(), attempts.clone(), delivered.clone());
                        std::thread::spawn(move || {
                            let _ = serve(s, &hang, &attempts, &delivered);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        r
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Serves one connection's requests (keep-alive); a hung request's connection is held open, never
/// answered (the thread ends with the test process).
fn serve(
    s: TcpStream,
    hang: &AtomicBool,
    attempts: &Mutex<Vec<String>>,
    delivered: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = s;
    loop {
        let mut id = String::new();
        let mut len = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() && !first {
                break;
            }
            first = false;
            if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "x-sentinel-delivery" => id = v.trim().to_owned(),
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        attempts.lock().unwrap().push(id.clone());
        if hang.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(600));
            drop(w);
            return Ok(());
        }
        delivered.lock().unwrap().push(id);
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
    }
}

fn dir_with(yml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sentinel.yml"), yml).unwrap();
    dir
}

fn notify_yml(url: &str, kinds: &str, retry: &str) -> String {
    format!(
        "notify:\n  channels:\n    hook: {{type: webhook, url: \"{url}\", secret: \"hook-secret-for-tests\"}}\n  \
         routes:\n    - {{kinds: [{kinds}], channels: [hook], group_wait: 0s, dedup_window: 0s}}\n  \
         retry: {retry}\n"
    )
}

fn start(dir: tempfile::TempDir) -> Daemon {
    tokio::task::block_in_place(|| Daemon::start_in(dir, &[]))
}

async fn post(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    let r = d
        .client()
        .post(d.url(path))
        .bearer_auth(&d.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(d: &Daemon, path: &str) -> Value {
    let r = d
        .client()
        .get(d.url(path))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.unwrap()
}

/// SIGKILL while the receiver holds deliveries open: after the restart every notice arrives, and
/// every delivery id the receiver saw before the kill is one it is finally given (no notice is
/// delivered again under a new id, none is lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_mid_delivery_loses_nothing_and_keeps_the_delivery_ids() {
    let hook = Receiver::start();
    let dir = dir_with(&notify_yml(
        &hook.url,
        "manual",
        "{base: 200ms, factor: 2, cap: 1s, max_attempts: 1000}",
    ));
    let mut d = start(dir);
    for i in 0..3 {
        let (s, b) = post(&d, "/v1/notify", json!({"title": format!("kill test {i}")})).await;
        assert_eq!(s, 202, "{b}");
    }
    // The receiver holds requests open: at least one delivery is in flight.
    eventually(WAIT, || async {
        (!hook.attempts.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    let before: BTreeSet<String> = hook.attempts.lock().unwrap().iter().cloned().collect();
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    drop(d);
    // The killed daemon's address file is stale (the harness waits for the new one).
    std::fs::remove_file(dir.path().join("data/api.addr")).unwrap();
    hook.hang.store(false, Ordering::Relaxed);
    let d = start(dir);
    let got = eventually(WAIT, || async {
        let got: BTreeSet<String> = hook.delivered.lock().unwrap().iter().cloned().collect();
        (got.len() >= 3).then_some(got)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all: BTreeSet<String> = hook.delivered.lock().unwrap().iter().cloned().collect();
    assert_eq!(all, got, "no new delivery id after the three");
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        before.is_subset(&all),
        "ids seen before the kill {before:?} must be the ones delivered {all:?}"
    );
    tokio::task::block_in_place(|| d.stop());
}

/// SIGTERM while the only channel's receiver hangs and dozens of rows wait: the daemon exits 0 well
/// within its drain timeout, and every row is still pending in the outbox on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_long_outage_exits_promptly_and_keeps_the_rows() {
    let hook = Receiver::start();
    let dir = dir_with(&notify_yml(
        &hook.url,
        "manual",
        "{base: 200ms, factor: 2, cap: 1s, max_attempts: 1000}",
    ));
    let mut d = start(dir);
    for i in 0..30 {
        let (s, b) = post(&d, "/v1/notify", json!({"title": format!("outage {i}")})).await;
        assert_eq!(s, 202, "{b}");
    }
    eventually(WAIT, || async {
        (!hook.attempts.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    let t = Instant::now();
    let status = tokio::task::block_in_place(|| d.terminate(Duration::from_secs(20)));
    eprintln!("SIGTERM to exit: {:?}", t.elapsed());
    assert!(status.success(), "{status}: {}", d.output());
    assert!(hook.delivered.lock().unwrap().is_empty());
    let store = sentinel_store::Store::open(&d.data().join("sentinel.db"))
        .await
        .unwrap();
    let counts = store.outbox_counts().await.unwrap();
    let rows: u64 = counts.iter().map(|c| c.rows).sum();
    assert_eq!(rows, 30, "{counts:?}");
}

/// An `error` route whose only channel is down: the intel feed's error line becomes one notice; its
/// failed attempts and its dead letter are logged as errors but do not become notices in turn, so
/// the accepted count settles and the outbox stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_error_route_on_a_failing_channel_does_not_feed_itself() {
    // A port nothing listens on.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let feed_dir = tempfile::tempdir().unwrap();
    let feed = feed_dir.path().join("bad.netset");
    std::fs::write(&feed, "this is not an address\n").unwrap();
    let dir = dir_with(&format!(
        "{}intel:\n  feeds:\n    - {{name: bad, path: \"{}\", format: list, verdict: malicious, score: 90}}\n",
        notify_yml(
            &closed,
            "error, manual",
            "{base: 50ms, factor: 2, cap: 100ms, max_attempts: 2}"
        ),
        feed.display()
    ));
    let d = start(dir);
    for i in 0..5 {
        let (s, _) = post(&d, "/v1/notify", json!({"title": format!("doomed {i}")})).await;
        assert_eq!(s, 202);
    }
    // Everything dead-letters (the error notice and the five).
    eventually(WAIT, || async {
        let s = get(&d, "/v1/notify").await;
        (s["outbox_dead"].as_u64().unwrap() >= 6 && s["outbox_pending"] == 0).then_some(())
    })
    .await;
    let settled = get(&d, "/v1/notify").await["accepted"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = get(&d, "/v1/notify").await;
    assert_eq!(s["accepted"].as_u64().unwrap(), settled, "{s}");
    assert!(settled <= 8, "accepted {settled}: {s}");
    assert_eq!(s["outbox_pending"], 0, "{s}");
    let out = d.output();
    assert!(
        out.contains("notice_dead_letter") || out.contains("dead"),
        "{out}"
    );
    tokio::task::block_in_place(|| d.stop());
}

/// A flood of sends while the receiver hangs: measure rows per second and the heartbeat's latency
/// during the flood; the API keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_sends_leaves_the_api_responsive() {
    let hook = Receiver::start();
    let dir = dir_with(&notify_yml(
        &hook.url,
        "manual",
        "{base: 1s, factor: 2, cap: 10s, max_attempts: 1000}",
    ));
    let d = Arc::new(start(dir));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let c = d.client();
            let mut ok = 0u32;
            for i in 0..150 {
                let r = c
                    .post(d.url("/v1/notify"))
                    .bearer_auth(&d.key)
                    .json(&json!({"title": format!("flood {w}-{i}"), "body": "x".repeat(2000)}))
                    .send()
                    .await
                    .unwrap();
                if r.status().as_u16() == 202 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut worst = Duration::ZERO;
    while !tasks.iter().all(|t| t.is_finished()) {
        let h = Instant::now();
        let hb = get(&d, "/v1/system/heartbeat").await;
        worst = worst.max(h.elapsed());
        assert_eq!(hb["status"], "ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    let took = t.elapsed();
    eprintln!(
        "flood: {ok} accepted in {took:?} ({:.0} rows/s); worst heartbeat {worst:?}",
        f64::from(ok) / took.as_secs_f64()
    );
    assert_eq!(ok, 1200);
    assert!(worst < Duration::from_secs(5), "heartbeat took {worst:?}");
    let hb = get(&d, "/v1/system/heartbeat").await;
    assert!(hb["queues"]["notify"]["outbox_pending"].as_u64().unwrap() >= 1200);
    let d = Arc::try_unwrap(d).ok().unwrap();
    tokio::task::block_in_place(|| d.stop());
}

/// A supervised child's environment and arguments (secrets) never show in the heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_shows_no_child_secret() {
    let dir = dir_with(
        "supervise:\n  children:\n    - name: worker\n      process:\n        command: sh\n        \
         args: [\"-c\", \"exec sleep 1000\", \"--password=hunter2-arg\"]\n        \
         env: {DB_PASSWORD: hunter2-env}\n      restart: { base: 100ms }\n",
    );
    let d = start(dir);
    let hb = eventually(WAIT, || async {
        let hb = get(&d, "/v1/system/heartbeat").await;
        (hb["children"][0]["state"] == "running").then_some(hb)
    })
    .await;
    let text = hb.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("worker"), "{text}");
    tokio::task::block_in_place(|| d.stop());
}
