//! Server time of the dashboard's pages over a store holding 1,000,000 events and 10,000 alerts (with
//! their investigations, plans and actions): each page requested through the router
//! (`tower::ServiceExt::oneshot`, with a session cookie), body read whole. Run:
//! `cargo bench -p sentinel-api --bench ui_pages` (`SENTINEL_BENCH_EVENTS=…` for another size).
//!
//! A plain timing harness (the workspace uses no statistics framework): each page `ROUNDS` times after
//! a warm-up; the median and the 95th percentile are printed. The store lives in a tempdir removed at
//! the end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sentinel_store::Store;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const ROUNDS: usize = 200;
const WARM_UP: usize = 10;

async fn time_page(app: &axum::Router, cookie: &str, path: &str) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut size = 0;
    for i in 0..WARM_UP + ROUNDS {
        let req = Request::get(path)
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        let t = Instant::now();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let took = t.elapsed();
        size = body.len();
        if i >= WARM_UP {
            times.push(took);
        }
    }
    times.sort();
    (times[ROUNDS / 2], times[ROUNDS * 95 / 100], size)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut seed = common::Seed::default();
        if let Some(n) = std::env::var("SENTINEL_BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            seed.events = n;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bench.db")).await.unwrap();
        let took = common::seed(&store, seed).await;
        println!(
            "seeded {} events and {} alerts (+ investigations, plans, actions) in {:.1} s",
            seed.events,
            seed.alerts,
            took.as_secs_f64()
        );
        let (app, cookie) = common::app(&store);
        for path in ["/ui/", "/ui/?window=1h", "/ui/?window=7d"] {
            let (median, p95, size) = time_page(&app, &cookie, path).await;
            println!(
                "{path:<18} median {:>7.2} ms   p95 {:>7.2} ms   ({size} bytes, {ROUNDS} rounds)",
                median.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3
            );
        }
        store.close().await;
        drop(dir);
    });
}
