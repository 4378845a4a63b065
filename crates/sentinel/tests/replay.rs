//! `sentinel replay` on generated logs with a known answer, fail2ban filter parity with the built-in
//! parser, bounded state, and the CLI's outputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::command;
use sentinel_core::Observed;
use sentinel_ingest::config::{Fail2banFilterConfig, LineFormat, LogFormat};
use sentinel_ingest::{LineParser, LogKind, ParseCtx};
use sentinel_pipeline::replay::{run, ReplayOptions};
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
        format: LineFormat::Named(LogFormat::Sshd),
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
    // The generator draws pids at random, so unrelated connections share one. fail2ban's sshd filter ties
    // lines of one pid into a session (`<F-MLFID>`) whose first address family wins (fail2ban merges the
    // groups of a session), so the parity holds for the first line of each pid; later ones are fed to the
    // filter (its session state must see them) but not compared.
    let mut pids = std::collections::HashSet::new();
    let mut later = 0;
    for line in text.lines() {
        let pid = line
            .split_once("sshd[")
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(p, _)| p.to_owned());
        let first_of_pid = pid.is_none_or(|p| pids.insert(p));
        if !first_of_pid {
            let _ = filter.parse(line, &ctx);
            later += 1;
            continue;
        }
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
    assert!(both > 1_000, "{both}");
    assert!(
        later < 50_000 / 2,
        "{later} lines share a pid with an earlier one"
    );
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
    o.format = LineFormat::Fail2ban(Fail2banFilterConfig {
        path: fixture_filter(),
        mode: Some("aggressive".into()),
        vars: Vec::new(),
    });
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
    // The format is a clap value: an unknown one is refused with the list of known ones.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'nope' for '--format"),
        "{stderr}"
    );
    assert!(stderr.contains("possible values: auto, sshd"), "{stderr}");
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

/// `sentinel replay --matches auth.log | head` (the README's example): the reader closing the pipe
/// early is no error. Both outputs here (the matches, the JSON summary of some 3,000 alerts) are far
/// more than a pipe holds, so the writes after the close fail with EPIPE; replay exits 0 and says
/// nothing, as ripgrep does.
#[test]
fn a_reader_that_closes_the_pipe_early_is_no_error() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write_sshd(dir.path(), 20_000, 1_000, 200);
    let path = path.to_str().unwrap();
    for args in [["--matches", path], ["--json", path]] {
        let full = command(dir.path())
            .arg("replay")
            .args(args)
            .output()
            .unwrap();
        assert!(full.status.success(), "{args:?}: {full:?}");
        assert!(
            full.stdout.len() > 256 * 1024,
            "{args:?}: {} bytes fit in a pipe: the test would prove nothing",
            full.stdout.len()
        );
        let mut child = command(dir.path())
            .arg("replay")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{args:?}: no output");
        // The reader was dropped with its BufReader: the pipe is closed after one line.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

fn replay_cli(dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = command(dir)
        .arg("replay")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), v, stderr)
}

/// One bad file among several is named with its reason, the others still give their results, exit 1.
#[test]
fn unreadable_files_are_named_and_the_others_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = write_sshd(dir.path(), 5_000, 5, 50);
    let gz = dir.path().join("auth.log.1.gz");
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", good.display(), gz.display()))
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // A gzip cut in the middle: its first lines are replayed, then the error is reported.
    let bytes = std::fs::read(&gz).unwrap();
    let cut = dir.path().join("cut.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.path().join("missing.log");
    let subdir = dir.path().join("a-directory");
    std::fs::create_dir(&subdir).unwrap();
    let (code, v, stderr) = replay_cli(
        dir.path(),
        &[
            good.to_str().unwrap(),
            missing.to_str().unwrap(),
            subdir.to_str().unwrap(),
            cut.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "partial results exit 1: {stderr}");
    let unreadable = v["unreadable"].as_array().unwrap();
    let reason = |name: &Path| {
        unreadable
            .iter()
            .find(|u| u["file"] == name.to_str().unwrap())
            .unwrap_or_else(|| panic!("{name:?} not reported: {unreadable:?}"))["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(unreadable.len(), 3, "{unreadable:?}");
    assert!(reason(&missing).contains("No such file"), "{unreadable:?}");
    assert!(reason(&subdir).contains("is a directory"), "{unreadable:?}");
    assert!(
        reason(&cut).contains("deflate") || reason(&cut).contains("gzip"),
        "{unreadable:?}"
    );
    let cut_lines = unreadable
        .iter()
        .find(|u| u["file"] == cut.to_str().unwrap())
        .unwrap()["lines_read"]
        .as_u64()
        .unwrap();
    assert!(cut_lines > 0 && cut_lines < 5_000, "{cut_lines}");
    // The good file still gives its alerts (5 attackers), plus whatever the cut file's lines add.
    assert_eq!(v["lines"].as_u64().unwrap(), 5_000 + cut_lines);
    assert!(v["alerts_by_scenario"]["ssh_bruteforce"].as_u64().unwrap() >= 5);
    for f in [&missing, &subdir, &cut] {
        assert!(
            stderr.contains(&format!("ERROR: {}", f.display())),
            "{stderr}"
        );
    }

    // All good: exit 0, nothing unreadable.
    let (code, v, _) = replay_cli(dir.path(), &[good.to_str().unwrap(), gz.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert_eq!(v["unreadable"].as_array().unwrap().len(), 0);
    assert_eq!(v["lines"], 10_000);
}

/// Permission denied needs a user other than root (root reads anything): the CLI runs as `nobody`.
#[test]
fn a_file_without_read_permission_is_reported_as_such() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (good, _) = write_sshd(dir.path(), 1_000, 2, 10);
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    let denied = dir.path().join("denied.log");
    std::fs::write(&denied, "secret\n").unwrap();
    std::fs::set_permissions(&denied, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = if nix_is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::BIN);
        c
    } else {
        std::process::Command::new(common::BIN)
    };
    let out = cmd
        .env_clear()
        .current_dir(dir.path())
        .args(["replay", "--json"])
        .arg(&good)
        .arg(&denied)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["lines"], 1_000);
    assert_eq!(v["unreadable"][0]["file"], denied.to_str().unwrap());
    assert!(
        v["unreadable"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{v}"
    );
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Lines longer than the limit are counted in the summary and the JSON.
#[test]
fn lines_cut_for_length_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("long.log");
    let long = "x".repeat((1 << 20) + 10);
    std::fs::write(&log, format!("short line\n{long}\n{long}\nanother\n")).unwrap();
    let (code, v, _) = replay_cli(dir.path(), &[log.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert_eq!(v["lines"], 4);
    assert_eq!(v["lines_too_long"], 2);
    let out = command(dir.path())
        .args(["replay", log.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("cut (too long)") && l.trim_end().ends_with(" 2")),
        "{text}"
    );
}

/// A filter (or an explicit format) that matches none of the lines is a WARNING on stderr and in the JSON.
#[test]
fn a_filter_that_matches_nothing_is_loud() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, _) = write_sshd(dir.path(), 2_000, 2, 10);
    let mail = dir.path().join("mail.log");
    std::fs::write(
        &mail,
        "Mar  9 10:00:00 mx postfix/smtpd[1]: connect from unknown[192.0.2.1]\n\
         Mar  9 10:00:01 mx postfix/smtpd[1]: disconnect from unknown[192.0.2.1]\n",
    )
    .unwrap();
    // The stock postfix filter on an sshd log: 0 of 2000.
    let postfix = Path::new("/etc/fail2ban/filter.d/postfix.conf");
    assert!(
        postfix.is_file(),
        "Debian's fail2ban package must be installed"
    );
    let (code, v, stderr) = replay_cli(
        dir.path(),
        &[
            "--fail2ban-filter",
            postfix.to_str().unwrap(),
            auth.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(v["parsed"], 0);
    let want = "filter postfix matched 0 of 2000 lines";
    assert_eq!(v["warnings"][0], want, "{v}");
    assert!(stderr.contains(&format!("WARNING: {want}")), "{stderr}");
    // The same with --matches (no summary printed): still on stderr.
    let out = command(dir.path())
        .args([
            "replay",
            "--matches",
            "--format",
            "nginx",
            auth.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("WARNING: filter nginx matched 0 of 2000 lines"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Several files: the one the filter misses is named.
    let (_, v, _) = replay_cli(
        dir.path(),
        &[
            "--format",
            "sshd",
            auth.to_str().unwrap(),
            mail.to_str().unwrap(),
        ],
    );
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        warnings[0],
        format!("filter sshd matched 0 of 2 lines in {}", mail.display())
    );
    // A filter that matches something, and `auto`, warn about nothing.
    let (_, v, _) = replay_cli(dir.path(), &["--format", "sshd", auth.to_str().unwrap()]);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
    let (_, v, _) = replay_cli(dir.path(), &[mail.to_str().unwrap()]);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
}

/// `auto` on data no built-in parser recognises at all (binary junk) warns; recognised-but-ignored lines
/// (see above) do not. When no file can be read at all there are no results: exit 2, not 1.
#[test]
fn unrecognised_data_warns_and_nothing_read_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    let bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&junk, &bytes).unwrap();
    let (code, v, stderr) = replay_cli(dir.path(), &[junk.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(v["parsed"], 0);
    let lines = v["lines"].as_u64().unwrap();
    assert!(lines > 0);
    let want = format!(
        "no built-in parser recognised any of {lines} lines (format auto): name the format with --format or use --fail2ban-filter"
    );
    assert_eq!(v["warnings"][0], want.as_str(), "{v}");
    assert!(stderr.contains(&format!("WARNING: {want}")), "{stderr}");

    let missing = dir.path().join("missing.log");
    let (code, v, stderr) = replay_cli(dir.path(), &[missing.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(v["unreadable"].as_array().unwrap().len(), 1);
    let out = command(dir.path())
        .args([
            "replay",
            missing.to_str().unwrap(),
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOTHING could be read"), "{text}");
    // One readable file among them: partial, exit 1.
    let (code, _, _) = replay_cli(
        dir.path(),
        &[missing.to_str().unwrap(), junk.to_str().unwrap()],
    );
    assert_eq!(code, Some(1));
}

/// A filter that cannot be loaded is one clear line: the I/O cause once, and a mode the filter lacks named.
#[test]
fn filter_load_errors_are_said_once_and_name_a_missing_mode() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    std::fs::write(&log, "x\n").unwrap();
    let run = |args: &[&str]| {
        let out = command(dir.path())
            .arg("replay")
            .args(args)
            .arg(&log)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = dir.path().join("nope.conf");
    let (code, stderr) = run(&["--fail2ban-filter", missing.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    let sshd = "/etc/fail2ban/filter.d/sshd.conf";
    assert!(
        Path::new(sshd).is_file(),
        "Debian's fail2ban package must be installed"
    );
    let (code, stderr) = run(&["--fail2ban-filter", sshd, "--mode", "bogus"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("the filter has no mode `bogus`"),
        "{stderr}"
    );
}

/// `--matches` prints a fail2ban filter's own `<F-…>` fields too, not only the built-in ones.
#[test]
fn matches_print_a_filters_own_fields() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("custom.conf");
    std::fs::write(
        &filter,
        "[Definition]\nfailregex = ^login failed from <HOST> tenant <F-TENANT>\\S+</F-TENANT>$\n",
    )
    .unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "login failed from 203.0.113.9 tenant acme\n").unwrap();
    let mut o = opts(vec![log]);
    o.format = LineFormat::Fail2ban(Fail2banFilterConfig {
        path: filter,
        mode: None,
        vars: Vec::new(),
    });
    o.matches = true;
    let mut out = Vec::new();
    run(&o, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("src_ip=203.0.113.9"), "{out}");
    assert!(
        out.contains("f-tenant=acme") || out.contains("tenant=acme"),
        "{out}"
    );
}

/// `--format` and `--fail2ban-filter` both choose the parser: given together, one would be ignored
/// silently, so the pair is a usage error (exit 2) naming both.
#[test]
fn a_format_and_a_fail2ban_filter_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(
        &log,
        "Jan  1 00:00:00 host sshd[1]: Failed password for root from 203.0.113.9 port 22 ssh2\n",
    )
    .unwrap();
    let out = command(dir.path())
        .args(["replay", "--format", "nginx", "--fail2ban-filter"])
        .arg(fixture_filter())
        .arg(&log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--format") && stderr.contains("--fail2ban-filter"),
        "{stderr}"
    );
    // An empty mode is refused by the command line, not taken for a mode named ``.
    let out = command(dir.path())
        .args(["replay", "--mode", "", "--fail2ban-filter"])
        .arg(fixture_filter())
        .arg(&log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'--mode <MODE>'"), "{stderr}");
    // A prefix length is 1..=128: 0 would lump every IPv6 source into one, 200 would mean nothing.
    for bad in ["0", "200"] {
        let out = command(dir.path())
            .args(["replay", "--format", "sshd", "--ipv6-prefix", bad])
            .arg(&log)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--ipv6-prefix"), "{stderr}");
    }
}
