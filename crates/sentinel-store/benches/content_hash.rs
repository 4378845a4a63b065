//! What a content hash costs the recorder per record: serialising the record as stored and hashing it
//! (SHA-256), for an alert with its evidence, an investigation, a plan and an action. Run:
//! `cargo bench -p sentinel-store --bench content_hash`.
//!
//! A plain timing harness (no statistics framework): each kind runs `ROUNDS` times and the best round
//! is printed, with the stored body's size.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use sentinel_core::{ActionKind, ActionState, Severity};
use sentinel_store::{content_hash, stored_body, Record};
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 7;
const RECORDS: usize = 100_000;

fn bench(name: &str, record: &Record) {
    let bytes = stored_body(record).unwrap().unwrap().len();
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..RECORDS {
            black_box(content_hash(black_box(record)).unwrap());
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{name:<14} {bytes:>5} B body  {:>7.0} ns/record  {:>9.0} records/s",
        best / RECORDS as f64 * 1e9,
        RECORDS as f64 / best
    );
}

fn main() {
    let t = "bench-trace";
    let mut al = alert(
        10_000,
        "ssh_bruteforce",
        Severity::High,
        ip("203.0.113.7"),
        t,
    );
    // A typical alert quotes a few events.
    al.evidence = (0..5)
        .map(|i| event(9_000 + i, "203.0.113.7", "auth_failure", t))
        .collect();
    let inv = investigation(&al);
    let pl = plan(&al, &inv);
    let act = action(&pl, ActionKind::BlockIp, ActionState::Applied, 11_000);
    bench("alert", &al.clone().into());
    bench("investigation", &inv.into());
    bench("plan", &pl.into());
    bench("action", &act.into());
}
