//! A backup taken with `sentinel backup` while the daemon runs is a data directory a daemon starts
//! from: the API keys of the original work there, its `/v1/audit?trace_id=` rows carry their log
//! seqs, and `sentinel audit verify` passes on it, all through real `sentinel` processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, Daemon};
use serde_json::Value;

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_starts_from_a_backup_and_accepts_the_original_keys() {
    let d = Daemon::start(&[]);
    let key = d.key.clone();
    assert!(!key.is_empty(), "{}", d.output());
    let r = d
        .client()
        .post(d.url("/v1/defend"))
        .bearer_auth(&key)
        .header("Content-Type", "application/json")
        .header("X-Trace-Id", "restore-1")
        .body(ATTACK)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The backup, taken while the daemon runs, into `<new>/data`.
    let restored = tempfile::tempdir().unwrap();
    let copy = restored.path().join("data");
    let out = command(d.dir.path())
        .args(["backup", "--data-dir", "data"])
        .arg(&copy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("auth.secret"), "{text}");
    assert!(
        !copy.join("admin.key").exists(),
        "the plaintext key stays out"
    );
    let (_orig, _) = d.stop();

    // A daemon from the copy: the original admin key is accepted.
    let r2 = Daemon::start_in(restored, &[]);
    let status = r2
        .client()
        .get(r2.url("/v1/version"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "{}", r2.output());
    let rows: Value = r2
        .client()
        .get(r2.url("/v1/audit?trace_id=restore-1"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seqs: Vec<u64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().expect("every row has its log seq"))
        .collect();
    assert!(!seqs.is_empty(), "{rows}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "log order: {seqs:?}");
    let (dir, _) = r2.stop();

    let v = command(dir.path())
        .args(["audit", "verify", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}
