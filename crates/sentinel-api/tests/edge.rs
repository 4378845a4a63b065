//! The connection server (`sentinel_api::serve`) over real sockets, with the real router: a flood of
//! idle connections above the cap while `/health` answers; a cap where every connection is busy (accept
//! pauses); a slowloris head closed after the header timeout; a stalled NDJSON stream closed with its
//! earlier lines kept. Every refusal is shown moving its counter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sentinel_api::serve::{serve, Edge, EdgeSettings};
use sentinel_api::ApiSettings;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(20);

fn settings(edge: EdgeSettings) -> Setup {
    let mut s = Setup::default();
    s.settings = ApiSettings { edge, ..s.settings };
    s
}

/// The router of `h` served over a real TCP socket on 127.0.0.1 with its own [`Edge`].
async fn start(h: &Harness) -> (SocketAddr, Edge, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let edge = Edge::new(h.state.settings.edge.clone(), &h.state.metrics);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = h.app.clone();
    let e = edge.clone();
    tokio::spawn(async move {
        serve(listener, app, e, async {
            let _ = rx.await;
        })
        .await
    });
    (addr, edge, tx)
}

/// The sum of every sample of `name` (any labels) in the metrics the router renders.
fn metric(h: &Harness, name: &str) -> f64 {
    h.state
        .metrics
        .render()
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (up to [`SOON`]) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < SOON, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `req` on a new connection and reads the whole answer (the request says `Connection: close`).
async fn exchange(addr: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(SOON, s.read_to_end(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/// Reads from `s` until the peer closes it (EOF or reset), within `within`; `true` if it did.
async fn closed_by_peer(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// 5× the cap of idle connections (never a byte sent): the oldest idle ones are evicted to make room,
/// open connections never pass the cap, and `/health` on a new connection still answers in under
/// 100 ms (median; every probe is printed, the worst bounded loosely for a loaded machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_above_the_cap_leaves_health_answering() {
    let cap = 50;
    let h = harness_with(settings(EdgeSettings {
        max_connections: cap,
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..EdgeSettings::default()
    }))
    .await;
    let (addr, edge, _stop) = start(&h).await;
    assert_eq!(edge.cap(), cap);
    let flood = cap * 5;
    let mut idle = Vec::new();
    for _ in 0..flood {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    until("every flood connection accepted", || {
        metric(&h, "sentinel_api_connections_accepted_total") >= flood as f64
    })
    .await;
    // An evicted connection closes a moment after its successor is accepted: wait for it.
    until("open connections back within the cap", || {
        edge.open() <= cap && metric(&h, "sentinel_api_connections_open") <= cap as f64
    })
    .await;
    let evicted = metric(&h, "sentinel_api_connections_evicted_total");
    assert!(
        evicted >= (flood - cap) as f64,
        "evicted {evicted}, want at least {}",
        flood - cap
    );
    assert!(metric(&h, "sentinel_api_connections_closed_total") >= (flood - cap) as f64);

    // The flood is still there (the newest `cap` connections are open and idle) while we probe.
    let mut took = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let answer = exchange(addr, HEALTH).await;
        took.push(t.elapsed());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(edge.open() <= cap + 1, "open {}", edge.open());
    }
    took.sort();
    let median = took[took.len() / 2];
    let worst = took[took.len() - 1];
    println!(
        "/health under an idle flood of {flood} (cap {cap}): median {median:?}, worst {worst:?}"
    );
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(worst < Duration::from_secs(2), "worst {worst:?}");
    drop(idle);
}

/// At the cap with every connection busy (a request in flight on each), accepting pauses (counted)
/// rather than evicting a busy connection; when one ends, the waiting connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_with_no_idle_connection_accept_pauses() {
    let cap = 4;
    let h = harness_with(settings(EdgeSettings {
        max_connections: cap,
        ..EdgeSettings::default()
    }))
    .await;
    let (addr, edge, _stop) = start(&h).await;
    // Each sends its head and part of a body: the handler is reading it, so the request is in flight.
    let mut busy = Vec::new();
    for _ in 0..cap {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: t\r\nX-API-Key: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n[",
            h.admin_key
        );
        s.write_all(head.as_bytes()).await.unwrap();
        busy.push(s);
    }
    // In flight, not only accepted: a connection whose head is still being read is idle, and the
    // late one would take its place instead of waiting.
    until("every busy connection's request in flight", || {
        edge.busy() >= cap
    })
    .await;
    let mut late = TcpStream::connect(addr).await.unwrap();
    late.write_all(HEALTH.as_bytes()).await.unwrap();
    until("accept paused", || {
        metric(&h, "sentinel_api_accept_paused_total") >= 1.0
    })
    .await;
    assert_eq!(edge.open(), cap);
    assert_eq!(metric(&h, "sentinel_api_connections_evicted_total"), 0.0);
    // One busy client goes away: its request ends, its slot frees, the late one is served.
    drop(busy.remove(0));
    let mut out = Vec::new();
    tokio::time::timeout(SOON, late.read_to_end(&mut out))
        .await
        .expect("the late connection is served")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// A request head that never completes (a header line every 100 ms, slowloris) is closed after the
/// header-read timeout, counted as `reason="header_timeout"`; a new client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_closed_after_the_header_timeout() {
    let h = harness_with(settings(EdgeSettings {
        header_read_timeout: Duration::from_millis(500),
        ..EdgeSettings::default()
    }))
    .await;
    let (addr, _edge, _stop) = start(&h).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < SOON {
        // Keep trickling: a write to a closed connection fails (or the read below sees the end).
        if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        if closed_by_peer(&mut s, Duration::from_millis(100)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow head was never closed");
    println!("slowloris head closed after {:?}", started.elapsed());
    until("the header timeout counted", || {
        metric(
            &h,
            "sentinel_api_connections_closed_total{reason=\"header_timeout\"}",
        ) >= 1.0
    })
    .await;
    let answer = exchange(addr, HEALTH).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// An NDJSON stream that sends two good lines, then trickles a byte every 200 ms (below the minimum
/// body rate, though never silent), is closed: the answer keeps and reports the two lines (stored),
/// says why it was closed, and `sentinel_api_streams_stalled_total` moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_closed_and_its_lines_kept() {
    let mut h = harness_with(settings(EdgeSettings {
        stream_min_bytes: 1024,
        stream_window: Duration::from_secs(1),
        ..EdgeSettings::default()
    }))
    .await;
    let rx = std::mem::replace(&mut h.rx, tokio::sync::mpsc::channel(1).1);
    let _seen = spawn_pipeline(rx, &h.store);
    let (addr, _edge, _stop) = start(&h).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/events/stream HTTP/1.1\r\nHost: t\r\nX-API-Key: {}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
        h.admin_key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Two good lines, padded past the minimum for the first window.
    let pad = "x".repeat(600);
    let lines = format!(
        "{{\"src_ip\":\"203.0.113.7\",\"failed_logins\":3,\"note\":\"{pad}\"}}\n\
         {{\"src_ip\":\"203.0.113.8\",\"failed_logins\":4,\"note\":\"{pad}\"}}\n"
    );
    s.write_all(format!("{:x}\r\n{lines}\r\n", lines.len()).as_bytes())
        .await
        .unwrap();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        // One blank line (a byte) at a time: alive, but far below 1 KiB per second.
        while wr.write_all(b"1\r\n\n\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    // The answer comes while the client is still "sending"; read until its JSON body is complete.
    loop {
        assert!(
            started.elapsed() < SOON,
            "no answer: {}",
            String::from_utf8_lossy(&out)
        );
        match tokio::time::timeout(SOON, rd.read(&mut buf)).await.unwrap() {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&out);
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if serde_json::from_str::<serde_json::Value>(body).is_ok() {
                break;
            }
        }
    }
    trickle.abort();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["accepted"], 2, "{body}");
    let closed = body["closed"].as_str().unwrap();
    assert!(closed.starts_with("stalled"), "{closed}");
    assert!(closed.contains("the lines before were kept"), "{closed}");
    let trace = body["trace_id"].as_str().unwrap();
    let kept = stored(&h.store, trace).await;
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(metric(&h, "sentinel_api_streams_stalled_total"), 1.0);
}
