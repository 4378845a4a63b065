//! `api.stream`: defaults, values read back, and range errors naming the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::load_str;
use std::time::Duration;

#[test]
fn stream_defaults_and_values() {
    let d = load_str("", None, &[]).unwrap();
    assert_eq!(d.api.stream.max_streams, 64);
    assert_eq!(d.api.stream.send_timeout, Duration::from_secs(10));
    assert_eq!(d.api.stream.ping_interval, Duration::from_secs(20));
    let c = load_str(
        "api:\n  stream:\n    max_streams: 5\n    send_timeout: 250ms\n    ping_interval: 1m\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(c.api.stream.max_streams, 5);
    assert_eq!(c.api.stream.send_timeout, Duration::from_millis(250));
    assert_eq!(c.api.stream.ping_interval, Duration::from_secs(60));
    let again = load_str(&c.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again, c, "the effective YAML reads back the same");
}

#[test]
fn stream_values_come_from_the_environment_too() {
    let c = load_str(
        "",
        None,
        &[
            ("SENTINEL__API__STREAM__MAX_STREAMS".into(), "7".into()),
            ("SENTINEL__API__STREAM__SEND_TIMEOUT".into(), "2s".into()),
        ],
    )
    .unwrap();
    assert_eq!(c.api.stream.max_streams, 7);
    assert_eq!(c.api.stream.send_timeout, Duration::from_secs(2));
}

#[test]
fn bad_stream_values_name_the_key() {
    for (bad, key) in [
        ("max_streams: 0", "api.stream.max_streams"),
        ("max_streams: 100001", "api.stream.max_streams"),
        ("send_timeout: 10ms", "api.stream.send_timeout"),
        ("send_timeout: 6m", "api.stream.send_timeout"),
        ("send_timeout: soon", "api.stream.send_timeout"),
        ("ping_interval: 500ms", "api.stream.ping_interval"),
        ("ping_interval: 2h", "api.stream.ping_interval"),
        ("pings: 3", "api.stream.pings"),
    ] {
        let errs = load_str(&format!("api:\n  stream:\n    {bad}\n"), None, &[]).unwrap_err();
        assert!(errs.mentions(key), "{bad}: {errs}");
    }
    // Every problem at once.
    let errs = load_str(
        "api:\n  stream:\n    max_streams: 0\n    ping_interval: 0s\n",
        None,
        &[],
    )
    .unwrap_err();
    assert!(errs.mentions("api.stream.max_streams") && errs.mentions("api.stream.ping_interval"));
}
