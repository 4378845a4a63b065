//! Every documented source counter moves, by exactly what happened, in a running daemon's `/metrics`: a tailed
//! file that is appended to, rotated (rename + new file), copytruncated, given an over-long line and invalid
//! UTF-8; a syslog receiver that gets messages, an over-long datagram, broken TCP framing (a source error),
//! senders outside `allowed_peers` and one connection past its limit; a journal command that exits once (a
//! restart) and prints a line that is not an entry (a source error). And a fail2ban filter driven past its
//! session caps shows them counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The source counters, in the order of the documented names (`sentinel_log_<name>_total`).
const COUNTERS: [(&str, &str); 10] = [
    ("lines_read", "lines_read"),
    ("bytes_read", "bytes_read"),
    ("lines_too_long", "lines_too_long"),
    ("lines_invalid_utf8", "lines_invalid_utf8"),
    ("rotations", "rotations"),
    ("truncations", "truncations"),
    ("source_errors", "errors"),
    ("connections_refused", "connections_refused"),
    ("peers_refused", "peers_refused"),
    ("source_restarts", "restarts"),
];

/// What one source should have counted, by the documented name without `sentinel_log_` and `_total`.
#[derive(Debug, Clone, Default)]
struct Expect(BTreeMap<&'static str, u64>);

impl Expect {
    fn add(&mut self, name: &'static str, n: u64) -> &mut Self {
        assert!(COUNTERS.iter().any(|(c, _)| *c == name), "{name}");
        *self.0.entry(name).or_default() += n;
        self
    }
    fn line(&mut self, bytes: usize) -> &mut Self {
        self.add("lines_read", 1).add("bytes_read", bytes as u64)
    }
    fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

async fn metrics(d: &Daemon) -> String {
    let r = d
        .client()
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Every sample in the text, by series (`name{labels}`).
fn samples(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            Some((series.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The series each expectation names, with the value it should have: per source (`sentinel_source_*`) and,
/// summed over `sources`, the documented totals (`sentinel_log_*`).
fn wanted(sources: &[(&str, &Expect)]) -> BTreeMap<String, u64> {
    let mut want = BTreeMap::new();
    for (doc, per) in COUNTERS {
        let mut total = 0;
        for (label, e) in sources {
            want.insert(
                format!("sentinel_source_{per}_total{{source=\"{label}\"}}"),
                e.get(doc),
            );
            total += e.get(doc);
        }
        want.insert(format!("sentinel_log_{doc}_total"), total);
    }
    want
}

/// Polls `/metrics` until the series in `want` all have their values, for at most 20 s; then asserts, so a
/// counter that is off (or missing) fails with the whole exposition.
async fn settle(d: &Daemon, want: &BTreeMap<String, u64>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(d).await;
        let have = samples(&text);
        let off: Vec<String> = want
            .iter()
            .filter(|(k, v)| have.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {:?}, expected {v}", have.get(k)))
            .collect();
        if off.is_empty() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "counters off after 20 s:\n{}\n\n/metrics:\n{text}\ndaemon:\n{}",
            off.join("\n"),
            d.output()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn append(path: &Path, bytes: &[u8]) -> usize {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    bytes.len()
}

/// Connects from `from` to `to`, sends `bytes`, and waits until the receiver closes the connection.
async fn tcp_until_closed(from: &str, to: SocketAddr, bytes: &[u8]) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(to).await.unwrap();
    if !bytes.is_empty() {
        s.write_all(bytes).await.unwrap();
    }
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the syslog receiver kept the connection open"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_source_counter_moves_by_exactly_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let (udp, tcp) = (free_port(true), free_port(false));
    let marker = dir.path().join("journal-ran-once");
    // The first run exits at once (so the source restarts it); the second prints two entries, one of them with
    // invalid UTF-8, and a line that is no entry, then stays until the daemon goes.
    let journal = format!(
        "if [ -e '{m}' ]; then printf '%s\\n' '{{\"MESSAGE\":\"hello from the journal\",\"SYSLOG_IDENTIFIER\":\"app\"}}' 'not a journal entry'; printf '{{\"MESSAGE\":\"caf\\377\"}}\\n'; while kill -0 $PPID 2>/dev/null; do sleep 1; done; else touch '{m}'; fi",
        m = marker.display()
    );
    let journal_lines: [&[u8]; 3] = [
        b"{\"MESSAGE\":\"hello from the journal\",\"SYSLOG_IDENTIFIER\":\"app\"}\n",
        b"not a journal entry\n",
        b"{\"MESSAGE\":\"caf\xff\"}\n",
    ];
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "sources:\n\
             \x20 - {{ type: file, paths: [\"{log}\"], from_beginning: true, poll_interval: 50ms }}\n\
             \x20 - {{ type: syslog, udp: \"127.0.0.1:{udp}\", tcp: \"127.0.0.1:{tcp}\", allowed_peers: [127.0.0.2] }}\n\
             \x20 - {{ type: journald, command: [\"sh\", \"-c\", {journal}] }}\n",
            log = log.display(),
            journal = serde_json::to_string(&journal).unwrap(),
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let file_label = format!("file:{}", log.display());
    let syslog_label = format!("syslog:udp:127.0.0.1:{udp},tcp:127.0.0.1:{tcp}");
    let (mut file, mut syslog, mut journald) =
        (Expect::default(), Expect::default(), Expect::default());

    // The journal: one restart, two entries read (one with invalid UTF-8 replaced), one line that is no entry.
    journald
        .add("source_restarts", 1)
        .add("source_errors", 1)
        .add("lines_invalid_utf8", 1)
        .add("lines_read", 2)
        .add(
            "bytes_read",
            journal_lines.iter().map(|l| l.len() as u64).sum(),
        );

    // Lines appended to the file.
    for i in 1..=3 {
        let n = append(&log, format!("first file, line {i}\n").as_bytes());
        file.line(n);
    }
    let all = |f: &Expect, s: &Expect, j: &Expect| {
        wanted(&[
            (file_label.as_str(), f),
            (syslog_label.as_str(), s),
            ("journald", j),
        ])
    };
    settle(&d, &all(&file, &syslog, &journald)).await;

    // Rotation: the file is renamed, the old inode gets one more line (the writer has not reopened yet), and a
    // new file appears at the path. Both are read, and the rotation is counted once.
    let rotated = logs.join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    file.line(append(&rotated, b"first file, written after the rename\n"));
    std::fs::write(&log, "second file, line 1\nsecond file, line 2\n").unwrap();
    file.line("second file, line 1\n".len())
        .line("second file, line 2\n".len())
        .add("rotations", 1);
    settle(&d, &all(&file, &syslog, &journald)).await;

    // copytruncate: one more line, the copy, the truncation, then new lines. The line written just before the
    // copy is read once, from the file or from the copy; the truncation is counted once.
    file.line(append(&log, b"second file, line 3, just before the copy\n"));
    std::fs::copy(&log, logs.join("app.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    file.line(append(&log, b"after the truncation\n"))
        .add("truncations", 1);
    // An over-long line (the file limit is 64 KiB) and one with invalid UTF-8.
    let mut long = vec![b'x'; 70_000];
    long.push(b'\n');
    file.line(append(&log, &long)).add("lines_too_long", 1);
    file.line(append(&log, b"caf\xff\xfe\n"))
        .add("lines_invalid_utf8", 1);
    settle(&d, &all(&file, &syslog, &journald)).await;

    // Syslog from the allowed sender (127.0.0.2): a message and an over-long one (the limit is 8 KiB).
    let to_udp: SocketAddr = format!("127.0.0.1:{udp}").parse().unwrap();
    let to_tcp: SocketAddr = format!("127.0.0.1:{tcp}").parse().unwrap();
    let allowed = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    let msg = b"<13>1 2026-01-01T00:00:00Z host app - - - hello over udp";
    allowed.send_to(msg, to_udp).unwrap();
    syslog.line(msg.len());
    let mut big = b"<13>".to_vec();
    big.resize(9000, b'y');
    allowed.send_to(&big, to_udp).unwrap();
    syslog.line(big.len()).add("lines_too_long", 1);
    // Over TCP: a message, then an octet count that is no number: broken framing, an error, the connection closed.
    let framed = b"<13>hello over tcp\n9x";
    tcp_until_closed("127.0.0.2", to_tcp, framed).await;
    syslog
        .add("lines_read", 1)
        .add("bytes_read", framed.len() as u64)
        .add("source_errors", 1);
    // The refused sender (127.0.0.1): a datagram and a connection, dropped and counted, nothing read.
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"<13>forged", to_udp)
        .unwrap();
    tcp_until_closed("127.0.0.1", to_tcp, b"").await;
    syslog.add("peers_refused", 2);
    // The connection limit (256 open at once): with 256 held open, the next one is closed at once, counted.
    let mut held = Vec::new();
    for _ in 0..256 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        held.push(sock.connect(to_tcp).await.unwrap());
    }
    tcp_until_closed("127.0.0.2", to_tcp, b"").await;
    syslog.add("connections_refused", 1);

    let text = settle(&d, &all(&file, &syslog, &journald)).await;
    drop(held);
    // Every documented counter moved.
    for (doc, _) in COUNTERS {
        let v = samples(&text)[&format!("sentinel_log_{doc}_total")];
        assert!(v > 0, "sentinel_log_{doc}_total did not move:\n{text}");
    }
    assert_eq!(
        samples(&text)["sentinel_log_bytes_read_total"],
        file.get("bytes_read") + syslog.get("bytes_read") + journald.get("bytes_read")
    );
    let (_dir, _) = d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn fail2ban_session_caps_are_counted_at_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sessions_filter = dir.path().join("conn.conf");
    std::fs::write(
        &sessions_filter,
        "[Definition]\n\
         prefregex = ^\\s*s\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-CONTENT>.+</F-CONTENT>$\n\
         failregex = ^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>$\n\
         \x20           ^auth failed for <F-USER>\\S+</F-USER>$\n",
    )
    .unwrap();
    let buffer_filter = dir.path().join("multi.conf");
    std::fs::write(
        &buffer_filter,
        "[Definition]\nmaxlines = 3\n\
         failregex = ^conn (?P<id>\\d+) from <HOST>$<SKIPLINES>^conn (?P=id) auth failed$\n",
    )
    .unwrap();
    let (conn_log, multi_log) = (dir.path().join("conn.log"), dir.path().join("multi.log"));
    std::fs::write(&conn_log, "").unwrap();
    std::fs::write(&multi_log, "").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "sources:\n\
             \x20 - {{ type: file, paths: [\"{}\"], fail2ban_filter: \"{}\", from_beginning: true, poll_interval: 50ms }}\n\
             \x20 - {{ type: file, paths: [\"{}\"], fail2ban_filter: \"{}\", from_beginning: true, poll_interval: 50ms }}\n",
            conn_log.display(),
            sessions_filter.display(),
            multi_log.display(),
            buffer_filter.display(),
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);

    // 1005 sessions (the cap is 1000): 5 evicted. Then 70 users in one session (64 are remembered): 6 dropped.
    let mut text = String::new();
    for n in 0..1005 {
        text.push_str(&format!("s[{n}]: Connection from 192.0.2.1\n"));
    }
    for k in 0..70 {
        text.push_str(&format!("s[1004]: auth failed for u{k}\n"));
    }
    // In log time: a new session (one more eviction) idle for 10 minutes is forgotten (expired) when its next
    // line comes; that line's failure has no host yet, so it is held as pending.
    let at = |ago_min: i64| {
        let ms = sentinel_core::Timestamp::now().as_millis() - ago_min * 60_000;
        let t = sentinel_core::Timestamp::from_millis(ms).to_rfc3339();
        // `YYYY-mm-dd HH:MM:SS`, one of fail2ban's default date templates.
        t[..19].replace('T', " ")
    };
    text.push_str(&format!("{} s[3000]: Connection from 192.0.2.3\n", at(20)));
    text.push_str(&format!("{} s[3000]: auth failed for bob\n", at(10)));
    append(&conn_log, text.as_bytes());
    // Four lines of 60 kB in a 3-line buffer (a 256 KiB budget, each line held with and without its date):
    // from the third line on, the oldest goes early.
    let noise = format!("noise {}\n", "x".repeat(60_000));
    append(&multi_log, noise.repeat(4).as_bytes());

    let series = |name: &str, log: &Path, filter: &str| {
        format!(
            "sentinel_fail2ban_{name}{{source=\"file:{}\",filter=\"{filter}\"}}",
            log.display()
        )
    };
    let mut want = BTreeMap::new();
    for (name, conn, multi) in [
        ("sessions_live", 1000, 0),
        ("sessions_evicted_total", 6, 0),
        ("sessions_expired_total", 1, 0),
        ("pending_failures_total", 1, 0),
        ("session_users_dropped_total", 6, 0),
        ("buffer_lines_trimmed_total", 0, 2),
    ] {
        want.insert(series(name, &conn_log, "conn"), conn);
        want.insert(series(name, &multi_log, "multi"), multi);
    }
    // Every line was read and handed to its filter.
    want.insert(
        format!(
            "sentinel_source_lines_read_total{{source=\"file:{}\"}}",
            conn_log.display()
        ),
        1005 + 70 + 2,
    );
    want.insert(
        format!(
            "sentinel_source_lines_read_total{{source=\"file:{}\"}}",
            multi_log.display()
        ),
        4,
    );
    settle(&d, &want).await;
    let (_dir, _) = d.stop();
}
