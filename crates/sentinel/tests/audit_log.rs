//! The Merkle log is the running daemon's audit trail, through a real `sentinel run`: what the pipeline
//! and the operators do lands in `<data>/audit` and in the store's index (`/v1/audit?trace_id=` rows
//! carry `seq`); inclusion proofs, consistency proofs and checkpoints from the API verify client-side
//! with the verifier key in `<data>/audit/key.pub`; the log reopens after a restart and grows on,
//! consistent with what was signed before; index rows lost while stopped are added again from the
//! log at the next start; `/metrics` shows the log at work; a damaged log stops start-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, eventually, Daemon};
use sentinel_audit::format::LogEntry;
use sentinel_audit::merkle::{self, Hash};
use sentinel_audit::note::{SignedCheckpoint, Verifier};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

fn unhex(s: &str) -> Hash {
    assert_eq!(s.len(), 64, "{s}");
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect()
}

/// The verifier key the daemon wrote, read from the file (not from the API).
fn verifier(data: &Path) -> Verifier {
    let text = std::fs::read_to_string(data.join("audit/key.pub")).unwrap();
    Verifier::parse(text.trim()).unwrap()
}

async fn get(d: &Daemon, key: Option<&str>, path: &str) -> reqwest::Response {
    let mut r = d.client().get(d.url(path));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

async fn get_json(d: &Daemon, key: &str, path: &str) -> Value {
    let r = get(d, Some(key), path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn audit_rows(d: &Daemon, trace: &str) -> Vec<Value> {
    get_json(d, &d.key, &format!("/v1/audit?trace_id={trace}"))
        .await
        .as_array()
        .unwrap()
        .clone()
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

/// The first log line with this `evt`.
fn log_line(output: &str, evt: &str) -> Option<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["evt"] == evt)
}

/// Checks the inclusion proof of record `seq` from the API: the checkpoint's signature with `v`, the
/// leaf recomputed from the entry, the path to the signed root. Answers the entry and the checkpoint.
async fn check_inclusion(
    d: &Daemon,
    key: &str,
    v: &Verifier,
    seq: u64,
) -> (LogEntry, SignedCheckpoint) {
    let p = get_json(d, key, &format!("/v1/audit/proof/{seq}")).await;
    assert_eq!(p["seq"], seq);
    let cp = v.verify(p["checkpoint"].as_str().unwrap()).unwrap();
    let size = p["tree_size"].as_u64().unwrap();
    assert_eq!(cp.checkpoint.size, size);
    assert!(size > seq);
    let entry: LogEntry = serde_json::from_value(p["entry"].clone()).unwrap();
    assert_eq!(entry.seq, seq);
    let leaf = merkle::leaf_hash(&entry.to_payload());
    assert_eq!(leaf, unhex(p["leaf_hash"].as_str().unwrap()));
    let proof = hashes(&p["proof"]);
    merkle::verify_inclusion(seq, size, &leaf, &proof, &cp.checkpoint.root).unwrap();
    // The same proof does not hold for another leaf or another position.
    let mut other = leaf;
    other[0] ^= 1;
    assert!(merkle::verify_inclusion(seq, size, &other, &proof, &cp.checkpoint.root).is_err());
    if size > 1 {
        let elsewhere = (seq + 1) % size;
        assert!(
            merkle::verify_inclusion(elsewhere, size, &leaf, &proof, &cp.checkpoint.root).is_err()
        );
    }
    (entry, cp)
}

/// Checks the consistency proof between two signed checkpoints from the API.
async fn check_consistency(
    d: &Daemon,
    v: &Verifier,
    old: &SignedCheckpoint,
    new: &SignedCheckpoint,
) {
    let (m, n) = (old.checkpoint.size, new.checkpoint.size);
    let c = get_json(d, &d.key, &format!("/v1/audit/consistency?from={m}&to={n}")).await;
    assert_eq!((c["from"].as_u64(), c["to"].as_u64()), (Some(m), Some(n)));
    let proof = hashes(&c["proof"]);
    merkle::verify_consistency(m, n, &proof, &old.checkpoint.root, &new.checkpoint.root).unwrap();
    if let Some(text) = c["to_checkpoint"].as_str() {
        assert_eq!(v.verify(text).unwrap().checkpoint.root, new.checkpoint.root);
    }
    if m > 0 && m < n {
        let mut wrong = old.checkpoint.root;
        wrong[31] ^= 1;
        assert!(merkle::verify_consistency(m, n, &proof, &wrong, &new.checkpoint.root).is_err());
    }
}

async fn latest_checkpoint(d: &Daemon, key: &str, v: &Verifier) -> SignedCheckpoint {
    let r = get(d, Some(key), "/v1/audit/checkpoint").await;
    assert_eq!(r.status(), 200);
    v.verify(&r.text().await.unwrap()).unwrap()
}

/// The value of sample `series` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics(d: &Daemon) -> String {
    let r = get(d, Some(&d.key), "/metrics").await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_keeps_its_audit_trail_in_the_merkle_log_across_restarts() {
    let d = Daemon::start(&[]);
    let data = d.data();
    let v = verifier(&data);
    let opened = eventually(Duration::from_secs(5), || async {
        log_line(&d.output(), "audit_log_open")
    })
    .await;
    assert_eq!(opened["verifier_key"], v.to_text());
    assert!(opened["origin"].as_str().unwrap().starts_with("sentinel/"));
    assert_eq!(v.name(), opened["origin"].as_str().unwrap());
    let trace = run_trace(&d).await;
    let before = metrics(&d).await;

    // The run's own records (configuration, admin key, start) are in the log, in order from 0.
    let own = audit_rows(&d, &trace).await;
    let seqs: Vec<u64> = own.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2], "{own:#?}");

    // An alert: its audit records (queued) reach the index with their seq.
    let r = d
        .client()
        .post(d.url("/v1/defend"))
        .bearer_auth(&d.key)
        .header("content-type", "application/json")
        .header("x-trace-id", "audit-log-0001")
        .body(ATTACK)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let alert_id = r.json::<Value>().await.unwrap()["alert_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows = eventually(Duration::from_secs(5), || async {
        let v = audit_rows(&d, "audit-log-0001").await;
        (v.len() == 5 && v.iter().all(|r| r["seq"].is_u64())).then_some(v)
    })
    .await;
    let raised = rows.iter().find(|r| r["kind"] == "alert_raised").unwrap();
    assert_eq!(raised["subject_id"], alert_id.as_str());
    let raised_seq = raised["seq"].as_u64().unwrap();

    // A manual decision (the committed path): its row has its seq as soon as the answer comes.
    let r = d
        .client()
        .post(d.url("/v1/decisions"))
        .bearer_auth(&d.key)
        .header("x-trace-id", "audit-log-0002")
        .json(&json!({"ip": "198.51.100.20", "duration": "1h", "reason": "audit log test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let decided = audit_rows(&d, "audit-log-0002").await;
    assert_eq!(decided.len(), 1, "{decided:#?}");
    assert_eq!(decided[0]["kind"], "operator");
    let decided_seq = decided[0]["seq"].as_u64().expect("seq set at the answer");

    // The proofs verify client-side against checkpoints signed with the key in key.pub.
    let (entry, cp) = check_inclusion(&d, &d.key, &v, raised_seq).await;
    assert_eq!(entry.subject_id, alert_id);
    assert_eq!(
        entry.content_hash.as_deref(),
        raised["content_hash"].as_str()
    );
    let (entry, cp2) = check_inclusion(&d, &d.key, &v, decided_seq).await;
    assert_eq!(entry.trace_id.as_str(), "audit-log-0002");
    let latest = latest_checkpoint(&d, &d.key, &v).await;
    assert!(latest.checkpoint.size > decided_seq);
    assert!(cp2.checkpoint.size >= cp.checkpoint.size);
    check_consistency(&d, &v, &cp, &latest).await;
    // JSON form of the checkpoint names the same key.
    let j = get_json(&d, &d.key, "/v1/audit/checkpoint?format=json").await;
    assert_eq!(j["verifier_key"], v.to_text());
    // No key: 401 on every audit route.
    for path in [
        "/v1/audit/checkpoint",
        "/v1/audit/proof/0",
        "/v1/audit/consistency?from=0",
        "/v1/audit/records",
    ] {
        assert_eq!(get(&d, None, path).await.status(), 401, "{path}");
    }

    // The log's counters move with the activity, read from the log at each scrape.
    let after = metrics(&d).await;
    for name in [
        "sentinel_audit_appends_total",
        "sentinel_audit_batches_total",
        "sentinel_audit_fsyncs_total",
        "sentinel_audit_bytes_total",
        "sentinel_audit_tree_size",
    ] {
        let (b, a) = (
            sample(&before, name).unwrap(),
            sample(&after, name).unwrap(),
        );
        assert!(a > b, "{name}: {b} then {a}\n{after}");
    }
    assert!(
        sample(&after, "sentinel_audit_checkpoints_total").unwrap()
            >= sample(&before, "sentinel_audit_checkpoints_total").unwrap() + 1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "sentinel_audit_checkpoint_size"),
        Some(latest.checkpoint.size as f64)
    );
    assert_eq!(sample(&after, "sentinel_audit_failures_total"), Some(0.0));
    assert_eq!(
        sample(&after, "sentinel_audit_index_failures_total"),
        Some(0.0)
    );

    // Stopped: a final checkpoint covers everything, including the stop record.
    let (dir, out) = d.stop();
    let closed = log_line(&out, "audit_log_closed").expect(&out);
    let final_size = closed["size"].as_u64().unwrap();
    assert!(final_size > decided_seq + 1, "{closed}");

    // While stopped: index rows go missing (a crash between the log and the index), and a viewer
    // key is added.
    let db = data.join("sentinel.db");
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    let lost = sqlx::query("DELETE FROM audit WHERE log_seq IN (?, ?, 1)")
        .bind(raised_seq as i64)
        .bind(decided_seq as i64)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(lost.rows_affected(), 3);
    sqlx::Connection::close(conn).await.unwrap();
    let store = sentinel_store::Store::open(&db).await.unwrap();
    let auth = sentinel_api::auth::Auth::new(
        sentinel_api::auth::load_or_create_secret(&data.join("auth.secret")).unwrap(),
        false,
    );
    let viewer = sentinel_api::auth::Auth::generate_key();
    store
        .insert_api_key(&sentinel_store::ApiKeyRow {
            id: "01VIEWERKEY".into(),
            name: "auditor".into(),
            role: "viewer".into(),
            hash: auth.hash(&viewer),
            created: sentinel_core::Timestamp::now(),
            expires: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    store.close().await;

    // Restart: the log reopens where it was, the index is caught up, the log grows on.
    let d = Daemon::start_in(dir, &[]);
    assert_eq!(verifier(&d.data()), v, "the key was kept");
    let caught = eventually(Duration::from_secs(5), || async {
        log_line(&d.output(), "audit_index_caught_up")
    })
    .await;
    assert_eq!(caught["added"], 3, "{caught}");
    let opened = log_line(&d.output(), "audit_log_open").unwrap();
    assert_eq!(opened["size"], final_size);
    assert_eq!(opened["checkpoint_size"], final_size);
    let back = audit_rows(&d, "audit-log-0002").await;
    assert_eq!(back[0]["seq"], decided_seq);
    let back = audit_rows(&d, "audit-log-0001").await;
    assert!(back.iter().any(|r| r["seq"] == raised_seq), "{back:#?}");
    let second = run_trace(&d).await;
    let started = audit_rows(&d, &second).await;
    let first_new = started[0]["seq"].as_u64().unwrap();
    assert_eq!(first_new, final_size, "{started:#?}");

    // The viewer reads proofs and checkpoints; what it gets verifies, and the new tree is consistent
    // with what was signed before the restart.
    check_inclusion(&d, &viewer, &v, raised_seq).await;
    let (entry, _) = check_inclusion(&d, &viewer, &v, first_new).await;
    assert_eq!(entry.kind, sentinel_core::AuditKind::ConfigLoaded);
    let now = latest_checkpoint(&d, &viewer, &v).await;
    assert!(now.checkpoint.size > final_size);
    check_consistency(&d, &v, &latest, &now).await;
    let page = get_json(&d, &viewer, "/v1/audit/records?from=0&limit=1000").await;
    let recs = page["records"].as_array().unwrap();
    assert!(recs.len() as u64 >= now.checkpoint.size);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["seq"], i as u64);
    }
    let (dir, _) = d.stop();

    // What the daemon wrote over two runs passes the offline verifier.
    let out = command(dir.path())
        .args(["audit", "verify", "--data-dir", "data"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A log damaged in the middle (not a torn tail) stops start-up with the log's own words, and is left
/// as it was: no new log is started over it.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_audit_log_stops_start_up() {
    let d = Daemon::start(&[]);
    let data = d.data();
    for i in 0..3 {
        let r = d
            .client()
            .post(d.url("/v1/defend"))
            .bearer_auth(&d.key)
            .header("content-type", "application/json")
            .body(ATTACK.replace("203.0.113.7", &format!("203.0.113.{}", 20 + i)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (dir, out) = d.stop();
    let size = log_line(&out, "audit_log_closed").unwrap()["size"]
        .as_u64()
        .unwrap();
    assert!(size > 10);
    let seg = data.join(format!(
        "audit/segments/{}",
        sentinel_audit::format::segment_name(0)
    ));
    let mut bytes = std::fs::read(&seg).unwrap();
    // A byte of the second record's payload (the first frame starts after the 16-byte header).
    let first_len = u32::from_le_bytes(bytes[24..28].try_into().unwrap()) as usize;
    let at = 16 + 16 + first_len + 16 + 10;
    bytes[at] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();

    let out = command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("cannot open the audit log"), "{text}");
    assert!(text.contains("damaged"), "{text}");
    assert!(!data.join("api.addr").exists());
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "the log was changed");
}

/// An audit directory put back from an older copy (a rollback) while the store remembers newer
/// records: start-up refuses to append over it, saying so, and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_audit_log_stops_start_up() {
    let d = Daemon::start(&[]);
    let data = d.data();
    let (dir, _) = d.stop();
    let old = dir.path().join("audit-old");
    copy_dir(&data.join("audit"), &old);

    let d = Daemon::start_in(dir, &[]);
    for i in 0..3 {
        let r = d
            .client()
            .post(d.url("/v1/defend"))
            .bearer_auth(&d.key)
            .header("content-type", "application/json")
            .body(ATTACK.replace("203.0.113.7", &format!("203.0.113.{}", 40 + i)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (dir, _) = d.stop();
    std::fs::remove_dir_all(data.join("audit")).unwrap();
    std::fs::rename(&old, data.join("audit")).unwrap();
    let before = std::fs::read(data.join("audit/checkpoints")).unwrap();

    let mut child = command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A daemon that starts anyway would run until stopped: give it 30 s, then fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon started on a rolled-back audit log");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("rolled back or restored from an older copy"),
        "{text}"
    );
    assert!(!data.join("api.addr").exists());
    assert_eq!(
        std::fs::read(data.join("audit/checkpoints")).unwrap(),
        before,
        "the rolled-back log was written to"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Requests a witness received: (timestamp header, signature header, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver on loopback, keeping every request.
async fn witness_receiver() -> (String, Received) {
    let got: Received = Default::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/witness",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let keep = keep.clone();
            async move {
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                keep.lock().unwrap().push((
                    h("x-sentinel-timestamp"),
                    h("x-sentinel-signature"),
                    body,
                ));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/witness"), got)
}

/// With `audit.witness_url` set, the signed checkpoints reach the witness (HMAC-signed, verifiable
/// with key.pub), the final one of a clean stop included; and the process log's chain seals are
/// anchored in the audit log, one `log_chain` record per sealed block, its content hash the seal the
/// log line carries.
#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_reach_the_witness_and_log_chain_seals_are_anchored() {
    const SECRET: &str = "witness-test-secret";
    let (url, got) = witness_receiver().await;
    let d = Daemon::start(&[
        ("SENTINEL__AUDIT__WITNESS_URL", url.as_str()),
        ("SENTINEL__AUDIT__WITNESS_SECRET", SECRET),
        ("SENTINEL__AUDIT__CHECKPOINT_EVERY", "2"),
        ("SENTINEL__LOGGING__CHAIN_EVERY", "2"),
    ]);
    let v = verifier(&d.data());
    let trace = run_trace(&d).await;
    let r = d
        .client()
        .post(d.url("/v1/defend"))
        .bearer_auth(&d.key)
        .header("content-type", "application/json")
        .body(ATTACK)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Seals of blocks logged before and after the log opened are anchored in the run's trace.
    let anchors = eventually(Duration::from_secs(5), || async {
        let rows: Vec<Value> = audit_rows(&d, &trace)
            .await
            .into_iter()
            .filter(|r| r["kind"] == "log_chain")
            .collect();
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    let out = d.output();
    let seals: std::collections::HashMap<String, String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["evt"] == "log_chain_checkpoint")
        .map(|l| {
            (
                format!("log_chain/{}", l["block"]),
                l["chain"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for a in &anchors {
        let subject = a["subject_id"].as_str().unwrap();
        assert_eq!(
            seals.get(subject).map(String::as_str),
            a["content_hash"].as_str(),
            "{a}\n{out}"
        );
        assert!(a["seq"].is_u64(), "{a}");
    }
    let text = metrics(&d).await;
    let sent = eventually(Duration::from_secs(5), || async {
        let text = metrics(&d).await;
        sample(&text, "sentinel_audit_witness_sent_total").filter(|&n| n >= 1.0)
    })
    .await;
    assert!(sent >= 1.0, "{text}");

    let (_dir, out) = d.stop();
    let final_size = log_line(&out, "audit_log_closed").unwrap()["size"]
        .as_u64()
        .unwrap();
    let got = got.lock().unwrap().clone();
    assert!(!got.is_empty(), "{out}");
    let mut last = 0;
    for (ts, sig, body) in &got {
        let cp = v.verify(body).unwrap();
        assert!(cp.checkpoint.size >= last, "sizes go back: {got:?}");
        last = cp.checkpoint.size;
        let ts: u64 = ts.parse().unwrap();
        assert_eq!(
            *sig,
            sentinel_audit::witness::signature(SECRET.as_bytes(), ts, body.as_bytes())
        );
    }
    assert_eq!(
        last, final_size,
        "the final checkpoint reached the witness:\n{out}"
    );
}

/// The log keeps the name it was created with: with `audit.origin` not set (the host may have been
/// renamed since) it opens under its key's name; a configured origin that differs from the key's name
/// stops start-up, and the key is not replaced.
#[tokio::test(flavor = "multi_thread")]
async fn the_log_keeps_its_name_and_a_different_origin_is_refused() {
    let d = Daemon::start(&[("SENTINEL__AUDIT__ORIGIN", "sentinel/first-name")]);
    let v = verifier(&d.data());
    assert_eq!(v.name(), "sentinel/first-name");
    let (dir, _) = d.stop();

    let d = Daemon::start_in(dir, &[]);
    let opened = log_line(&d.output(), "audit_log_open").unwrap();
    assert_eq!(opened["origin"], "sentinel/first-name");
    let cp = latest_checkpoint(&d, &d.key, &v).await;
    assert_eq!(cp.checkpoint.origin, "sentinel/first-name");
    let (dir, _) = d.stop();

    let out = command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .env("SENTINEL__AUDIT__ORIGIN", "sentinel/other-name")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("cannot open the audit log"), "{text}");
    assert!(text.contains("sentinel/other-name"), "{text}");
    assert_eq!(
        verifier(&dir.path().join("data")),
        v,
        "the key was replaced"
    );
}

fn sqlite(db: &Path, sql: &str) -> String {
    let o = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn verify_store(dir: &Path) -> (Option<i32>, String) {
    let o = command(dir)
        .args(["audit", "verify", "--store", "--data-dir", "data"])
        .output()
        .unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Whoever can write the data directory can edit the SQLite store without touching the log:
/// `audit verify --store` recomputes every noted row's content hash and compares the audit index
/// with the log, naming what was edited.
#[tokio::test(flavor = "multi_thread")]
async fn verify_store_names_an_edited_alert_row_action_row_or_index_row() {
    let d = Daemon::start(&[]);
    for i in 0..3 {
        let r = d
            .client()
            .post(d.url("/v1/defend"))
            .bearer_auth(&d.key)
            .header("content-type", "application/json")
            .header("x-trace-id", format!("store-check-{i}"))
            .body(ATTACK.replace("203.0.113.7", &format!("203.0.113.{}", 10 + i)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    eventually(Duration::from_secs(5), || async {
        (audit_rows(&d, "store-check-2").await.len() >= 5).then_some(())
    })
    .await;
    let (dir, _) = d.stop();
    let db = dir.path().join("data/sentinel.db");
    let (code, out) = verify_store(dir.path());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("store:"), "{out}");
    assert!(!out.contains(" 0 alert/investigation/plan row(s)"), "{out}");
    assert!(!out.contains(" 0 action(s)"), "{out}");
    let pristine = std::fs::read(&db).unwrap();
    let restore = || {
        std::fs::write(&db, &pristine).unwrap();
        let _ = std::fs::remove_file(dir.path().join("data/sentinel.db-wal"));
        let _ = std::fs::remove_file(dir.path().join("data/sentinel.db-shm"));
    };

    // An alert row edited (its score lowered): named by the alert and its log record.
    let alert = sqlite(&db, "SELECT id FROM alerts ORDER BY id LIMIT 1");
    let alert = alert.trim();
    sqlite(
        &db,
        &format!("UPDATE alerts SET body = replace(body, '203.0.113', '198.51.100') WHERE id = '{alert}'"),
    );
    let (code, out) = verify_store(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("the alerts row {alert} hashes to")),
        "{out}"
    );
    restore();
    assert_eq!(verify_store(dir.path()).0, Some(0));

    // An action row edited: its hash is none of the states the log recorded.
    sqlite(
        &db,
        "UPDATE actions SET body = replace(body, '203.0.113', '198.51.100') \
         WHERE id = (SELECT id FROM actions LIMIT 1)",
    );
    let (code, out) = verify_store(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the actions row") && out.contains("none of the"),
        "{out}"
    );
    restore();

    // The audit index edited (a summary rewritten): named by its record.
    let seq = sqlite(
        &db,
        "SELECT log_seq FROM audit WHERE kind = 'alert_raised' LIMIT 1",
    );
    let seq = seq.trim();
    sqlite(
        &db,
        &format!("UPDATE audit SET summary = 'nothing' WHERE log_seq = {seq}"),
    );
    let (code, out) = verify_store(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "audit index row for record {seq} differs from the log in its summary"
        )),
        "{out}"
    );
    restore();

    // An index row pointing past the log.
    sqlite(
        &db,
        "UPDATE audit SET log_seq = 999999 WHERE log_seq = (SELECT MAX(log_seq) FROM audit)",
    );
    let (code, out) = verify_store(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("row for record 999999"), "{out}");
}

/// `verify --store` on a running daemon that keeps recording: rows indexed and actions changed
/// while it reads are not taken for edits (the index is bounded before the log is read, and an
/// action's newer state is looked for in the log appended since).
#[tokio::test(flavor = "multi_thread")]
async fn verify_store_on_a_daemon_that_keeps_recording_passes() {
    let d = Daemon::start(&[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut posters = Vec::new();
    for k in 0..4u32 {
        let (client, url, key, stop) = (
            d.client(),
            d.url("/v1/decisions"),
            d.key.clone(),
            stop.clone(),
        );
        posters.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let _ = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"ip": format!("198.18.{k}.{}", i % 250 + 1), "duration": "1h"}))
                    .send()
                    .await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dir = d.dir.path().to_path_buf();
    for _ in 0..5 {
        let dir = dir.clone();
        let (code, out) = tokio::task::spawn_blocking(move || verify_store(&dir))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "{out}");
        assert!(!out.contains("index lacks"), "{out}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in posters {
        p.await.unwrap();
    }
    let _ = d.stop();
}
