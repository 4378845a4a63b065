//! Investigation overhead per alert with a warm cache (goal: under 50 µs).
//!
//! `build()` an [`sentinel_intel::Intel`] with AbuseIPDB, VirusTotal and OTX pointed at fake servers
//! on loopback (every answer "listed"), a local feed of 100,000 CIDRs, no store history; warm the
//! cache with one investigation of each of 1,000 addresses (documentation ranges: 768 IPv4 plus 232
//! IPv6); then investigate prebuilt alerts from those addresses one after another on a
//! current-thread tokio runtime. Prints the median per-alert time over 5 runs, and the same for an
//! offline build (feeds and local context only) as the baseline. Checks that the measured runs sent
//! no request (the cache was warm).
//!
//! Run: `cargo bench -p sentinel-intel --bench investigate`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{Alert, AlertId, Severity, Subject, Timestamp, TraceId, Verdict};
use sentinel_intel::config::{FeedConfig, FeedFormat};
use sentinel_intel::provider::Quota;
use sentinel_intel::{ApiKey, Intel, IntelConfig};
use sentinel_testkit::ti::{Behaviour, FakeProvider, TiKind};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const FEED_CIDRS: usize = 100_000;
const IPS: usize = 1_000;
const ALERTS_PER_RUN: usize = 20_000;
const RUNS: usize = 5;

fn ips() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = Vec::with_capacity(IPS);
    for net in ["192.0.2", "198.51.100", "203.0.113"] {
        for host in 0..=255u32 {
            v.push(format!("{net}.{host}").parse().unwrap());
        }
    }
    let mut n = 1u32;
    while v.len() < IPS {
        v.push(format!("2001:db8::{n:x}").parse().unwrap());
        n += 1;
    }
    v
}

/// 100,000 CIDRs (file content only; nothing is contacted): /24s and /32s spread over the IPv4
/// space, plus the three documentation /24s so that a third of the looked-up addresses are listed.
fn feed_text() -> String {
    let mut s = String::from("# bench feed\n192.0.2.0/24\n198.51.100.0/24\n203.0.113.0/24\n");
    for i in 0..(FEED_CIDRS - 3) as u32 {
        let x = i.wrapping_mul(2_654_435_761);
        let (a, b, c, d) = (
            11 + (x >> 24) % 180,
            (x >> 16) & 0xff,
            (x >> 8) & 0xff,
            x & 0xff,
        );
        if i % 2 == 0 {
            let _ = writeln!(s, "{a}.{b}.{c}.0/24");
        } else {
            let _ = writeln!(s, "{a}.{b}.{c}.{d}");
        }
    }
    s
}

fn alert(ip: IpAddr) -> Alert {
    Alert {
        id: AlertId::new(),
        ts: Timestamp::now(),
        detector: "scenario".into(),
        scenario: "ssh_bruteforce".into(),
        severity: Severity::High,
        score: 75,
        confidence: 0.9,
        subject: Subject::Ip(ip),
        reasons: vec![],
        evidence: vec![],
        trace_id: TraceId::new(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per-alert µs of each run.
async fn measure(intel: &Intel, ips: &[IpAddr]) -> Vec<f64> {
    let inv = intel.investigator();
    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let alerts: Vec<Alert> = (0..ALERTS_PER_RUN)
            .map(|i| alert(ips[i % ips.len()]))
            .collect();
        let start = Instant::now();
        let mut risk = 0u64;
        for a in alerts {
            risk += u64::from(inv.investigate(a).await.risk_score);
        }
        let el = start.elapsed();
        std::hint::black_box(risk);
        runs.push(el.as_secs_f64() * 1e6 / ALERTS_PER_RUN as f64);
    }
    runs
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let feed_path = dir.path().join("bench.netset");
        std::fs::write(&feed_path, feed_text()).unwrap();
        let feed = FeedConfig {
            name: "bench".into(),
            path: feed_path,
            format: FeedFormat::List,
            verdict: Verdict::Malicious,
            score: 90,
        };
        let ips = ips();

        let offline = IntelConfig {
            feeds: vec![feed],
            ..IntelConfig::default()
        };
        let (off, reports) = sentinel_intel::build(&offline, None).unwrap();
        assert!(off.is_offline());
        println!("feed: {reports:?}");

        let fakes = [
            FakeProvider::start(TiKind::AbuseIpDb).await,
            FakeProvider::start(TiKind::VirusTotal).await,
            FakeProvider::start(TiKind::Otx).await,
        ];
        for f in &fakes {
            f.set_default(Behaviour::listed(80, 5));
        }
        let mut cfg = offline.clone();
        cfg.deadline = Duration::from_secs(10);
        let quota = Quota {
            requests: 1_000_000,
            per: Duration::from_secs(1),
            burst: 100_000,
        };
        for (settings, fake) in [&mut cfg.abuseipdb, &mut cfg.virustotal, &mut cfg.otx]
            .into_iter()
            .zip(&fakes)
        {
            settings.key = Some(ApiKey::new(fake.key()));
            settings.base_url = fake.base_url();
            settings.quota = quota;
            settings.ttl = Duration::from_secs(3600);
            settings.negative_ttl = Duration::from_secs(3600);
        }
        let (on, _) = sentinel_intel::build(&cfg, None).unwrap();
        assert_eq!(on.provider_names().len(), 3);

        // Warm: every address once (fifty at a time), then check all three answered each.
        let warm = Instant::now();
        for chunk in ips.chunks(50) {
            let inv = on.investigator();
            futures::future::join_all(chunk.iter().map(|ip| inv.investigate(alert(*ip)))).await;
        }
        let sent: usize = fakes.iter().map(|f| f.requests().len()).sum();
        assert_eq!(sent, 3 * IPS, "warm-up requests");
        println!(
            "warmed {IPS} addresses x 3 providers in {:.2?}",
            warm.elapsed()
        );

        let online_runs = measure(&on, &ips).await;
        let after: usize = fakes.iter().map(|f| f.requests().len()).sum();
        assert_eq!(after, sent, "a measured investigation asked a provider");
        let offline_runs = measure(&off, &ips).await;

        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "investigate, warm cache, 3 remote providers + feed of {FEED_CIDRS} CIDRs (current-thread runtime, {ALERTS_PER_RUN} alerts/run): median {:.2} µs/alert over {RUNS} runs [{}] (goal < 50 µs)",
            median(online_runs.clone()),
            fmt(&online_runs)
        );
        println!(
            "investigate, offline (feed + local context only): median {:.2} µs/alert over {RUNS} runs [{}]",
            median(offline_runs.clone()),
            fmt(&offline_runs)
        );
        let s = on.stats();
        println!(
            "cache: {} memory hits, {} misses",
            s.cache.memory_hits, s.cache.misses
        );
    });
}
