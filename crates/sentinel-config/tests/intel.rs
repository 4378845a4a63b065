//! The `intel` section: defaults, a full custom block, keys from the environment and from files, every
//! validation problem reported with its path, and secrets never shown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::{load, load_str, Sources, DEFAULT_YAML};
use sentinel_core::Verdict;
use sentinel_intel::config::{Criticality, CsvMapping, FeedFormat};
use sentinel_intel::IntelConfig;
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_defaults_read_back_as_the_intel_default() {
    let cfg = load_str("", None, &[]).unwrap();
    assert_eq!(cfg.intel, IntelConfig::default());
    assert!(cfg.intel.is_offline());
    // Every key of the section is written out in the defaults, each with its comment.
    let block: Vec<&str> = DEFAULT_YAML
        .lines()
        .skip_while(|l| !l.starts_with("intel:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .collect();
    for key in [
        "offline:",
        "deadline:",
        "concurrency:",
        "key:",
        "key_file:",
        "base_url:",
        "timeout:",
        "rate:",
        "negative_ttl:",
        "max_age_days:",
        "retry:",
        "breaker:",
        "max_entries:",
        "redis:",
        "prefix:",
        "feeds:",
        "feed_poll:",
        "assets:",
        "default_criticality:",
        "history_window:",
    ] {
        assert!(
            block.iter().any(|l| l.trim_start().starts_with(key)),
            "{key} not in the defaults"
        );
    }
}

const CUSTOM: &str = r#"
intel:
  offline: true
  deadline: 1500ms
  concurrency: 8
  abuseipdb:
    key: abuse-key-0001
    base_url: http://127.0.0.1:18080/
    timeout: 2s
    rate: { requests: 500, per: 1h, burst: 5 }
    ttl: 2h
    negative_ttl: 30m
    max_age_days: 30
  virustotal:
    base_url: https://vt.example:8443/proxy
    rate: { requests: 1000, per: 1m, burst: 50 }
    ttl: 12h
    negative_ttl: 12h
  otx:
    base_url: "http://[::1]:9999"
  retry: { attempts: 5, base: 50ms, max: 2s }
  breaker: { failures: 3, cooldown: 1m }
  cache: { max_entries: 5000, redis: "redis://cache.example:6380/2", prefix: "s1:" }
  feeds:
    - { name: firehol_level1, path: /var/lib/sentinel/firehol_level1.netset, format: list, verdict: malicious, score: 90 }
    - { name: drop, path: feeds/drop_v4.json, format: spamhaus_json, verdict: malicious, score: 100 }
    - { name: tor-exits, path: /var/lib/sentinel/exit-addresses, format: tor_exit_addresses, verdict: suspicious, score: 40 }
    - name: crowdsec
      path: /var/lib/sentinel/crowdsec.csv
      format: csv
      verdict: suspicious
      score: 60
      csv: { ip_column: value, score_column: null, reason_column: reason, delimiter: ";" }
    - name: partners
      path: /etc/sentinel/partners.tsv
      format: csv
      verdict: benign
      score: 0
      csv: { ip_column: 1, reason_column: "2", delimiter: "\t", header: false }
  feed_poll: 5s
  assets:
    - { name: shop, targets: [nginx, "shop-*"], nets: [198.51.100.0/24, 2001:db8::1], criticality: critical }
    - { name: lab, nets: [192.0.2.0/28], criticality: low }
  default_criticality: high
  history_window: 3d
"#;

#[test]
fn a_full_custom_block_is_read_as_written() {
    let c = load_str(CUSTOM, None, &[]).unwrap().intel;
    assert!(c.offline);
    assert_eq!(c.deadline, Duration::from_millis(1500));
    assert_eq!(c.concurrency, 8);
    let a = &c.abuseipdb;
    assert_eq!(a.key.as_ref().unwrap().expose(), "abuse-key-0001");
    assert_eq!(
        a.base_url, "http://127.0.0.1:18080",
        "trailing slash dropped"
    );
    assert_eq!(a.timeout, secs(2));
    assert_eq!(
        (a.quota.requests, a.quota.per, a.quota.burst),
        (500, secs(3600), 5)
    );
    assert_eq!((a.ttl, a.negative_ttl), (secs(7200), secs(1800)));
    assert_eq!(a.max_age_days, 30);
    let v = &c.virustotal;
    assert!(v.key.is_none());
    assert_eq!(v.base_url, "https://vt.example:8443/proxy");
    assert_eq!(v.timeout, secs(5), "unset keys keep their defaults");
    assert_eq!((v.quota.requests, v.quota.burst), (1000, 50));
    assert_eq!((v.ttl, v.negative_ttl), (secs(43_200), secs(43_200)));
    assert_eq!(c.otx.base_url, "http://[::1]:9999");
    assert_eq!(
        (c.retry.attempts, c.retry.base, c.retry.max),
        (5, Duration::from_millis(50), secs(2))
    );
    assert_eq!((c.breaker.failures, c.breaker.cooldown), (3, secs(60)));
    assert_eq!(c.cache.max_entries, 5000);
    assert_eq!(
        c.cache.redis.as_ref().unwrap().expose(),
        "redis://cache.example:6380/2"
    );
    let errs = load_str(
        "intel:\n  cache: { redis: \"rediss://:pw@cache.example:6380/2\" }\n",
        None,
        &[],
    )
    .unwrap_err();
    assert!(
        errs.mentions("intel.cache.redis") && errs.to_string().contains("not built into Sentinel"),
        "{errs}"
    );
    assert!(!errs.to_string().contains(":pw@"), "{errs}");
    assert_eq!(c.cache.prefix, "s1:");
    let names: Vec<&str> = c.feeds.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "firehol_level1",
            "drop",
            "tor-exits",
            "crowdsec",
            "partners"
        ]
    );
    assert_eq!(c.feeds[0].format, FeedFormat::List);
    assert_eq!(
        c.feeds[0].path.to_str(),
        Some("/var/lib/sentinel/firehol_level1.netset")
    );
    assert_eq!(
        (c.feeds[0].verdict, c.feeds[0].score),
        (Verdict::Malicious, 90)
    );
    assert_eq!(c.feeds[1].format, FeedFormat::SpamhausJson);
    assert_eq!(c.feeds[2].format, FeedFormat::TorExitAddresses);
    assert_eq!(
        (c.feeds[2].verdict, c.feeds[2].score),
        (Verdict::Suspicious, 40)
    );
    assert_eq!(
        c.feeds[3].format,
        FeedFormat::Csv(CsvMapping {
            ip_column: "value".into(),
            score_column: None,
            reason_column: Some("reason".into()),
            delimiter: ';',
            header: true,
        })
    );
    assert_eq!(
        c.feeds[4].format,
        FeedFormat::Csv(CsvMapping {
            ip_column: "1".into(),
            score_column: None,
            reason_column: Some("2".into()),
            delimiter: '\t',
            header: false,
        })
    );
    assert_eq!((c.feeds[4].verdict, c.feeds[4].score), (Verdict::Benign, 0));
    assert_eq!(c.feed_poll, secs(5));
    assert_eq!(c.assets.len(), 2);
    assert_eq!(c.assets[0].name, "shop");
    assert_eq!(c.assets[0].targets, ["nginx", "shop-*"]);
    assert_eq!(
        c.assets[0].nets,
        [
            "198.51.100.0/24".parse().unwrap(),
            "2001:db8::1/128".parse().unwrap()
        ]
    );
    assert_eq!(c.assets[0].criticality, Criticality::Critical);
    assert!(c.assets[1].targets.is_empty());
    assert_eq!(c.assets[1].criticality, Criticality::Low);
    assert_eq!(c.default_criticality, Criticality::High);
    assert_eq!(c.history_window, secs(3 * 86_400));
}

#[test]
fn the_rendered_configuration_reads_back_as_the_same_configuration() {
    // Without keys (a shown key is masked, so it cannot read back as itself).
    let yaml = CUSTOM.replace("    key: abuse-key-0001\n", "");
    let original = load_str(&yaml, None, &[]).unwrap();
    let text = original.effective_yaml();
    assert!(text.contains("format: csv"), "{text}");
    assert!(text.contains("rate:"), "{text}");
    let again = load_str(&text, None, &[]).unwrap();
    assert_eq!(again, original);
}

#[test]
fn keys_come_from_the_environment_and_the_dotenv_file() {
    let cfg = load_str(
        "",
        Some("SENTINEL__INTEL__OTX__KEY=otx-from-dotenv\n"),
        &env(&[("SENTINEL__INTEL__ABUSEIPDB__KEY", "abuse-from-env")]),
    )
    .unwrap();
    let c = cfg.intel;
    assert_eq!(c.abuseipdb.key.unwrap().expose(), "abuse-from-env");
    assert_eq!(c.otx.key.unwrap().expose(), "otx-from-dotenv");
    assert!(c.virustotal.key.is_none());
    assert!(!c.offline);
    // The environment overrides the file's key.
    let c = load_str(
        "intel:\n  virustotal:\n    key: vt-from-yaml\n",
        None,
        &env(&[("SENTINEL__INTEL__VIRUSTOTAL__KEY", "vt-from-env")]),
    )
    .unwrap()
    .intel;
    assert_eq!(c.virustotal.key.unwrap().expose(), "vt-from-env");
}

#[test]
fn a_key_file_is_read_and_trimmed_and_its_problems_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("abuse.key");
    std::fs::write(&good, "  vt-key-in-a-file-77\n").unwrap();
    let yaml = format!("intel:\n  virustotal:\n    key_file: {}\n", good.display());
    let c = load_str(&yaml, None, &[]).unwrap().intel;
    assert_eq!(c.virustotal.key.unwrap().expose(), "vt-key-in-a-file-77");

    // Also through `load`, with the key file's path set from the environment.
    let cfg = load(&Sources {
        yaml_path: None,
        dotenv_path: None,
        env: &env(&[("SENTINEL__INTEL__OTX__KEY_FILE", good.to_str().unwrap())]),
    })
    .unwrap();
    assert_eq!(cfg.intel.otx.key.unwrap().expose(), "vt-key-in-a-file-77");

    let missing = dir.path().join("nope.key");
    let empty = dir.path().join("empty.key");
    std::fs::write(&empty, "\n \n").unwrap();
    let two_lines = dir.path().join("two.key");
    std::fs::write(&two_lines, "first-secret-line\nsecond-secret-line\n").unwrap();
    let yaml = format!(
        "intel:\n  abuseipdb: {{ key_file: {} }}\n  virustotal: {{ key_file: {} }}\n  otx: {{ key_file: {} }}\n",
        missing.display(),
        empty.display(),
        two_lines.display()
    );
    let errs = load_str(&yaml, None, &[]).unwrap_err();
    assert_eq!(errs.len(), 3, "{errs}");
    let shown = errs.to_string();
    let line = |path: &str| {
        errs.0
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{path} missing from:\n{errs}"))
            .message
            .clone()
    };
    let m = line("intel.abuseipdb.key_file");
    assert!(m.starts_with("cannot read `"), "{m}");
    assert!(m.contains(&missing.display().to_string()), "{m}");
    let m = line("intel.virustotal.key_file");
    assert!(
        m.contains("empty") && m.contains(&empty.display().to_string()),
        "{m}"
    );
    let m = line("intel.otx.key_file");
    assert!(m.contains(&two_lines.display().to_string()), "{m}");
    assert!(!shown.contains("secret-line"), "{shown}");

    // A key and a key file: one of them must go.
    let yaml = format!(
        "intel:\n  otx:\n    key: otx-inline-key\n    key_file: {}\n",
        good.display()
    );
    let errs = load_str(&yaml, None, &[]).unwrap_err();
    assert!(errs.mentions("intel.otx.key"), "{errs}");
    assert!(errs.to_string().contains("both set"), "{errs}");
    assert!(!errs.to_string().contains("otx-inline-key"), "{errs}");
}

#[test]
fn every_intel_problem_is_reported_at_once_with_its_path() {
    let yaml = r#"
intel:
  deadline: 2m
  concurrency: 0
  abuseipdb:
    key: "   "
    base_url: http://api.abuseipdb.com
    timeout: 0s
    rate: { requests: 0, per: 1d, burst: 0 }
    ttl: 1h
    negative_ttl: 2h
    max_age_days: 400
  virustotal:
    base_url: ftp://www.virustotal.com
    rate: { requests: 4, per: 1m, burst: 5 }
  otx:
    key: "***"
  retry: { attempts: 0, base: 10s, max: 1s }
  breaker: { failures: 0, cooldown: soon }
  cache: { max_entries: 0, redis: "http://user:redis-pass-42@cache.example:6379", prefix: "" }
  feeds:
    - { name: good, path: /f/good, format: list, verdict: malicious, score: 90 }
    - { name: Bad Name, path: /f/a, format: list, verdict: malicious, score: 101 }
    - { name: good, path: "", format: netset, verdict: unknown, score: 10, colour: red }
    - { name: c1, path: /f/c, format: csv, verdict: suspicious, score: 50 }
    - { name: c2, path: /f/c, format: list, verdict: suspicious, score: 50, csv: { ip_column: ip } }
    - { name: c3, path: /f/c, format: csv, verdict: suspicious, score: 50, csv: { ip_column: ip, delimiter: ";;", header: false, quote: x } }
  feed_poll: 0s
  assets:
    - { name: shop, targets: [nginx], nets: [10.0.0.300/8], criticality: crown_jewels }
    - { name: empty, criticality: low }
    - { name: shop, nets: [10.0.0.0/8], criticality: high }
  default_criticality: extreme
  history_window: forever
"#;
    let errs = load_str(yaml, None, &[]).unwrap_err();
    let expected = [
        "intel.deadline",
        "intel.concurrency",
        "intel.abuseipdb.key",
        "intel.abuseipdb.base_url",
        "intel.abuseipdb.timeout",
        "intel.abuseipdb.rate.requests",
        "intel.abuseipdb.rate.burst",
        "intel.abuseipdb.negative_ttl",
        "intel.abuseipdb.max_age_days",
        "intel.virustotal.base_url",
        "intel.virustotal.rate.burst",
        "intel.otx.key",
        "intel.retry.attempts",
        "intel.retry.max",
        "intel.breaker.failures",
        "intel.breaker.cooldown",
        "intel.cache.max_entries",
        "intel.cache.redis",
        "intel.cache.prefix",
        "intel.feeds[1].name",
        "intel.feeds[1].score",
        "intel.feeds[2].name",
        "intel.feeds[2].path",
        "intel.feeds[2].format",
        "intel.feeds[2].verdict",
        "intel.feeds[2].colour",
        "intel.feeds[3].format",
        "intel.feeds[4].csv",
        "intel.feeds[5].csv.ip_column",
        "intel.feeds[5].csv.delimiter",
        "intel.feeds[5].csv.quote",
        "intel.feed_poll",
        "intel.assets[0].nets[0]",
        "intel.assets[0].criticality",
        "intel.assets[1]",
        "intel.assets[2].name",
        "intel.default_criticality",
        "intel.history_window",
    ];
    for path in expected {
        assert!(errs.mentions(path), "{path} missing from:\n{errs}");
    }
    assert_eq!(errs.len(), expected.len(), "{errs}");
    let message = |path: &str| {
        errs.0
            .iter()
            .filter(|e| e.path == path)
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(
        message("intel.abuseipdb.base_url").contains("in clear"),
        "{errs}"
    );
    assert!(
        message("intel.feeds[2].name").contains("intel.feeds[0]"),
        "{errs}"
    );
    assert!(message("intel.otx.key").contains("mask"), "{errs}");
    assert!(
        message("intel.feeds[2].colour").contains("unknown key"),
        "{errs}"
    );
    let shown = errs.to_string();
    assert!(!shown.contains("redis-pass-42"), "{shown}");
    assert!(shown.contains("user:***@cache.example"), "{shown}");
}

#[test]
fn more_than_64_feeds_is_an_error() {
    let mut yaml = String::from("intel:\n  feeds:\n");
    for i in 0..65 {
        yaml.push_str(&format!(
            "    - {{ name: f{i}, path: /f/{i}, format: list, verdict: malicious, score: 50 }}\n"
        ));
    }
    let errs = load_str(&yaml, None, &[]).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs}");
    assert!(errs.mentions("intel.feeds"), "{errs}");
    // 64 are fine, and feed files need not exist yet.
    let yaml = yaml.replace(
        "    - { name: f64, path: /f/64, format: list, verdict: malicious, score: 50 }\n",
        "",
    );
    assert_eq!(load_str(&yaml, None, &[]).unwrap().intel.feeds.len(), 64);
}

#[test]
fn keys_and_redis_passwords_never_show() {
    let secrets = [
        "abuse-key-secret-1",
        "vt-key-secret-2",
        "otx-key-secret-3",
        "redis-pass-secret-4",
        "98765432109876",
    ];
    let yaml = "intel:\n  abuseipdb: { key: abuse-key-secret-1 }\n  virustotal: { key: vt-key-secret-2 }\n  \
                cache: { redis: \"redis://default:redis-pass-secret-4@127.0.0.1:6379/0\" }\n";
    let cfg = load_str(
        yaml,
        None,
        &env(&[("SENTINEL__INTEL__OTX__KEY", "otx-key-secret-3")]),
    )
    .unwrap();
    assert_eq!(
        cfg.intel.cache.redis.as_ref().unwrap().expose(),
        "redis://default:redis-pass-secret-4@127.0.0.1:6379/0"
    );
    let shown = [
        cfg.effective_yaml(),
        format!("{cfg:?}"),
        serde_json::to_string(&cfg).unwrap(),
    ];
    for text in &shown {
        for s in secrets {
            assert!(!text.contains(s), "{s} shown in:\n{text}");
        }
    }
    assert!(shown[0].contains("key: '***'"), "{}", shown[0]);
    assert!(
        shown[0].contains("redis://default:***@127.0.0.1:6379/0"),
        "{}",
        shown[0]
    );

    // Errors about those same values (and others beside them) never show them either.
    let bad = [
        "intel:\n  abuseipdb: { key: abuse-key-secret-1, base_url: http://192.0.2.1 }\n",
        "intel:\n  virustotal: { key: \"vt-key-secret-2 with a space\" }\n",
        "intel:\n  virustotal: { base_url: \"https://u:redis-pass-secret-4@vt.example\" }\n",
        "intel:\n  otx: { key: [otx-key-secret-3] }\n",
        "intel:\n  otx: { key: 98765432109876 }\n",
        "intel:\n  cache: { redis: 98765432109876 }\n",
        "intel:\n  otx: { key: otx-key-secret-3, key_file: /nonexistent/otx.key }\n",
        "intel:\n  cache: { redis: \"redis://:redis-pass-secret-4@\" }\n",
        "intel:\n  cache: { redis: \"tcp://u:redis-pass-secret-4@h:1\" }\n",
        "intel:\n  cache: { redis: [\"redis://:redis-pass-secret-4@h\"] }\n",
    ];
    for yaml in bad {
        let errs = load_str(yaml, None, &[]).unwrap_err();
        let shown = format!("{errs}\n{errs:?}");
        for s in secrets {
            assert!(!shown.contains(s), "{s} shown in:\n{shown}");
        }
    }
    let errs = load_str(
        "",
        None,
        &env(&[("SENTINEL__INTEL__ABUSEIPDB__KEY", "abuse-key-secret-1\u{7}")]),
    )
    .unwrap_err();
    assert!(errs.mentions("intel.abuseipdb.key"), "{errs}");
    assert!(!errs.to_string().contains("abuse-key-secret-1"), "{errs}");
}

/// A decision never outlives its caller's wait: the investigation deadline must be shorter than
/// `/v1/defend`'s and the API's timeouts, and the defaults keep that.
#[test]
fn the_deadline_leaves_time_for_the_decision() {
    let cfg = load_str("", None, &[]).unwrap();
    assert!(cfg.intel.deadline < cfg.pipeline.defend_timeout);
    let err = load_str(
        "intel: { deadline: 2s }\npipeline: { defend_timeout: 2s }",
        None,
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("intel.deadline"), "{err}");
    assert!(err.contains("pipeline.defend_timeout"), "{err}");
    let err = load_str(
        "intel: { deadline: 20s }\npipeline: { defend_timeout: 30s }\napi: { request_timeout: 10s }",
        None,
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("api.request_timeout"), "{err}");
    assert!(!err.contains("pipeline.defend_timeout"), "{err}");
}

/// A `key_file` that is not a regular file: a FIFO nobody writes to would block `open` (and so the
/// daemon's start) forever; `/dev/zero` is endless. Both are refused at once, naming the file.
#[test]
fn a_key_file_that_is_a_fifo_or_a_device_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("key.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let yaml = format!(
        "intel:\n  abuseipdb: {{ key_file: {} }}\n  otx: {{ key_file: /dev/zero }}\n",
        fifo.display()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_str(&yaml, None, &[]).map(|_| ()).unwrap_err());
    });
    // Generous: only proves it did not wait for a writer that never comes.
    let errs = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("loading a config whose key_file is a FIFO hung");
    let line = |path: &str| {
        errs.0
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{path} missing from:\n{errs}"))
            .message
            .clone()
    };
    let m = line("intel.abuseipdb.key_file");
    assert!(m.contains("not a regular file"), "{m}");
    assert!(m.contains(&fifo.display().to_string()), "{m}");
    let m = line("intel.otx.key_file");
    assert!(
        m.contains("not a regular file") && m.contains("/dev/zero"),
        "{m}"
    );
}

/// Durations beyond any use (here ~584 billion years, which humantime still reads) would overflow
/// the clock when added to "now" (the cache expiry, the breaker's reopening, the limiter's window):
/// a panic in every lookup. Each is a configuration error naming its path instead.
#[test]
fn absurd_durations_are_errors_not_clock_overflows() {
    let huge = "584000000000y";
    let yaml = format!(
        "intel:\n  abuseipdb:\n    ttl: {huge}\n    negative_ttl: {huge}\n    timeout: {huge}\n    rate: {{ requests: 10, per: {huge}, burst: 1 }}\n  retry: {{ attempts: 2, base: 1s, max: {huge} }}\n  breaker: {{ failures: 3, cooldown: {huge} }}\n  feed_poll: {huge}\n  history_window: {huge}\n"
    );
    let errs = load_str(&yaml, None, &[]).unwrap_err();
    for path in [
        "intel.abuseipdb.ttl",
        "intel.abuseipdb.negative_ttl",
        "intel.abuseipdb.timeout",
        "intel.abuseipdb.rate.per",
        "intel.retry.max",
        "intel.breaker.cooldown",
        "intel.feed_poll",
        "intel.history_window",
    ] {
        assert!(errs.mentions(path), "{path} not refused:\n{errs}");
    }
}
