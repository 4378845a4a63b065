//! Identities over a real socket: the real router served on 127.0.0.1 with a real store and a real
//! Merkle audit trail, spoken to by a real HTTP client. API keys made, listed, revoked and expired
//! through `/v1/keys`; JWT bearer tokens (HS256 and EdDSA with a JWKS file rotated on disk); the auth
//! matrix: every route of the router's table × every kind of credential.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use sentinel_api::auth::{Auth, Principal, Refusal, Role};
use sentinel_api::jwt::{Jwt, JwtSettings};
use sentinel_api::webhook::WebhookSettings;
use sentinel_api::{ApiSettings, AppState, ServerId, WebhookAuth};
use sentinel_core::{AuditKind, Redactor, Timestamp, TraceId};
use sentinel_notify::config::Secret;
use sentinel_store::{ApiKeyRow, Store};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUER: &str = "https://issuer.example.test";
const AUDIENCE: &str = "sentinel-api";
const HS_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

struct Env {
    base: String,
    http: reqwest::Client,
    state: AppState,
    store: Store,
    admin: String,
    jwks: PathBuf,
    ed_k1: SigningKey,
    _rx: tokio::sync::mpsc::Receiver<sentinel_pipeline::intake::Submission>,
    _dir: tempfile::TempDir,
}

fn now_s() -> i64 {
    Timestamp::now().as_millis() / 1000
}

/// A PKCS#8 v1 document of an Ed25519 seed (what `EncodingKey::from_ed_der` takes).
fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    der
}

fn jwk(kid: &str, k: &SigningKey) -> Value {
    use base64::Engine;
    json!({
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
        "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.verifying_key().to_bytes()),
    })
}

/// Writes the JWKS file the way a deploy would: a new file renamed over the old one.
fn write_jwks(path: &Path, keys: &[(&str, &SigningKey)]) {
    let set = json!({ "keys": keys.iter().map(|(kid, k)| jwk(kid, k)).collect::<Vec<_>>() });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&set).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn claims(role: &str) -> Value {
    let now = now_s();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice@example.test",
        "iat": now, "nbf": now - 5, "exp": now + 600, "sentinel_role": role,
    })
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn eddsa(claims: &Value, kid: &str, k: &SigningKey) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.into());
    encode(&h, claims, &EncodingKey::from_ed_der(&pkcs8(&k.to_bytes()))).unwrap()
}

fn signing_key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32])
}

async fn env() -> Env {
    let (dir, store, metrics, recorder) = common::audited_store("sentinel/identity-test").await;

    let jwks = dir.path().join("jwks.json");
    let ed_k1 = signing_key(1);
    write_jwks(&jwks, &[("k1", &ed_k1)]);
    let jwt = Jwt::new(JwtSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        hs256_secret: Some(HS_SECRET.to_vec()),
        jwks_file: Some(jwks.clone()),
        role_claim: "sentinel_role".into(),
        leeway: Duration::from_secs(30),
    })
    .unwrap();
    let auth = Auth::new([9u8; 32], false).with_jwt(jwt);
    // The admin key is a stored row, loaded as the daemon loads it.
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
        // Every route that exists only when configured exists here: the identity challenge and the
        // webhooks (the auth matrix walks them all).
        settings: ApiSettings {
            server_id: Some(ServerId::new([3u8; 32])),
            webhooks: WebhookSettings {
                github: Some(Secret::new("github-secret-for-tests")),
                gitea: Some(Secret::new("gitea-secret-for-tests")),
                generic: Some(Secret::new("generic-secret-for-tests")),
                enable_test: true,
                ..WebhookSettings::default()
            },
            ..ApiSettings::default()
        },
        audit: None,
        decisions: None,
        intel: None,
        notify: None,
        operator_audit: Some(recorder),
        system: Default::default(),
        ui: Default::default(),
    };
    let app = sentinel_api::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Env {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        state,
        store,
        admin,
        jwks,
        ed_k1,
        _rx: rx,
        _dir: dir,
    }
}

struct Answer {
    status: u16,
    trace: TraceId,
    www_authenticate: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Env {
    async fn call(
        &self,
        method: Method,
        path: &str,
        cred: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = cred {
            req = req.bearer_auth(c);
        }
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
        let www_authenticate = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.bytes().await.unwrap().to_vec();
        Answer {
            status,
            trace,
            www_authenticate,
            body,
        }
    }

    async fn create_key(&self, role: &str, expires: Option<&str>) -> (String, String) {
        let mut body = json!({ "role": role, "name": format!("{role} for tests") });
        if let Some(e) = expires {
            body["expires"] = json!(e);
        }
        let a = self
            .call(Method::POST, "/v1/keys", Some(&self.admin), Some(body))
            .await;
        assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
        let v = a.json();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["key"].as_str().unwrap().to_owned(),
        )
    }

    async fn audit_kinds(&self, trace: &TraceId) -> Vec<(AuditKind, String, String)> {
        self.store
            .audit_for_trace(trace)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.record.kind, r.record.subject_id, r.record.summary))
            .collect()
    }

    async fn metrics_text(&self) -> String {
        let a = self
            .call(Method::GET, "/metrics", Some(&self.admin), None)
            .await;
        assert_eq!(a.status, 200);
        String::from_utf8(a.body).unwrap()
    }
}

/// Fills `{param}` segments with plausible values.
fn concrete(path: &str) -> String {
    path.replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .replace("{seq}", "1")
        .replace("{ip}", "192.0.2.7")
        .replace("{delivery_id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
}

/// The literal paths of every `.route("…"` in `src`, as full paths (routes nested under `/v1` are
/// written without it), leaving out the `/v1/` catch-all (no operation: any method, 401 without a
/// key, 404 with one).
fn routed_paths(src: &str, into: &mut BTreeSet<String>) {
    for part in src.split(".route(").skip(1) {
        let part = part.trim_start();
        let Some(part) = part.strip_prefix('"') else {
            continue;
        };
        let path = &part[..part.find('"').unwrap()];
        if path == "/v1/" {
            continue;
        }
        let top = path.starts_with("/v1/")
            || path.starts_with("/webhook/")
            || ["/health", "/ready", "/metrics"].contains(&path);
        into.insert(if top {
            path.to_owned()
        } else {
            format!("/v1{path}")
        });
    }
}

#[test]
fn the_route_table_names_exactly_the_routed_paths() {
    let mut routed = BTreeSet::new();
    routed_paths(include_str!("../src/routes/mod.rs"), &mut routed);
    let table: BTreeSet<String> = sentinel_api::route_table()
        .iter()
        .map(|(_, p, _)| (*p).to_owned())
        .collect();
    assert_eq!(table, routed, "routes/table.rs and routes/mod.rs differ");
    // The webhooks: `/webhook/test` is a `.route` call, the signed ones a list of paths with their
    // secrets, routed when the secret is configured.
    let src = include_str!("../src/webhook.rs");
    let mut hooks = BTreeSet::new();
    routed_paths(src, &mut hooks);
    for (_, p, _) in sentinel_api::webhook_table() {
        assert!(
            src.contains(&format!("\"{p}\"")),
            "{p} is not routed in webhook.rs"
        );
        hooks.insert((*p).to_owned());
    }
    assert_eq!(
        hooks.len(),
        sentinel_api::webhook_table().len(),
        "webhook.rs routes a path routes/table.rs does not list: {hooks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix_every_route_by_every_credential() {
    let e = env().await;
    let (_, viewer) = e.create_key("viewer", None).await;
    let (_, operator) = e.create_key("operator", None).await;
    let (revoked_id, revoked) = e.create_key("admin", None).await;
    let a = e
        .call(
            Method::DELETE,
            &format!("/v1/keys/{revoked_id}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    // A stored admin key whose expiry has passed, loaded as the daemon loads it.
    let expired = Auth::generate_key();
    let row = ApiKeyRow {
        id: ulid::Ulid::new().to_string(),
        name: "expired".into(),
        role: "admin".into(),
        hash: e.state.auth.hash(&expired),
        created: Timestamp::from_millis(Timestamp::now().as_millis() - 7_200_000),
        expires: Some(Timestamp::from_millis(
            Timestamp::now().as_millis() - 3_600_000,
        )),
        revoked_at: None,
    };
    e.store.insert_api_key(&row).await.unwrap();
    sentinel_api::keys::register(&e.state.auth, &row);

    let bad_key = Auth::generate_key();
    let bad_sig = hs256(&claims("admin"), b"not-the-secret-not-the-secret-not!");
    let mut old = claims("admin");
    old["nbf"] = json!(now_s() - 7200);
    old["exp"] = json!(now_s() - 3600);
    let expired_jwt = hs256(&old, HS_SECRET);
    // Signed by a key that is not k1 but names k1.
    let bad_ed_sig = eddsa(&claims("admin"), "k1", &signing_key(2));
    let jwt_viewer_ed = eddsa(&claims("viewer"), "k1", &e.ed_k1);
    let jwt_admin_hs = hs256(&claims("admin"), HS_SECRET);

    let refused: [(&str, Option<&str>); 7] = [
        ("no credentials", None),
        ("bad key", Some(&bad_key)),
        ("expired key", Some(&expired)),
        ("revoked key", Some(&revoked)),
        ("bad JWT signature (HS256)", Some(&bad_sig)),
        ("bad JWT signature (EdDSA)", Some(&bad_ed_sig)),
        ("expired JWT", Some(&expired_jwt)),
    ];
    let granted: [(&str, &str, Role); 5] = [
        ("viewer key", &viewer, Role::Viewer),
        ("operator key", &operator, Role::Operator),
        ("admin key", &e.admin, Role::Admin),
        ("viewer JWT (EdDSA)", &jwt_viewer_ed, Role::Viewer),
        ("admin JWT (HS256)", &jwt_admin_hs, Role::Admin),
    ];

    let mut the_401: Option<(Vec<u8>, Option<String>)> = None;
    let mut checked = 0;
    for (method, path, need) in sentinel_api::route_table() {
        let url = concrete(path);
        for (what, cred) in &refused {
            let a = e.call(method.clone(), &url, *cred, None).await;
            match need {
                // Liveness and readiness: up or not ready. The identity challenge: no key is
                // looked at; without a body it is a 415, never a 401.
                None if *path == "/v1/identity" => assert_eq!(
                    a.status,
                    415,
                    "{method} {path} with {what}: {}",
                    String::from_utf8_lossy(&a.body)
                ),
                None => assert!(
                    a.status == 200 || a.status == 503,
                    "{method} {path} with {what}: public route answered {}",
                    a.status
                ),
                Some(_) => {
                    assert_eq!(a.status, 401, "{method} {path} with {what}");
                    // One identical answer for every refusal: nothing tells which reason it was.
                    let got = (a.body.clone(), a.www_authenticate.clone());
                    match &the_401 {
                        None => the_401 = Some(got),
                        Some(first) => {
                            assert_eq!(first, &got, "{method} {path} with {what}: a different 401")
                        }
                    }
                }
            }
            checked += 1;
        }
        for (what, cred, role) in &granted {
            let a = e.call(method.clone(), &url, Some(cred), None).await;
            match need {
                None if *path == "/v1/identity" => assert_eq!(a.status, 415, "{method} {path}"),
                Some(need) if role < need => assert_eq!(
                    a.status,
                    403,
                    "{method} {path} with {what}: {}",
                    String::from_utf8_lossy(&a.body)
                ),
                _ => assert!(
                    ![401, 403, 405].contains(&a.status),
                    "{method} {path} with {what}: {} {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, sentinel_api::route_table().len() * 12);

    // The webhooks: no credential of the API opens a signed one (the signature is the only
    // authentication, and a key is not even looked at: the refusal counters below do not move for
    // them); the unsigned test route needs none (it exists only with SENTINEL_ENABLE_WEBHOOK_TEST).
    let mut hooks_checked = 0;
    for (method, path, auth) in sentinel_api::webhook_table() {
        let creds = refused
            .iter()
            .map(|(w, c)| (*w, *c))
            .chain(granted.iter().map(|(w, c, _)| (*w, Some(*c))));
        for (what, cred) in creds {
            let a = e.call(method.clone(), path, cred, None).await;
            match auth {
                WebhookAuth::Signed => {
                    assert_eq!(a.status, 401, "{method} {path} with {what}");
                    assert_eq!(
                        a.www_authenticate.as_deref(),
                        Some("Signature"),
                        "{method} {path}"
                    );
                }
                // Unsigned: an empty body is no JSON object, a 400 from the handler itself.
                WebhookAuth::Unsigned => assert_eq!(
                    a.status,
                    400,
                    "{method} {path} with {what}: {}",
                    String::from_utf8_lossy(&a.body)
                ),
            }
            hooks_checked += 1;
        }
    }
    assert_eq!(hooks_checked, sentinel_api::webhook_table().len() * 12);
    let body: Value = serde_json::from_slice(&the_401.unwrap().0).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    // Each refusal was counted under its own reason, and /metrics shows it.
    let auth = &e.state.auth;
    for (reason, at_least) in [
        (Refusal::Missing, 1),
        (Refusal::UnknownKey, 1),
        (Refusal::ExpiredKey, 1),
        (Refusal::RevokedKey, 1),
        (Refusal::JwtBadSignature, 2),
        (Refusal::JwtExpired, 1),
    ] {
        assert!(
            auth.refused(reason) >= at_least,
            "{} counted {}",
            reason.as_str(),
            auth.refused(reason)
        );
    }
    let text = e.metrics_text().await;
    let routes = sentinel_api::route_table()
        .iter()
        .filter(|r| r.2.is_some())
        .count() as u64;
    for reason in [
        "missing",
        "unknown_key",
        "expired_key",
        "revoked_key",
        "jwt_expired",
    ] {
        let line = format!("sentinel_api_auth_failures_total{{reason=\"{reason}\"}} {routes}");
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
    let line = format!(
        "sentinel_api_auth_failures_total{{reason=\"jwt_bad_signature\"}} {}",
        routes * 2
    );
    assert!(text.contains(&line), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_made_listed_and_revoked_at_once_and_every_change_is_audited() {
    let e = env().await;
    let a = e
        .call(
            Method::POST,
            "/v1/keys",
            Some(&e.admin),
            Some(json!({"role": "viewer", "name": "dashboard", "expires": "90d"})),
        )
        .await;
    assert_eq!(a.status, 201);
    let v = a.json();
    let id = v["id"].as_str().unwrap().to_owned();
    let key = v["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("snl_"));
    assert_eq!(v["role"], "viewer");
    assert_eq!(v["state"], "active");
    assert!(v.get("hash").is_none());
    let expires = v["expires"].as_str().unwrap();
    let at = humantime::parse_rfc3339_weak(expires).unwrap();
    let ahead = at.duration_since(std::time::SystemTime::now()).unwrap();
    let ninety_days = Duration::from_secs(90 * 24 * 3600);
    assert!(
        ahead <= ninety_days && ahead > ninety_days - Duration::from_secs(3600),
        "{expires}"
    );
    // Creation noted twice: what changed (key_created), and that an admin acted (operator).
    let notes = e.audit_kinds(&a.trace).await;
    assert!(
        notes
            .iter()
            .any(|(k, s, _)| *k == AuditKind::KeyCreated && *s == id),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|(k, _, sum)| *k == AuditKind::Operator && sum.contains("POST /v1/keys -> 201")),
        "{notes:?}"
    );
    assert!(
        !notes.iter().any(|(_, _, s)| s.contains(&key)),
        "the key is never noted"
    );

    // The new viewer key reads, but cannot manage keys (refused, and that is not an admin action).
    assert_eq!(
        e.call(Method::GET, "/v1/alerts", Some(&key), None)
            .await
            .status,
        200
    );
    let a = e.call(Method::GET, "/v1/keys", Some(&key), None).await;
    assert_eq!(a.status, 403);
    assert!(e.audit_kinds(&a.trace).await.is_empty());
    let a = e
        .call(Method::DELETE, &format!("/v1/keys/{id}"), Some(&key), None)
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        e.call(Method::GET, "/v1/alerts", Some(&key), None)
            .await
            .status,
        200
    );

    // Listing: never the key nor its hash; a listing is itself an audited admin action.
    let a = e.call(Method::GET, "/v1/keys", Some(&e.admin), None).await;
    assert_eq!(a.status, 200);
    let text = String::from_utf8_lossy(&a.body).to_string();
    assert!(
        !text.contains(&key) && !text.contains(&e.state.auth.hash(&key)),
        "{text}"
    );
    let listed = a.json();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    assert!(items
        .iter()
        .all(|k| k.get("hash").is_none() && k.get("key").is_none()));
    assert_eq!(listed["next"], Value::Null);
    assert!(e
        .audit_kinds(&a.trace)
        .await
        .iter()
        .any(|(k, _, s)| *k == AuditKind::Operator && s.contains("GET /v1/keys -> 200")));

    // Revoked: refused on the very next request, without a restart; noted; listed as revoked.
    let a = e
        .call(
            Method::DELETE,
            &format!("/v1/keys/{id}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["audited"], true);
    let notes = e.audit_kinds(&a.trace).await;
    assert!(
        notes
            .iter()
            .any(|(k, s, _)| *k == AuditKind::KeyRevoked && *s == id),
        "{notes:?}"
    );
    let before = e.state.auth.refused(Refusal::RevokedKey);
    let a = e.call(Method::GET, "/v1/alerts", Some(&key), None).await;
    assert_eq!(a.status, 401);
    assert_eq!(e.state.auth.refused(Refusal::RevokedKey), before + 1);
    let a = e
        .call(
            Method::DELETE,
            &format!("/v1/keys/{id}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "revoking twice");
    assert_eq!(a.json()["already_revoked"], true, "revoking twice");
    let listed = e
        .call(Method::GET, "/v1/keys", Some(&e.admin), None)
        .await
        .json();
    let row = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["state"], "revoked");
    assert!(row["revoked_at"].is_string());

    // A registry rebuilt from the store (a restart) still knows the key as revoked.
    let fresh = Auth::new([9u8; 32], false);
    for r in e.store.api_keys_all().await.unwrap() {
        sentinel_api::keys::register(&fresh, &r);
    }
    assert_eq!(fresh.identify(&key), Err(Refusal::RevokedKey));
    assert!(fresh.identify(&e.admin).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_stops_working_when_it_expires() {
    let e = env().await;
    let (_, key) = e.create_key("operator", Some("2s")).await;
    assert_eq!(
        e.call(Method::GET, "/v1/alerts", Some(&key), None)
            .await
            .status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = e.call(Method::GET, "/v1/alerts", Some(&key), None).await;
        if a.status == 401 {
            break;
        }
        assert_eq!(a.status, 200);
        assert!(
            Instant::now() < deadline,
            "the key still works a minute later"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(e.state.auth.refused(Refusal::ExpiredKey) >= 1);
    let listed = e
        .call(Method::GET, "/v1/keys", Some(&e.admin), None)
        .await
        .json();
    assert!(listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["state"] == "expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_creation_refuses_bad_input_with_the_field_named() {
    let e = env().await;
    for (body, field) in [
        (json!({"role": "root"}), "role"),
        (json!({"role": "viewer", "expires": "0s"}), "expires"),
        (json!({"role": "viewer", "expires": "soon"}), "expires"),
        (
            json!({"role": "viewer", "expires": "2001-01-01T00:00:00Z"}),
            "expires",
        ),
        (json!({"role": "viewer", "expires": "20000d"}), "expires"),
        (json!({"role": "viewer", "name": ""}), "name"),
        (json!({"role": "viewer", "name": "a\nb"}), "name"),
        (json!({"role": "viewer", "scope": "all"}), "scope"),
    ] {
        let a = e
            .call(Method::POST, "/v1/keys", Some(&e.admin), Some(body.clone()))
            .await;
        assert_eq!(a.status, 400, "{body}");
        let msg = a.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(field), "{body}: {msg}");
    }
    // Nothing was made: only the admin key is listed.
    let listed = e
        .call(Method::GET, "/v1/keys", Some(&e.admin), None)
        .await
        .json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_listing_is_paged_by_id() {
    let e = env().await;
    let mut made = BTreeSet::new();
    for _ in 0..5 {
        made.insert(e.create_key("viewer", None).await.0);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/keys?limit=2&cursor={a}"),
            None => "/v1/keys?limit=2".to_owned(),
        };
        let v = e
            .call(Method::GET, &path, Some(&e.admin), None)
            .await
            .json();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        pages += 1;
        // The page shape of every list: `next_cursor` (a key cursor) and why the page stopped.
        match v["next_cursor"].as_str() {
            Some(n) => {
                assert!(n.starts_with("ky_"), "{n}");
                assert_eq!(v["truncated_by"], "count");
                after = Some(n.to_owned());
            }
            None => {
                assert_eq!(v["truncated_by"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 6);
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), 6);
    assert!(made.is_subset(&unique));
    for bad in [
        "/v1/keys?limit=0",
        "/v1/keys?limit=5000",
        "/v1/keys?after=x",
        "/v1/keys?cursor=1",
        "/v1/keys?cursor=ky_x",
        "/v1/keys?cursor=al_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "/v1/keys?limit=2&limit=3",
    ] {
        assert_eq!(
            e.call(Method::GET, bad, Some(&e.admin), None).await.status,
            400,
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_claims_are_checked_and_the_role_comes_from_the_claim() {
    let e = env().await;
    let ok = |c: &Value| hs256(c, HS_SECRET);
    let get = |t: String| {
        let e = &e;
        async move {
            e.call(Method::GET, "/v1/alerts", Some(&t), None)
                .await
                .status
        }
    };
    assert_eq!(get(ok(&claims("viewer"))).await, 200);
    // Role from the claim: a viewer token cannot post, an operator token can reach the handler.
    let t = ok(&claims("viewer"));
    assert_eq!(
        e.call(Method::POST, "/v1/events", Some(&t), None)
            .await
            .status,
        403
    );
    let t = ok(&claims("operator"));
    assert_eq!(
        e.call(Method::POST, "/v1/events", Some(&t), None)
            .await
            .status,
        415
    );

    let cases: Vec<(&str, Value, Refusal)> = vec![
        (
            "wrong issuer",
            {
                let mut c = claims("admin");
                c["iss"] = json!("https://other.example.test");
                c
            },
            Refusal::JwtClaims,
        ),
        (
            "wrong audience",
            {
                let mut c = claims("admin");
                c["aud"] = json!("someone-else");
                c
            },
            Refusal::JwtClaims,
        ),
        (
            "no nbf",
            {
                let mut c = claims("admin");
                c.as_object_mut().unwrap().remove("nbf");
                c
            },
            Refusal::JwtClaims,
        ),
        (
            "no exp",
            {
                let mut c = claims("admin");
                c.as_object_mut().unwrap().remove("exp");
                c
            },
            Refusal::JwtClaims,
        ),
        (
            "not yet valid",
            {
                let mut c = claims("admin");
                c["nbf"] = json!(now_s() + 3600);
                c
            },
            Refusal::JwtNotYetValid,
        ),
        (
            "expired beyond the leeway",
            {
                let mut c = claims("admin");
                c["exp"] = json!(now_s() - 120);
                c
            },
            Refusal::JwtExpired,
        ),
        (
            "no role",
            {
                let mut c = claims("admin");
                c.as_object_mut().unwrap().remove("sentinel_role");
                c
            },
            Refusal::JwtNoRole,
        ),
        ("unknown role", claims("root"), Refusal::JwtNoRole),
    ];
    for (what, c, reason) in cases {
        let before = e.state.auth.refused(reason);
        assert_eq!(get(ok(&c)).await, 401, "{what}");
        assert_eq!(
            e.state.auth.refused(reason),
            before + 1,
            "{what} counted as {}",
            reason.as_str()
        );
    }
    // Within the leeway (30 s) an expired token still passes: clock skew is tolerated, boundedly.
    let mut c = claims("viewer");
    c["exp"] = json!(now_s() - 5);
    assert_eq!(get(ok(&c)).await, 200);
    // `alg: none` and an algorithm not configured are refused.
    let none = {
        use base64::Engine;
        let b = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        format!(
            "{}.{}.",
            b(&json!({"alg": "none", "typ": "JWT"})),
            b(&claims("admin"))
        )
    };
    assert_eq!(get(none).await, 401);
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &claims("admin"),
        &EncodingKey::from_secret(HS_SECRET),
    )
    .unwrap();
    let before = e.state.auth.refused(Refusal::JwtBadAlgorithm);
    assert_eq!(get(hs384).await, 401);
    assert_eq!(e.state.auth.refused(Refusal::JwtBadAlgorithm), before + 1);
    // The principal is named after the subject.
    let p: Principal = e.state.auth.identify(&ok(&claims("operator"))).unwrap();
    assert_eq!(p.role, Role::Operator);
    assert_eq!(p.key_id, "jwt/alice@example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_rotate_without_a_restart() {
    let e = env().await;
    let k2 = signing_key(22);
    let by_k1 = eddsa(&claims("viewer"), "k1", &e.ed_k1);
    let by_k2 = eddsa(&claims("viewer"), "k2", &k2);
    let get = |t: &str| {
        let (e, t) = (&e, t.to_owned());
        async move {
            e.call(Method::GET, "/v1/alerts", Some(&t), None)
                .await
                .status
        }
    };
    assert_eq!(get(&by_k1).await, 200);
    let before = e.state.auth.refused(Refusal::JwtUnknownKid);
    assert_eq!(get(&by_k2).await, 401, "k2 is not published yet");
    assert_eq!(e.state.auth.refused(Refusal::JwtUnknownKid), before + 1);

    // Publish k2 next to k1: both work, with no restart.
    write_jwks(&e.jwks, &[("k1", &e.ed_k1), ("k2", &k2)]);
    assert_eq!(get(&by_k2).await, 200);
    assert_eq!(get(&by_k1).await, 200);
    // Retire k1: its tokens stop at once.
    write_jwks(&e.jwks, &[("k2", &k2)]);
    assert_eq!(get(&by_k1).await, 401);
    assert_eq!(get(&by_k2).await, 200);
    // A broken file keeps the keys last read (and the failure is counted), rather than lock all out.
    std::fs::write(e.jwks.with_extension("tmp"), b"{ not json").unwrap();
    std::fs::rename(e.jwks.with_extension("tmp"), &e.jwks).unwrap();
    assert_eq!(get(&by_k2).await, 200);
    let (reloads, failed) = e.state.auth.jwt().unwrap().reloads();
    assert!(reloads >= 2 && failed == 1, "{reloads} {failed}");
    let text = e.metrics_text().await;
    assert!(
        text.contains("sentinel_api_jwks_reloads_total{result=\"failed\"} 1"),
        "{text}"
    );
}

/// What a newcomer meets when tidying keys: `?limit=` given twice is refused like on every other
/// list route (it used to keep one value silently); revoking a key twice says it was already
/// revoked (no second audit note) instead of a bare "not found" for a key `keys list` shows; an id
/// no key has is a 404 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_listing_is_strict_and_revoking_twice_says_already_revoked() {
    let e = env().await;
    let a = e
        .call(
            Method::GET,
            "/v1/keys?limit=1&limit=1000",
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(a.status, 400);
    let msg = a.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("`limit`") && msg.contains("more than once"),
        "{msg}"
    );

    let (id, key) = e.create_key("viewer", None).await;
    let first = e
        .call(
            Method::DELETE,
            &format!("/v1/keys/{id}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["already_revoked"], Value::Null);
    let again = e
        .call(
            Method::DELETE,
            &format!("/v1/keys/{id}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(again.status, 200);
    let v = again.json();
    assert_eq!(v["already_revoked"], true, "{v}");
    assert_eq!(v["revoked"], true, "{v}");
    assert!(v["revoked_at"].is_string(), "{v}");
    // Nothing was revoked the second time, so nothing more is noted than an admin action.
    let kinds = e.audit_kinds(&again.trace).await;
    assert!(
        kinds.iter().all(|(k, _, _)| *k != AuditKind::KeyRevoked),
        "{kinds:?}"
    );
    assert_eq!(
        e.call(Method::GET, "/v1/version", Some(&key), None)
            .await
            .status,
        401
    );

    let unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let none = e
        .call(
            Method::DELETE,
            &format!("/v1/keys/{unknown}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(none.status, 404);
    let v = none.json();
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(unknown),
        "{v}"
    );
}

/// An admin action by a JWT holder is audited under the token's subject, readable: the principal's
/// id used to be `jwt:<sub>`, which the audit trail's redaction took for a token and masked
/// ("admin GET /v1/keys -> 200 (key jwt:***").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_jwt_action_is_audited_under_its_subject() {
    let e = env().await;
    let token = hs256(&claims("admin"), HS_SECRET);
    let a = e.call(Method::GET, "/v1/keys", Some(&token), None).await;
    assert_eq!(a.status, 200);
    let kinds = e.audit_kinds(&a.trace).await;
    let (_, subject, summary) = kinds
        .iter()
        .find(|(k, _, _)| *k == AuditKind::Operator)
        .unwrap_or_else(|| panic!("no admin action noted: {kinds:?}"));
    assert_eq!(subject, "jwt/alice@example.test");
    assert!(summary.contains("jwt/alice@example.test"), "{summary}");
    assert!(!summary.contains("***"), "{summary}");
}
