//! `api.rate_limit` and `api.webhooks`: defaults, secrets from files (never shown), every bad value
//! named by its key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::load_str;
use std::time::Duration;

fn errors(yaml: &str) -> String {
    load_str(yaml, None, &[]).unwrap_err().to_string()
}

#[test]
fn defaults_limit_per_address_and_key_and_mount_no_webhook() {
    let cfg = load_str("", None, &[]).unwrap();
    let r = &cfg.api.rate_limit;
    let ip = r.per_ip.unwrap();
    assert_eq!(
        (ip.count, ip.per, ip.burst),
        (50, Duration::from_secs(1), 100)
    );
    let key = r.per_key.unwrap();
    assert_eq!((key.count, key.burst), (1000, 2000));
    assert_eq!(r.exempt.len(), 2);
    let w = &cfg.api.webhooks;
    assert!(w.github.is_none() && w.gitea.is_none() && w.generic.is_none());
    assert_eq!(w.replay_window, Duration::from_secs(300));
    // The rendering reads back to the same configuration.
    let again = load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again.api, cfg.api);
}

#[test]
fn limits_can_be_changed_or_turned_off() {
    let cfg = load_str(
        "api:\n  rate_limit:\n    per_ip: off\n    per_key: { rate: 100/10s, burst: 5 }\n    exempt: [192.0.2.0/24, 2001:db8::1]\n",
        None,
        &[],
    )
    .unwrap();
    let r = &cfg.api.rate_limit;
    assert!(r.per_ip.is_none());
    let k = r.per_key.unwrap();
    assert_eq!((k.count, k.per, k.burst), (100, Duration::from_secs(10), 5));
    assert_eq!(r.exempt[0].to_string(), "192.0.2.0/24");
    assert_eq!(r.exempt[1].to_string(), "2001:db8::1/128");
    let again = load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again.api.rate_limit, cfg.api.rate_limit, "`off` reads back");
    let e = errors("api:\n  rate_limit:\n    per_ip: 5\n");
    assert!(e.contains("`api.rate_limit.per_ip`: expected `off`"), "{e}");
}

#[test]
fn webhook_secrets_come_from_files_or_values_and_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gh.secret");
    std::fs::write(&file, "file-secret-0123456789\n").unwrap();
    let yaml = format!(
        "api:\n  webhooks:\n    github: {{ secret_file: {} }}\n    generic: {{ secret: value-secret-0123456789 }}\n",
        file.display()
    );
    let cfg = load_str(&yaml, None, &[]).unwrap();
    let w = &cfg.api.webhooks;
    assert_eq!(
        w.github.as_ref().unwrap().expose(),
        "file-secret-0123456789"
    );
    assert_eq!(
        w.generic.as_ref().unwrap().expose(),
        "value-secret-0123456789"
    );
    assert!(w.gitea.is_none());
    let shown = cfg.effective_yaml();
    assert!(!shown.contains("file-secret"), "{shown}");
    assert!(!shown.contains("value-secret"), "{shown}");
    assert!(format!("{cfg:?}").contains("***"));
    assert!(!format!("{cfg:?}").contains("value-secret"));
}

#[test]
fn bad_values_are_named_by_their_key() {
    let e = errors("api:\n  rate_limit:\n    per_ip: { rate: fast, burst: 10 }\n");
    assert!(
        e.contains("`api.rate_limit.per_ip.rate`: not a rate"),
        "{e}"
    );
    let e = errors("api:\n  rate_limit:\n    per_key: { rate: 10/s, burst: 0 }\n");
    assert!(e.contains("`api.rate_limit.per_key.burst`"), "{e}");
    let e = errors("api:\n  rate_limit:\n    exempt: [nowhere]\n");
    assert!(e.contains("`api.rate_limit.exempt[0]`"), "{e}");
    let e = errors("api:\n  rate_limit:\n    max_tracked: 0\n");
    assert!(e.contains("`api.rate_limit.max_tracked`"), "{e}");
    let e = errors(
        "api:\n  webhooks:\n    github: { secret: a-long-enough-secret-1, secret_file: /x }\n",
    );
    assert!(
        e.contains("`api.webhooks.github.secret`: `secret` and `secret_file` are both set"),
        "{e}"
    );
    let e = errors("api:\n  webhooks:\n    gitea: { secret: short }\n");
    assert!(
        e.contains("`api.webhooks.gitea.secret`: the secret is shorter than 16"),
        "{e}"
    );
    assert!(!e.contains("short }"), "the value is not shown: {e}");
    let e = errors("api:\n  webhooks:\n    gitea: {}\n");
    assert!(e.contains("`api.webhooks.gitea.secret`: missing"), "{e}");
    let e = errors("api:\n  webhooks:\n    generic: { secret: '***' }\n");
    assert!(e.contains("the mask"), "{e}");
    let e = errors("api:\n  webhooks:\n    github: { secrett: x }\n");
    assert!(
        e.contains("`api.webhooks.github.secrett`: unknown key"),
        "{e}"
    );
    let e = errors("api:\n  webhooks:\n    replay_window: 2d\n");
    assert!(
        e.contains("`api.webhooks.replay_window`: at most 24h"),
        "{e}"
    );
    let e = errors("api:\n  webhooks:\n    bitbucket: null\n");
    assert!(e.contains("`api.webhooks.bitbucket`: unknown key"), "{e}");
    let e = errors(
        "api:\n  webhooks:\n    github: { secret_file: /nonexistent/sentinel-test-secret }\n",
    );
    assert!(
        e.contains("`api.webhooks.github.secret_file`: cannot read"),
        "{e}"
    );
}
