//! The log hash chain's cost: appending (hash + format, what every log line pays under the output
//! lock) and verifying a file, in lines per second, for typical ~250-byte JSON lines in blocks of
//! 1000. Run: `cargo bench -p sentinel-audit --bench chain`.
//!
//! A plain timing harness: each set runs `ROUNDS` times and the best round is printed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sentinel_audit::chain::{verify_log, ChainWriter};
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 5;
const LINES: usize = 500_000;

fn main() {
    let bodies: Vec<String> = (0..LINES)
        .map(|i| {
            format!(
                "{{\"evt\":\"event_accepted\",\"lvl\":\"info\",\"source\":\"auth\",\"ip\":\"203.0.113.{}\",\
                 \"svc\":\"sentinel\",\"trace\":\"01JD3Q8Y6W5Z2X4C7V9B0N1M{i:08}\",\"ts\":\"2026-11-30T04:43:30.318Z\",\
                 \"user\":\"root\",\"msg\":\"Failed password for root from 203.0.113.7 port 22\"}}",
                i % 250
            )
        })
        .collect();
    let mut best_append = f64::MAX;
    let mut file = String::new();
    for _ in 0..ROUNDS {
        let mut w = ChainWriter::new(1000);
        let mut out = String::with_capacity(LINES * 340);
        let t = Instant::now();
        for b in &bodies {
            w.append(b, "2026-11-30T04:43:30.318Z", &mut out).unwrap();
        }
        best_append = best_append.min(t.elapsed().as_secs_f64());
        file = black_box(out);
    }
    let mut best_verify = f64::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let r = verify_log(file.as_bytes()).unwrap();
        best_verify = best_verify.min(t.elapsed().as_secs_f64());
        assert_eq!(r.runs[0].sealed_blocks, (LINES / 1000) as u64);
    }
    let mb = file.len() as f64 / 1e6;
    println!(
        "chain append: {:.0} lines/s ({:.0} ns/line), {:.0} MB/s",
        LINES as f64 / best_append,
        best_append * 1e9 / LINES as f64,
        mb / best_append
    );
    println!(
        "chain verify: {:.0} lines/s, {:.0} MB/s ({} lines, {:.0} MB)",
        LINES as f64 / best_verify,
        mb / best_verify,
        LINES,
        mb
    );
}
