//! Validation through the public API: unknown keys, types and values, all reported together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::{load_str, validate, Band, RawConfig};
use sentinel_core::{ActionKind, Mode, Severity};
use sentinel_ingest::config::{LineFormat, LogFormat};
use std::time::Duration;

#[test]
fn two_unknown_keys_and_one_bad_value_are_three_errors() {
    let yaml = "api:\n  lisen: 0.0.0.0:1\n  max_body_bytes: lots\nstor:\n  batch_size: 1\n";
    let errs = load_str(yaml, None, &[]).unwrap_err();
    let mut paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["api.lisen", "api.max_body_bytes", "stor"], "{errs}");
    let shown = errs.to_string();
    assert_eq!(shown.lines().count(), 3);
    assert!(shown.contains("`api.lisen`: unknown key"), "{shown}");
    assert!(
        shown.contains("`api.max_body_bytes`: expected an integer, found string \"lots\""),
        "{shown}"
    );
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let yaml = r#"
api: { max_body_bytes: 0, request_timeout: soon }
pipeline: { queue_capacity: 2000000 }
store: { max_events: 10 }
logging: { level: loud }
detect: { heuristic: { min_score: 101, bad_ports: [22, 70000] } }
policy: { mode: panic, risk_bands: { medium: 80, high: 70 } }
"#;
    let errs = load_str(yaml, None, &[]).unwrap_err();
    for path in [
        "api.max_body_bytes",
        "api.request_timeout",
        "pipeline.queue_capacity",
        "store.max_events",
        "logging.level",
        "detect.heuristic.min_score",
        "detect.heuristic.bad_ports[1]",
        "policy.mode",
        "policy.risk_bands",
    ] {
        assert!(errs.mentions(path), "{path} missing from:\n{errs}");
    }
    assert_eq!(errs.len(), 9, "{errs}");
}

#[test]
fn bad_cidr_in_allowlist() {
    let yaml = "policy:\n  allowlist: [10.0.0.0/8, 192.168.1.7, 10.0.0.300/8, \"::1\"]\n";
    let errs = load_str(yaml, None, &[]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    assert_eq!(
        errs.to_string(),
        "`policy.allowlist[2]`: not a CIDR or IP address: \"10.0.0.300/8\""
    );
    let ok = load_str(
        "policy:\n  allowlist: [10.0.0.0/8, 192.168.1.7, \"::1\"]\n",
        None,
        &[],
    )
    .unwrap();
    let shown: Vec<String> = ok.policy.allowlist.iter().map(|n| n.to_string()).collect();
    assert_eq!(shown, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
    assert!(ok.policy.is_allowlisted("10.1.2.3".parse().unwrap()));
}

#[test]
fn falco_ignore_rules_are_names() {
    let cfg = load_str(
        "detect:\n  falco:\n    ignore_rules: [\"Terminal shell in container\"]\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        cfg.detect.falco.ignore_rules,
        ["Terminal shell in container"]
    );
    let errs = load_str(
        "detect:\n  falco:\n    ignore_rules: [\" \", 7]\n    ignore: []\n",
        None,
        &[],
    )
    .unwrap_err();
    let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "detect.falco.ignore_rules[0]",
        "detect.falco.ignore_rules[1]",
        "detect.falco.ignore",
    ] {
        assert!(paths.contains(&want), "{want} not in {errs}");
    }
}

#[test]
fn rule_with_unknown_action_kind() {
    let yaml = r#"
policy:
  rules:
    - { severity: [critical], risk: any, confidence: any, actions: [{kind: nuke_from_orbit}] }
"#;
    let errs = load_str(yaml, None, &[]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    assert_eq!(errs.0[0].path, "policy.rules[0].actions[0].kind");
    assert!(errs.0[0].message.contains("nuke_from_orbit"), "{errs}");
}

#[test]
fn rules_are_typed_and_any_is_expanded() {
    let yaml = r#"
policy:
  default_ttl: 2h
  rules:
    - name: block everything critical
      severity: critical
      risk: any
      confidence: [high]
      actions:
        - { kind: block_ip }
        - { kind: rate_limit, ttl: 10m, params: { rate_per_sec: 5 } }
"#;
    let cfg = load_str(yaml, None, &[]).unwrap();
    let rule = &cfg.policy.rules[0];
    assert_eq!(rule.name.as_deref(), Some("block everything critical"));
    assert_eq!(rule.severity, [Severity::Critical]);
    assert_eq!(rule.risk, Band::ALL);
    assert_eq!(rule.confidence, [Band::High]);
    assert_eq!(rule.actions[0].kind, ActionKind::BlockIp);
    assert_eq!(
        cfg.policy.ttl_for(&rule.actions[0]),
        Duration::from_secs(7200)
    );
    assert_eq!(rule.actions[1].ttl, Some(Duration::from_secs(600)));
    assert_eq!(rule.actions[1].params.to_json()["rate_per_sec"], 5);
}

/// Every malformed action parameter is a config error at load, at the rule's action and the field,
/// without the raw value in the message.
#[test]
fn malformed_action_params_are_config_errors_naming_rule_and_field() {
    let cases = [
        ("block_ip", r#"{ cidr: "127.0.0.0/8 " }"#, "params.cidr"),
        (
            "block_ip",
            r#"{ cidr: "203.0.113.0/24; flush ruleset" }"#,
            "params.cidr",
        ),
        ("block_ip", r#"{ cidr: "128.0.0.0/1" }"#, "params.cidr"),
        (
            "redirect_to_honeypot",
            r#"{ honeypot: "192.0.2.30:2222; flush ruleset" }"#,
            "params.honeypot",
        ),
        (
            "redirect_to_honeypot",
            r#"{ honeypot: "192.0.2.30:22", ports: [0] }"#,
            "params.ports",
        ),
        ("rate_limit", "{ rate_per_sec: -1 }", "params.rate_per_sec"),
        ("rate_limit", "{ rate_per_sec: 0 }", "params.rate_per_sec"),
        (
            "isolate_container",
            r#"{ quarantine_network: "x/../../images/y?force=1" }"#,
            "params.quarantine_network",
        ),
        ("block_ip", "{ password: hunter2 }", "params"),
        ("quarantine_file", "{ anything: 1 }", "params"),
        // Hostile shapes YAML can carry: floats, strings, lists, huge numbers, unicode digits,
        // zone ids, repeated ports, non-unicast honeypots.
        (
            "rate_limit",
            "{ rate_per_sec: 10.0 }",
            "params.rate_per_sec",
        ),
        (
            "rate_limit",
            "{ rate_per_sec: \"10\" }",
            "params.rate_per_sec",
        ),
        (
            "rate_limit",
            "{ rate_per_sec: [10] }",
            "params.rate_per_sec",
        ),
        (
            "rate_limit",
            "{ rate_per_sec: 99999999999999999999999 }",
            "params.rate_per_sec",
        ),
        ("rate_limit", "{ burst: -5 }", "params.burst"),
        ("block_ip", r#"{ cidr: "0.0.0.0/7" }"#, "params.cidr"),
        ("block_ip", r#"{ cidr: "::ffff:0:0/96" }"#, "params.cidr"),
        ("block_ip", r#"{ cidr: "٢٠٣.0.113.0/24" }"#, "params.cidr"),
        ("block_ip", "{ cidr: [203.0.113.0/24] }", "params.cidr"),
        (
            "redirect_to_honeypot",
            r#"{ honeypot: "[fe80::1%2]:2222" }"#,
            "params.honeypot",
        ),
        (
            "redirect_to_honeypot",
            r#"{ honeypot: "0.0.0.0:22" }"#,
            "params.honeypot",
        ),
        (
            "redirect_to_honeypot",
            r#"{ honeypot: "192.0.2.30:22", ports: [22, 22] }"#,
            "params.ports",
        ),
        (
            "redirect_to_honeypot",
            r#"{ honeypot: "192.0.2.30:22", ports: ["1-65535", 80] }"#,
            "params.ports",
        ),
        (
            "redirect_to_honeypot",
            r#"{ honeypot: "192.0.2.30:22", ports: [65536] }"#,
            "params.ports",
        ),
        (
            "isolate_container",
            r#"{ quarantine_network: "%2e%2e" }"#,
            "params.quarantine_network",
        ),
    ];
    for (kind, params, field) in cases {
        let yaml = format!(
            "policy:\n  rules:\n    - {{ severity: any, risk: any, confidence: any, actions: [{{ kind: block_ip }}, {{ kind: {kind}, params: {params} }}] }}\n"
        );
        let errs = load_str(&yaml, None, &[]).unwrap_err();
        let want = format!("policy.rules[0].actions[1].{field}");
        // (A number past 64 bits is refused by the YAML reader, naming the same path.)
        assert!(
            errs.0.iter().any(|e| e.path == want) || errs.to_string().contains(&want),
            "{kind} {params}: want an error at {want}, got {errs}"
        );
        let text = errs.to_string();
        for raw in ["flush ruleset", "hunter2", "images/y"] {
            assert!(!text.contains(raw), "the raw value is echoed: {text}");
        }
    }
    // Well-formed ones load, in the same shape.
    let yaml = "policy:\n  rules:\n    - { severity: any, risk: any, confidence: any, actions: [{ kind: redirect_to_honeypot, params: { honeypot: \"192.0.2.30:2222\", ports: [22, \"8000-8010\"] } }] }\n";
    let cfg = load_str(yaml, None, &[]).unwrap();
    assert_eq!(
        cfg.policy.rules[0].actions[0].params.to_json(),
        serde_json::json!({"honeypot": "192.0.2.30:2222", "ports": [22, "8000-8010"]})
    );
}

#[test]
fn rule_problems_are_all_reported_with_paths() {
    let yaml = r#"
policy:
  max_ttl: 1d
  rules:
    - { severity: [urgent], risk: [], confidence: any, actions: [{kind: block_ip, ttl: 2d, tll: 1h}], colour: red }
    - { risk: any, confidence: [sure], actions: [] }
"#;
    let errs = load_str(yaml, None, &[]).unwrap_err();
    for path in [
        "policy.rules[0].severity[0]",
        "policy.rules[0].risk",
        "policy.rules[0].actions[0].ttl",
        "policy.rules[0].actions[0].tll",
        "policy.rules[0].colour",
        "policy.rules[1].severity",
        "policy.rules[1].confidence[0]",
    ] {
        assert!(errs.mentions(path), "{path} missing from:\n{errs}");
    }
    assert_eq!(errs.len(), 7, "{errs}");
}

#[test]
fn default_policy_picks_the_first_matching_rule() {
    let cfg = load_str("", None, &[]).unwrap();
    let policy = &cfg.policy;
    // Rule 0 is the Falco detector's (scenario `container_runtime_threat`): not for other alerts.
    let (i, rule) = policy.first_match(Severity::Critical, 90, 0.9).unwrap();
    assert_eq!(i, 1);
    assert_eq!(
        policy.ttl_for(&rule.actions[0]),
        Duration::from_secs(86_400)
    );
    let (i, rule) = policy.first_match(Severity::Low, 10, 0.1).unwrap();
    assert_eq!(i, 5);
    assert!(rule.actions.is_empty());
    assert_eq!(policy.risk_bands.band(40), Band::Medium);
    assert_eq!(policy.confidence_bands.band(0.79), Band::Medium);
    assert_eq!(policy.mode, Mode::Observe);
}

#[test]
fn validate_is_pure_over_a_raw_config() {
    let mut raw = RawConfig::defaults();
    assert!(validate(&raw).is_ok());
    raw.tree["policy"]["confidence_bands"]["high"] = serde_json::json!(1.5);
    raw.tree["policy"]["default_ttl"] = serde_json::json!("90d");
    let errs = validate(&raw).unwrap_err();
    assert!(errs.mentions("policy.confidence_bands.high"), "{errs}");
    assert!(errs.mentions("policy.default_ttl"), "{errs}");
    assert_eq!(errs.len(), 2, "{errs}");
}

#[test]
fn a_section_of_the_wrong_shape_is_one_error() {
    let errs = load_str("api: 5\n", None, &[]).unwrap_err();
    assert_eq!(
        errs.to_string(),
        "`api`: expected a mapping, found number 5"
    );
}

#[test]
fn sources_and_scenarios_are_read_and_checked() {
    let yaml = r#"
sources:
  - { type: file, paths: [/var/log/auth.log, "/var/log/nginx/*.log"], format: sshd }
  - { type: syslog, udp: "127.0.0.1:5514", format: auto }
  - { type: journald }
detect:
  scenarios: { ipv6_prefix: 64, whitelist: [192.0.2.0/24, 198.51.100.7, localhost] }
"#;
    let cfg = sentinel_config::load_str(yaml, None, &[]).unwrap();
    assert_eq!(cfg.sources.len(), 3);
    match &cfg.sources[0] {
        sentinel_config::SourceConfig::File { file, parse, .. } => {
            assert_eq!(file.paths.len(), 2);
            assert_eq!(file.paths[1].as_str(), "/var/log/nginx/*.log");
            assert_eq!(parse, &LineFormat::Named(LogFormat::Sshd));
            assert!(!file.from_beginning);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&cfg.sources[2], sentinel_config::SourceConfig::Journald { journald, .. } if journald.command[0] == "journalctl")
    );
    assert_eq!(cfg.detect.scenarios.ipv6_prefix, Some(64));
    assert_eq!(cfg.detect.scenarios.whitelist.len(), 3);
    // The effective configuration loads back to the same thing.
    let again = sentinel_config::load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again.sources, cfg.sources);

    let bad = r#"
sources:
  - { type: tail, paths: [/x] }
  - { type: file, paths: [], format: sshdd }
  - { type: syslog, format: auto }
  - { type: file, paths: [/y], udp: "127.0.0.1:1" }
  - { type: file, paths: [/z], colour: blue }
detect:
  scenarios: { ipv6_prefix: 129, whitelist: ["not a host!"] }
"#;
    let errs = sentinel_config::load_str(bad, None, &[]).unwrap_err();
    let text = errs.to_string();
    for needle in [
        "`sources[0].type`: unknown source type `tail`",
        "`sources[1].paths`: needs at least one path",
        "`sources[1].format`: unknown format `sshdd`",
        "`sources[2]`: a syslog source needs",
        "`sources[3].udp`: not a key of a `file` source",
        "`sources[4].colour`: unknown key",
        "`detect.scenarios.ipv6_prefix`",
        "`detect.scenarios.whitelist[0]`: not a CIDR",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn respond_settings_are_read_and_checked() {
    let yaml = "respond:\n  actuators:\n    block_ip: { mode: enforce, max_live: 50 }\n  quarantine_roots: [/srv/www]\n";
    let cfg = load_str(yaml, None, &[]).unwrap();
    let b = cfg.respond.actuator(ActionKind::BlockIp).unwrap();
    assert_eq!((b.mode, b.max_live), (Some(Mode::Enforce), 50));
    assert_eq!(
        cfg.respond.actuator(ActionKind::RateLimit).unwrap().mode,
        None
    );
    assert!(
        cfg.warnings()
            .iter()
            .any(|w| w.contains("block_ip enforce")),
        "{:?}",
        cfg.warnings()
    );
    let again = load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again.respond, cfg.respond);

    let bad = "respond:\n  nft_table: \"bad name\"\n  nft_hooks: [output]\n  quarantine_roots: [relative, /]\n  actuators:\n    block_ip: { mode: always, max_live: 0 }\n    nuke: { mode: enforce }\n";
    let text = load_str(bad, None, &[]).unwrap_err().to_string();
    for needle in [
        "`respond.nft_table`",
        "`respond.nft_hooks[0]`: unknown hook `output`",
        "`respond.quarantine_roots[0]`",
        "`respond.quarantine_roots[1]`",
        "`respond.actuators.block_ip.mode`: unknown mode `always`",
        "`respond.actuators.block_ip.max_live`",
        "`respond.actuators.nuke`: unknown key",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn fail2ban_jails_sources_and_jail_keys_are_checked() {
    let yaml = r#"
sources:
  - { type: fail2ban_jails, dir: /etc/fail2ban }
  - { type: file, paths: [/var/log/auth.log], fail2ban_filter: /etc/fail2ban/filter.d/sshd.conf, mode: aggressive, fail2ban_vars: { logtype: file }, jail: sshd }
  - { type: journald, fail2ban_filter: /etc/fail2ban/filter.d/sshd.conf, fail2ban_vars: { logtype: journal }, jail: sshd-journal }
detect:
  scenarios:
    define: [{ name: x, counting: { type: trigger }, severity: low }]
policy:
  rules:
    - { scenario: fail2ban-sshd, severity: any, risk: any, confidence: any, actions: [{ kind: block_ip, ttl: 10m }] }
"#;
    let cfg = load_str(yaml, None, &[]).unwrap();
    assert!(matches!(
        &cfg.sources[0],
        sentinel_config::SourceConfig::Fail2banJails { dir } if dir.as_os_str() == "/etc/fail2ban"
    ));
    match &cfg.sources[1] {
        sentinel_config::SourceConfig::File {
            parse: LineFormat::Fail2ban(filter),
            jail,
            ..
        } => {
            assert_eq!(
                filter.vars,
                vec![("logtype".to_string(), "file".to_string())]
            );
            assert_eq!(jail.as_deref(), Some("sshd"));
            assert_eq!(filter.mode.as_deref(), Some("aggressive"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cfg.detect.scenarios.define.len(), 1);
    assert_eq!(
        cfg.policy.rules[0].scenario,
        vec!["fail2ban-sshd".to_string()]
    );
    // The effective YAML reads back to the same configuration.
    let again = load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again.sources, cfg.sources);

    let bad = r#"
sources:
  - { type: fail2ban_jails }
  - { type: fail2ban_jails, dir: /etc/fail2ban, paths: [/x] }
  - { type: file, paths: [/x], fail2ban_vars: { logtype: file } }
  - { type: file, paths: [/x], fail2ban_filter: /f.conf, fail2ban_vars: { port: 22 } }
detect:
  scenarios: { define: { name: x } }
"#;
    let errs = load_str(bad, None, &[]).unwrap_err();
    let shown = errs.to_string();
    for want in [
        "`sources[0].dir`",
        "`sources[1].paths`: not a key of a `fail2ban_jails` source",
        "`sources[2]`: `fail2ban_vars` needs `fail2ban_filter`",
        "`sources[3].fail2ban_vars.port`: must be a string",
        "`detect.scenarios.define`: must be a list of scenarios",
    ] {
        assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
    }
}

#[test]
fn store_sync_is_normal_or_full_and_anything_else_names_the_key() {
    use sentinel_config::StoreSync;
    assert_eq!(
        load_str("", None, &[]).unwrap().store.sync,
        StoreSync::Normal
    );
    let cfg = load_str("store: { sync: full }\n", None, &[]).unwrap();
    assert_eq!(cfg.store.sync, StoreSync::Full);
    let env = [("SENTINEL__STORE__SYNC".to_string(), "FULL".to_string())];
    assert_eq!(
        load_str("", None, &env).unwrap().store.sync,
        StoreSync::Full
    );
    let errs = load_str("store: { sync: fsync }\n", None, &[]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    assert!(errs.mentions("store.sync"), "{errs}");
    assert!(errs.to_string().contains("normal, full"), "{errs}");
}

#[test]
fn docker_network_and_quarantine_roots_are_checked_at_load() {
    let yaml = "respond:\n  docker_quarantine_network: \"x/../../networks/y?force=1\"\n  quarantine_roots: [/srv/uploads/../../etc, /srv/ok]\n";
    let errs = load_str(yaml, None, &[]).unwrap_err();
    let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"respond.docker_quarantine_network"),
        "{errs}"
    );
    assert!(paths.contains(&"respond.quarantine_roots[0]"), "{errs}");
    assert!(!paths.contains(&"respond.quarantine_roots[1]"), "{errs}");
    assert!(!errs.to_string().contains("networks/y"), "{errs}");
    let ok = load_str(
        "respond:\n  docker_quarantine_network: sentinel-quarantine\n  quarantine_roots: [/srv/uploads]\n",
        None,
        &[],
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn an_empty_syslog_allowlist_is_an_error_and_every_sender_is_a_warning() {
    let yaml = "sources:\n  - { type: syslog, udp: \"127.0.0.1:5514\", allowed_peers: [] }\n";
    let errs = load_str(yaml, None, &[]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    let text = errs.to_string();
    assert!(
        text.starts_with("`sources[0].allowed_peers`: is empty: list the senders"),
        "{text}"
    );

    // Left out: loopback only, and nothing to warn about.
    let cfg = load_str(
        "sources:\n  - { type: syslog, udp: \"127.0.0.1:5514\" }\n",
        None,
        &[],
    )
    .unwrap();
    match &cfg.sources[0] {
        sentinel_config::SourceConfig::Syslog { syslog, .. } => {
            let shown: Vec<String> = syslog.allowed_peers.iter().map(|n| n.to_string()).collect();
            assert_eq!(shown, ["127.0.0.0/8", "::1/128"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(cfg.warnings().iter().all(|w| !w.contains("allowed_peers")));

    // Every sender, said explicitly: accepted, with a warning naming the source.
    let cfg = load_str(
        "sources:\n  - { type: syslog, udp: \"127.0.0.1:5514\", allowed_peers: [0.0.0.0/0, \"::/0\"] }\n",
        None,
        &[],
    )
    .unwrap();
    let warnings = cfg.warnings();
    let w: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("allowed_peers"))
        .collect();
    assert_eq!(w.len(), 1, "{warnings:?}");
    assert!(
        w[0].starts_with(
            "sources[0].allowed_peers has 0.0.0.0/0: the syslog source accepts every sender"
        ),
        "{}",
        w[0]
    );
}

/// `policy.max_ttl` past what nftables accepts as a timeout (10^8 s) would make every long block fail
/// at apply time; it is a config error naming the key.
#[test]
fn max_ttl_past_the_nftables_limit_is_a_config_error() {
    let errs = load_str("policy:\n  max_ttl: 5y\n", None, &[]).unwrap_err();
    assert!(errs.0.iter().any(|e| e.path == "policy.max_ttl"), "{errs}");
    let cfg = load_str("policy:\n  max_ttl: 1000d\n", None, &[]).unwrap();
    assert_eq!(cfg.policy.max_ttl, Duration::from_secs(1000 * 86_400));
}

/// A key given twice in YAML is an error (read into JSON values it would silently keep the last one,
/// e.g. a second `cidr` in a rule's params, or a second `mode`).
#[test]
fn duplicate_yaml_keys_are_errors() {
    for yaml in [
        "policy:\n  mode: enforce\n  mode: observe\n",
        "policy:\n  rules:\n    - { severity: any, risk: any, confidence: any, actions: [{ kind: block_ip, params: { cidr: \"203.0.113.0/24\", cidr: \"198.51.100.0/24\" } }] }\n",
    ] {
        let errs = load_str(yaml, None, &[]).unwrap_err();
        assert!(errs.to_string().contains("duplicate entry"), "{errs}");
    }
}

/// `store.url`: null by default (SQLite in the data directory); a PostgreSQL URL is kept whole and
/// shown with its credentials masked; anything else, or a pasted-back mask, names the key.
#[test]
fn store_url_is_postgresql_or_null_and_shown_masked() {
    let d = sentinel_config::load_str("", None, &[]).unwrap();
    assert_eq!(d.store.url, None);
    let url = "postgres://sentinel:s3cret-pw@db.example.org:5432/sentinel?sslmode=require";
    let c = sentinel_config::load_str(&format!("store:\n  url: \"{url}\"\n"), None, &[]).unwrap();
    assert_eq!(c.store.url.as_deref(), Some(url));
    let shown = c.effective_yaml();
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(
        shown.contains("postgres://***@db.example.org:5432/sentinel?sslmode=require"),
        "{shown}"
    );
    // PostgreSQL (and sqlx) also take the password as a query parameter: masked as well, and a
    // pasted-back mask there is refused too.
    let url = "postgres://sentinel@db.example.org/sentinel?sslmode=require&password=s3cret-qp";
    let c = sentinel_config::load_str(&format!("store:\n  url: \"{url}\"\n"), None, &[]).unwrap();
    assert_eq!(c.store.url.as_deref(), Some(url));
    let shown = c.effective_yaml();
    assert!(!shown.contains("s3cret-qp"), "{shown}");
    assert!(
        shown.contains("postgres://***@db.example.org/sentinel?sslmode=require&password=***"),
        "{shown}"
    );
    assert!(!sentinel_config::mask_url(url).contains("s3cret-qp"));
    assert!(
        !sentinel_config::mask_url("postgres://h/db?PassWord=s3cret-qp#x").contains("s3cret-qp")
    );
    assert!(
        !sentinel_config::mask_url("postgres://h/db?pass%77ord=s3cret-qp").contains("s3cret-qp")
    );
    for good in [
        "postgresql://db.example.org/sentinel",
        "postgres://u@[2001:db8::5]:5433/s",
    ] {
        let c = sentinel_config::load_str(&format!("store:\n  url: \"{good}\"\n"), None, &[])
            .unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(c.store.url.as_deref(), Some(good));
    }
    for bad in [
        "sqlite:///var/lib/sentinel/x.db",
        "mysql://db.example.org/sentinel",
        "postgres://db.example.org",
        "postgres://db.example.org/",
        "postgres:///sentinel",
        "postgres://***@db.example.org/sentinel",
        "postgres://u:***@db.example.org/sentinel",
        "postgres://db.example.org/sentinel?password=***",
        "postgres://db.example.org/sen tinel",
        "",
    ] {
        let errs = sentinel_config::load_str(&format!("store:\n  url: \"{bad}\"\n"), None, &[])
            .unwrap_err();
        assert!(errs.mentions("store.url"), "{bad}: {errs}");
    }
}
