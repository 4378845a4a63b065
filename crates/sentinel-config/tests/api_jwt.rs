//! `api.jwt`: off by default; when set, issuer and audience required, at least one key source, the
//! leeway bounded to 5 minutes, every problem named by its key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::load_str;
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn off_by_default_and_read_with_its_defaults() {
    let cfg = load_str("", None, &[]).unwrap();
    assert_eq!(cfg.api.jwt, None);
    let yaml = "api:\n  jwt:\n    issuer: https://id.example.test\n    audience: sentinel\n    jwks_file: /etc/sentinel/jwks.json\n";
    let jwt = load_str(yaml, None, &[]).unwrap().api.jwt.unwrap();
    assert_eq!(jwt.issuer, "https://id.example.test");
    assert_eq!(jwt.audience, "sentinel");
    assert_eq!(
        jwt.jwks_file,
        Some(PathBuf::from("/etc/sentinel/jwks.json"))
    );
    assert_eq!(jwt.hs256_secret_file, None);
    assert_eq!(jwt.role_claim, "sentinel_role");
    assert_eq!(jwt.leeway, Duration::from_secs(30));
}

#[test]
fn each_problem_is_named_by_its_key() {
    for (jwt, path, words) in [
        ("{audience: a, jwks_file: /x}", "api.jwt.issuer", "missing"),
        (
            "{issuer: i, audience: '', jwks_file: /x}",
            "api.jwt.audience",
            "non-empty",
        ),
        (
            "{issuer: i, audience: a}",
            "api.jwt",
            "hs256_secret_file or jwks_file",
        ),
        (
            "{issuer: i, audience: a, jwks_file: /x, leeway: 10m}",
            "api.jwt.leeway",
            "at most 5m",
        ),
        (
            "{issuer: i, audience: a, jwks_file: /x, role_claim: ''}",
            "api.jwt.role_claim",
            "non-empty",
        ),
        (
            "{issuer: i, audience: a, jwks_file: /x, algorithm: none}",
            "api.jwt.algorithm",
            "unknown key",
        ),
    ] {
        let yaml = format!("api:\n  jwt: {jwt}\n");
        let errs = load_str(&yaml, None, &[]).unwrap_err();
        let shown = errs.to_string();
        assert!(
            errs.0.iter().any(|e| e.path == path) && shown.contains(words),
            "{jwt}: {shown}"
        );
    }
}
