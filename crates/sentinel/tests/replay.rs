//! `sentinel replay` on generated logs with a known answer, fail2ban filter parity with the built-in
//! parser, bounded state, and the CLI's outputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::command;
use sentinel::replay::{run, ReplayOptions};
use sentinel_core::Observed;
use sentinel_ingest::{LineParser, LogKind, ParseCtx};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

fn fixture_filter() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sentinel-ingest/tests/fixtures/fail2ban/filter.d/sshd.conf")
}

fn opts(files: Vec<PathBuf>) -> ReplayOptions {
    ReplayOptions {
        files,
        format: "sshd".into(),
        fail2ban_filter: None,
        mode: None,
        scenarios: None,
        builtin: true,
        whitelist: Vec::new(),
        ipv6_prefix: None,
        max_keys: 250_000,
        matches: false,
        json: false,
    }
}

fn write_sshd(
    dir: &Path,
    lines: u64,
    attackers: u32,
    benign: u32,
) -> (PathBuf, sentinel::loggen::SshdLog) {
    let path = dir.join("auth.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let log = sentinel::loggen::sshd(&mut f, lines, attackers, benign, 7).unwrap();
    f.flush().unwrap();
    (path, log)
}

#[test]
fn a_million_lines_find_every_attacker_and_no_benign_source() {
    let dir = tempfile::tempdir().unwrap();
    let (path, log) = write_sshd(dir.path(), 1_000_000, 1_000, 10_000);
    assert_eq!(log.attackers.len(), 1_000);
    assert!(log.benign.len() > 9_000);
    let mut sink = Vec::new();
    let s = run(&opts(vec![path]), &mut sink).unwrap();
    assert_eq!(s.lines, 1_000_000);
    let alerted: BTreeSet<String> = s.alerts.iter().map(|a| a.source.clone()).collect();
    let attackers: BTreeSet<String> = log.attackers.iter().map(|ip| ip.to_string()).collect();
    let missed: Vec<&String> = attackers.difference(&alerted).collect();
    assert!(missed.is_empty(), "attackers not alerted: {missed:?}");
    let false_positives: Vec<&String> = alerted.difference(&attackers).collect();
    assert!(
        false_positives.is_empty(),
        "benign sources alerted: {false_positives:?}"
    );
    assert_eq!(s.alerts_by_scenario["ssh_bruteforce"], 1_000);
    let table = String::from_utf8(sink).unwrap();
    assert!(table.contains("lines read             1000000"), "{table}");
    assert!(table.contains("ssh_bruteforce"));
}

#[test]
fn a_fail2ban_sshd_filter_matches_like_the_built_in_parser() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_sshd(dir.path(), 50_000, 100, 500);
    let text = std::fs::read_to_string(&path).unwrap();
    let filter =
        sentinel_ingest::fail2ban::Fail2banFilter::load(&fixture_filter(), &Default::default())
            .unwrap();
    let builtin = sentinel_ingest::parse::by_name("sshd").unwrap();
    let ctx = ParseCtx::default();
    let (mut both, mut only_builtin, mut only_filter) = (0, Vec::new(), Vec::new());
    for line in text.lines() {
        let b = builtin
            .parse(line, &ctx)
            .ok()
            .filter(|p| matches!(p.kind, LogKind::AuthFailure | LogKind::InvalidUser));
        let f = filter.parse(line, &ctx).ok();
        match (b, f) {
            (Some(b), Some(f)) => {
                assert_eq!(b.src_ip, f.src_ip, "{line}");
                assert_eq!(b.ts, f.ts, "{line}");
                assert_eq!(b.get("user"), f.get("user"), "{line}");
                assert_eq!(f.kind(), "rule_match");
                both += 1;
            }
            (Some(_), None) => only_builtin.push(line.to_owned()),
            (None, Some(_)) => only_filter.push(line.to_owned()),
            (None, None) => {}
        }
    }
    assert!(both > 2_000, "{both}");
    assert!(
        only_builtin.is_empty(),
        "{:?}",
        &only_builtin[..only_builtin.len().min(5)]
    );
    assert!(
        only_filter.is_empty(),
        "{:?}",
        &only_filter[..only_filter.len().min(5)]
    );
}

#[test]
fn replay_with_a_fail2ban_filter_finds_the_attackers() {
    let dir = tempfile::tempdir().unwrap();
    let (path, log) = write_sshd(dir.path(), 50_000, 50, 500);
    let mut o = opts(vec![path]);
    o.fail2ban_filter = Some(fixture_filter());
    o.mode = Some("aggressive".into());
    let s = run(&o, &mut Vec::new()).unwrap();
    let alerted: BTreeSet<String> = s
        .alerts
        .iter()
        .filter(|a| a.scenario == "rule_match_bruteforce")
        .map(|a| a.source.clone())
        .collect();
    let attackers: BTreeSet<String> = log.attackers.iter().map(|ip| ip.to_string()).collect();
    assert_eq!(alerted, attackers);
}

#[test]
fn state_stays_bounded_however_many_sources() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("distinct.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    sentinel::loggen::sshd_distinct(&mut f, 300_000).unwrap();
    f.flush().unwrap();
    drop(f);
    let mut o = opts(vec![path]);
    o.max_keys = 1_000;
    let s = run(&o, &mut Vec::new()).unwrap();
    assert_eq!(s.parsed, 300_000);
    assert!(s.live_keys <= 3 * 1_000, "{}", s.live_keys);
    assert!(s.expired_keys + s.evicted_keys > 250_000);
    assert!(
        s.alerts.is_empty(),
        "one failure per source is not an attack"
    );
}

#[test]
fn cli_outputs_matches_json_and_reads_gzip_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_sshd(dir.path(), 5_000, 5, 50);
    // gzip copy
    let gz = dir.path().join("auth.log.1.gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", path.display(), gz.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let json = |args: &[&str]| -> serde_json::Value {
        let out = command(dir.path())
            .arg("replay")
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let plain = json(&[path.to_str().unwrap()]);
    let zipped = json(&[gz.to_str().unwrap()]);
    assert_eq!(plain["lines"], 5_000);
    assert_eq!(plain["lines"], zipped["lines"]);
    assert_eq!(plain["alerts_by_scenario"], zipped["alerts_by_scenario"]);
    assert_eq!(plain["alerts_by_scenario"]["ssh_bruteforce"], 5);

    // --matches prints file:line, the parser, the kind and the extracted fields.
    let out = command(dir.path())
        .args(["replay", "--matches", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.contains("auth.log:1\tsshd\t"), "{first}");
    assert!(first.contains("src_ip=203.0.113.0"), "{first}");
    assert!(
        text.contains("  ALERT ssh_bruteforce ip:203.0.113.0"),
        "{}",
        &text[..2000.min(text.len())]
    );

    // stdin
    let out = command(dir.path())
        .args(["replay", "--json", "-"])
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lines"], 5_000);

    // Errors are clear and exit 2.
    let out = command(dir.path())
        .args(["replay", "--format", "nope", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown format `nope`"));
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "[Definition]\nfailregex = ^(?a)x <HOST>$\n").unwrap();
    let out = command(dir.path())
        .args([
            "replay",
            "--fail2ban-filter",
            bad.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(?a)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
