//! Attacks on the connection server (`sentinel_api::serve`) over real sockets that the first round of
//! tests did not try: a churn of connections that each send a request at once and never read the
//! answer. The cap on open connections is a bound on file descriptors (it sits below
//! `RLIMIT_NOFILE` minus a reserve for the store and logs): connections the server has asked to close
//! but that still linger (a request raced in after the eviction was decided) hold descriptors too,
//! and must never push the open sockets past the cap and a bounded slack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::routing::get;
use axum::Router;
use common::*;
use sentinel_api::serve::{serve, Edge, EdgeSettings};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The sum of every sample of `name` (any labels) in the metrics.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churn_of_never_reading_clients_never_holds_more_than_the_cap() {
    let cap = 8;
    let h = harness().await;
    let settings = EdgeSettings {
        max_connections: cap,
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        fd_reserve: 16,
        ..EdgeSettings::default()
    };
    let edge = Edge::new(settings, &h.state.metrics);
    assert_eq!(edge.cap(), cap);
    // The cap, plus a slack of a quarter of the reserve for sockets asked to close and not gone yet.
    let bound = edge.max_sockets();
    assert!(bound < cap + 16, "{bound}");
    // A route that takes a moment, as a store query under load does.
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let e = edge.clone();
    tokio::spawn(async move {
        serve(listener, app, e, async {
            let _ = stop_rx.await;
        })
        .await
    });

    // Watch the server's table of open connections (every entry holds a socket) while the churn runs.
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (most, done, edge) = (most.clone(), done.clone(), edge.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(edge.open(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        })
    };
    // Four attackers, each opening connections as fast as it can, sending a request on each at once
    // and never reading the answer (the client keeps every socket open).
    let mut attackers = Vec::new();
    for _ in 0..4 {
        attackers.push(tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..100 {
                let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
                else {
                    continue;
                };
                let _ = s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n").await;
                held.push(s);
            }
            held
        }));
    }
    let mut held = Vec::new();
    for a in attackers {
        held.extend(a.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let most = most.load(Ordering::Relaxed);
    println!(
        "churn of {} never-reading connections (cap {cap}, bound {bound}): at most {most} open; evicted {}, paused {}",
        held.len(),
        metric(&h, "sentinel_api_connections_evicted_total"),
        metric(&h, "sentinel_api_accept_paused_total"),
    );
    assert!(
        metric(&h, "sentinel_api_connections_evicted_total") > 0.0,
        "the churn went above the cap"
    );
    assert!(
        most <= bound,
        "{most} connections open at once, above the cap of {cap} and its slack ({bound}): \
         descriptors past it eat the reserve kept for the store and logs"
    );
    drop(held);
    let _ = stop_tx.send(());
}

/// One HTTP/1.1 request on a kept-alive connection; the status line of the answer.
async fn ask(s: &mut TcpStream, path: &str) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no answer"))??;
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// A flood of connections from one address at the cap churns that address's own connections: a
/// neighbour's kept-alive connection (another address, idle between its requests and older than
/// every flooder) is never the one closed, and the flood's newcomers beyond its share are refused
/// and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_never_evicts_a_neighbours_connection() {
    let cap = 8;
    let h = harness().await;
    let settings = EdgeSettings {
        max_connections: cap,
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        fd_reserve: 16,
        ..EdgeSettings::default()
    };
    let edge = Edge::new(settings, &h.state.metrics);
    let app = Router::new().route("/ok", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, edge.clone(), async {
        let _ = stop_rx.await;
    }));
    // The neighbour: from 127.0.0.2, one request, then idle and kept alive.
    let neighbour_sock = tokio::net::TcpSocket::new_v4().unwrap();
    neighbour_sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut neighbour = neighbour_sock.connect(addr).await.unwrap();
    assert!(ask(&mut neighbour, "/ok").await.unwrap().contains("200"));
    // The flood: from 127.0.0.1, five times the cap, each connection asks once and stays open.
    let mut flood = Vec::new();
    for _ in 0..cap * 5 {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            continue;
        };
        let _ = ask(&mut s, "/ok").await;
        flood.push(s);
    }
    // The neighbour's connection is still open and served.
    let status = ask(&mut neighbour, "/ok").await;
    assert!(
        status.as_ref().is_ok_and(|s| s.contains("200")),
        "the neighbour's kept-alive connection was closed by a flood from another address: {status:?}"
    );
    assert!(edge.open() <= edge.max_sockets(), "{}", edge.open());
    let evicted = metric(&h, "sentinel_api_connections_evicted_total");
    assert!(
        evicted >= 1.0,
        "the flood churns its own connections (evictions counted): {evicted}"
    );
    drop(flood);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
