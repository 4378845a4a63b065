//! The `notify` section: the embedded defaults (no channel, no route), a full block read into the
//! notify crate's typed values, secrets from values, files and the environment, every validation
//! problem reported with its path (several at once), and secrets never shown in errors or renderings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::{load_str, ConfigErrors, DEFAULT_YAML};
use sentinel_core::{NoticeKind, Severity};
use sentinel_notify::config::{
    ChannelConfig, DigestConfig, NotifyConfig, RetrySettings, Route, SmtpSecurity,
};
use std::path::PathBuf;
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn errors(yaml: &str) -> ConfigErrors {
    load_str(yaml, None, &[]).expect_err("the configuration must be refused")
}

/// Asserts that every path is named, and shows all errors when one is not.
fn assert_mentions(e: &ConfigErrors, paths: &[&str]) {
    for p in paths {
        assert!(e.mentions(p), "`{p}` not mentioned in:\n{e}");
    }
}

const FULL: &str = r#"
notify:
  channels:
    ops:   {type: webhook, url: "https://hooks.example/x", secret: "hook-secret-1", timeout: 5s}
    mail:  {type: smtp, host: mail.example.org, port: 587, security: starttls, username: u, password: "smtp-pass-2", from: sentinel@example.org, to: [ops@example.org, "Dev Team <dev@example.org>"], ca_file: null, timeout: 20s}
    chat:  {type: matrix, homeserver: "https://matrix.example.org/", room: "!abc:example.org", access_token: "mx-token-3"}
    slack: {type: slack, url: "https://hooks.slack.com/services/T0/B0/slack-secret-4"}
    log:   {type: log}
  routes:
    - {kinds: [alert, action_failed, crash, error], min_severity: high, channels: [ops, mail], group_wait: 10s, dedup_window: 5m, throttle: {max: 20, per: 1m}}
    - {channels: [chat, slack, log]}
  retry: {base: 2s, factor: 3, cap: 10m, max_attempts: 5}
  digest: {at: "08:30", channels: [mail], top: 15}
  keep_delivered: 14d
"#;

#[test]
fn the_embedded_defaults_have_no_channel_and_no_route() {
    let cfg = load_str("", None, &[]).unwrap();
    assert_eq!(cfg.notify, NotifyConfig::default());
    assert!(cfg.notify.channels.is_empty() && cfg.notify.routes.is_empty());
    assert_eq!(cfg.supervise, None);
    assert!(DEFAULT_YAML.contains("\nnotify:"));
    // The defaults render and read back as the same configuration.
    let again = load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again, cfg);
    assert!(cfg.warnings().iter().all(|w| !w.contains("notify")));
}

#[test]
fn a_full_block_reads_into_the_typed_values() {
    let cfg = load_str(FULL, None, &[]).unwrap();
    let n = &cfg.notify;
    assert_eq!(
        n.channels.keys().collect::<Vec<_>>(),
        ["chat", "log", "mail", "ops", "slack"]
    );
    let ChannelConfig::Webhook(w) = &n.channels["ops"] else {
        panic!("ops is not a webhook: {:?}", n.channels["ops"]);
    };
    assert_eq!(w.url, "https://hooks.example/x");
    assert_eq!(w.secret.expose(), "hook-secret-1");
    assert_eq!(w.timeout, secs(5));
    let ChannelConfig::Smtp(m) = &n.channels["mail"] else {
        panic!("mail is not smtp");
    };
    assert_eq!(m.host, "mail.example.org");
    assert_eq!(m.port, 587);
    assert_eq!(m.security, SmtpSecurity::Starttls);
    assert_eq!(m.username.as_deref(), Some("u"));
    assert_eq!(m.password.as_ref().map(|p| p.expose()), Some("smtp-pass-2"));
    assert_eq!(m.from, "sentinel@example.org");
    assert_eq!(m.to, ["ops@example.org", "Dev Team <dev@example.org>"]);
    assert_eq!(m.ca_file, None);
    assert_eq!(m.timeout, secs(20));
    let ChannelConfig::Matrix(x) = &n.channels["chat"] else {
        panic!("chat is not matrix");
    };
    assert_eq!(x.homeserver, "https://matrix.example.org");
    assert_eq!(x.room, "!abc:example.org");
    assert_eq!(x.access_token.expose(), "mx-token-3");
    assert_eq!(x.timeout, secs(10));
    let ChannelConfig::Slack(s) = &n.channels["slack"] else {
        panic!("slack is not slack");
    };
    assert_eq!(
        s.url.expose(),
        "https://hooks.slack.com/services/T0/B0/slack-secret-4"
    );
    assert_eq!(n.channels["log"], ChannelConfig::Log);
    assert_eq!(
        n.routes,
        [
            Route {
                kinds: vec![
                    NoticeKind::Alert,
                    NoticeKind::ActionFailed,
                    NoticeKind::Crash,
                    NoticeKind::Error
                ],
                min_severity: Severity::High,
                channels: vec!["ops".into(), "mail".into()],
                group_wait: secs(10),
                dedup_window: secs(300),
                throttle_max: 20,
                throttle_per: secs(60),
            },
            // Every default: all kinds, every severity, 10s / 5m / 20 per minute.
            Route {
                kinds: vec![],
                min_severity: Severity::Info,
                channels: vec!["chat".into(), "slack".into(), "log".into()],
                group_wait: secs(10),
                dedup_window: secs(300),
                throttle_max: 20,
                throttle_per: secs(60),
            },
        ]
    );
    assert!(n.routes[1].matches(NoticeKind::Test, Severity::Info));
    assert!(!n.routes[0].matches(NoticeKind::Alert, Severity::Medium));
    assert_eq!(
        n.retry,
        RetrySettings {
            base: secs(2),
            factor: 3.0,
            cap: secs(600),
            max_attempts: 5
        }
    );
    assert_eq!(
        n.digest,
        Some(DigestConfig {
            at: (8, 30),
            channels: vec!["mail".into()],
            top: 15
        })
    );
    assert_eq!(n.keep_delivered, secs(14 * 86400));
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
}

#[test]
fn secrets_are_masked_in_the_rendering_and_debug_output() {
    let cfg = load_str(FULL, None, &[]).unwrap();
    let text = cfg.effective_yaml();
    let debug = format!("{cfg:?}");
    for secret in [
        "hook-secret-1",
        "smtp-pass-2",
        "mx-token-3",
        "slack-secret-4",
        "hooks.slack.com",
    ] {
        assert!(!text.contains(secret), "{secret} shown in:\n{text}");
        assert!(!debug.contains(secret), "{secret} in Debug output");
    }
    // What is not secret still shows, in the configuration's own shape.
    for shown in [
        "https://hooks.example/x",
        "mail.example.org",
        "!abc:example.org",
        "at: 08:30",
        "dedup_window: 5m",
        "keep_delivered: 14days",
    ] {
        assert!(text.contains(shown), "{shown} missing in:\n{text}");
    }
    // A shown configuration is not a working one: the mask is refused as a secret.
    let e = load_str(&text, None, &[]).unwrap_err();
    assert_mentions(
        &e,
        &[
            "notify.channels.ops.secret",
            "notify.channels.mail.password",
            "notify.channels.chat.access_token",
            "notify.channels.slack.url",
        ],
    );
}

#[test]
fn a_configuration_without_secrets_reads_back_from_its_rendering() {
    let yaml = r#"
notify:
  channels:
    relay: {type: smtp, host: 127.0.0.1, security: none, from: s@example.org, to: [a@example.org]}
    log: {type: log}
  routes: [{kinds: [crash], channels: [relay, log], group_wait: 0s}]
  digest: {at: "23:59", channels: [log]}
"#;
    let cfg = load_str(yaml, None, &[]).unwrap();
    let ChannelConfig::Smtp(m) = &cfg.notify.channels["relay"] else {
        panic!("not smtp");
    };
    assert_eq!((m.port, m.timeout), (25, secs(30)));
    assert_eq!(cfg.notify.routes[0].group_wait, Duration::ZERO);
    let again = load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again, cfg);
}

#[test]
fn secrets_come_from_files_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("hook");
    std::fs::write(&hook, "file-secret\n").unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "file-token\r\n").unwrap();
    let slack = dir.path().join("slack");
    std::fs::write(&slack, "https://hooks.slack.com/services/FILE\n").unwrap();
    let yaml = format!(
        r#"
notify:
  channels:
    ops: {{type: webhook, url: "http://127.0.0.1:9/hook", secret_file: {}}}
    chat: {{type: matrix, homeserver: "http://localhost:8008", room: "!r:x", access_token_file: {}}}
    slack: {{type: slack, url_file: {}}}
    mail: {{type: smtp, host: mail.example.org, username: u, from: a@example.org, to: [b@example.org]}}
  routes: [{{channels: [ops, chat, slack, mail]}}]
"#,
        hook.display(),
        token.display(),
        slack.display()
    );
    let vars = env(&[("SENTINEL__NOTIFY__CHANNELS__MAIL__PASSWORD", "env-pass")]);
    let cfg = load_str(&yaml, None, &vars).unwrap();
    let c = &cfg.notify.channels;
    let (
        ChannelConfig::Webhook(w),
        ChannelConfig::Matrix(m),
        ChannelConfig::Slack(s),
        ChannelConfig::Smtp(p),
    ) = (&c["ops"], &c["chat"], &c["slack"], &c["mail"])
    else {
        panic!("wrong channel types: {c:?}");
    };
    assert_eq!(w.secret.expose(), "file-secret");
    assert_eq!(m.access_token.expose(), "file-token");
    assert_eq!(s.url.expose(), "https://hooks.slack.com/services/FILE");
    assert_eq!(p.password.as_ref().unwrap().expose(), "env-pass");
    assert!(!cfg.effective_yaml().contains("env-pass"));
}

#[test]
fn every_channel_problem_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.path().join("missing");
    let yaml = format!(
        r#"
notify:
  channels:
    Bad Name: {{type: log}}
    nokind: {{url: "https://x.example"}}
    weird: {{type: pager}}
    both: {{type: webhook, url: "https://h.example/", secret: s, secret_file: /etc/hostname}}
    nosecret: {{type: webhook, url: "ftp://h.example/"}}
    masked: {{type: webhook, url: "https://h.example/", secret: "***"}}
    emptyfile: {{type: matrix, homeserver: "http://matrix.example.org", room: "abc", access_token_file: {}}}
    gone: {{type: slack, url_file: {}}}
    plain: {{type: slack, url: "http://hooks.slack.example/services/X"}}
    mail: {{type: smtp, host: mail.example.org, port: 70000, security: ssl, from: nobody, to: [], colour: red}}
    mail2: {{type: smtp, host: mail.example.org, security: none, username: u, password: p, from: a@example.org, to: [b@example.org, "c@"]}}
    userless: {{type: smtp, host: 127.0.0.1, password: p, from: a@example.org, to: [b@example.org]}}
    slow: {{type: webhook, url: "https://h.example/", secret: s, timeout: 1h}}
    zero: {{type: log, timeout: 1s}}
"#,
        empty.display(),
        missing.display()
    );
    let e = errors(&yaml);
    assert_mentions(
        &e,
        &[
            "notify.channels.Bad Name",
            "notify.channels.nokind.type",
            "notify.channels.weird.type",
            "notify.channels.both.secret",
            "notify.channels.nosecret.url",
            "notify.channels.nosecret.secret",
            "notify.channels.masked.secret",
            "notify.channels.emptyfile.homeserver",
            "notify.channels.emptyfile.room",
            "notify.channels.emptyfile.access_token_file",
            "notify.channels.gone.url_file",
            "notify.channels.plain.url",
            "notify.channels.mail.port",
            "notify.channels.mail.security",
            "notify.channels.mail.from",
            "notify.channels.mail.to",
            "notify.channels.mail.colour",
            "notify.channels.mail2.to[1]",
            "notify.channels.userless.username",
            "notify.channels.slow.timeout",
            "notify.channels.zero.timeout",
        ],
    );
    let text = e.to_string();
    assert!(text.contains("unknown channel type `pager`"), "{text}");
    assert!(text.contains("both set"), "{text}");
    assert!(text.contains("the access_token is empty (in `"), "{text}");
    assert!(text.contains("is the mask"), "{text}");
    // The clear-text SMTP login is refused once `to` is fixed (one problem per channel at a time).
    let e = errors(
        "notify:\n  channels:\n    m: {type: smtp, host: mail.example.org, security: none, username: u, password: pw-5, from: a@example.org, to: [b@example.org]}\n",
    );
    assert_mentions(&e, &["notify.channels.m.security"]);
    assert!(!e.to_string().contains("pw-5"), "{e}");
}

#[test]
fn a_bad_value_next_to_a_secret_never_echoes_the_secret() {
    let secrets = [
        "hunter2-webhook",
        "hunter2-smtp",
        "hunter2 token",
        "https://hooks.slack.com/services/hunter2-slack",
    ];
    let yaml = format!(
        r#"
notify:
  channels:
    ops: {{type: webhook, url: "not a url", secret: "{}", timeout: soon}}
    mail: {{type: smtp, host: "", username: u, password: "{}", from: x, to: [y]}}
    chat: {{type: matrix, homeserver: "https://m.example", room: "!a:b", access_token: "{}"}}
    slack: {{type: slack, url: "{}", timeout: 0s}}
    s2: {{type: slack, url: "ftp://hunter2-secret-url"}}
    s3: {{type: slack, url: 12345}}
  routes: [{{channels: [ops, nope]}}]
"#,
        secrets[0], secrets[1], secrets[2], secrets[3]
    );
    let e = errors(&yaml);
    assert_mentions(
        &e,
        &[
            "notify.channels.ops.url",
            "notify.channels.ops.timeout",
            "notify.channels.mail.host",
            "notify.channels.mail.from",
            "notify.channels.chat.access_token",
            "notify.channels.slack.timeout",
            "notify.channels.s2.url",
            "notify.channels.s3.url",
            "notify.routes[0].channels[1]",
        ],
    );
    let text = format!("{e}\n{e:?}");
    for s in secrets.iter().chain(&["hunter2-secret-url", "12345"]) {
        assert!(!text.contains(s), "{s} echoed in:\n{text}");
    }
}

#[test]
fn every_route_retry_and_digest_problem_is_reported_with_its_path() {
    let yaml = r#"
notify:
  channels:
    log: {type: log}
  routes:
    - {kinds: [alert, explosion], min_severity: dire, channels: [log, missing], group_wait: 2h, dedup_window: 8d, throttle: {max: 0, per: 0s}}
    - {channels: []}
    - {channels: [log, log], colour: red}
    - {kinds: [alert]}
  retry: {base: 10m, factor: 0.5, cap: 1m, max_attempts: 0}
  digest: {at: "24:00", channels: [nowhere], top: 0}
  keep_delivered: 400d
"#;
    let e = errors(yaml);
    assert_mentions(
        &e,
        &[
            "notify.routes[0].kinds[1]",
            "notify.routes[0].min_severity",
            "notify.routes[0].channels[1]",
            "notify.routes[0].group_wait",
            "notify.routes[0].dedup_window",
            "notify.routes[0].throttle.max",
            "notify.routes[0].throttle.per",
            "notify.routes[1].channels",
            "notify.routes[2].channels[1]",
            "notify.routes[2].colour",
            "notify.routes[3].channels",
            "notify.retry.factor",
            "notify.retry.cap",
            "notify.retry.max_attempts",
            "notify.digest.at",
            "notify.digest.channels[0]",
            "notify.digest.top",
            "notify.keep_delivered",
        ],
    );
    let text = e.to_string();
    assert!(text.contains("unknown notice kind `explosion`"), "{text}");
    assert!(text.contains("no channel is named `missing`"), "{text}");
    // Unquoted, a time of day is still read (YAML 1.2 has no base-60 numbers), and bad ones are named.
    for (at, ok) in [
        ("08:00", true),
        ("\"7:00\"", false),
        ("800", false),
        ("\"00:60\"", false),
    ] {
        let yaml = format!(
            "notify:\n  channels: {{log: {{type: log}}}}\n  digest: {{at: {at}, channels: [log]}}\n"
        );
        match load_str(&yaml, None, &[]) {
            Ok(c) => assert!(ok, "{at} accepted as {:?}", c.notify.digest),
            Err(e) => {
                assert!(!ok, "{at} refused: {e}");
                assert_mentions(&e, &["notify.digest.at"]);
            }
        }
    }
}

#[test]
fn delivered_rows_must_outlive_the_longest_dedup_window() {
    let e = errors(
        "notify:\n  channels: {log: {type: log}}\n  routes: [{channels: [log], dedup_window: 3d}]\n  keep_delivered: 1d\n",
    );
    assert_mentions(&e, &["notify.keep_delivered"]);
    assert!(e.to_string().contains("dedup_window"), "{e}");
}

#[test]
fn risky_but_allowed_settings_are_warned_about() {
    let cfg = load_str(
        r#"
notify:
  channels:
    relay: {type: smtp, host: mail.example.org, security: none, from: a@example.org, to: [b@example.org]}
    hook: {type: webhook, url: "http://hooks.example/x", secret: s}
    idle: {type: log}
  routes: [{channels: [relay, hook]}]
"#,
        None,
        &[],
    )
    .unwrap();
    let w = cfg.warnings().join("\n");
    assert!(w.contains("notify.channels.relay.security is none"), "{w}");
    assert!(w.contains("notify.channels.hook.url is http://"), "{w}");
    assert!(
        w.contains("notify.channels.idle is named by no route"),
        "{w}"
    );
    assert!(!w.contains("channels.relay is named"), "{w}");
}

#[test]
fn smtp_defaults_follow_the_security() {
    let cfg = load_str(
        "notify:\n  channels:\n    a: {type: smtp, host: m.example, from: a@m.example, to: [b@m.example]}\n    b: {type: smtp, host: m.example, security: tls, from: a@m.example, to: [b@m.example], ca_file: /etc/ssl/ca.pem}\n  routes: [{channels: [a, b]}]\n",
        None,
        &[],
    )
    .unwrap();
    let c = &cfg.notify.channels;
    let (ChannelConfig::Smtp(a), ChannelConfig::Smtp(b)) = (&c["a"], &c["b"]) else {
        panic!("not smtp");
    };
    assert_eq!(
        (a.security, a.port, a.username.clone()),
        (SmtpSecurity::Starttls, 587, None)
    );
    assert_eq!((b.security, b.port), (SmtpSecurity::Tls, 465));
    assert_eq!(b.ca_file, Some(PathBuf::from("/etc/ssl/ca.pem")));
}

#[test]
fn the_pending_cap_of_operator_notices_is_a_setting() {
    assert_eq!(
        load_str("", None, &[]).unwrap().notify.max_pending,
        sentinel_notify::config::DEFAULT_MAX_PENDING
    );
    let cfg = load_str("notify:\n  max_pending: 50\n", None, &[]).unwrap();
    assert_eq!(cfg.notify.max_pending, 50);
    for bad in ["0", "-1", "many"] {
        let e = errors(&format!("notify:\n  max_pending: {bad}\n"));
        assert_mentions(&e, &["notify.max_pending"]);
    }
}
