//! A data directory whose `auth.secret` is gone (lost, or a store copied without it) still starts with
//! a usable admin key: the keys stored under the old secret can never match again, so the daemon says
//! so and makes a new admin key, instead of starting with every request refused and nothing said.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;

async fn status(d: &Daemon, key: &str) -> u16 {
    d.client()
        .get(d.url("/v1/version"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_auth_secret_gives_a_new_admin_key_and_a_warning() {
    let d = Daemon::start(&[]);
    let old_key = d.key.clone();
    assert_eq!(status(&d, &old_key).await, 200);
    let (dir, _) = d.stop();
    std::fs::remove_file(dir.path().join("data/auth.secret")).unwrap();

    let d = Daemon::start_in(dir, &[]);
    let out = d.output();
    assert!(
        out.contains("no longer match") && out.contains("api_keys_unusable"),
        "{out}"
    );
    assert!(!d.key.is_empty() && d.key != old_key, "{out}");
    assert_eq!(status(&d, &d.key).await, 200, "{out}");
    assert_eq!(status(&d, &old_key).await, 401);
    let (dir, _) = d.stop();

    // The next start has its secret: no warning, the new key still works.
    let d = Daemon::start_in(dir, &[]);
    assert!(!d.output().contains("api_keys_unusable"), "{}", d.output());
    let key = std::fs::read_to_string(d.data().join("admin.key")).unwrap();
    assert_eq!(status(&d, key.trim()).await, 200);
}
