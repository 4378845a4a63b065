//! The JSON process log's hash chain, end to end: a real `sentinel run` writes its log, then the real
//! `sentinel audit verify-logs` passes on it, and names the line after one line is deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use std::process::Output;
use std::time::Duration;

fn verify_logs(dir: &std::path::Path, file: &std::path::Path) -> Output {
    common::command(dir)
        .args(["audit", "verify-logs"])
        .arg(file)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_real_daemon_log_verifies_and_a_deleted_line_is_named() {
    // Small blocks so a short run seals several; debug level for more lines.
    let mut d = Daemon::start(&[
        ("SENTINEL__LOGGING__CHAIN_EVERY", "4"),
        ("SENTINEL__LOGGING__LEVEL", "debug"),
    ]);
    for _ in 0..3 {
        common::blocking_get_status(&d.url("/ready"));
    }
    let s = d.terminate(Duration::from_secs(10));
    assert!(s.success(), "{s}\n{}", d.output());
    let log = d.output();

    // Every JSON line carries `chain`, as its last member.
    let json: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(json.len() > 8, "{log}");
    for l in &json {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let chain = v["chain"]
            .as_str()
            .unwrap_or_else(|| panic!("no chain: {l}"));
        assert!(l.ends_with(&format!(",\"chain\":\"{chain}\"}}")), "{l}");
    }
    let checkpoints = json
        .iter()
        .filter(|l| l.contains("\"evt\":\"log_chain_checkpoint\""))
        .count();
    assert!(checkpoints >= 2, "{log}");
    assert!(json.last().unwrap().contains("\"final\":true"), "{log}");

    let dir = d.dir.path().to_path_buf();
    let file = dir.join("sentinel.log");
    std::fs::write(&file, &log).unwrap();
    let ok = verify_logs(&dir, &file);
    assert_eq!(ok.status.code(), Some(0), "{}\n{log}", text(&ok));
    let out = text(&ok);
    assert!(out.contains(": intact: "), "{out}");
    assert!(out.contains("clean shutdown"), "{out}");

    let lines: Vec<&str> = log.lines().collect();
    // A rotated file (the second half): refused as it is, accepted with --continued.
    let tail = lines[lines.len() / 2..].join("\n") + "\n";
    let rotated = dir.join("sentinel.log.2");
    std::fs::write(&rotated, tail).unwrap();
    let strict = verify_logs(&dir, &rotated);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    assert!(
        text(&strict).contains("does not start a run"),
        "{}",
        text(&strict)
    );
    let cont = common::command(&dir)
        .args(["audit", "verify-logs", "--continued"])
        .arg(&rotated)
        .output()
        .unwrap();
    assert_eq!(cont.status.code(), Some(0), "{}", text(&cont));
    assert!(
        text(&cont).contains("continues an earlier file"),
        "{}",
        text(&cont)
    );

    // Delete one chained line in the middle of a block: the line now in its place is named.
    let victim = lines
        .iter()
        .enumerate()
        .skip(lines.len() / 3)
        .find(|(i, l)| {
            l.starts_with('{')
                && !l.contains("log_chain_checkpoint")
                && !lines[i + 1].contains("log_chain_checkpoint")
                && lines[i + 1].starts_with('{')
        })
        .map(|(i, _)| i)
        .unwrap();
    let mut cut: Vec<&str> = lines.clone();
    cut.remove(victim);
    let mut tampered = cut.join("\n");
    tampered.push('\n');
    std::fs::write(&file, tampered).unwrap();
    let bad = verify_logs(&dir, &file);
    let out = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("FAILED at line {}: 1 line(s) removed", victim + 1)),
        "victim {}: {out}",
        victim + 1
    );
}

#[test]
fn chain_every_0_writes_plain_lines_and_verify_logs_says_there_is_no_chain() {
    let mut d = Daemon::start(&[("SENTINEL__LOGGING__CHAIN_EVERY", "0")]);
    let s = d.terminate(Duration::from_secs(10));
    assert!(s.success(), "{s}\n{}", d.output());
    let log = d.output();
    assert!(log.lines().any(|l| l.starts_with('{')), "{log}");
    assert!(!log.contains("\"chain\":"), "{log}");
    let dir = d.dir.path().to_path_buf();
    let file = dir.join("plain.log");
    std::fs::write(&file, &log).unwrap();
    let out = verify_logs(&dir, &file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no chained line"), "{}", text(&out));
    let missing = verify_logs(&dir, &dir.join("nope.log"));
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

/// A whole run removed from a shipped log file leaves a file whose chain is intact (each run starts
/// its own); the seals the audit log anchored show it: `verify-logs --anchors` fails naming one.
#[test]
fn a_removed_run_is_found_by_the_seals_the_audit_log_anchored() {
    let env = [
        ("SENTINEL__LOGGING__CHAIN_EVERY", "4"),
        ("SENTINEL__LOGGING__LEVEL", "debug"),
    ];
    let d = Daemon::start(&env);
    for _ in 0..3 {
        common::blocking_get_status(&d.url("/ready"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (dir, first) = d.stop();
    let d = Daemon::start_in(dir, &env);
    for _ in 0..3 {
        common::blocking_get_status(&d.url("/ready"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (dir, second) = d.stop();
    let file = dir.path().join("sentinel.log");
    std::fs::write(&file, format!("{first}{second}")).unwrap();
    let anchors = |f: &std::path::Path| {
        common::command(dir.path())
            .args(["audit", "verify-logs", "--anchors", "--data-dir", "data"])
            .arg(f)
            .output()
            .unwrap()
    };
    let o = anchors(&file);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("every block seal the audit log anchored"),
        "{}",
        text(&o)
    );

    // The first run's lines gone: the chain alone does not tell.
    let cut = dir.path().join("cut.log");
    std::fs::write(&cut, &second).unwrap();
    let o = verify_logs(dir.path(), &cut);
    assert!(o.status.success(), "{}", text(&o));
    let o = anchors(&cut);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("were removed"), "{}", text(&o));
}
