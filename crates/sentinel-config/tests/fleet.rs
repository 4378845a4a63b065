//! `bus`, `node` and `fleet`: defaults, the `BUS` variable, URLs checked and masked, ranges.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::{load_str, BusSetting, DEFAULT_REDIS_BUS};
use std::time::Duration;

fn env(k: &str, v: &str) -> Vec<(String, String)> {
    vec![(k.to_owned(), v.to_owned())]
}

#[test]
fn the_default_is_one_process_on_in_memory_queues() {
    let d = load_str("", None, &[]).unwrap();
    assert_eq!(d.bus, BusSetting::Memory);
    assert_eq!(d.node, None);
    assert_eq!(d.fleet.prefix, "sentinel:");
    assert_eq!(d.fleet.claim_idle, Duration::from_secs(30));
    assert_eq!(d.fleet.heartbeat, Duration::from_secs(5));
    assert_eq!(d.fleet.stream_maxlen, 100_000);
    assert_eq!(d.fleet.done_keep, Duration::from_secs(86_400));
}

#[test]
fn bus_takes_a_redis_url_or_the_bus_variable() {
    let c = load_str(
        "bus: redis://:s3cret@192.0.2.10:6380/2\nnode: web-01\nfleet:\n  claim_idle: 5s\n  buffer: 10\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        c.bus,
        BusSetting::Redis("redis://:s3cret@192.0.2.10:6380/2".into())
    );
    assert_eq!(c.node.as_deref(), Some("web-01"));
    assert_eq!(c.fleet.claim_idle, Duration::from_secs(5));
    assert_eq!(c.fleet.buffer, 10);
    let shown = c.effective_yaml();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("192.0.2.10:6380"), "{shown}");
    // The shown configuration's mask is not a password.
    let errs = load_str(&shown, None, &[]).unwrap_err();
    assert!(errs.mentions("bus"), "{errs}");

    let r = load_str("", None, &env("BUS", "redis")).unwrap();
    assert_eq!(r.bus, BusSetting::Redis(DEFAULT_REDIS_BUS.into()));
    let r = load_str("bus: redis", None, &env("BUS", "memory")).unwrap();
    assert_eq!(r.bus, BusSetting::Memory, "the variable wins over the file");
    let r = load_str("", None, &env("BUS", "redis://198.51.100.4:6379/0")).unwrap();
    assert_eq!(r.bus.redis_url(), Some("redis://198.51.100.4:6379/0"));
    let r = load_str("", None, &env("SENTINEL__NODE", "db-2")).unwrap();
    assert_eq!(r.node.as_deref(), Some("db-2"));
}

#[test]
fn bad_fleet_values_name_the_key() {
    for (yaml, key) in [
        ("bus: kafka://192.0.2.1", "bus"),
        ("bus: rediss://192.0.2.1:6379", "bus"),
        ("bus: redis://", "bus"),
        ("bus: 3", "bus"),
        ("node: \"web 01\"", "node"),
        ("node: \"\"", "node"),
        ("node: a/b", "node"),
        ("fleet:\n  claim_idle: 10ms", "fleet.claim_idle"),
        ("fleet:\n  heartbeat: 1h", "fleet.heartbeat"),
        ("fleet:\n  stream_maxlen: 5", "fleet.stream_maxlen"),
        ("fleet:\n  buffer: 0", "fleet.buffer"),
        ("fleet:\n  max_in_flight: 0", "fleet.max_in_flight"),
        ("fleet:\n  prefix: \"a b\"", "fleet.prefix"),
        ("fleet:\n  lag: 3", "fleet.lag"),
        ("fleet:\n  done_keep: 5s", "fleet.done_keep"),
    ] {
        let errs = load_str(yaml, None, &[]).unwrap_err();
        assert!(errs.mentions(key), "{yaml}: {errs}");
    }
    let errs = load_str("", None, &env("BUS", "nats://192.0.2.1")).unwrap_err();
    assert!(errs.mentions("bus"), "{errs}");
}

#[test]
fn the_fleet_secret_is_long_enough_masked_and_read_from_a_file() {
    let c = load_str(
        "bus: redis\nfleet:\n  secret: fleet-key-0123456789\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        c.fleet.secret.as_ref().map(|s| s.expose()),
        Some("fleet-key-0123456789")
    );
    assert!(!c.effective_yaml().contains("fleet-key-0123456789"));
    assert!(c.warnings().iter().all(|w| !w.contains("fleet.secret")));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("fleet.key");
    std::fs::write(&f, "from-a-file-0123456789\n").unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let c = load_str(
        &format!("bus: redis\nfleet:\n  secret_file: {}\n", f.display()),
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        c.fleet.secret.as_ref().map(|s| s.expose()),
        Some("from-a-file-0123456789")
    );
    for yaml in [
        "fleet:\n  secret: short",
        "fleet:\n  secret: fleet-key-0123456789\n  secret_file: /etc/x",
    ] {
        let errs = load_str(yaml, None, &[]).unwrap_err();
        assert!(errs.mentions("fleet.secret"), "{yaml}: {errs}");
        assert!(!errs.to_string().contains("fleet-key-0123456789"));
    }
    let unsigned = load_str("bus: redis", None, &[]).unwrap();
    assert!(unsigned
        .warnings()
        .iter()
        .any(|w| w.contains("fleet.secret is not set")));
}
