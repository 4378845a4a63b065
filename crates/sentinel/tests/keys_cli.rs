//! `sentinel keys` against a real daemon: a viewer key made with an expiry, listed (never its hash),
//! used, refused where its role does not reach, revoked and refused on the next request; each change in
//! the audit trail. And a JWT accepted by the daemon configured with `api.jwt` (HS256 secret file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, Daemon};
use serde_json::{json, Value};

const SECRET: &str = "a-test-secret-of-more-than-32-bytes-for-hs256";

fn keys(d: &Daemon, args: &[&str]) -> (Option<i32>, String, String) {
    let out = command(d.dir.path())
        .arg("keys")
        .args(args)
        .args(["--data-dir", "data"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_made_listed_used_and_revoked_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "api:\n  jwt:\n    issuer: https://issuer.example.test\n    audience: sentinel\n    hs256_secret_file: {}\n",
            secret.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let http = d.client();

    let (code, out, err) = keys(
        &d,
        &[
            "create",
            "--role",
            "viewer",
            "--expires",
            "90d",
            "--name",
            "dashboard",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let key = out.trim().to_owned();
    assert!(
        key.starts_with("snl_") && !key.contains('\n'),
        "stdout is the key alone: {out}"
    );
    assert!(err.contains("viewer key \"dashboard\""), "{err}");

    let (code, out, err) = keys(&d, &["list", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains(&key) && !out.contains("hash"), "{out}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 2, "the admin key and the new one: {out}");
    let mine = items.iter().find(|k| k["name"] == "dashboard").unwrap();
    let id = mine["id"].as_str().unwrap().to_owned();
    assert_eq!(mine["role"], "viewer");
    assert_eq!(mine["state"], "active");
    assert!(mine["expires"].is_string());
    let (_, table, _) = keys(&d, &["list"]);
    assert!(table.starts_with("ID") && table.contains(&id), "{table}");

    let status = |path: &str, key: &str| {
        let (http, url, key) = (http.clone(), d.url(path), key.to_owned());
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/v1/alerts", &key).await, 200);
    assert_eq!(status("/v1/keys", &key).await, 403);

    let (code, out, err) = keys(&d, &["revoke", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&id));
    assert_eq!(status("/v1/alerts", &key).await, 401, "revoked at once");
    // Again: nothing to do, and it says so (not "not found" for a key `keys list` shows).
    let (code, out, err) = keys(&d, &["revoke", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("already revoked"), "{out}");
    // An id no key has: exit 1, the id named.
    let (code, _, err) = keys(&d, &["revoke", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("404") && err.contains("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        "{err}"
    );

    // Refused by the CLI itself, before the daemon: an unknown role.
    let (code, _, err) = keys(&d, &["create", "--role", "root"]);
    assert_eq!(code, Some(2), "{err}");

    // The daemon's api.jwt: an HS256 token with the role claim works; one with another secret does not.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "https://issuer.example.test", "aud": "sentinel", "sub": "ci",
        "nbf": now - 5, "exp": now + 300, "sentinel_role": "viewer",
    });
    let sign = |secret: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    assert_eq!(status("/v1/alerts", &sign(SECRET.as_bytes())).await, 200);
    assert_eq!(
        status(
            "/v1/alerts",
            &sign(b"another-secret-of-more-than-32-bytes!!")
        )
        .await,
        401
    );

    // Every change is in the audit trail, and the refusals are counted by reason.
    let records = http
        .get(d.url("/v1/audit/records"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in ["key_created", "key_revoked", "operator"] {
        assert!(records.contains(kind), "{kind} not in {records}");
    }
    let metrics = http
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sentinel_api_auth_failures_total{reason=\"revoked_key\"} 1",
        "sentinel_api_auth_failures_total{reason=\"jwt_bad_signature\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in metrics");
    }
    d.stop();
}
