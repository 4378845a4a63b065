//! Verification speed: a 1,000,000-record log (written directly with the test-log builder, 64 Mi
//! segments' worth of records at a time), verified in full five times; prints the median and the
//! records per second. `cargo bench -p sentinel-audit --bench verify` (release).
//!
//! `SENTINEL_BENCH_RECORDS` changes the record count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_audit::testlog::TestLog;
use sentinel_audit::verify::{verify, VerifyOptions};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n: u64 = std::env::var("SENTINEL_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    // About 260 bytes a record: 250,000 records is a 64 MiB segment, as the daemon writes them.
    let built = TestLog::new()
        .segment_records(250_000)
        .checkpoint_every(1000)
        .write(tmp.path(), n)
        .unwrap();
    let bytes: u64 = std::fs::read_dir(built.dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "built {n} records ({:.1} MiB of segments, {} checkpoints) in {:.2} s",
        bytes as f64 / (1 << 20) as f64,
        built.checkpoints.len(),
        t.elapsed().as_secs_f64()
    );
    let v = built.verifier();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{cores} cores; load average before: {}", load());
    for (label, full_parse, threads) in [
        ("default (all cores, entry scan)", false, None),
        ("one thread", false, Some(1)),
        ("all cores, full LogEntry parse", true, None),
    ] {
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..5 {
            let (t, c) = (Instant::now(), cpu_seconds());
            let r = verify(
                &built.dir,
                &v,
                &VerifyOptions {
                    full_parse,
                    threads,
                    ..VerifyOptions::default()
                },
            )
            .unwrap();
            times.push(t.elapsed().as_secs_f64());
            cpu.push(cpu_seconds() - c);
            assert_eq!(r.records, n);
        }
        let m = median(times.clone());
        let mc = median(cpu);
        println!(
            "verify, {label}: median {:.3} s of 5 ({}) -> {:.0} records/s; {:.3} CPU s -> {:.0} records per CPU second",
            m,
            times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(" "),
            n as f64 / m,
            mc,
            n as f64 / mc
        );
    }
    println!("load average after: {}", load());
}

/// The process's user + system CPU time so far (all threads), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
