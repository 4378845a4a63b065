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
