//! The notification outbox under an attack wave, on a real SQLite store in a temporary directory:
//!
//! - `accept`: notices/s through `Notifications::notify` (each committed to the outbox before it
//!   returns), one caller, as the pipeline's notify stage calls it;
//! - `accept_burst`: the same in bursts of 256 (`notify_many`, one commit each), as the notify stage
//!   hands over what queued up behind the first notice;
//! - `deliver`: messages/s from outbox to a channel that accepts at once (the `log` channel, with no
//!   log subscriber installed), every notice with its own key so nothing folds;
//! - `fold`: a wave of notices with one key (group_wait 2 s): how many messages carry them, and the
//!   time from the first notice to the last of its messages.
//!
//! Prints the median of 5 runs of each. `cargo bench -p sentinel-notify --bench outbox`

use sentinel_core::{Notice, NoticeKind, Notifier, Severity, TraceId};
use sentinel_notify::config::{ChannelConfig, Route};
use sentinel_notify::NotifyConfig;
use std::time::{Duration, Instant};

const NOTICES: usize = 5_000;
const RUNS: usize = 5;

fn config(group_wait: Duration) -> NotifyConfig {
    let mut cfg = NotifyConfig::default();
    cfg.channels.insert("log".into(), ChannelConfig::Log);
    cfg.routes.push(Route {
        kinds: Vec::new(),
        min_severity: Severity::Info,
        channels: vec!["log".into()],
        group_wait,
        dedup_window: Duration::ZERO,
        throttle_max: u32::MAX,
        throttle_per: Duration::from_secs(1),
    });
    cfg
}

fn notice(i: usize, key: Option<&str>) -> Notice {
    let n = Notice::new(
        NoticeKind::Alert,
        Severity::High,
        format!("high alert: ssh brute force from 203.0.113.{}", i % 250),
        "block_ip for 3600s: applied",
        TraceId::new(),
    );
    match key {
        Some(k) => n.with_key(k),
        None => n.with_key(format!("k{i}")),
    }
}

async fn wait_delivered(n: &sentinel_notify::Notifications, want: u64) {
    while n.stats().delivered < want {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut accept = Vec::new();
    let mut deliver = Vec::new();
    let mut fold = Vec::new();
    let mut burst = Vec::new();
    let mut messages = Vec::new();
    for _ in 0..RUNS {
        // accept + deliver: distinct keys, due at once.
        let dir = tempfile::tempdir()?;
        let store = sentinel_store::Store::open(&dir.path().join("sentinel.db")).await?;
        let (n, task) = sentinel_notify::build(&config(Duration::ZERO), store.clone(), None)?;
        let started = Instant::now();
        for i in 0..NOTICES {
            n.notify(&notice(i, None)).await?;
        }
        accept.push(NOTICES as f64 / started.elapsed().as_secs_f64());
        wait_delivered(&n, NOTICES as u64).await;
        deliver.push(NOTICES as f64 / started.elapsed().as_secs_f64());
        task.stop().await;
        store.close().await;

        let dir = tempfile::tempdir()?;
        let store = sentinel_store::Store::open(&dir.path().join("sentinel.db")).await?;
        let (n, task) = sentinel_notify::build(&config(Duration::ZERO), store.clone(), None)?;
        let all: Vec<Notice> = (0..NOTICES).map(|i| notice(i, None)).collect();
        let started = Instant::now();
        for chunk in all.chunks(256) {
            n.notify_many(chunk).await?;
        }
        burst.push(NOTICES as f64 / started.elapsed().as_secs_f64());
        task.stop().await;
        store.close().await;

        // fold: one key, held 2 s, then as few messages as the wave's length allows.
        let dir = tempfile::tempdir()?;
        let store = sentinel_store::Store::open(&dir.path().join("sentinel.db")).await?;
        let (n, task) =
            sentinel_notify::build(&config(Duration::from_secs(2)), store.clone(), None)?;
        let started = Instant::now();
        for i in 0..NOTICES {
            n.notify(&notice(i, Some("ssh-bruteforce"))).await?;
        }
        while {
            let s = n.stats();
            s.delivered + s.folded < NOTICES as u64
        } {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        fold.push(started.elapsed().as_secs_f64() * 1000.0);
        messages.push(n.stats().delivered as f64);
        task.stop().await;
        store.close().await;
    }
    println!(
        "accept: {:.0} notices/s median of {RUNS} ({NOTICES} notices, each committed before notify returns)",
        median(accept)
    );
    println!(
        "accept_burst: {:.0} notices/s median of {RUNS} (bursts of 256, one commit each)",
        median(burst)
    );
    println!(
        "deliver: {:.0} messages/s median of {RUNS} (accept to last delivered, distinct keys)",
        median(deliver)
    );
    println!(
        "fold: {NOTICES} one-key notices in {:.0} message(s) median, the last {:.0} ms median after the first notice (group_wait 2 s)",
        median(messages),
        median(fold)
    );
    Ok(())
}
