//! Local feeds end to end: the publishers' formats read from fixtures written from their documentation,
//! lookups across overlapping feeds, reloads when files change (and when they break), and loud reports
//! for feeds that list nothing. Real files only; no network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{
    Alert, AlertId, EnrichError, Enricher, Severity, Subject, Timestamp, TraceId, Verdict,
};
use sentinel_intel::config::{CsvMapping, FeedConfig, FeedFormat};
use sentinel_intel::feeds::parse::parse_file;
use sentinel_intel::Feeds;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/feeds")
        .join(name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn feed(name: &str, path: PathBuf, format: FeedFormat, verdict: Verdict, score: u8) -> FeedConfig {
    FeedConfig {
        name: name.into(),
        path,
        format,
        verdict,
        score,
    }
}

fn crowdsec_mapping() -> CsvMapping {
    CsvMapping {
        ip_column: "ip".into(),
        score_column: None,
        reason_column: Some("reason".into()),
        delimiter: ',',
        header: true,
    }
}

fn nets(path: &Path, format: &FeedFormat) -> Vec<String> {
    parse_file(path, format)
        .unwrap()
        .entries
        .iter()
        .map(|e| e.net.to_string())
        .collect()
}

#[test]
fn firehol_netset_skips_its_header_block() {
    let f = parse_file(&fixture("firehol_level1.netset"), &FeedFormat::List).unwrap();
    assert_eq!(f.entries.len(), 12);
    assert_eq!(f.malformed, 0);
    assert_eq!(f.entries[0].net.to_string(), "0.0.0.0/8");
    assert_eq!(f.entries[11].net.to_string(), "224.0.0.0/3");
    assert!(f.entries.iter().all(|e| e.reason.is_none()));
}

#[test]
fn spamhaus_text_and_json_list_the_same_nets_with_their_sbl_ids() {
    let text = parse_file(&fixture("spamhaus_drop.txt"), &FeedFormat::List).unwrap();
    let json = parse_file(&fixture("spamhaus_drop_v4.json"), &FeedFormat::SpamhausJson).unwrap();
    assert_eq!(text.entries.len(), 5);
    assert_eq!(text.malformed, 0);
    assert_eq!(json.malformed, 0);
    // The metadata line's record count matches: nothing to note.
    assert!(json.notes.is_empty(), "{:?}", json.notes);
    let reasons = |f: &sentinel_intel::feeds::parse::ParsedFeed| -> Vec<(String, String)> {
        f.entries
            .iter()
            .map(|e| {
                (
                    e.net.to_string(),
                    f.reasons[e.reason.unwrap() as usize].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(reasons(&text), reasons(&json));
    assert_eq!(
        reasons(&json)[0],
        ("1.10.16.0/20".to_string(), "SBL256894".to_string())
    );
}

#[test]
fn spamhaus_json_notes_a_record_count_mismatch_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("drop.json");
    std::fs::write(
        &p,
        "{\"cidr\":\"192.0.2.0/24\",\"sblid\":\"SBL1\",\"rir\":\"arin\"}\n\
         {\"cidr\":\"192.0.2.300/24\",\"sblid\":\"SBL2\",\"rir\":\"arin\"}\n\
         not json\n\
         {\"sblid\":\"SBL3\"}\n\
         {\"type\":\"metadata\",\"timestamp\":1,\"size\":2,\"records\":4,\"copyright\":\"c\",\"terms\":\"t\"}\n",
    )
    .unwrap();
    let f = parse_file(&p, &FeedFormat::SpamhausJson).unwrap();
    assert_eq!(f.entries.len(), 1);
    assert_eq!(f.malformed, 3);
    let lines: Vec<usize> = f.samples.iter().map(|s| s.line).collect();
    assert_eq!(lines, [2, 3, 4]);
    assert_eq!(f.notes.len(), 1, "{:?}", f.notes);
}

#[test]
fn tor_bulk_list_and_exit_addresses_agree() {
    let bulk = nets(&fixture("tor_bulk_exit_list.txt"), &FeedFormat::List);
    let doc = nets(
        &fixture("tor_exit_addresses.txt"),
        &FeedFormat::TorExitAddresses,
    );
    assert_eq!(
        bulk,
        [
            "203.0.113.7/32",
            "203.0.113.19/32",
            "198.51.100.200/32",
            "192.0.2.77/32"
        ]
    );
    // The document has one exit with two addresses (one IPv6), and not the fourth bulk entry.
    assert_eq!(
        doc,
        [
            "203.0.113.7/32",
            "203.0.113.19/32",
            "2001:db8:77::19/128",
            "198.51.100.200/32"
        ]
    );
    let f = parse_file(
        &fixture("tor_exit_addresses.txt"),
        &FeedFormat::TorExitAddresses,
    )
    .unwrap();
    assert_eq!(f.malformed, 0);
}

#[test]
fn crowdsec_csv_reads_scoped_values_reasons_and_quoted_fields() {
    let f = parse_file(
        &fixture("crowdsec_decisions.csv"),
        &FeedFormat::Csv(crowdsec_mapping()),
    )
    .unwrap();
    assert_eq!(f.malformed, 0, "{:?}", f.samples);
    let got: Vec<(String, String)> = f
        .entries
        .iter()
        .map(|e| {
            (
                e.net.to_string(),
                f.reasons[e.reason.unwrap() as usize].to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("192.0.2.10/32".into(), "crowdsecurity/ssh-bf".into()),
            ("192.0.2.11/32".into(), "crowdsecurity/http-probing".into()),
            (
                "198.51.100.0/24".into(),
                "manual 'ban' from 'localhost'".into()
            ),
            ("2001:db8::bad/128".into(), "crowdsecurity/ssh-bf".into()),
            (
                "203.0.113.50/32".into(),
                "crowdsecurity/http-bad-user-agent".into()
            ),
        ]
    );
    // The repeated scenario is stored once.
    assert_eq!(f.reasons.len(), 4);
}

#[test]
fn csv_with_scores_and_a_semicolon_delimiter() {
    let m = CsvMapping {
        ip_column: "network".into(),
        score_column: Some("confidence".into()),
        reason_column: Some("category".into()),
        delimiter: ';',
        header: true,
    };
    let f = parse_file(&fixture("blocklist_scores.csv"), &FeedFormat::Csv(m)).unwrap();
    assert_eq!(f.entries.len(), 4);
    assert_eq!(f.malformed, 0);
    let scores: Vec<Option<u8>> = f.entries.iter().map(|e| e.score).collect();
    assert_eq!(scores, [Some(90), Some(55), None, None]);
    // "high" is not a score: the row is kept with the feed's score, and a warning counted.
    assert_eq!(f.warnings, 1);
    assert_eq!(
        &*f.reasons[f.entries[1].reason.unwrap() as usize],
        "scanner; port 22"
    );
}

#[test]
fn malformed_lines_are_counted_with_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("list.txt");
    std::fs::write(
        &p,
        "# comment\n192.0.2.1\n192.0.2.256\n\n198.51.100.0/33\r\n203.0.113.5/24\nhello world\n",
    )
    .unwrap();
    let f = parse_file(&p, &FeedFormat::List).unwrap();
    assert_eq!(f.entries.len(), 2);
    assert_eq!(f.malformed, 3);
    let lines: Vec<usize> = f.samples.iter().map(|s| s.line).collect();
    assert_eq!(lines, [3, 5, 7]);
    // 203.0.113.5/24 had host bits set: listed as 203.0.113.0/24, with a warning.
    assert_eq!(f.entries[1].net.to_string(), "203.0.113.0/24");
    assert_eq!(f.warnings, 1);

    let (feeds, reports) = Feeds::load(&[feed("l", p, FeedFormat::List, Verdict::Suspicious, 40)]);
    assert!(!reports[0].is_error());
    assert_eq!(reports[0].malformed, 3);
    assert_eq!(reports[0].samples[0].line, 3);
    assert_eq!(feeds.stats()[0].malformed, 3);
    assert_eq!(feeds.stats()[0].entries, 2);
}

fn all_fixtures() -> Vec<FeedConfig> {
    vec![
        feed(
            "firehol_level1",
            fixture("firehol_level1.netset"),
            FeedFormat::List,
            Verdict::Suspicious,
            50,
        ),
        feed(
            "spamhaus_drop",
            fixture("spamhaus_drop_v4.json"),
            FeedFormat::SpamhausJson,
            Verdict::Malicious,
            90,
        ),
        feed(
            "tor_exits",
            fixture("tor_exit_addresses.txt"),
            FeedFormat::TorExitAddresses,
            Verdict::Suspicious,
            30,
        ),
        feed(
            "crowdsec",
            fixture("crowdsec_decisions.csv"),
            FeedFormat::Csv(crowdsec_mapping()),
            Verdict::Malicious,
            80,
        ),
    ]
}

#[test]
fn lookup_reports_every_feed_that_lists_an_address() {
    let (feeds, reports) = Feeds::load(&all_fixtures());
    assert!(reports.iter().all(|r| !r.is_error()), "{reports:?}");

    // 198.51.100.200: FireHOL's /24, Spamhaus's /25, a Tor exit, CrowdSec's range.
    let m = feeds.lookup(ip("198.51.100.200"));
    let got: Vec<(&str, String, Option<&str>)> = m
        .iter()
        .map(|m| (m.feed.as_str(), m.prefix.to_string(), m.reason.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("firehol_level1", "198.51.100.0/24".into(), None),
            (
                "spamhaus_drop",
                "198.51.100.128/25".into(),
                Some("SBL000001")
            ),
            ("tor_exits", "198.51.100.200/32".into(), None),
            (
                "crowdsec",
                "198.51.100.0/24".into(),
                Some("manual 'ban' from 'localhost'")
            ),
        ]
    );
    // Below the /25: no longer Spamhaus, no longer a Tor exit.
    let names: Vec<String> = feeds
        .lookup(ip("198.51.100.5"))
        .into_iter()
        .map(|m| m.feed)
        .collect();
    assert_eq!(names, ["firehol_level1", "crowdsec"]);

    let e = feeds.evidence(ip("198.51.100.200"));
    assert_eq!(e.provider, "feeds");
    assert_eq!(e.verdict, Verdict::Malicious);
    assert_eq!(e.score, Some(90));
    assert_eq!(e.details["matches"].as_array().unwrap().len(), 4);
    assert_eq!(e.details["matches"][1]["reason"], "SBL000001");

    // IPv6 from CrowdSec and Tor.
    assert_eq!(feeds.lookup(ip("2001:db8::bad"))[0].feed, "crowdsec");
    assert_eq!(feeds.lookup(ip("2001:db8:77::19"))[0].feed, "tor_exits");

    // Nobody lists it.
    assert!(feeds.lookup(ip("8.8.8.8")).is_empty());
    assert!(!feeds.contains(ip("8.8.8.8")));
    let none = feeds.evidence(ip("8.8.8.8"));
    assert_eq!(none.verdict, Verdict::Unknown);
    assert_eq!(none.score, None);
    assert_eq!(none.details["matches"], serde_json::json!([]));
}

fn alert(subject: Subject) -> Alert {
    Alert {
        id: AlertId::new(),
        ts: Timestamp::from_millis(1_000_000),
        detector: "heuristic".into(),
        scenario: "ssh_bruteforce".into(),
        severity: Severity::from_score(60),
        score: 60,
        confidence: 0.7,
        subject,
        reasons: vec![],
        evidence: vec![],
        trace_id: TraceId::new(),
    }
}

#[tokio::test]
async fn enricher_answers_for_addresses_only() {
    let (feeds, _) = Feeds::load(&all_fixtures());
    assert_eq!(feeds.name(), "feeds");
    let s = Subject::Ip(ip("192.0.2.10"));
    let e = feeds.enrich(&s, &alert(s.clone())).await.unwrap();
    assert_eq!(e.verdict, Verdict::Malicious);
    assert_eq!(e.score, Some(80));
    assert_eq!(e.details["matches"][1]["reason"], "crowdsecurity/ssh-bf");
    let u = Subject::User("root".into());
    assert!(matches!(
        feeds.enrich(&u, &alert(u.clone())).await,
        Err(EnrichError::NotApplicable)
    ));
}

#[test]
fn a_row_score_overrides_the_feed_score() {
    let m = CsvMapping {
        ip_column: "network".into(),
        score_column: Some("confidence".into()),
        reason_column: Some("category".into()),
        delimiter: ';',
        header: true,
    };
    let (feeds, _) = Feeds::load(&[feed(
        "scored",
        fixture("blocklist_scores.csv"),
        FeedFormat::Csv(m),
        Verdict::Suspicious,
        20,
    )]);
    assert_eq!(feeds.lookup(ip("192.0.2.3"))[0].score, 90);
    assert_eq!(feeds.lookup(ip("203.0.113.99"))[0].score, 20);
    assert_eq!(feeds.lookup(ip("203.0.113.99"))[0].reason, None);
}

#[test]
fn a_feed_that_lists_nothing_or_is_missing_is_a_loud_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.netset");
    std::fs::write(&empty, "#\n# firehol_level1\n#\n\n").unwrap();
    let garbage = dir.path().join("garbage.txt");
    std::fs::write(&garbage, "<html>rate limited</html>\n").unwrap();
    let (feeds, reports) = Feeds::load(&[
        feed("empty", empty, FeedFormat::List, Verdict::Malicious, 90),
        feed(
            "missing",
            dir.path().join("nope.txt"),
            FeedFormat::List,
            Verdict::Malicious,
            90,
        ),
        feed("garbage", garbage, FeedFormat::List, Verdict::Malicious, 90),
        feed(
            "ok",
            fixture("tor_bulk_exit_list.txt"),
            FeedFormat::List,
            Verdict::Suspicious,
            30,
        ),
    ]);
    assert!(reports[0].is_error());
    assert!(reports[0]
        .error
        .as_ref()
        .unwrap()
        .contains("lists no address"));
    assert!(reports[1].is_error());
    assert!(reports[1].error.as_ref().unwrap().contains("cannot read"));
    assert!(reports[2].is_error());
    assert_eq!(reports[2].malformed, 1);
    assert!(!reports[3].is_error());
    let stats = feeds.stats();
    assert_eq!(
        stats.iter().map(|s| s.load_errors).collect::<Vec<_>>(),
        [1, 1, 1, 0]
    );
    assert!(stats[0].last_error.is_some());
    // The others still serve.
    assert_eq!(feeds.lookup(ip("203.0.113.7"))[0].feed, "ok");
}

/// Replaces a file the way feed updaters do: write beside it, then rename over it.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_changed_file_is_reloaded_and_swapped_in() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("list.txt");
    std::fs::write(&p, "192.0.2.1\n198.51.100.0/24\n").unwrap();
    let (feeds, _) = Feeds::load(&[feed(
        "l",
        p.clone(),
        FeedFormat::List,
        Verdict::Malicious,
        70,
    )]);
    assert!(feeds.contains(ip("192.0.2.1")));
    // Unchanged: nothing re-read.
    assert!(feeds.reload_changed().is_empty());

    replace(&p, "203.0.113.0/24\n198.51.100.0/24\n2001:db8::/48\n");
    let reports = feeds.reload_changed();
    assert_eq!(reports.len(), 1);
    assert!(!reports[0].is_error());
    assert_eq!(reports[0].entries, 3);
    assert!(
        !feeds.contains(ip("192.0.2.1")),
        "removed entry still served"
    );
    assert!(feeds.contains(ip("203.0.113.9")));
    assert!(feeds.contains(ip("2001:db8::1")));
    assert!(feeds.contains(ip("198.51.100.1")));
    let st = &feeds.stats()[0];
    assert_eq!((st.entries, st.reloads, st.load_errors), (3, 1, 0));
    assert!(feeds.reload_changed().is_empty());
}

#[test]
fn a_broken_reload_keeps_the_previous_table_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("list.txt");
    std::fs::write(&p, "192.0.2.1\n").unwrap();
    let (feeds, _) = Feeds::load(&[feed(
        "l",
        p.clone(),
        FeedFormat::List,
        Verdict::Malicious,
        70,
    )]);

    // A download that went wrong: an error page instead of the list.
    replace(&p, "<html><body>502 Bad Gateway</body></html>\n");
    let reports = feeds.reload_changed();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].is_error());
    assert!(reports[0].kept_previous);
    assert_eq!(reports[0].entries, 1);
    assert_eq!(reports[0].malformed, 1);
    assert!(feeds.contains(ip("192.0.2.1")));
    let st = &feeds.stats()[0];
    assert_eq!((st.entries, st.reloads, st.load_errors), (1, 0, 1));
    assert!(st.last_error.is_some());
    // Reported once per change, not on every poll.
    assert!(feeds.reload_changed().is_empty());

    // The file vanishes: also kept, also reported.
    std::fs::remove_file(&p).unwrap();
    let reports = feeds.reload_changed();
    assert!(reports[0].is_error() && reports[0].kept_previous);
    assert!(feeds.contains(ip("192.0.2.1")));

    // Fixed: served again, and the error cleared.
    replace(&p, "198.51.100.7\n");
    let reports = feeds.reload_changed();
    assert!(!reports[0].is_error());
    assert!(feeds.contains(ip("198.51.100.7")));
    assert!(!feeds.contains(ip("192.0.2.1")));
    let st = &feeds.stats()[0];
    assert_eq!(
        (st.reloads, st.load_errors, st.last_error.clone()),
        (1, 2, None)
    );
}

#[test]
fn a_feed_missing_at_start_loads_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("later.txt");
    let (feeds, reports) = Feeds::load(&[feed(
        "later",
        p.clone(),
        FeedFormat::List,
        Verdict::Malicious,
        70,
    )]);
    assert!(reports[0].is_error());
    assert!(feeds.reload_changed().is_empty());
    std::fs::write(&p, "192.0.2.44\n").unwrap();
    let reports = feeds.reload_changed();
    assert!(!reports[0].is_error());
    assert!(feeds.contains(ip("192.0.2.44")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_picks_up_changes_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("list.txt");
    std::fs::write(&p, "192.0.2.1\n").unwrap();
    let (feeds, _) = Feeds::load(&[feed(
        "l",
        p.clone(),
        FeedFormat::List,
        Verdict::Malicious,
        70,
    )]);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = feeds.spawn_watcher(Duration::from_millis(20), rx);

    replace(&p, "192.0.2.2\n");
    // Generous: only proves the watcher reloads at all, not how fast.
    let until = Instant::now() + Duration::from_secs(20);
    while !feeds.contains(ip("192.0.2.2")) {
        assert!(Instant::now() < until, "the watcher never reloaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!feeds.contains(ip("192.0.2.1")));

    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("the watcher did not stop")
        .unwrap();
}

/// A feed path that is not a regular file: a FIFO nobody writes to would block the read (and the
/// daemon's start, which loads the feeds) forever; `/dev/zero` never ends and would eat all memory.
/// Both are load errors, reported at once.
#[test]
fn a_feed_that_is_a_fifo_or_a_device_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("feed.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let configs = vec![
        feed("fifo", fifo, FeedFormat::List, Verdict::Malicious, 90),
        feed(
            "zero",
            PathBuf::from("/dev/zero"),
            FeedFormat::List,
            Verdict::Malicious,
            90,
        ),
    ];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Feeds::load(&configs).1);
    });
    // Generous: only proves it did not wait for a writer that never comes.
    let reports = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("loading a feed that is a FIFO hung");
    for r in &reports {
        let e = r.error.as_deref().unwrap_or_default();
        assert!(e.contains("not a regular file"), "{}: {e}", r.feed);
    }
}

/// A feed file far larger than any real feed (500,000 CIDRs are ~10 MB) is refused before it is
/// read into memory, not parsed whole. The file is sparse: no disk is used.
#[test]
fn an_oversized_feed_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.netset");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(sentinel_intel::feeds::parse::MAX_FEED_BYTES + 1)
        .unwrap();
    drop(f);
    let e = parse_file(&big, &FeedFormat::List).unwrap_err();
    assert!(e.contains("larger than"), "{e}");
}

/// `0.0.0.0/0` or `::/0` in a blocklist (a typo, or a poisoned upstream) would silently list every
/// address there is. Such a line is a counted, quoted bad line; the rest of the feed still loads.
#[test]
fn a_default_route_in_a_feed_is_a_bad_line_not_the_whole_internet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("poisoned.netset");
    std::fs::write(&path, "203.0.113.0/24\n0.0.0.0/0\n::/0\n2001:db8::/32\n").unwrap();
    let (feeds, reports) = Feeds::load(&[feed(
        "poisoned",
        path,
        FeedFormat::List,
        Verdict::Malicious,
        90,
    )]);
    assert_eq!(reports[0].entries, 2);
    assert_eq!(reports[0].malformed, 2);
    assert!(
        reports[0].samples[0].why.contains("every address"),
        "{:?}",
        reports[0].samples
    );
    assert!(feeds.lookup(ip("198.51.100.1")).is_empty());
    assert!(feeds.lookup(ip("2001:db9::1")).is_empty());
    assert_eq!(feeds.lookup(ip("203.0.113.9")).len(), 1);
}

/// Log lines written by the test's own subscriber.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_cut_spamhaus_file_is_a_warning_in_the_log_not_a_silent_info() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("drop_v4.json");
    // The metadata line promises two records; the download was cut and one is left.
    std::fs::write(
        &p,
        concat!(
            r#"{"cidr":"203.0.113.128/25","sblid":"SBL000002","rir":"ripencc"}"#,
            "\n",
            r#"{"type":"metadata","timestamp":1764486000,"size":2,"records":2,"copyright":"(c) 2026 The Spamhaus Project SLU"}"#,
            "\n"
        ),
    )
    .unwrap();
    let sink = Captured::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let (_feeds, reports) = tracing::subscriber::with_default(subscriber, || {
        Feeds::load(&[feed(
            "spamhaus_drop",
            p.clone(),
            FeedFormat::SpamhausJson,
            Verdict::Malicious,
            90,
        )])
    });
    assert_eq!(reports[0].entries, 1);
    assert!(!reports[0].notes.is_empty());
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("spamhaus_drop"))
        .unwrap_or_else(|| panic!("no log line for the feed: {log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("declares 2 records but 1 were read"),
        "{line}"
    );
}
