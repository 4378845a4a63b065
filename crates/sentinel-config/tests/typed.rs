//! Values are typed when the configuration is validated: what the daemon would otherwise meet only once
//! it runs (a bad glob, a table name nftables refuses, no hook, a quarantine that cannot enforce, a
//! parser setting that would be ignored) is a load error naming its key, so `sentinel config check`
//! reports it before the daemon says it is ready.

use sentinel_config::load_str;
use sentinel_ingest::config::{LineFormat, LogFormat};
use sentinel_respond::actuators::nft::FilterHook;

fn errors(yaml: &str) -> String {
    match load_str(yaml, None, &[]) {
        Ok(cfg) => panic!("accepted:\n{yaml}\n{cfg:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_bad_glob_is_a_load_error_listing_it() {
    let text = errors(
        "sources:\n  - { type: file, paths: [/var/log/auth.log, \"/var/log/[nginx/*.log\", \"/srv/**x/a\"] }\n",
    );
    assert!(
        text.contains("`sources[0].paths[1]`: not a valid glob: \"/var/log/[nginx/*.log\""),
        "{text}"
    );
    assert!(text.contains("`sources[0].paths[2]`"), "{text}");
    assert!(!text.contains("paths[0]"), "{text}");
}

#[test]
fn nft_table_and_hooks_are_checked_as_nftables_will() {
    // `NftTable::new` wants 1-32 characters starting with a letter; the configuration used to accept up
    // to 64 and a leading digit, and the daemon then failed while starting.
    let long = "t".repeat(40);
    for name in ["9sentinel", long.as_str()] {
        let text = errors(&format!("respond:\n  nft_table: \"{name}\"\n"));
        assert!(text.contains("`respond.nft_table`"), "{text}");
    }
    let text = errors("respond:\n  nft_hooks: []\n");
    assert!(
        text.contains("`respond.nft_hooks`: needs at least one hook"),
        "{text}"
    );
    let cfg = load_str("respond:\n  nft_hooks: [forward]\n", None, &[]).unwrap();
    assert_eq!(cfg.respond.nft.hooks(), [FilterHook::Forward]);
    assert_eq!(cfg.respond.nft.name(), "sentinel");
}

/// An empty string is never "none" in disguise: each optional setting refuses it by name, and `null`
/// (the default) is how "none" is written.
#[test]
fn an_empty_string_is_an_error_not_none() {
    let text = errors(
        "respond:\n  quarantine_dir: \"\"\n  docker_quarantine_network: \"\"\n  actuators:\n    block_ip: { mode: \"\", max_live: 10 }\ndetect:\n  scenarios:\n    dir: \"\"\n",
    );
    for key in [
        "respond.quarantine_dir",
        "respond.docker_quarantine_network",
        "respond.actuators.block_ip.mode",
        "detect.scenarios.dir",
    ] {
        assert!(
            text.contains(&format!("`{key}`: must not be empty (write null for none)")),
            "{key}: {text}"
        );
    }
    let cfg = load_str(
        "respond:\n  quarantine_dir: null\n  actuators:\n    block_ip: { mode: null, max_live: 10 }\ndetect:\n  scenarios:\n    dir: null\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(cfg.respond.quarantine_dir, None);
    assert_eq!(cfg.detect.scenarios.dir, None);
}

#[test]
fn absent_optional_values_are_none_and_typed_as_such() {
    let cfg = load_str("", None, &[]).unwrap();
    assert_eq!(cfg.respond.quarantine_dir, None);
    assert_eq!(cfg.respond.docker_quarantine_network, None);
    assert_eq!(cfg.detect.scenarios.dir, None);
    let cfg = load_str(
        "respond:\n  quarantine_dir: /var/lib/q\n  docker_quarantine_network: q-net\ndetect:\n  scenarios:\n    dir: /etc/sentinel/scenarios\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        cfg.respond.quarantine_dir.as_deref(),
        Some(std::path::Path::new("/var/lib/q"))
    );
    assert_eq!(
        cfg.respond.docker().build().quarantine_network.as_deref(),
        Some("q-net")
    );
    assert_eq!(
        cfg.detect.scenarios.dir.as_deref(),
        Some(std::path::Path::new("/etc/sentinel/scenarios"))
    );
    // The effective configuration (which writes `null` for none) loads back to the same thing.
    let again = load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again, cfg);
    let none = load_str("", None, &[]).unwrap();
    assert_eq!(load_str(&none.effective_yaml(), None, &[]).unwrap(), none);
}

#[test]
fn a_quarantine_that_enforces_must_be_able_to() {
    let text =
        errors("respond:\n  actuators:\n    quarantine_file: { mode: enforce, max_live: 10 }\n");
    assert!(
        text.contains("`respond.quarantine_roots`: quarantine_file enforces but no root"),
        "{text}"
    );
    let text = errors(
        "respond:\n  quarantine_dir: /srv/up/q\n  quarantine_roots: [/srv/up]\n  actuators:\n    quarantine_file: { mode: enforce, max_live: 10 }\n",
    );
    assert!(
        text.contains("`respond.quarantine_dir`: `/srv/up/q` must not be inside the quarantine root `/srv/up`"),
        "{text}"
    );
    // In observe mode the same settings only plan: accepted, as before.
    assert!(load_str(
        "respond:\n  quarantine_dir: /srv/up/q\n  quarantine_roots: [/srv/up]\n",
        None,
        &[]
    )
    .is_ok());
}

#[test]
fn parser_settings_that_would_be_ignored_are_errors() {
    let text = errors(
        "sources:\n  - { type: file, paths: [/x], format: sshd, fail2ban_filter: /f.conf }\n  - { type: journald, mode: aggressive }\n",
    );
    assert!(
        text.contains("`sources[0].format`: `format` and `fail2ban_filter` exclude each other"),
        "{text}"
    );
    assert!(
        text.contains("`sources[1]`: `mode` needs `fail2ban_filter`"),
        "{text}"
    );
    // `format: auto` beside a filter is what `sentinel import fail2ban` wrote before: still accepted.
    let cfg = load_str(
        "sources:\n  - { type: file, paths: [/x], format: auto, fail2ban_filter: /f.conf }\n  - { type: syslog, tcp: \"127.0.0.1:5514\", format: nginx-error }\n",
        None,
        &[],
    )
    .unwrap();
    match &cfg.sources[0] {
        sentinel_config::SourceConfig::File { parse, .. } => {
            assert_eq!(parse.filter_path(), Some(std::path::Path::new("/f.conf")));
        }
        other => panic!("{other:?}"),
    }
    match &cfg.sources[1] {
        sentinel_config::SourceConfig::Syslog { format, .. } => {
            assert_eq!(*format, LogFormat::NginxError);
        }
        other => panic!("{other:?}"),
    }
    let _ = LineFormat::default();
}

#[test]
fn the_format_list_is_the_parsers_own() {
    assert_eq!(sentinel_config::FORMATS, sentinel_ingest::parse::FORMATS);
    for name in sentinel_config::FORMATS {
        assert!(sentinel_ingest::parse::by_name(name).is_some(), "{name}");
    }
}

/// `ipv6_prefix` is a prefix length or null (per address): 0 is refused, not read as "per address" by the
/// daemon while `sentinel replay --ipv6-prefix 0` lumped every IPv6 source into one.
#[test]
fn ipv6_prefix_is_a_length_or_null() {
    let text = errors("detect:\n  scenarios:\n    ipv6_prefix: 0\n");
    assert!(text.contains("`detect.scenarios.ipv6_prefix`"), "{text}");
    assert_eq!(
        load_str("", None, &[])
            .unwrap()
            .detect
            .scenarios
            .ipv6_prefix,
        None
    );
    let cfg = load_str("detect:\n  scenarios:\n    ipv6_prefix: 64\n", None, &[]).unwrap();
    assert_eq!(cfg.detect.scenarios.ipv6_prefix, Some(64));
}
