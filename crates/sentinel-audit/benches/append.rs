//! Durable appends per second with group commit (1, 16 and 256 concurrent appenders, each waiting for
//! its fsync), and proof and read latency in a log of 1,000,000 records. Real files on the data disk
//! (the system temporary directory), real fsync.
//!
//! `cargo bench -p sentinel-audit --bench append` (env `AUDIT_BENCH_RUNS`, default 5;
//! `AUDIT_BENCH_SECS`, default 2; `AUDIT_BENCH_RECORDS`, default 1000000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rand::Rng;
use sentinel_audit::{merkle, AuditSettings, Log};
use sentinel_core::{AuditKind, AuditRecord, Timestamp, TraceId};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        ts: Timestamp::now(),
        kind: AuditKind::AlertRaised,
        subject_id: format!("01JDQ00000000000000{i:07}"),
        trace_id: TraceId::new(),
        summary: format!("ssh brute force from 192.0.2.{} (score 87)", i % 250),
        content_hash: Some(format!("{i:064x}")),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn durable_appends(concurrency: u64, secs: u64) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let (log, task) = Log::open(AuditSettings::new(tmp.path(), "sentinel/bench"))
        .await
        .unwrap();
    let before = log.stats().snapshot();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut joins = Vec::new();
    for t in 0..concurrency {
        let log = log.clone();
        joins.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                log.append(record(t * 1_000_000 + n)).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for j in joins {
        total += j.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let st = log.stats().snapshot();
    task.finish().await.unwrap();
    let batches = (st.batches - before.batches).max(1);
    (total as f64 / secs, total as f64 / batches as f64)
}

/// The disk's own latency for what a batch does: append and `fdatasync`.
fn fsync_probe() -> Duration {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(tmp.path().join("probe")).unwrap();
    let block = vec![7u8; 40_000];
    let mut t: Vec<Duration> = (0..200)
        .map(|_| {
            f.write_all(&block).unwrap();
            let s = Instant::now();
            f.sync_data().unwrap();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[t.len() / 2]
}

fn main() {
    let runs = env("AUDIT_BENCH_RUNS", 5);
    let secs = env("AUDIT_BENCH_SECS", 2);
    let records = env("AUDIT_BENCH_RECORDS", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let probe = fsync_probe();
    println!(
        "disk: write 40 KB + fdatasync p50 {probe:?} (ceiling for 256 appenders each waiting for its fsync: {:.0}/s)",
        256.0 / probe.as_secs_f64()
    );
    rt.block_on(async move {
        for c in [1u64, 16, 256] {
            let mut rates = Vec::new();
            let mut per_batch = Vec::new();
            for _ in 0..runs {
                let (r, b) = durable_appends(c, secs).await;
                rates.push(r);
                per_batch.push(b);
            }
            println!(
                "durable appends, {c:>3} appenders: median {:>9.0}/s (runs: {}), {:.1} appends per fsync batch",
                median(rates.clone()),
                rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" "),
                median(per_batch)
            );
        }

        // A log of `records` records, filled through the queue, then proofs and reads at random.
        let tmp = tempfile::tempdir().unwrap();
        let (log, task) = Log::open(AuditSettings::new(tmp.path(), "sentinel/bench"))
            .await
            .unwrap();
        let start = Instant::now();
        let mut pending = std::collections::VecDeque::new();
        for i in 0..records {
            pending.push_back(log.submit(record(i)).await.unwrap());
            if pending.len() >= 16384 {
                pending.pop_front().unwrap().await.unwrap();
            }
        }
        for p in pending {
            p.await.unwrap();
        }
        let fill = start.elapsed();
        let cp = log.checkpoint_now().await.unwrap();
        let size = cp.checkpoint.size;
        println!(
            "filled {size} records through submit() in {:.2} s ({:.0}/s)",
            fill.as_secs_f64(),
            size as f64 / fill.as_secs_f64()
        );
        let mut rng = rand::thread_rng();
        let samples = 20_000;
        let mut proof_t = Vec::with_capacity(samples);
        let mut read_t = Vec::with_capacity(samples);
        let mut cons_t = Vec::with_capacity(samples);
        for _ in 0..samples {
            let seq = rng.gen_range(0..size);
            let t = Instant::now();
            let proof = log.inclusion_proof(seq, size).unwrap();
            proof_t.push(t.elapsed());
            let t = Instant::now();
            let e = log.read(seq, 1).unwrap();
            read_t.push(t.elapsed());
            merkle::verify_inclusion(seq, size, &e[0].leaf, &proof, &cp.checkpoint.root).unwrap();
            let old = rng.gen_range(1..size);
            let t = Instant::now();
            let _ = log.consistency_proof(old, size).unwrap();
            cons_t.push(t.elapsed());
        }
        for (name, mut v) in [
            ("inclusion proof", proof_t),
            ("consistency proof", cons_t),
            ("read one record", read_t),
        ] {
            v.sort();
            println!(
                "{name} at {size} records: p50 {:?} p99 {:?}",
                pct(&v, 0.5),
                pct(&v, 0.99)
            );
        }
        task.finish().await.unwrap();
    });
}
