//! Synthetic logs with a known answer, for tests and benchmarks: sshd auth logs with attacking and
//! benign sources, and nginx access logs with probing and ordinary traffic. Deterministic for a seed.
//!
//! Attackers are addressed from 203.0.113.0/24 and 198.51.100.0/24 (plus 2001:db8:: for IPv6),
//! benign sources from 192.0.2.0/24 and 2001:db8:ffff::/48 — documentation ranges only.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The `i`-th attacking address: 203.0.113.0/24, then 198.51.100.0/24, then 2001:db8:a::/48.
pub fn attacker(i: u32) -> IpAddr {
    match i {
        0..=255 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, i as u8)),
        256..=511 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, (i - 256) as u8)),
        _ => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xa,
            0,
            0,
            0,
            (i >> 16) as u16,
            i as u16,
        )),
    }
}

/// The `i`-th benign address: 192.0.2.0/24, then 2001:db8:ffff::/48.
pub fn benign(i: u32) -> IpAddr {
    match i {
        0..=255 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8)),
        _ => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xffff,
            0,
            0,
            0,
            (i >> 16) as u16,
            i as u16,
        )),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A syslog (RFC 3164) timestamp for `secs` after 1 March 00:00:00 (no leap handling needed: March–April).
fn stamp(secs: u64) -> String {
    let day = secs / 86_400;
    let (month, dom) = if day < 31 {
        (2usize, day + 1)
    } else {
        (3usize, day - 30)
    };
    let s = secs % 86_400;
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[month],
        dom,
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// What an sshd log holds.
#[derive(Debug, Clone)]
pub struct SshdLog {
    /// Attacking sources (each bursts well past the brute-force threshold).
    pub attackers: BTreeSet<IpAddr>,
    /// Benign sources (at most two failures each, far apart).
    pub benign: BTreeSet<IpAddr>,
    /// Lines written.
    pub lines: u64,
}

/// Writes an sshd auth log of `lines` lines at about 11.6 lines/s (a million lines is one day): `attackers` sources each try 20 passwords in
/// a few seconds; `benign` sources log in, open and close sessions, and now and then mistype once.
pub fn sshd(
    out: &mut dyn Write,
    lines: u64,
    attackers: u32,
    benign_n: u32,
    seed: u64,
) -> std::io::Result<SshdLog> {
    let mut rng = Rng(seed);
    let burst = 20u64;
    // About 11.6 lines a second whatever the size (a busy server's day holds a million).
    let span = (lines * 86_400 / 1_000_000).max(1);
    let gap = (lines / u64::from(attackers.max(1))).max(burst + 1);
    let mut fails = vec![(0u8, 0u64); benign_n as usize];
    let mut log = SshdLog {
        attackers: BTreeSet::new(),
        benign: BTreeSet::new(),
        lines: 0,
    };
    let users = [
        "root", "admin", "test", "oracle", "ubuntu", "guest", "user", "postgres", "git", "pi",
    ];
    for i in 0..lines {
        let secs = i * span / lines.max(1);
        let ts = stamp(secs);
        let pid = 1000 + rng.below(60_000);
        let port = 1024 + rng.below(64_000);
        let k = i / gap;
        if k < u64::from(attackers) && i % gap < burst {
            let ip = attacker(k as u32);
            log.attackers.insert(ip);
            let user = users[rng.below(users.len() as u64) as usize];
            match rng.below(3) {
                0 => writeln!(out, "{ts} srv sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2")?,
                1 => writeln!(out, "{ts} srv sshd[{pid}]: Invalid user {user} from {ip} port {port}")?,
                _ => writeln!(out, "{ts} srv sshd[{pid}]: Failed password for root from {ip} port {port} ssh2")?,
            }
        } else {
            let j = rng.below(u64::from(benign_n.max(1))) as usize;
            let ip = benign(j as u32);
            log.benign.insert(ip);
            let user = format!("u{j}");
            let (count, last) = fails[j];
            match rng.below(100) {
                0..=1 if count < 2 && (count == 0 || secs > last + 3600) => {
                    fails[j] = (count + 1, secs);
                    writeln!(out, "{ts} srv sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2")?
                }
                0..=39 => writeln!(out, "{ts} srv sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:q1w2e3r4t5y6u7i8o9p0")?,
                40..=59 => writeln!(out, "{ts} srv sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)")?,
                60..=79 => writeln!(out, "{ts} srv sshd[{pid}]: pam_unix(sshd:session): session closed for user {user}")?,
                80..=89 => writeln!(out, "{ts} srv sshd[{pid}]: Received disconnect from {ip} port {port}:11: disconnected by user")?,
                _ => writeln!(out, "{ts} srv sshd[{pid}]: Disconnected from user {user} {ip} port {port}")?,
            }
        }
        log.lines += 1;
    }
    Ok(log)
}

/// Writes an sshd log in which every line comes from a different source (one failure each, all
/// within 2001:db8:cafe::/48), for memory tests: state must stay bounded however many sources there are.
pub fn sshd_distinct(out: &mut dyn Write, lines: u64) -> std::io::Result<()> {
    for i in 0..lines {
        let ts = stamp(i * 86_400 / lines.max(1));
        let ip = Ipv6Addr::new(
            0x2001,
            0xdb8,
            0xcafe,
            0,
            (i >> 48) as u16,
            (i >> 32) as u16,
            (i >> 16) as u16,
            i as u16,
        );
        writeln!(
            out,
            "{ts} srv sshd[4242]: Failed password for root from {ip} port 4242 ssh2"
        )?;
    }
    Ok(())
}
