//! The audit records of Sentinel itself, through a real `sentinel run`: each run notes the
//! configuration it loaded (hash of the file's bytes, or of the embedded defaults), the admin key made
//! on first start (id, name, role; never the key), its start and its clean stop, all in the run's
//! trace; `/v1/audit` answers each record with `seq` and `content_hash`; and an alert's audit record
//! carries the hash of the alert's row as stored. Hashes are checked with `sha256sum`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

const CONFIG: &str = "# audit test\npolicy:\n  mode: observe\n";

/// SHA-256 hex of `bytes`, by the `sha256sum` program.
fn sha256sum(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The run's trace id, from its `evt=ready` log line.
async fn run_trace(d: &Daemon) -> String {
    eventually(Duration::from_secs(5), || async {
        d.output()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["evt"] == "ready")
            .and_then(|v| v["run_trace"].as_str().map(str::to_owned))
    })
    .await
}

async fn audit(d: &Daemon, trace: &str) -> Vec<Value> {
    let r = d
        .client()
        .get(d.url(&format!("/v1/audit?trace_id={trace}")))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Vec<Value>>().await.unwrap()
}

fn kinds(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_run_notes_its_configuration_key_start_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let yml = dir.path().join("sentinel.yml");
    std::fs::write(&yml, CONFIG).unwrap();
    let d = Daemon::start_in(dir, &[]);
    let trace = run_trace(&d).await;

    // Answered once /ready is: the configuration, the admin key and the start are committed.
    let records = audit(&d, &trace).await;
    assert_eq!(
        kinds(&records),
        ["config_loaded", "key_created", "started"],
        "{records:#?}"
    );
    for r in &records {
        assert!(r["seq"].is_u64(), "every record is in the audit log: {r}");
        assert_eq!(r["trace_id"], trace.as_str());
    }
    let config = &records[0];
    assert_eq!(config["content_hash"], sha256sum(CONFIG.as_bytes()));
    let canonical = std::fs::canonicalize(&yml).unwrap();
    let summary = config["summary"].as_str().unwrap();
    assert!(
        summary.contains(&canonical.display().to_string()),
        "{summary}"
    );
    assert!(
        summary.contains("effective configuration sha256 "),
        "{summary}"
    );
    let key = &records[1];
    assert!(key["content_hash"].is_null());
    assert!(key["summary"].as_str().unwrap().contains("admin"), "{key}");
    let started = records[2]["summary"].as_str().unwrap();
    assert!(
        started.contains(&format!("pid {}", d.child.id())) && started.contains("mode observe"),
        "{started}"
    );

    // An alert's audit record carries the hash of the alert as stored.
    let r = d
        .client()
        .post(d.url("/v1/defend"))
        .bearer_auth(&d.key)
        .header("content-type", "application/json")
        .header("x-trace-id", "audit-hash-0001")
        .body(ATTACK)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    let alert_id = out["alert_id"].as_str().unwrap().to_owned();
    let pipeline = eventually(Duration::from_secs(5), || async {
        let v = audit(&d, "audit-hash-0001").await;
        (v.len() == 5).then_some(v)
    })
    .await;
    let raised = pipeline
        .iter()
        .find(|r| r["kind"] == "alert_raised")
        .unwrap();
    assert_eq!(raised["subject_id"], alert_id.as_str());
    assert!(raised["seq"].is_u64(), "{raised}");
    for r in &pipeline {
        let hashed = r["content_hash"].is_string();
        assert_eq!(hashed, r["kind"] != "notice_sent", "{r}");
    }

    let (dir, logs) = d.stop();
    let data = dir.path().join("data");
    let store = sentinel_store::Store::open(&data.join("sentinel.db"))
        .await
        .unwrap();
    let rows = store
        .audit_for_trace(&sentinel_core::TraceId::parse(&trace).unwrap())
        .await
        .unwrap();
    let stored: Vec<&str> = rows.iter().map(|r| r.record.kind.as_str()).collect();
    assert_eq!(
        stored,
        ["config_loaded", "key_created", "started", "stopped"],
        "{logs}"
    );
    let keys = store.api_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(rows[1].record.subject_id, keys[0].id);
    let admin_key = std::fs::read_to_string(data.join("admin.key")).unwrap();
    for r in &rows {
        let text = serde_json::to_string(r).unwrap();
        assert!(
            !text.contains(admin_key.trim()),
            "the key is quoted: {text}"
        );
        assert!(!text.contains(&keys[0].hash), "its hash is quoted: {text}");
    }
    assert!(rows[3].record.summary.contains("stopped"), "{:?}", rows[3]);
    store.close().await;
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        data.join("sentinel.db").display()
    ))
    .await
    .unwrap();
    let (body,): (String,) = sqlx::query_as("SELECT body FROM alerts WHERE id = ?")
        .bind(&alert_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(raised["content_hash"], sha256sum(body.as_bytes()));
    sqlx::Connection::close(conn).await.unwrap();

    // The next run, without the file: the embedded defaults are noted, and no key is made.
    std::fs::remove_file(&yml).unwrap();
    let d = Daemon::start_in(dir, &[]);
    let second = run_trace(&d).await;
    assert_ne!(second, trace);
    let records = audit(&d, &second).await;
    assert_eq!(
        kinds(&records),
        ["config_loaded", "started"],
        "{records:#?}"
    );
    assert_eq!(
        records[0]["content_hash"],
        sha256sum(sentinel_config::DEFAULT_YAML.as_bytes())
    );
    assert!(
        records[0]["summary"]
            .as_str()
            .unwrap()
            .contains("the embedded defaults"),
        "{}",
        records[0]
    );
    d.stop();
}
