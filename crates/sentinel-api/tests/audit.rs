//! The Merkle audit log over HTTP, checked the way an outside client would: every proof the API gives
//! is verified here with the RFC 9162 verifiers against a checkpoint whose signature is checked with
//! the log's verifier key, never by trusting the API's own word.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{get, harness, send};
use sentinel_audit::merkle::{verify_consistency, verify_inclusion, Hash};
use sentinel_audit::note::Verifier;
use sentinel_audit::{AuditSettings, Log, LogTask};
use sentinel_core::{AuditKind, AuditRecord, Timestamp, TraceId};
use serde_json::Value;

fn record(i: u64) -> AuditRecord {
    AuditRecord {
        ts: Timestamp::from_millis(1_764_476_400_000 + i as i64),
        kind: AuditKind::AlertRaised,
        subject_id: format!("alert-{i}"),
        trace_id: TraceId::new(),
        summary: format!("ssh brute force {i} on 203.0.113.{}", i % 250),
        content_hash: Some(format!("{i:064x}")),
    }
}

fn hash(v: &Value) -> Hash {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn proof(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(hash).collect()
}

struct Fixture {
    app: axum::Router,
    h: common::Harness,
    log: Log,
    task: LogTask,
    verifier: Verifier,
    _dir: tempfile::TempDir,
}

async fn fixture(records: u64, checkpoint_every: u64) -> Fixture {
    let h = harness().await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = AuditSettings::new(dir.path().join("audit"), "sentinel/api-test");
    s.checkpoint_every = checkpoint_every;
    let (log, task) = Log::open(s).await.unwrap();
    for i in 0..records {
        log.append(record(i)).await.unwrap();
    }
    // Checkpoints are signed off the append path; settle the last one.
    log.checkpoint_now().await.unwrap();
    let key = std::fs::read_to_string(dir.path().join("audit/key.pub")).unwrap();
    let verifier = Verifier::parse(&key).unwrap();
    let mut state = h.state.clone();
    state.audit = Some(log.clone());
    Fixture {
        app: sentinel_api::router(state),
        h,
        log,
        task,
        verifier,
        _dir: dir,
    }
}

#[tokio::test]
async fn every_inclusion_proof_verifies_against_a_signed_checkpoint() {
    let f = fixture(37, 10).await;
    let key = f.h.viewer_key.clone();
    for seq in 0..37u64 {
        let r = send(&f.app, get(&format!("/v1/audit/proof/{seq}"), Some(&key))).await;
        assert_eq!(r.status, StatusCode::OK, "{seq}: {}", r.json());
        let j = r.json();
        let signed = f
            .verifier
            .verify(j["checkpoint"].as_str().unwrap())
            .unwrap();
        let size = j["tree_size"].as_u64().unwrap();
        assert_eq!(signed.checkpoint.size, size);
        assert!(size > seq);
        let leaf = sentinel_audit::merkle::leaf_hash(j["payload"].as_str().unwrap().as_bytes());
        assert_eq!(
            leaf,
            hash(&j["leaf_hash"]),
            "the payload as served is the leaf"
        );
        let parsed: Value = serde_json::from_str(j["payload"].as_str().unwrap()).unwrap();
        assert_eq!(parsed, j["entry"]);
        verify_inclusion(
            seq,
            size,
            &leaf,
            &proof(&j["proof"]),
            &signed.checkpoint.root,
        )
        .unwrap_or_else(|e| panic!("{seq}: {e}"));
        assert_eq!(j["entry"]["subject_id"], format!("alert-{seq}"));
    }
    // A record newer than the latest checkpoint gets one signed for it.
    f.log.append(record(37)).await.unwrap();
    let r = send(&f.app, get("/v1/audit/proof/37", Some(&key))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["tree_size"], 38);
    // An explicit earlier tree size, and its checkpoint when there is one.
    let r = send(&f.app, get("/v1/audit/proof/3?tree_size=20", Some(&key))).await;
    let j = r.json();
    let signed = f
        .verifier
        .verify(j["checkpoint"].as_str().unwrap())
        .unwrap();
    let leaf = hash(&j["leaf_hash"]);
    verify_inclusion(3, 20, &leaf, &proof(&j["proof"]), &signed.checkpoint.root).unwrap();
    f.task.finish().await.unwrap();
}

#[tokio::test]
async fn consistency_between_checkpoints_verifies_and_checkpoint_text_is_signed() {
    let f = fixture(25, 5).await;
    let key = f.h.viewer_key.clone();
    let r = send(&f.app, get("/v1/audit/checkpoint", Some(&key))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let latest = f
        .verifier
        .verify(std::str::from_utf8(&r.body).unwrap())
        .unwrap();
    assert_eq!(latest.checkpoint.size, 25);
    let r = send(&f.app, get("/v1/audit/checkpoint?format=json", Some(&key))).await;
    assert_eq!(r.json()["verifier_key"], f.verifier.to_text());

    for from in [1u64, 5, 10, 15, 20, 25] {
        let r = send(
            &f.app,
            get(&format!("/v1/audit/consistency?from={from}"), Some(&key)),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        let j = r.json();
        let to = j["to"].as_u64().unwrap();
        assert_eq!(to, 25);
        let to_cp = f
            .verifier
            .verify(j["to_checkpoint"].as_str().unwrap())
            .unwrap();
        let from_root = match j["from_checkpoint"].as_str() {
            Some(t) => f.verifier.verify(t).unwrap().checkpoint.root,
            None => hash(&j["from_root"]),
        };
        verify_consistency(
            from,
            to,
            &proof(&j["proof"]),
            &from_root,
            &to_cp.checkpoint.root,
        )
        .unwrap_or_else(|e| panic!("{from}: {e}"));
    }
    f.task.finish().await.unwrap();
}

#[tokio::test]
async fn records_page_in_order_and_bad_requests_are_named() {
    let f = fixture(25, 100).await;
    let key = f.h.viewer_key.clone();
    let mut from = 0u64;
    let mut seen = Vec::new();
    loop {
        let r = send(
            &f.app,
            get(
                &format!("/v1/audit/records?from={from}&limit=7"),
                Some(&key),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let j = r.json();
        for rec in j["records"].as_array().unwrap() {
            seen.push(rec["seq"].as_u64().unwrap());
            assert_eq!(rec["entry"]["seq"], rec["seq"]);
        }
        match j["next"].as_u64() {
            Some(n) => from = n,
            None => break,
        }
    }
    assert_eq!(seen, (0..25).collect::<Vec<_>>());

    for (path, status) in [
        ("/v1/audit/records?from=26", StatusCode::BAD_REQUEST),
        ("/v1/audit/records?limit=0", StatusCode::BAD_REQUEST),
        ("/v1/audit/records?limit=1001", StatusCode::BAD_REQUEST),
        ("/v1/audit/records?frm=1", StatusCode::BAD_REQUEST),
        ("/v1/audit/proof/25", StatusCode::NOT_FOUND),
        ("/v1/audit/proof/x", StatusCode::BAD_REQUEST),
        ("/v1/audit/proof/3?tree_size=3", StatusCode::BAD_REQUEST),
        ("/v1/audit/proof/3?tree_size=99", StatusCode::BAD_REQUEST),
        ("/v1/audit/consistency", StatusCode::BAD_REQUEST),
        ("/v1/audit/consistency?from=9&to=3", StatusCode::BAD_REQUEST),
        (
            "/v1/audit/consistency?from=3&to=99",
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/audit/checkpoint?format=xml", StatusCode::BAD_REQUEST),
        // Hostile numbers and repeated parameters: a clear 400, never a guess at which one counts.
        (
            "/v1/audit/records?from=18446744073709551616",
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/audit/records?from=-1", StatusCode::BAD_REQUEST),
        ("/v1/audit/records?from=5&from=0", StatusCode::BAD_REQUEST),
        (
            "/v1/audit/records?limit=1&limit=1000",
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/audit/proof/0?tree_size=0", StatusCode::BAD_REQUEST),
        (
            "/v1/audit/proof/0?tree_size=18446744073709551615",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/audit/proof/18446744073709551615",
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/audit/proof/3?tree_size=5&tree_size=25",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/audit/consistency?from=1&from=2",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/audit/consistency?from=0&to=18446744073709551615",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/audit/checkpoints?from=0&from=1",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/audit/checkpoint?format=json&format=note",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = send(&f.app, get(path, Some(&key))).await;
        assert_eq!(
            r.status,
            status,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Fail-closed: nothing of the log without a key.
    for path in [
        "/v1/audit/records",
        "/v1/audit/proof/0",
        "/v1/audit/consistency?from=1",
        "/v1/audit/checkpoint",
    ] {
        assert_eq!(
            send(&f.app, get(path, None)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    f.task.finish().await.unwrap();
}

/// Asking for the proof of the newest record makes the log sign a checkpoint, but a client cannot
/// make it sign (and fsync) more than once a second however fast it asks.
#[tokio::test]
async fn on_demand_checkpoints_are_at_most_one_a_second() {
    let f = fixture(3, 1_000_000).await;
    let key = f.h.viewer_key.clone();
    let before = f.log.checkpoints(0, 1000).unwrap().len();
    for i in 3..8u64 {
        f.log.append(record(i)).await.unwrap();
        let r = send(&f.app, get(&format!("/v1/audit/proof/{i}"), Some(&key))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        assert!(r.json()["tree_size"].as_u64().unwrap() > i);
    }
    let cps = f.log.checkpoints(0, 1000).unwrap();
    let made = &cps[before - 1..];
    assert!(made.len() > 1, "{made:?}");
    for w in made.windows(2) {
        let gap = w[1].checkpoint.time_ms - w[0].checkpoint.time_ms;
        assert!(gap >= 999, "checkpoints {gap} ms apart");
    }
    f.task.finish().await.unwrap();
}

#[tokio::test]
async fn a_node_without_a_log_says_so() {
    let h = harness().await;
    let r = send(&h.app, get("/v1/audit/checkpoint", Some(&h.viewer_key))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// A failed audit write (here: the next segment cannot be created) leaves a log that refuses every
/// append until it is reopened; the node then records nothing it does, so `/ready` says so (503)
/// instead of staying ready with a dead audit trail.
#[tokio::test]
async fn ready_is_503_once_the_audit_log_refuses_appends() {
    let h = harness().await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let mut s = AuditSettings::new(audit.clone(), "sentinel/api-test");
    s.segment_bytes = 4096;
    let (log, task) = Log::open(s).await.unwrap();
    let mut state = h.state.clone();
    state.audit = Some(log.clone());
    state
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    let app = sentinel_api::router(state);
    assert_eq!(send(&app, get("/ready", None)).await.status, StatusCode::OK);
    // Directories where the next segments would go: the roll fails like a full disk would.
    for i in 1..200u64 {
        std::fs::create_dir(
            audit
                .join("segments")
                .join(sentinel_audit::format::segment_name(i)),
        )
        .unwrap();
    }
    let mut i = 0;
    while log.append(record(i)).await.is_ok() {
        i += 1;
        assert!(i < 200, "no roll happened");
    }
    assert!(log.refuses_appends());
    let r = send(&app, get("/ready", None)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        String::from_utf8_lossy(&r.body).contains("audit log refuses appends"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let _ = task.finish().await;
}
