//! The webhook witness against a real HTTP receiver on 127.0.0.1 that checks the HMAC the way a
//! receiver would (constant-time compare over `timestamp + "." + raw body`, timestamp freshness).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sentinel_audit::merkle::empty_root;
use sentinel_audit::note::{Checkpoint, SignedCheckpoint, Signer};
use sentinel_audit::witness::{Witness, WitnessSettings};
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};

const SECRET: &str = "witness-shared-secret";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

/// The process's log, captured (one global subscriber: scoped ones miss events when tests run in
/// parallel threads).
fn log_capture() -> Captured {
    static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let c = Captured::default();
        let sink = c.clone();
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .init();
        c
    })
    .clone()
}

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Received {
    body: String,
    signature_ok: bool,
    fresh: bool,
    origin: String,
    size: u64,
    content_type: String,
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Received>>,
    /// Status codes to answer, in order; 200 when empty.
    script: Mutex<VecDeque<u16>>,
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn hook(State(r): State<Arc<Receiver>>, h: HeaderMap, body: Bytes) -> StatusCode {
    let ts = header(&h, "x-sentinel-timestamp");
    let sig = header(&h, "x-sentinel-signature");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&body);
    let signature_ok = sig
        .strip_prefix("sha256=")
        .and_then(|x| hex::decode(x).ok())
        .is_some_and(|raw| mac.verify_slice(&raw).is_ok());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = ts.parse::<u64>().is_ok_and(|t| now.abs_diff(t) <= 300);
    r.got.lock().unwrap().push(Received {
        body: String::from_utf8(body.to_vec()).unwrap(),
        signature_ok,
        fresh,
        origin: header(&h, "x-sentinel-origin"),
        size: header(&h, "x-sentinel-tree-size")
            .parse()
            .unwrap_or(u64::MAX),
        content_type: header(&h, "content-type"),
    });
    if !signature_ok || !fresh {
        return StatusCode::UNAUTHORIZED;
    }
    let code = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

async fn receiver(script: &[u16]) -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    r.script.lock().unwrap().extend(script.iter().copied());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), r)
}

fn checkpoint(size: u64) -> SignedCheckpoint {
    let signer = Signer::from_seed("sentinel/witness-test", [9u8; 32]).unwrap();
    signer.sign(&Checkpoint {
        origin: "sentinel/witness-test".into(),
        size,
        root: empty_root(),
        time_ms: 1_764_476_400_000 + size,
    })
}

fn fast(url: &str) -> WitnessSettings {
    let mut s = WitnessSettings::new(url, SECRET);
    s.timeout = Duration::from_secs(2);
    s.max_attempts = 4;
    s.backoff_initial = Duration::from_millis(20);
    s.backoff_max = Duration::from_millis(100);
    s.retry_after_failure = Duration::from_secs(3600);
    s
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "not reached in 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_two_500s_and_the_receiver_verifies_the_hmac() {
    log_capture();
    let (url, r) = receiver(&[500, 500]).await;
    let w = Witness::new(fast(&url)).unwrap();
    let counters = w.counters();
    let cp = checkpoint(7);
    let (_tx, rx) = watch::channel(cp.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(w.run(rx, async {
        let _ = stopped.await;
    }));
    until("delivered", || counters.sent() == 1).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    for g in &got {
        assert!(g.signature_ok && g.fresh, "{g:?}");
        assert_eq!(g.body, cp.text);
        assert_eq!(g.origin, "sentinel/witness-test");
        assert_eq!(g.size, 7);
        assert_eq!(g.content_type, "text/plain; charset=utf-8");
    }
    assert_eq!(counters.requests(), 3);
    assert_eq!(counters.failed(), 0);
    stop.send(()).unwrap();
    task.await.unwrap();
    // Delivered once: no re-send at shutdown.
    assert_eq!(r.got.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_is_counted_as_a_failure() {
    // A port that was just free: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = Witness::new(fast(&format!("http://127.0.0.1:{port}/hook"))).unwrap();
    let counters = w.counters();
    let (_tx, rx) = watch::channel(checkpoint(3));
    let (stop, stopped) = oneshot::channel::<()>();
    let logged = log_capture();
    let task = tokio::spawn(w.run(rx, async {
        let _ = stopped.await;
    }));
    until("a failed round", || counters.failed() >= 1).await;
    assert_eq!(
        counters.requests(),
        4,
        "max_attempts requests, then the round fails"
    );
    assert_eq!(counters.sent(), 0);
    // Only this test uses tree size 3.
    let mine = || -> Vec<String> {
        String::from_utf8(logged.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains(" size=3 "))
            .map(str::to_owned)
            .collect()
    };
    until("the error is logged", || {
        mine().iter().any(|l| l.contains("audit_witness_failed"))
    })
    .await;
    let log = mine();
    assert!(
        log.iter().all(|l| !l.contains("/hook")),
        "the URL's path is not logged: {log:?}"
    );
    let failed: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("evt=\"audit_witness_failed\""))
        .collect();
    assert_eq!(failed.len(), 1, "{log:?}");
    assert!(failed[0].contains("ERROR"), "{log:?}");
    let retries = log
        .iter()
        .filter(|l| l.contains("audit_witness_retry"))
        .count();
    assert_eq!(retries, 3, "{log:?}");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_not_retried_but_429_is() {
    log_capture();
    let (url, r) = receiver(&[429, 403]).await;
    let w = Witness::new(fast(&url)).unwrap();
    let counters = w.counters();
    let (_tx, rx) = watch::channel(checkpoint(1));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(w.run(rx, async {
        let _ = stopped.await;
    }));
    until("a failed round", || counters.failed() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.got.lock().unwrap().len(), 2, "429 retried, 403 not");
    assert_eq!(counters.sent(), 0);
    stop.send(()).unwrap();
    task.await.unwrap();
}

// One thread: the two newer checkpoints are both published before the witness task runs again, as
// when they pile up while it waits (no race on which one it sees).
#[tokio::test(flavor = "current_thread")]
async fn the_newest_checkpoint_wins_while_the_receiver_is_failing() {
    log_capture();
    let (url, r) = receiver(&[500]).await;
    let mut s = fast(&url);
    // Long enough for the newer checkpoints to arrive during the first backoff.
    s.backoff_initial = Duration::from_secs(5);
    s.backoff_max = Duration::from_secs(5);
    let w = Witness::new(s).unwrap();
    let counters = w.counters();
    let (tx, rx) = watch::channel(checkpoint(10));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(w.run(rx, async {
        let _ = stopped.await;
    }));
    until("first try", || r.got.lock().unwrap().len() == 1).await;
    tx.send(checkpoint(11)).unwrap();
    tx.send(checkpoint(12)).unwrap();
    until("delivered", || counters.sent() == 1).await;
    let sizes: Vec<u64> = r.got.lock().unwrap().iter().map(|g| g.size).collect();
    assert_eq!(
        sizes,
        [10, 12],
        "11 never sent, 12 sent without waiting out the backoff"
    );
    assert_eq!(counters.superseded(), 1);
    // A later checkpoint is sent as it comes.
    tx.send(checkpoint(13)).unwrap();
    until("second delivery", || counters.sent() == 2).await;
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_an_undelivered_checkpoint_gets_a_last_try() {
    log_capture();
    let (url, r) = receiver(&[500]).await;
    let mut s = fast(&url);
    s.max_attempts = 1;
    let w = Witness::new(s).unwrap();
    let counters = w.counters();
    let (_tx, rx) = watch::channel(checkpoint(5));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(w.run(rx, async {
        let _ = stopped.await;
    }));
    until("failed round", || counters.failed() == 1).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(counters.sent(), 1);
    assert_eq!(r.got.lock().unwrap().len(), 2);
}

/// A checkpoint published at the same moment as the shutdown is still delivered, whichever of the
/// two the witness sees first (many rounds, since which comes first is up to the scheduler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_published_with_the_shutdown_is_still_delivered() {
    log_capture();
    for round in 0..20u64 {
        let (url, r) = receiver(&[]).await;
        let w = Witness::new(fast(&url)).unwrap();
        let counters = w.counters();
        let (tx, rx) = watch::channel(checkpoint(1));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(w.run(rx, async {
            let _ = stopped.await;
        }));
        until("first delivery", || counters.sent() == 1).await;
        tx.send(checkpoint(2)).unwrap();
        stop.send(()).unwrap();
        task.await.unwrap();
        let sizes: Vec<u64> = r.got.lock().unwrap().iter().map(|g| g.size).collect();
        assert_eq!(sizes.last(), Some(&2), "round {round}: {sizes:?}");
    }
}

#[test]
fn settings_are_validated() {
    let ok = |u: &str| WitnessSettings::new(u, "s").validate().is_ok();
    assert!(ok("https://witness.example.org/hook"));
    assert!(ok("http://127.0.0.1:9000/hook"));
    assert!(ok("http://localhost/hook"));
    assert!(ok("http://[::1]:8080/"));
    assert!(!ok("http://witness.example.org/hook"));
    assert!(!ok("http://10.0.0.1/hook"));
    assert!(!ok("ftp://127.0.0.1/"));
    assert!(!ok("not a url"));
    let e = WitnessSettings::new("https://w.example.org/", "  ")
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("secret"), "{e}");
    let mut s = WitnessSettings::new("https://w.example.org/?token=abc", "topsecret");
    s.max_attempts = 0;
    assert!(s.validate().is_err());
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("topsecret") && !dbg.contains("abc"), "{dbg}");
}

#[test]
fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
    // RFC 4231 test case 2 shape, computed with the `hmac` crate directly here.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
    mac.update(b"1700000000.what do ya want for nothing?");
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        sentinel_audit::witness::signature(b"Jefe", 1_700_000_000, b"what do ya want for nothing?"),
        want
    );
}
