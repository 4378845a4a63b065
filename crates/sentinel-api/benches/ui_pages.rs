//! Server time of the dashboard's pages over a store holding 1,000,000 events and 10,000 alerts (with
//! their investigations, plans and actions), plus [`AUDITED`] alerts recorded with their audit entries
//! in a real log whose actions are live decisions in a real ledger: each page requested through the
//! router (`tower::ServiceExt::oneshot`, with a session cookie), body read whole. Pages: the overview
//! (three windows), the alerts list (first page, filtered pages, a deep page by cursor), one alert's
//! story (audit trail with inclusion proofs checked), the decisions, the sources and the live feed.
//! Issue 14 asks each under 50 ms. Run: `cargo bench -p sentinel-api --bench ui_pages`
//! (`SENTINEL_BENCH_EVENTS=…` for another size).
//!
//! A plain timing harness (the workspace uses no statistics framework): each page `ROUNDS` times after
//! a warm-up; the median and the 95th percentile of the wall time are printed, and the mean CPU time
//! the process spent per request (all threads), which shows a page's own cost on a shared machine
//! where other work inflates the wall time. The store lives in a tempdir removed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sentinel_core::Timestamp;
use sentinel_store::Store;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const ROUNDS: usize = 200;
const WARM_UP: usize = 10;
/// Alerts recorded with their audit trail and a live decision each.
const AUDITED: usize = 1_000;
/// Issue 14's budget for a page's server time.
const BUDGET_MS: f64 = 50.0;

/// A path as printed: ids and times shortened so the columns line up.
fn shown(path: &str) -> String {
    if path.len() <= 44 {
        return path.to_string();
    }
    format!("{}…", &path[..43])
}

/// CPU time this process has used (all threads, user and system), from `/proc/self/stat`: the work
/// a page costs, which other processes on a shared machine do not inflate the way they do wall time.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends at the last ')'): utime is the 12th, stime the 13th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// A page's figures: wall-time median and 95th percentile, mean CPU time per request, body size.
struct Figures {
    median: Duration,
    p95: Duration,
    cpu: Duration,
    size: usize,
}

async fn time_page(app: &axum::Router, cookie: &str, path: &str) -> Figures {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut size = 0;
    let mut cpu = Duration::ZERO;
    for i in 0..WARM_UP + ROUNDS {
        let req = Request::get(path)
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        let c = cpu_time();
        let t = Instant::now();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let took = t.elapsed();
        size = body.len();
        if i >= WARM_UP {
            times.push(took);
            cpu += cpu_time().saturating_sub(c);
        }
    }
    times.sort();
    Figures {
        median: times[ROUNDS / 2],
        p95: times[ROUNDS * 95 / 100],
        cpu: cpu / ROUNDS as u32,
        size,
    }
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
        let t = std::time::Instant::now();
        let audited = common::audited(&store, AUDITED, dir.path()).await;
        println!(
            "recorded {AUDITED} alerts with their audit trail and live decisions in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let (app, cookie) = common::app_with(&store, Some(&audited));
        // A deep page: the cursor of the newest alert more than 6 days old (~90% down the list).
        let deep = store
            .list_alerts(&sentinel_store::AlertFilter {
                until: Some(Timestamp::from_millis(
                    Timestamp::now().as_millis() - 6 * 86_400_000,
                )),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .items[0]
            .id;
        let story = audited.alerts[AUDITED / 2];
        let since =
            Timestamp::from_millis(Timestamp::now().as_millis() - 2 * 86_400_000).to_rfc3339();
        let pages = [
            "/ui/".to_string(),
            "/ui/?window=1h".into(),
            "/ui/?window=7d".into(),
            "/ui/alerts".into(),
            "/ui/alerts?scenario=scenario_03".into(),
            "/ui/alerts?subject=203.0.113.32".into(),
            format!("/ui/alerts?min_severity=high&since={since}"),
            format!("/ui/alerts?cursor={deep}"),
            format!("/ui/alerts?scenario=scenario_03&cursor={deep}"),
            format!("/ui/alerts/{story}"),
            "/ui/decisions".into(),
            "/ui/sources".into(),
            "/ui/live".into(),
        ];
        // The pages measured show what they are meant to: the story's proofs checked, the decisions'
        // reasons found in their audit trails.
        for (path, must) in [
            (format!("/ui/alerts/{story}"), "proof verified against checkpoint"),
            ("/ui/decisions".to_string(), "high risk, medium confidence"),
        ] {
            let req = Request::get(&path)
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap();
            let body = app.clone().oneshot(req).await.unwrap().into_body();
            let body = body.collect().await.unwrap().to_bytes();
            assert!(
                String::from_utf8_lossy(&body).contains(must),
                "{path} does not show {must:?}"
            );
        }
        let mut over = Vec::new();
        for path in &pages {
            let f = time_page(&app, &cookie, path).await;
            let ms = f.median.as_secs_f64() * 1e3;
            println!(
                "{:<44} median {ms:>7.2} ms   p95 {:>7.2} ms   cpu {:>6.2} ms   ({} bytes, {ROUNDS} rounds)",
                shown(path),
                f.p95.as_secs_f64() * 1e3,
                f.cpu.as_secs_f64() * 1e3,
                f.size
            );
            if ms > BUDGET_MS {
                over.push(path.clone());
            }
        }
        if over.is_empty() {
            println!("every page's median is under {BUDGET_MS} ms");
        } else {
            println!("over {BUDGET_MS} ms (median): {}", over.join(", "));
        }
        store.close().await;
        drop(dir);
    });
}
