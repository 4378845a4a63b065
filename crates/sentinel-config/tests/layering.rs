//! Layer precedence through the public API: defaults < sentinel.yml < .env < environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::{load, load_str, Sources};
use std::net::SocketAddr;
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn defaults_validate() {
    let cfg = load_str("", None, &[]).unwrap();
    assert_eq!(cfg.api.listen, addr("127.0.0.1:8000"));
    assert_eq!(cfg.api.max_body_bytes, 1_048_576);
    assert_eq!(cfg.api.request_timeout, Duration::from_secs(10));
    assert_eq!(cfg.store.flush_interval, Duration::from_millis(50));
    assert_eq!(cfg.store.event_retention, Duration::from_secs(7 * 86_400));
    assert_eq!(
        cfg.detect.heuristic.bad_ports,
        [23, 2323, 4444, 5555, 6667, 31337]
    );
    assert_eq!(cfg.policy.rules.len(), 6);
    assert_eq!(
        cfg.policy.rules[0].scenario,
        ["container_runtime_threat".to_string()]
    );
    assert!(cfg.detect.falco.ignore_rules.is_empty());
    assert_eq!(cfg.policy.max_ttl, Duration::from_secs(30 * 86_400));
    assert!(cfg.logging.redact_keys.is_empty());
}

#[test]
fn yaml_overrides_defaults_and_keeps_the_rest() {
    let cfg = load_str(
        "api:\n  listen: 127.0.0.1:9000\nstore:\n  batch_size: 10\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(cfg.api.listen, addr("127.0.0.1:9000"));
    assert_eq!(cfg.store.batch_size, 10);
    assert_eq!(cfg.api.max_connections, 1024);
    assert_eq!(cfg.store.max_events, 1_000_000);
}

#[test]
fn dotenv_overrides_yaml() {
    let yaml = "api:\n  listen: 127.0.0.1:9000\n";
    let dotenv = "SENTINEL__API__LISTEN=127.0.0.1:9100\nSENTINEL_API_KEY=not-config\n";
    let cfg = load_str(yaml, Some(dotenv), &[]).unwrap();
    assert_eq!(cfg.api.listen, addr("127.0.0.1:9100"));
}

#[test]
fn env_overrides_dotenv() {
    let yaml = "api:\n  listen: 127.0.0.1:9000\n";
    let dotenv = "SENTINEL__API__LISTEN=127.0.0.1:9100\n";
    let vars = env(&[
        ("SENTINEL__API__LISTEN", "0.0.0.0:9200"),
        ("SENTINEL__DETECT__HEURISTIC__MIN_SCORE", "30"),
        ("SENTINEL__DETECT__HEURISTIC__BAD_PORTS", "22, 23"),
        ("SENTINEL__POLICY__CONFIDENCE_BANDS__HIGH", "0.9"),
        ("SENTINEL_CONFIG", "/etc/sentinel/sentinel.yml"),
    ]);
    let cfg = load_str(yaml, Some(dotenv), &vars).unwrap();
    assert_eq!(cfg.api.listen, addr("0.0.0.0:9200"));
    assert_eq!(cfg.detect.heuristic.min_score, 30);
    assert_eq!(cfg.detect.heuristic.bad_ports, [22, 23]);
    assert!((cfg.policy.confidence_bands.high - 0.9).abs() < 1e-6);
}

#[test]
fn bad_env_value_names_the_config_path() {
    let vars = env(&[("SENTINEL__API__LISTEN", "abc")]);
    let errs = load_str("", None, &vars).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    assert_eq!(errs.0[0].path, "api.listen");
    assert_eq!(
        errs.to_string(),
        "`api.listen`: not a socket address: \"abc\""
    );
}

#[test]
fn uncoercible_env_value_is_an_error_with_the_path() {
    let vars = env(&[
        ("SENTINEL__API__MAX_BODY_BYTES", "lots"),
        ("SENTINEL__API__LISEN", "x"),
    ]);
    let errs = load_str("", None, &vars).unwrap_err();
    assert!(errs.mentions("api.max_body_bytes"), "{errs}");
    assert!(errs.mentions("api.lisen"), "{errs}");
    assert_eq!(errs.len(), 2, "{errs}");
}

#[test]
fn redact_keys_appends_to_the_yaml_list() {
    let yaml = "logging:\n  redact_keys: [session]\n";
    let vars = env(&[("REDACT_KEYS", "private_note, ,listen")]);
    let cfg = load_str(yaml, Some("REDACT_KEYS=from_dotenv\n"), &vars).unwrap();
    assert_eq!(
        cfg.logging.redact_keys,
        ["session", "from_dotenv", "private_note", "listen"]
    );
}

#[test]
fn allow_insecure_no_auth_plain_variable_sets_the_flag() {
    let cfg = load_str(
        "",
        None,
        &env(&[("SENTINEL_ALLOW_INSECURE_NO_AUTH", "true")]),
    )
    .unwrap();
    assert!(cfg.api.allow_insecure_no_auth);
    // A .env file may not turn authentication off: refused with an error naming the variable.
    let errs = load_str("", Some("SENTINEL_ALLOW_INSECURE_NO_AUTH=1\n"), &[]).unwrap_err();
    assert!(errs.mentions("SENTINEL_ALLOW_INSECURE_NO_AUTH"), "{errs}");
    assert!(
        errs.to_string().contains("only the real environment"),
        "{errs}"
    );
    // Off loopback the bypass is an error, not a warning.
    let errs = load_str(
        "",
        None,
        &env(&[
            ("SENTINEL_ALLOW_INSECURE_NO_AUTH", "true"),
            ("SENTINEL__API__LISTEN", "0.0.0.0:8000"),
        ]),
    )
    .unwrap_err();
    assert!(errs.mentions("api.allow_insecure_no_auth"), "{errs}");
    let errs = load_str(
        "",
        None,
        &env(&[("SENTINEL_ALLOW_INSECURE_NO_AUTH", "maybe")]),
    )
    .unwrap_err();
    assert!(errs.mentions("api.allow_insecure_no_auth"), "{errs}");
}

#[test]
fn load_reads_files_and_skips_a_missing_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("sentinel.yml");
    std::fs::write(&yaml, "pipeline:\n  queue_capacity: 64\n").unwrap();
    let dotenv = dir.path().join(".env");
    std::fs::write(&dotenv, "SENTINEL__PIPELINE__DEFEND_TIMEOUT=5s\n").unwrap();
    let vars = env(&[("SENTINEL__STORE__BATCH_SIZE", "32")]);
    let src = Sources {
        yaml_path: Some(&yaml),
        dotenv_path: Some(&dotenv),
        env: &vars,
    };
    let cfg = load(&src).unwrap();
    assert_eq!(cfg.pipeline.queue_capacity, 64);
    assert_eq!(cfg.pipeline.defend_timeout, Duration::from_secs(5));
    assert_eq!(cfg.store.batch_size, 32);

    let missing_env = dir.path().join("absent.env");
    let src = Sources {
        yaml_path: Some(&yaml),
        dotenv_path: Some(&missing_env),
        env: &[],
    };
    assert_eq!(load(&src).unwrap().pipeline.queue_capacity, 64);

    let missing_yaml = dir.path().join("absent.yml");
    let src = Sources {
        yaml_path: Some(&missing_yaml),
        dotenv_path: None,
        env: &[],
    };
    let errs = load(&src).unwrap_err();
    assert!(errs.to_string().contains("cannot read"), "{errs}");
}

#[test]
fn yaml_parse_error_reports_line_and_column() {
    let errs = load_str("api:\n  listen: [1,\n", None, &[]).unwrap_err();
    let shown = errs.to_string();
    assert!(
        shown.contains("line") && shown.contains("column"),
        "{shown}"
    );
}

/// A key written without a value (`mode:`) over a default is an error naming it, not the default kept
/// silently; an optional setting whose default is null takes null as "none".
#[test]
fn a_key_without_a_value_is_an_error_not_the_default() {
    let err = load_str("policy:\n  mode:\napi:\n  listen:\n", None, &[]).unwrap_err();
    let text = err.to_string();
    for key in ["policy.mode", "api.listen"] {
        assert!(
            text.contains(&format!("`{key}`: has no value")),
            "{key}: {text}"
        );
    }
    let cfg = load_str("detect:\n  scenarios:\n    dir:\n", None, &[]).unwrap();
    assert_eq!(cfg.detect.scenarios.dir, None);
}

#[test]
fn logging_chain_every_defaults_to_1000_and_0_turns_it_off() {
    assert_eq!(load_str("", None, &[]).unwrap().logging.chain_every, 1000);
    let vars = env(&[("SENTINEL__LOGGING__CHAIN_EVERY", "0")]);
    assert_eq!(load_str("", None, &vars).unwrap().logging.chain_every, 0);
    let yaml = "logging:\n  chain_every: 50\n";
    assert_eq!(load_str(yaml, None, &[]).unwrap().logging.chain_every, 50);
    assert!(load_str("logging:\n  chain_every: -1\n", None, &[]).is_err());
}
