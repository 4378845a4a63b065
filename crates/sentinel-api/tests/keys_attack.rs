//! `/v1/keys` attacked by a careless or hostile admin, over a real socket with a real store and a
//! real Merkle audit trail: the last active admin key cannot be revoked (nothing but editing the
//! database would bring an admin back: a restart makes a new admin key only when no key is left),
//! and key names cannot carry the invisible characters that reorder or hide text on a terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use sentinel_api::auth::Auth;
use sentinel_api::{ApiSettings, AppState};
use sentinel_core::{AuditKind, Redactor, Timestamp, TraceId};
use sentinel_store::{ApiKeyRow, Store};
use serde_json::{json, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

struct Env {
    base: String,
    http: reqwest::Client,
    store: Store,
    admin: String,
    admin_id: String,
    _rx: tokio::sync::mpsc::Receiver<sentinel_pipeline::intake::Submission>,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let (dir, store, metrics, recorder) = common::audited_store("sentinel/keys-attack-test").await;
    let auth = Auth::new([5u8; 32], false);
    let admin = Auth::generate_key();
    let row = ApiKeyRow {
        id: ulid::Ulid::new().to_string(),
        name: "admin".into(),
        role: "admin".into(),
        hash: auth.hash(&admin),
        created: Timestamp::now(),
        expires: None,
        revoked_at: None,
    };
    store.insert_api_key(&row).await.unwrap();
    sentinel_api::keys::register(&auth, &row);
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let state = AppState {
        store: store.clone(),
        intake: tx,
        auth: Arc::new(auth),
        metrics,
        ready: Arc::new(AtomicBool::new(true)),
        redactor: Arc::new(Redactor::default()),
        settings: ApiSettings::default(),
        audit: None,
        decisions: None,
        intel: None,
        notify: None,
        operator_audit: Some(recorder),
        system: Default::default(),
        ui: Default::default(),
    };
    let app = sentinel_api::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Env {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        store,
        admin,
        admin_id: row.id,
        _rx: rx,
        _dir: dir,
    }
}

struct Answer {
    status: u16,
    trace: TraceId,
    body: Value,
}

impl Env {
    async fn call(&self, method: Method, path: &str, key: &str, body: Option<Value>) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let trace = resp
            .headers()
            .get("x-trace-id")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceId::parse)
            .unwrap_or_default();
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            trace,
            body,
        }
    }

    async fn create(&self, role: &str, name: &str) -> Answer {
        self.call(
            Method::POST,
            "/v1/keys",
            &self.admin,
            Some(json!({ "role": role, "name": name })),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_active_admin_key_cannot_be_revoked() {
    let e = env().await;
    // The only admin revokes itself (a slip, or a stolen key used to lock the owner out).
    let a = e
        .call(
            Method::DELETE,
            &format!("/v1/keys/{}", e.admin_id),
            &e.admin,
            None,
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last active admin key"),
        "{}",
        a.body
    );
    // Still an admin, still stored as active; the refusal is itself an audited admin action.
    assert_eq!(
        e.call(Method::GET, "/v1/keys", &e.admin, None).await.status,
        200
    );
    assert!(e
        .store
        .api_keys()
        .await
        .unwrap()
        .iter()
        .any(|r| r.id == e.admin_id));
    let notes = e.store.audit_for_trace(&a.trace).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|r| r.record.kind == AuditKind::Operator && r.record.summary.contains("-> 409")),
        "{:?}",
        notes.iter().map(|r| &r.record.summary).collect::<Vec<_>>()
    );

    // With a second admin, the first may go; then the second is the last one.
    let second = e.create("admin", "second admin").await;
    assert_eq!(second.status, 201, "{}", second.body);
    let (id2, key2) = (
        second.body["id"].as_str().unwrap().to_owned(),
        second.body["key"].as_str().unwrap().to_owned(),
    );
    let a = e
        .call(
            Method::DELETE,
            &format!("/v1/keys/{}", e.admin_id),
            &key2,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        e.call(Method::GET, "/v1/keys", &e.admin, None).await.status,
        401
    );
    let a = e
        .call(Method::DELETE, &format!("/v1/keys/{id2}"), &key2, None)
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    // Non-admin keys are revoked as before.
    let viewer = e.create_with(&key2, "viewer", "v").await;
    let a = e
        .call(Method::DELETE, &format!("/v1/keys/{viewer}"), &key2, None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

impl Env {
    async fn create_with(&self, admin: &str, role: &str, name: &str) -> String {
        let a = self
            .call(
                Method::POST,
                "/v1/keys",
                admin,
                Some(json!({ "role": role, "name": name })),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_names_cannot_hide_or_reorder_text() {
    let e = env().await;
    for name in [
        "\u{202e}nimda",        // right-to-left override: shows as "admin"
        "ops\u{2066}x\u{2069}", // isolates
        "admin\u{200b}",        // zero-width space: looks like "admin"
        "\u{feff}admin",        // byte-order mark
        "a\u{200f}b",           // right-to-left mark
        "bad\nline",            // control characters (refused before too)
    ] {
        let a = e.create("viewer", name).await;
        assert_eq!(a.status, 400, "{name:?} accepted: {}", a.body);
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`name`"),
            "{}",
            a.body
        );
    }
    // Ordinary non-ASCII names are fine.
    assert_eq!(
        e.create("viewer", "Überwachung – Tokyo 監視").await.status,
        201
    );
}
