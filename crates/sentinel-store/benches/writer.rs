//! The store writer's throughput: events queued through [`StoreWriter`] and committed in batches (the
//! default [`WriterOptions`]), into a fresh database: an SQLite file in a tempdir, then a PostgreSQL
//! cluster of its own on loopback (`sentinel_testkit::postgres`, started outside the timing). Run:
//! `cargo bench -p sentinel-store --bench writer`.
//!
//! A plain timing harness: `ROUNDS` rounds of `EVENTS` events each (a few kinds, many addresses, spread
//! over an hour), each into its own new database; the median round of each engine is printed as
//! events per second. Each engine with its default durability: SQLite `sync: normal` (WAL, synced at
//! checkpoints), PostgreSQL `fsync` on with `synchronous_commit` on (its WAL flushed at every commit,
//! as SQLite's `sync: full` would be).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use sentinel_store::{Record, Store, WriterOptions};
use sentinel_testkit::postgres::PostgresServer;
use std::time::Instant;

const ROUNDS: usize = 5;
const EVENTS: usize = 100_000;
const KINDS: [&str; 4] = [
    "ssh_auth_failed",
    "http_request",
    "ssh_auth_ok",
    "port_scan",
];

async fn round(postgres: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let server = postgres.then(PostgresServer::start_synced);
    let url = match &server {
        Some(s) => s.url(),
        None => dir.path().join("bench.db").display().to_string(),
    };
    let store = Store::open_url(&url).await.unwrap();
    let base = 1_780_000_000_000_i64;
    let events: Vec<Record> = (0..EVENTS)
        .map(|i| {
            let ts = base + (i as i64) * 36; // one hour in all
            let ip = format!("198.51.100.{}", i % 250 + 1);
            Record::Event(event(ts, &ip, KINDS[i % KINDS.len()], "t-bench"))
        })
        .collect();
    let (writer, task) = store.writer(WriterOptions::default());
    let t = Instant::now();
    for r in events {
        writer.write(r).await.unwrap();
    }
    drop(writer);
    let stats = task.finish().await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(stats.records, EVENTS as u64);
    store.close().await;
    EVENTS as f64 / secs
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, postgres) in [("sqlite", false), ("postgres", true)] {
        let mut rates: Vec<f64> = (0..ROUNDS).map(|_| rt.block_on(round(postgres))).collect();
        rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "store writer ({name}): {EVENTS} events per round, {ROUNDS} rounds: median {:.0} events/s (min {:.0}, max {:.0})",
            rates[ROUNDS / 2],
            rates[0],
            rates[ROUNDS - 1]
        );
    }
}
