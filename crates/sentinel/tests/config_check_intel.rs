//! `sentinel config check` says when investigations are offline and warns of a local feed that does not
//! load (missing, empty) or has malformed lines, through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::command;

#[test]
fn config_check_names_offline_mode_and_broken_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.netset");
    std::fs::write(&good, "# firehol\n192.0.2.0/24\n198.51.100.777\n").unwrap();
    std::fs::write(dir.path().join("empty.txt"), "").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "intel:\n  feeds:\n    \
         - { name: level1, path: good.netset, format: list, verdict: malicious, score: 90 }\n    \
         - { name: gone, path: missing.txt, format: list, verdict: malicious, score: 90 }\n    \
         - { name: blank, path: empty.txt, format: list, verdict: malicious, score: 90 }\n",
    )
    .unwrap();
    let out = command(dir.path())
        .args(["config", "check", "--data-dir", "data"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Warnings, not errors: the daemon starts with these feeds.
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("intel: offline (no provider key is set)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("WARNING: `intel.feeds[0]` (level1): 1 malformed line(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("WARNING: `intel.feeds[1]` (gone): cannot read"),
        "{stdout}"
    );
    assert!(
        stdout.contains("WARNING: `intel.feeds[2]` (blank):")
            && stdout.contains("lists no address"),
        "{stdout}"
    );

    // With a key, not offline.
    let out = command(dir.path())
        .args(["config", "check", "--data-dir", "data"])
        .env("SENTINEL__INTEL__ABUSEIPDB__KEY", "k")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("intel: offline"), "{stdout}");
}
