//! Fuzzing the real daemon from its own OpenAPI document (`GET /v1/openapi.json`) with schemathesis,
//! once with a viewer, an operator and an admin key: no answer may be a 5xx, and every answer must be
//! as the document says. schemathesis is installed from PyPI into a venv under the target dir by
//! `scripts/schemathesis.sh` on first use (it needs `python3` with `venv` and access to PyPI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use std::path::Path;
use std::process::Command;

/// Adds a key with `role` to the stopped daemon's store, as an admin would; answers the key.
async fn add_key(data: &Path, id: &str, role: &str) -> String {
    let store = sentinel_store::Store::open(&data.join("sentinel.db"))
        .await
        .unwrap();
    let auth = sentinel_api::auth::Auth::new(
        sentinel_api::auth::load_or_create_secret(&data.join("auth.secret")).unwrap(),
        false,
    );
    let key = sentinel_api::auth::Auth::generate_key();
    store
        .insert_api_key(&sentinel_store::ApiKeyRow {
            id: id.into(),
            name: format!("fuzz-{role}"),
            role: role.into(),
            hash: auth.hash(&key),
            created: sentinel_core::Timestamp::now(),
            expires: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    store.close().await;
    key
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    // First start makes the data dir and the admin key; the other roles' keys are added while stopped.
    let d = Daemon::start(&[]);
    let admin = d.key.clone();
    let (dir, _) = d.stop();
    let data = dir.path().join("data");
    let viewer = add_key(&data, "01FUZZVIEWER", "viewer").await;
    let operator = add_key(&data, "01FUZZOPERATOR", "operator").await;
    // Every route that exists only when configured is fuzzed too: the three signed webhooks (their
    // secrets in ./sentinel.yml, read from the working directory; the fuzzer cannot sign, so these
    // show that refusals are as documented) and the unsigned test route, whose bodies become events.
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "api:\n  webhooks:\n    github: { secret: fuzz-github-secret }\n    \
         gitea: { secret: fuzz-gitea-secret }\n    generic: { secret: fuzz-generic-secret }\n",
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[("SENTINEL_ENABLE_WEBHOOK_TEST", "true")]);
    // The startup WARNING for the unsigned route (waited for: the log is read as it comes).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !d.output().contains("webhook_test_enabled") {
        assert!(
            std::time::Instant::now() < deadline,
            "no startup warning for /webhook/test:\n{}",
            d.output()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Records of every kind the queries answer, so the answers checked against the document are not
    // only empty pages: an alert with its plan (observe mode: nothing is applied) and a decision.
    let c = d.client();
    let r = c
        .post(d.url("/v1/defend"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "kind": "auth", "src_ip": "203.0.113.9", "failed_logins": 500, "path": "/login",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let outcome: serde_json::Value = r.json().await.unwrap();
    assert_eq!(outcome["alerted"], true, "{outcome}");
    let r = c
        .post(d.url("/v1/decisions"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"ip": "198.51.100.7", "duration": "4h", "reason": "fuzz seed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/schemathesis.sh");
    let reports = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking({
        let base = d.base.clone();
        let reports = reports.path().to_owned();
        move || {
            Command::new("bash")
                .arg(&script)
                .env("SENTINEL_URL", base)
                .env("SENTINEL_VIEWER_KEY", viewer)
                .env("SENTINEL_OPERATOR_KEY", operator)
                .env("SENTINEL_ADMIN_KEY", admin)
                .env("SCHEMATHESIS_REPORTS", reports)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}\n--- daemon ---\n{}",
        out.status,
        d.output()
    );
    // It ran every operation as each role (not zero cases because the document failed to load).
    for role in ["viewer", "operator", "admin"] {
        let junit = std::fs::read_to_string(reports.path().join(format!("{role}.xml"))).unwrap();
        assert!(junit.contains("/v1/decisions"), "{role}: {junit}");
        assert!(junit.contains("/v1/events/stream"), "{role}: {junit}");
        for path in [
            "/v1/keys",
            "/v1/identity",
            "/webhook/github",
            "/webhook/test",
        ] {
            assert!(junit.contains(path), "{role}: {path} not fuzzed: {junit}");
        }
    }
    // The daemon stayed up through it and stops cleanly.
    let (_, out) = d.stop();
    assert!(!out.contains("panicked"), "{out}");
}
