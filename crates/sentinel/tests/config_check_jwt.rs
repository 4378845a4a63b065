//! `sentinel config check` loads `api.jwt`'s files as the daemon does at start: a missing HS256
//! secret file, one too short, or a JWKS file that does not parse is a problem (exit 2, the key and
//! the file named), where it used to pass the check and then stop the daemon. Through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::command;

fn check(dir: &std::path::Path, jwt: &str) -> (Option<i32>, String, String) {
    std::fs::write(dir.join("sentinel.yml"), format!("api:\n  jwt: {jwt}\n")).unwrap();
    let out = command(dir)
        .args(["config", "check", "--data-dir", "data"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_loads_the_jwt_files_like_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("short.secret"), "too short").unwrap();
    std::fs::write(
        d.join("good.secret"),
        "0123456789abcdef0123456789abcdef-a-long-enough-secret",
    )
    .unwrap();
    std::fs::write(d.join("bad.jwks"), "{ not json").unwrap();

    let (code, _, err) = check(
        d,
        "{ issuer: https://idp.example, audience: sentinel, hs256_secret_file: missing.secret }",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("api.jwt.hs256_secret_file"), "{err}");
    assert!(err.contains("missing.secret"), "{err}");

    let (code, _, err) = check(
        d,
        "{ issuer: https://idp.example, audience: sentinel, hs256_secret_file: short.secret }",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("at least 32 bytes"), "{err}");

    let (code, _, err) = check(
        d,
        "{ issuer: https://idp.example, audience: sentinel, jwks_file: bad.jwks }",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.jwks"), "{err}");

    // Good files pass, and the section is shown, not masked as a whole.
    let (code, out, err) = check(
        d,
        "{ issuer: https://idp.example, audience: sentinel, hs256_secret_file: good.secret }",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("issuer: https://idp.example"), "{out}");
}
