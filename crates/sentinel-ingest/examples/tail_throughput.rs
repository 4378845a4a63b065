//! Tail throughput: how fast [`FileTail`] delivers a large file read from the beginning.
//!
//! `cargo run --release -p sentinel-ingest --example tail_throughput -- [LINES]` writes LINES (default
//! 1,000,000) sshd-like lines to a temporary file, tails it from the beginning on a current-thread runtime and
//! prints lines per second once every line has arrived. A measurement tool, not a test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A measurement tool: failing loudly is the point.

use sentinel_ingest::source::file::{FileTail, FileTailConfig};
use sentinel_ingest::source::SourceMetrics;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("LINES must be a number"))
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..n {
        writeln!(
            w,
            "Jan  1 00:00:00 host sshd[{}]: Failed password for root from 203.0.113.{} port {} ssh2",
            1000 + i % 5000,
            i % 250,
            1024 + i % 60000
        )
        .unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let elapsed = rt.block_on(async move {
        let cfg = FileTailConfig {
            patterns: vec![path.to_string_lossy().into_owned()],
            from_beginning: true,
            poll_interval: Duration::from_millis(10),
            ..FileTailConfig::default()
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let t0 = Instant::now();
        let task = tokio::spawn(FileTail::new(cfg, Arc::new(SourceMetrics::default())).run(
            tx,
            async move {
                let _ = stopped.await;
            },
        ));
        let mut got = 0u64;
        while got < n {
            if rx.recv().await.is_none() {
                break;
            }
            got += 1;
        }
        let elapsed = t0.elapsed();
        let _ = stop.send(());
        task.await.unwrap().unwrap();
        assert_eq!(got, n, "lines lost");
        elapsed
    });
    println!(
        "tail: {n} lines in {:.3} s = {:.0} lines/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
