//! Redactor cost per line, in nanoseconds, for clean log lines (no trigger: the common case on the
//! replay and tailing paths), lines with a trigger but no secret, and dirty lines (a secret to mask),
//! plus a whole telemetry object. Run: `cargo bench -p sentinel-core --bench redact`.
//!
//! A plain timing harness (no statistics framework): each set runs `ROUNDS` times and the best round
//! is printed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sentinel_core::Redactor;
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 7;
const LINES: usize = 200_000;

fn lines(templates: &[&str]) -> Vec<String> {
    (0..LINES)
        .map(|i| {
            templates[i % templates.len()]
                .replace("{i}", &i.to_string())
                .replace("{ip}", &format!("203.0.113.{}", i % 250))
        })
        .collect()
}

fn bench(name: &str, r: &Redactor, set: &[String]) {
    let mut best = f64::MAX;
    let mut masked = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut n = 0;
        for l in set {
            n += black_box(r.redact_text_counted(black_box(l))).1;
        }
        best = best.min(t.elapsed().as_nanos() as f64 / set.len() as f64);
        masked = n;
    }
    let bytes = set.iter().map(String::len).sum::<usize>() / set.len();
    println!(
        "{name:<28} {best:>8.1} ns/line  {:>6.2} M lines/s  ({bytes} B/line, {masked} masked per round)",
        1e3 / best
    );
}

fn main() {
    let r = Redactor::default();
    let clean = lines(&[
        "Nov 29 10:00:0{i} srv sshd[{i}]: Connection closed by {ip} port 22 [preauth]",
        "{ip} - - [29/Nov/2026:10:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 5120 \"-\" \"Mozilla/5.0\"",
        "Nov 29 10:00:00 srv sshd[{i}]: Invalid user admin from {ip} port 4{i}",
        "Nov 29 10:00:00 srv postfix/smtpd[{i}]: connect from unknown[{ip}]",
    ]);
    let trigger_only = lines(&[
        "Nov 29 10:00:00 srv sshd[{i}]: Failed password for root from {ip} port 22 ssh2",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}",
        "pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
    ]);
    let dirty = lines(&[
        "{ip} - - [29/Nov/2026] \"GET /login?user=bob&password=hunter{i} HTTP/1.1\" 401 12",
        "request from {ip} Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ7aX0ifQ.c2lnbmF0dXJl{i}",
        "deploy with AKIAIOSFODNN7EXAMPLE key for {ip} id {i}",
        "db url postgres://app:s3cret{i}@db.internal:5432/app",
    ]);
    bench("clean (no trigger)", &r, &clean);
    bench("trigger, nothing secret", &r, &trigger_only);
    bench("dirty (one secret)", &r, &dirty);

    let obj = serde_json::json!({
        "src_ip": "203.0.113.7", "kind": "http", "path": "/api/v1/items", "user_agent": "curl/8.5",
        "payload": "{\"item\":42,\"qty\":3}", "headers": {"Accept": "*/*", "Host": "app"}, "status": 200
    });
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..50_000 {
            let mut v = obj.clone();
            black_box(r.redact(&mut v));
        }
        best = best.min(t.elapsed().as_nanos() as f64 / 50_000.0);
    }
    println!(
        "{:<28} {best:>8.1} ns/object (clone included)",
        "clean telemetry object"
    );
}
