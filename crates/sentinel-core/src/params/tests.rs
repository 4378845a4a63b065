//! Tests of the typed parameters: bounds, grammars, unknown keys, errors that name the field without
//! echoing input, and property tests over arbitrary and near-valid input.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use serde_json::json;

fn err(kind: ActionKind, v: Value) -> String {
    ActionParams::parse(kind, &v).unwrap_err().to_string()
}

#[test]
fn cidrs_are_bounded_and_strict() {
    assert_eq!(
        "203.0.113.7/24".parse::<Cidr>().unwrap().to_string(),
        "203.0.113.0/24"
    );
    assert!("10.0.0.0/8".parse::<Cidr>().is_ok());
    assert!("2001:db8::/16".parse::<Cidr>().is_ok());
    for bad in [
        "127.0.0.0/8 ",
        " 127.0.0.0/8",
        "128.0.0.0/1",
        "0.0.0.0/0",
        "2001:db8::/15",
        "::ffff:127.0.0.0/104",
        "203.0.113.0/24; flush ruleset",
        "",
    ] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
    }
    let e = err(
        ActionKind::BlockIp,
        json!({"cidr": "203.0.113.0/24; flush ruleset"}),
    );
    assert!(e.starts_with("params.cidr: "), "{e}");
    assert!(!e.contains("flush"), "no echo: {e}");
}

#[test]
fn every_kind_parses_its_own_keys_only() {
    let p = ActionParams::parse(ActionKind::RateLimit, &json!({"rate_per_sec": 100})).unwrap();
    assert_eq!(p.to_json(), json!({"rate_per_sec": 100}));
    for bad in [
        json!(-1),
        json!(0),
        json!("10"),
        json!(1.5),
        json!(5_000_000_000u64),
    ] {
        let e = err(ActionKind::RateLimit, json!({ "rate_per_sec": bad }));
        assert!(e.starts_with("params.rate_per_sec: "), "{e}");
    }
    assert!(err(ActionKind::BlockIp, json!({"password": "hunter2"})).contains("`password`"));
    let long = "k".repeat(200);
    let e = err(ActionKind::BlockIp, json!({ long.clone(): 1 }));
    assert!(!e.contains(&long), "{e}");
    assert!(err(ActionKind::QuarantineFile, json!({"x": 1})).contains("takes none"));
    let p = ActionParams::parse(
        ActionKind::RedirectToHoneypot,
        &json!({"honeypot": "[2001:db8::30]:2222", "ports": [22, "8000-8010"]}),
    )
    .unwrap();
    assert_eq!(
        p.to_json(),
        json!({"honeypot": "[2001:db8::30]:2222", "ports": [22, "8000-8010"]})
    );
    for bad in [
        json!({"honeypot": "192.0.2.30:2222; flush ruleset"}),
        json!({"honeypot": "192.0.2.30"}),
        json!({"honeypot": "192.0.2.30:0"}),
    ] {
        let e = err(ActionKind::RedirectToHoneypot, bad);
        assert!(
            e.starts_with("params.honeypot: ") && !e.contains("flush"),
            "{e}"
        );
    }
    for bad in [
        json!([0]),
        json!([65536]),
        json!(["22 } flush"]),
        json!([]),
        json!(["9-3"]),
    ] {
        let e = err(ActionKind::RedirectToHoneypot, json!({ "ports": bad }));
        assert!(e.starts_with("params.ports: "), "{e}");
    }
    assert_eq!(
        ActionParams::parse(ActionKind::BlockIp, &Value::Null)
            .unwrap()
            .to_json(),
        Value::Null
    );
}

#[test]
fn names_and_paths_follow_their_grammar() {
    for ok in ["web", "a1b2c3d4e5f6", "my_app.v2-1"] {
        assert!(ok.parse::<ContainerName>().is_ok(), "{ok}");
    }
    for bad in [
        "x/../../images/y?force=1",
        "..",
        "a..b",
        "-x",
        "",
        "a b",
        "a/b",
        "a?b",
    ] {
        assert!(bad.parse::<ContainerName>().is_err(), "{bad:?}");
        assert!(bad.parse::<NetworkName>().is_err(), "{bad:?}");
    }
    assert!("/srv/uploads/x.php".parse::<QuarantinePath>().is_ok());
    for bad in [
        "srv/x",
        "/srv/../etc/passwd",
        "/srv/./x",
        "/srv//x",
        "/srv/x/",
        "/a\nb",
    ] {
        assert!(bad.parse::<QuarantinePath>().is_err(), "{bad:?}");
    }
}

#[test]
fn limits_cap_ttls_and_keep_files_inside_roots() {
    let none = ActionLimits::default();
    let f = Subject::File("/root/.bashrc".into());
    assert!(none
        .check_subject(&f)
        .unwrap_err()
        .to_string()
        .contains("no quarantine roots"));
    let l = ActionLimits {
        max_ttl: Some(Duration::from_secs(3600)),
        quarantine_roots: vec![PathBuf::from("/srv/uploads")],
    };
    assert!(l.check_subject(&f).is_err());
    assert!(l
        .check_subject(&Subject::File("/srv/uploads/a.php".into()))
        .is_ok());
    assert!(l
        .check_subject(&Subject::File("/srv/uploadsX/a.php".into()))
        .is_err());
    assert!(l.check_ttl(3600).is_ok());
    assert!(l
        .check_ttl(3601)
        .unwrap_err()
        .to_string()
        .starts_with("ttl: "));
    assert_eq!(l.cap(1_000_000), 3600);
}

proptest::proptest! {
    /// Whatever a caller sends, parsing never panics, an error never quotes more than a short
    /// validated part, and what is accepted renders with no character an nft script or a URL path
    /// could be steered by, and parses back to the same value.
    #[test]
    fn any_input_parses_safely(text in "\\PC{0,80}", n in proptest::num::i64::ANY) {
        for (kind, key) in [
            (ActionKind::BlockIp, "cidr"),
            (ActionKind::RedirectToHoneypot, "honeypot"),
            (ActionKind::IsolateContainer, "quarantine_network"),
            (ActionKind::RateLimit, "rate_per_sec"),
            (ActionKind::RedirectToHoneypot, "ports"),
        ] {
            for v in [json!(text.clone()), json!(n), json!([text.clone()]), json!([n])] {
                match ActionParams::parse(kind, &json!({ key: v })) {
                    Ok(p) => {
                        let out = p.to_json();
                        let strings: Vec<&str> = out
                            .as_object()
                            .into_iter()
                            .flat_map(|m| m.values())
                            .flat_map(|v| match v {
                                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                                other => vec![other],
                            })
                            .filter_map(Value::as_str)
                            .collect();
                        for s in strings {
                            proptest::prop_assert!(
                                !s.chars().any(|c| c.is_whitespace() || ";{}?#`$\"\\".contains(c))
                                    && !s.contains(".."),
                                "{}", s
                            );
                        }
                        proptest::prop_assert_eq!(ActionParams::parse(kind, &p.to_json()).ok(), Some(p));
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        proptest::prop_assert!(msg.starts_with("params."));
                        if text.len() > 8 {
                            proptest::prop_assert!(!msg.contains(text.as_str()), "{}", msg);
                        }
                    }
                }
            }
        }
        let _ = text.parse::<ContainerName>();
        let _ = text.parse::<Cidr>();
        if let Ok(p) = text.parse::<QuarantinePath>() {
            proptest::prop_assert!(!p.to_string().contains("/../") && p.as_path().is_absolute());
        }
    }
}

proptest::proptest! {
    /// Near-valid ranges and honeypots: accepted exactly when well formed and within bounds, and
    /// then rendered from the parsed value (so never with the trailing junk).
    #[test]
    fn near_valid_ranges_and_honeypots(
        o in proptest::array::uniform4(0u8..=255),
        len in 0u8..=40,
        port in 0u32..=70_000,
        junk in proptest::sample::select(vec!["", " ", "; flush ruleset", "\n", "/", "}"]),
    ) {
        let text = format!("{}.{}.{}.{}/{len}{junk}", o[0], o[1], o[2], o[3]);
        let ok = junk.is_empty() && (8..=32).contains(&len);
        match text.parse::<Cidr>() {
            Ok(c) => {
                proptest::prop_assert!(ok, "{} accepted", text);
                proptest::prop_assert_eq!(c.net().prefix_len(), len);
                proptest::prop_assert_eq!(c.to_string().parse::<Cidr>().ok(), Some(c));
            }
            Err(_) => proptest::prop_assert!(!ok, "{} refused", text),
        }
        let hp = format!("{}.{}.{}.{}:{port}{junk}", o[0], o[1], o[2], o[3]);
        let addr = std::net::Ipv4Addr::from(o);
        let unicast = !addr.is_unspecified() && !addr.is_multicast() && !addr.is_broadcast();
        let ok = junk.is_empty() && (1..=65_535).contains(&port) && unicast;
        match hp.parse::<Honeypot>() {
            Ok(h) => {
                proptest::prop_assert!(ok, "{} accepted", hp);
                proptest::prop_assert_eq!(h.to_string(), hp);
            }
            Err(_) => proptest::prop_assert!(!ok, "{} refused", hp),
        }
    }
}

#[test]
fn fit_checks_ranges_and_families() {
    let s = Subject::Ip("203.0.113.7".parse().unwrap());
    let p = ActionParams::parse(ActionKind::BlockIp, &json!({"cidr": "198.51.100.0/24"})).unwrap();
    assert!(check_fit(ActionKind::BlockIp, &s, &p).is_err());
    let p = ActionParams::parse(
        ActionKind::RedirectToHoneypot,
        &json!({"honeypot": "[2001:db8::1]:22"}),
    )
    .unwrap();
    assert!(check_fit(ActionKind::RedirectToHoneypot, &s, &p).is_err());
    assert!(check_fit(ActionKind::BlockIp, &s, &p).is_err());
    assert!(check_subject(
        ActionKind::IsolateContainer,
        &Subject::Container("x/../y".into())
    )
    .is_err());
}

/// Stored specs and plans keep their shape: what was written before parameters were typed reads back
/// and is written again byte for byte; a record no longer acceptable says which field.
#[test]
fn stored_shapes_round_trip() {
    use crate::action::ActionSpec;
    for stored in [
        r#"{"kind":"block_ip","subject":{"type":"ip","value":"203.0.113.7"},"ttl_secs":3600}"#,
        r#"{"kind":"block_ip","subject":{"type":"ip","value":"2001:db8::9"},"ttl_secs":60,"params":{"cidr":"2001:db8::/64"}}"#,
        r#"{"kind":"rate_limit","subject":{"type":"ip","value":"192.0.2.18"},"ttl_secs":600,"params":{"burst":5,"rate_per_sec":10}}"#,
        r#"{"kind":"redirect_to_honeypot","subject":{"type":"ip","value":"192.0.2.18"},"ttl_secs":600,"params":{"honeypot":"192.0.2.30:2222","ports":[22,2022]}}"#,
        r#"{"kind":"isolate_container","subject":{"type":"container","value":"web"},"ttl_secs":60,"params":{"quarantine_network":"sentinel-q"}}"#,
        r#"{"kind":"quarantine_file","subject":{"type":"file","value":"/srv/uploads/x.php"},"ttl_secs":60}"#,
    ] {
        let spec: ActionSpec = serde_json::from_str(stored).unwrap();
        assert_eq!(serde_json::to_string(&spec).unwrap(), stored);
    }
    let old_null = r#"{"kind":"block_ip","subject":{"type":"ip","value":"203.0.113.7"},"ttl_secs":1,"params":null}"#;
    let spec: ActionSpec = serde_json::from_str(old_null).unwrap();
    assert_eq!(spec.params, ActionParams::none(ActionKind::BlockIp));
}

/// A record stored before parameters were typed, with parameters that no longer parse, still reads
/// back (a user who upgrades keeps their records), is written back unchanged, and can never be applied:
/// `check()` refuses it naming the field.
#[test]
fn stored_params_that_no_longer_parse_are_kept_but_refused() {
    use crate::action::ActionSpec;
    for (stored, field) in [
        (
            r#"{"kind":"rate_limit","subject":{"type":"ip","value":"192.0.2.18"},"ttl_secs":1,"params":{"rate_per_sec":-1}}"#,
            "params.rate_per_sec",
        ),
        (
            r#"{"kind":"block_ip","subject":{"type":"ip","value":"203.0.113.7"},"ttl_secs":60,"params":{"anything":1}}"#,
            "params",
        ),
        (
            r#"{"kind":"block_ip","subject":{"type":"ip","value":"203.0.113.7"},"ttl_secs":60,"params":{"rate_per_sec":10}}"#,
            "params",
        ),
        (
            r#"{"kind":"quarantine_file","subject":{"type":"file","value":"/srv/uploads/x.php"},"ttl_secs":60,"params":{"anything":1}}"#,
            "params",
        ),
        (
            r#"{"kind":"block_ip","subject":{"type":"ip","value":"203.0.113.7"},"ttl_secs":60,"params":"x"}"#,
            "params",
        ),
    ] {
        let spec: ActionSpec = serde_json::from_str(stored).unwrap();
        assert!(matches!(spec.params, ActionParams::Stored(_)), "{stored}");
        assert_eq!(serde_json::to_string(&spec).unwrap(), stored);
        let e = spec.check().unwrap_err();
        assert_eq!(e.field.to_string(), field, "{stored}");
        assert!(e.to_string().contains("cannot be applied"), "{e}");
        assert!(ActionSpec::new(spec.kind, spec.subject.clone(), 60, spec.params.clone()).is_err());
    }
}

/// Values nftables would merge, refuse or never match are refused before any rule is built: a honeypot
/// with a zone id (nft cannot write it), an IPv4-mapped or non-unicast honeypot, repeated or overlapping
/// ports (nft merges them, so the rule in place would differ from the dry run), an IPv4-mapped subject
/// (the v6 set never matches IPv4 traffic), and a TTL past what nft accepts.
#[test]
fn values_nftables_would_change_or_refuse_are_refused() {
    for hp in [
        "[fe80::1%2]:2222",
        "[::ffff:192.0.2.30]:2222",
        "0.0.0.0:22",
        "[::]:22",
        "224.0.0.1:22",
        "[ff02::1]:22",
        "255.255.255.255:22",
    ] {
        assert!(hp.parse::<Honeypot>().is_err(), "{hp}");
    }
    assert!("[2001:db8::30]:2222".parse::<Honeypot>().is_ok());
    for ports in [
        json!([22, 22]),
        json!(["20-30", 25]),
        json!(["20-30", "30-40"]),
        json!([80, "1-65535"]),
    ] {
        let e = ActionParams::parse(
            ActionKind::RedirectToHoneypot,
            &json!({"honeypot": "192.0.2.30:22", "ports": ports}),
        )
        .unwrap_err();
        assert_eq!(e.field, SpecField::Param("ports"), "{ports}");
    }
    assert!(ActionParams::parse(
        ActionKind::RedirectToHoneypot,
        &json!({"honeypot": "192.0.2.30:22", "ports": [22, "20-21", "23-30", 2222]}),
    )
    .is_ok());
    let mapped = Subject::Ip("::ffff:203.0.113.7".parse().unwrap());
    for kind in [
        ActionKind::BlockIp,
        ActionKind::RateLimit,
        ActionKind::RedirectToHoneypot,
    ] {
        let e = check_subject(kind, &mapped).unwrap_err();
        assert_eq!(e.field, SpecField::Subject);
    }
    for odd in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
        let s = Subject::Ip(odd.parse().unwrap());
        assert_eq!(
            check_subject(ActionKind::BlockIp, &s).unwrap_err().field,
            SpecField::Subject,
            "{odd}"
        );
    }
    let limits = ActionLimits::default();
    assert!(limits.check_ttl(MAX_TTL_SECS).is_ok());
    assert_eq!(
        limits.check_ttl(MAX_TTL_SECS + 1).unwrap_err().field,
        SpecField::Ttl
    );
}
