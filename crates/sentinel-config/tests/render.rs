//! The operator-facing views: masked effective YAML and start-up warnings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::{load_str, ValidatedConfig};

fn cfg(yaml: &str) -> ValidatedConfig {
    load_str(yaml, None, &[]).unwrap()
}

#[test]
fn effective_yaml_masks_token_and_secret_keys() {
    // Action parameters are typed (a secret-looking key there is a config error); free-form maps such
    // as a source's fail2ban variables are where such keys can still appear.
    let yaml = r#"
sources:
  - { type: file, paths: [/var/log/auth.log], fail2ban_filter: /etc/fail2ban/filter.d/sshd.conf, fail2ban_vars: { api_token: tok-123, client_secret: sec-456, host: 10.9.9.9 }, jail: sshd }
"#;
    let text = cfg(yaml).effective_yaml();
    assert!(!text.contains("tok-123"), "{text}");
    assert!(!text.contains("sec-456"), "{text}");
    assert!(text.contains("api_token: '***'"), "{text}");
    assert!(text.contains("10.9.9.9"), "{text}");
    assert!(text.contains("127.0.0.1:8000"), "{text}");
}

#[test]
fn effective_yaml_masks_keys_matching_redact_keys() {
    let text = cfg("logging:\n  redact_keys: [listen]\n").effective_yaml();
    assert!(!text.contains("127.0.0.1:8000"), "{text}");
    assert!(text.contains("listen: '***'"), "{text}");
}

#[test]
fn effective_yaml_is_valid_config_again() {
    let original = cfg("api:\n  listen: 127.0.0.1:9000\npolicy:\n  allowlist: [10.0.0.1]\n");
    let again = load_str(&original.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again, original);
}

#[test]
fn the_witness_secret_is_masked_and_its_url_checked() {
    let c =
        cfg("audit:\n  witness_url: https://witness.example/cp\n  witness_secret: hmac-key-123\n");
    let text = c.effective_yaml();
    assert!(!text.contains("hmac-key-123"), "{text}");
    assert!(
        text.contains("witness_url: https://witness.example/cp"),
        "{text}"
    );
    for (yaml, path) in [
        (
            "audit:\n  witness_url: http://192.0.2.7/cp\n  witness_secret: k\n",
            "audit.witness_url",
        ),
        (
            "audit:\n  witness_url: https://w.example/\n",
            "audit.witness_secret",
        ),
        ("audit:\n  witness_secret: k\n", "audit.witness_url"),
        // No host, a bad port, characters URL parsers disagree on: refused, never sent anywhere.
        (
            "audit:\n  witness_url: 'https:///cp'\n  witness_secret: k\n",
            "audit.witness_url",
        ),
        (
            "audit:\n  witness_url: 'https://:443/cp'\n  witness_secret: k\n",
            "audit.witness_url",
        ),
        (
            "audit:\n  witness_url: 'http://127.0.0.1:99999/cp'\n  witness_secret: k\n",
            "audit.witness_url",
        ),
        (
            "audit:\n  witness_url: 'https://w.example:/cp'\n  witness_secret: k\n",
            "audit.witness_url",
        ),
        (
            "audit:\n  witness_url: 'https://exa mple.com/'\n  witness_secret: k\n",
            "audit.witness_url",
        ),
        (
            "audit:\n  witness_url: 'http://127.0.0.1\\@192.0.2.7/'\n  witness_secret: k\n",
            "audit.witness_url",
        ),
        (
            "audit:\n  witness_url: 'http://[::1/cp'\n  witness_secret: k\n",
            "audit.witness_url",
        ),
        ("audit:\n  origin: 'two words'\n", "audit.origin"),
    ] {
        let e = load_str(yaml, None, &[]).unwrap_err().to_string();
        assert!(e.contains(path), "{yaml}: {e}");
    }
    assert!(load_str(
        "audit:\n  witness_url: http://127.0.0.1:9/cp\n  witness_secret: k\n",
        None,
        &[]
    )
    .is_ok());
    for ok in [
        "http://[::1]:9/cp",
        "http://[::1]/cp",
        "http://localhost:8080",
        "https://user:pass@w.example:8443/cp?x=1",
        "http://relay:pw@127.0.0.1:9/cp",
    ] {
        let yaml = format!("audit:\n  witness_url: '{ok}'\n  witness_secret: k\n");
        assert!(load_str(&yaml, None, &[]).is_ok(), "{ok}");
    }
}

#[test]
fn no_warnings_for_defaults() {
    assert!(cfg("").warnings().is_empty());
}

#[test]
fn warns_about_auth_bypass() {
    let w = cfg("api:\n  allow_insecure_no_auth: true\n").warnings();
    assert_eq!(
        w,
        ["api.allow_insecure_no_auth is true: the API accepts requests without a key"]
    );
}

#[test]
fn warns_about_public_listen_without_tls_in_front() {
    let w = cfg("api:\n  listen: 0.0.0.0:8000\n").warnings();
    assert_eq!(
        w,
        ["api.listen 0.0.0.0:8000 is not loopback and no TLS is in front (set api.tls, or api.tls_terminated_by_proxy once a proxy terminates it)"]
    );
    let w = cfg("api:\n  listen: 0.0.0.0:8000\n  tls_terminated_by_proxy: true\n").warnings();
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn warns_about_enforce_without_allowlist() {
    let w = cfg("policy:\n  mode: enforce\n").warnings();
    assert_eq!(w, ["policy.mode is enforce and policy.allowlist is empty"]);
    let w = cfg("policy:\n  mode: enforce\n  allowlist: [10.0.0.0/8]\n").warnings();
    assert!(w.is_empty(), "{w:?}");
}
