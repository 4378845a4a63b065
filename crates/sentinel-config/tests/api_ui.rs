//! `api.ui`: defaults, values read back, and range errors naming the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::load_str;
use std::time::Duration;

#[test]
fn ui_defaults_and_values() {
    let d = load_str("", None, &[]).unwrap();
    assert!(d.api.ui.enabled);
    assert_eq!(d.api.ui.session_ttl, Duration::from_secs(12 * 3600));
    assert_eq!(d.api.ui.idle_timeout, Duration::from_secs(3600));
    assert_eq!(d.api.ui.max_sessions, 10_000);
    assert!(!d.api.ui.secure_cookie);
    let c = load_str(
        "api:\n  ui:\n    enabled: false\n    session_ttl: 2h\n    idle_timeout: 10m\n    max_sessions: 5\n    secure_cookie: true\n",
        None,
        &[],
    )
    .unwrap();
    assert!(!c.api.ui.enabled && c.api.ui.secure_cookie);
    assert_eq!(c.api.ui.session_ttl, Duration::from_secs(7200));
    assert_eq!(c.api.ui.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.api.ui.max_sessions, 5);
    let again = load_str(&c.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again, c, "the effective YAML reads back the same");
}

#[test]
fn bad_ui_values_name_the_key() {
    for (bad, key) in [
        ("session_ttl: 1s", "api.ui.session_ttl"),
        ("session_ttl: 60d", "api.ui.session_ttl"),
        (
            "idle_timeout: 2h\n    session_ttl: 1h",
            "api.ui.idle_timeout",
        ),
        ("max_sessions: 0", "api.ui.max_sessions"),
        ("secure_cookie: maybe", "api.ui.secure_cookie"),
        ("sessions: 3", "api.ui.sessions"),
    ] {
        let errs = load_str(&format!("api:\n  ui:\n    {bad}\n"), None, &[]).unwrap_err();
        assert!(errs.mentions(key), "{bad}: {errs}");
    }
}

#[test]
fn public_origins_are_origins() {
    let d = load_str("", None, &[]).unwrap();
    assert!(d.api.ui.public_origins.is_empty());
    let c = load_str(
        "api:\n  ui:\n    public_origins: [\"https://Sentinel.Example.org\", \"http://[2001:db8::1]:8080\", \"http://192.0.2.7:8000\"]\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        c.api.ui.public_origins,
        vec![
            "https://sentinel.example.org",
            "http://[2001:db8::1]:8080",
            "http://192.0.2.7:8000"
        ]
    );
    assert_eq!(load_str(&c.effective_yaml(), None, &[]).unwrap(), c);
    for bad in [
        "sentinel.example.org",
        "https://sentinel.example.org/",
        "https://sentinel.example.org/ui",
        "https://user@sentinel.example.org",
        "https://sentinel.example.org:0",
        "https://sentinel.example.org:99999",
        "https://",
        "ftp://sentinel.example.org",
        "https://[not-v6]",
        "https://a b",
    ] {
        let errs = load_str(
            &format!("api:\n  ui:\n    public_origins: [\"{bad}\"]\n"),
            None,
            &[],
        )
        .unwrap_err();
        assert!(errs.mentions("api.ui.public_origins[0]"), "{bad}: {errs}");
    }
    let many: Vec<String> = (0..17)
        .map(|i| format!("\"https://h{i}.example\""))
        .collect();
    let errs = load_str(
        &format!("api:\n  ui:\n    public_origins: [{}]\n", many.join(", ")),
        None,
        &[],
    )
    .unwrap_err();
    assert!(errs.mentions("api.ui.public_origins"), "{errs}");
    let errs = load_str(
        "api:\n  ui:\n    public_origins: https://x.example\n",
        None,
        &[],
    )
    .unwrap_err();
    assert!(errs.mentions("api.ui.public_origins"), "{errs}");
}
