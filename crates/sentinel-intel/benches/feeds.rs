//! Local-feed lookups: 500,000 random CIDRs (/8 to /32, a few IPv6) in eight feeds, then random
//! addresses looked up on one thread. Prints the build time and the median of 5 runs of lookups/s.
//!
//! `cargo bench -p sentinel-intel --bench feeds`

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use sentinel_intel::feeds::PrefixTable;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

const CIDRS: usize = 500_000;
const LOOKUPS: usize = 5_000_000;
const RUNS: usize = 5;

/// SplitMix64: a seeded generator, so every run measures the same table.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn main() {
    let mut rng = Rng(0x5e47_1e11);
    let mut nets = Vec::with_capacity(CIDRS);
    for _ in 0..CIDRS {
        let r = rng.next();
        let feed = (r % 8) as u8;
        if r.is_multiple_of(50) {
            // 2% IPv6: /32 to /128 under 2000::/3.
            let hi = (u128::from(rng.next()) << 64) | u128::from(rng.next());
            let addr = (hi >> 3) | (1u128 << 125);
            let len = 32 + (rng.next() % 97) as u8;
            if let Ok(n) = Ipv6Net::new(Ipv6Addr::from(addr), len) {
                nets.push((IpNet::V6(n.trunc()), feed));
            }
        } else {
            // Real blocklists are mostly long prefixes: /24–/32, 10% /16–/23 and about a hundred
            // /8–/15 (short ones are rare, else everything would be a hit).
            let len = match rng.next() % 10_000 {
                0..=1 => 8 + (rng.next() % 8) as u8,
                2..=1_001 => 16 + (rng.next() % 8) as u8,
                _ => 24 + (rng.next() % 9) as u8,
            };
            let addr = rng.next() as u32;
            if let Ok(n) = Ipv4Net::new(Ipv4Addr::from(addr), len) {
                nets.push((IpNet::V4(n.trunc()), feed));
            }
        }
    }

    let started = Instant::now();
    let table = PrefixTable::build(nets.iter().copied());
    let build = started.elapsed();
    let (i4, i6) = table.intervals();
    println!(
        "feeds: {} CIDRs built in {:.1} ms ({i4} IPv4 + {i6} IPv6 intervals)",
        nets.len(),
        build.as_secs_f64() * 1e3
    );

    // Random addresses, plus every eighth one taken inside a listed net so hits and misses mix.
    let probes: Vec<IpAddr> = (0..1usize << 20)
        .map(|i| {
            if i.is_multiple_of(8) {
                let (n, _) = nets[(rng.next() % nets.len() as u64) as usize];
                n.network()
            } else if i % 50 == 1 {
                IpAddr::V6(Ipv6Addr::from(
                    (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3 | 1u128 << 125,
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.next() as u32))
            }
        })
        .collect();

    let mut rates = Vec::with_capacity(RUNS);
    let mut cpu_rates = Vec::with_capacity(RUNS);
    let mut hits = 0usize;
    for _ in 0..RUNS {
        hits = 0;
        let cpu = thread_cpu_ns();
        let started = Instant::now();
        for i in 0..LOOKUPS {
            let mask = table.lookup(black_box(probes[i & (probes.len() - 1)]));
            hits += usize::from(mask != 0);
        }
        let secs = started.elapsed().as_secs_f64();
        rates.push(LOOKUPS as f64 / secs);
        if let (Some(a), Some(b)) = (cpu, thread_cpu_ns()) {
            cpu_rates.push(LOOKUPS as f64 / ((b - a) as f64 / 1e9));
        }
    }
    println!(
        "feeds: lookups/s on one thread (wall clock), median of {RUNS}: {} ({:.0}% hits)",
        summary(&mut rates),
        100.0 * hits as f64 / LOOKUPS as f64,
    );
    if cpu_rates.len() == RUNS {
        // On a shared machine the thread is not on the CPU all the time; this counts only the time it
        // was (from the kernel's scheduler statistics).
        println!(
            "feeds: lookups per CPU-second of that thread, median of {RUNS}: {}",
            summary(&mut cpu_rates)
        );
    }
}

fn summary(rates: &mut [f64]) -> String {
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    format!(
        "{:.2} M ({:.1} ns each; runs {:?} M)",
        median / 1e6,
        1e9 / median,
        rates
            .iter()
            .map(|r| (r / 1e5).round() / 10.0)
            .collect::<Vec<_>>()
    )
}

/// Nanoseconds this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
