//! Attacks on the authentication bypass through configuration: every door that would turn
//! authentication off from a `.env` file, or on an address another host can reach, must be an error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::load_str;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A `.env` file that sets the whole `api` mapping (a variable naming a mapping takes YAML) carries
/// the bypass in with it: it must be refused like the plain variable is.
#[test]
fn a_dotenv_mapping_may_not_carry_the_bypass() {
    for dotenv in [
        "SENTINEL__API='{allow_insecure_no_auth: true}'\n",
        "SENTINEL__API='{\"allow_insecure_no_auth\": true, \"listen\": \"127.0.0.1:8000\"}'\n",
        "SENTINEL__Api=\"{allow_insecure_no_auth: yes}\"\n",
    ] {
        match load_str("", Some(dotenv), &[]) {
            Ok(cfg) => panic!(
                "{dotenv:?} turned the bypass {} from a .env file",
                if cfg.api.allow_insecure_no_auth {
                    "ON"
                } else {
                    "off (accepted silently)"
                }
            ),
            Err(errs) => {
                let shown = errs.to_string();
                assert!(
                    shown.contains("only the real environment"),
                    "{dotenv:?}: {shown}"
                );
            }
        }
    }
    // The same mapping without the bypass stays fine, and the real environment may still set it.
    let cfg = load_str("", Some("SENTINEL__API='{listen: 127.0.0.1:9111}'\n"), &[]).unwrap();
    assert_eq!(cfg.api.listen.port(), 9111);
    assert!(!cfg.api.allow_insecure_no_auth);
    let cfg = load_str(
        "",
        None,
        &env(&[("SENTINEL__API", "{allow_insecure_no_auth: true}")]),
    )
    .unwrap();
    assert!(cfg.api.allow_insecure_no_auth);
}

/// The gRPC API authenticates with the same registry, bypass included: the bypass with a gRPC
/// address off loopback opens every gRPC call to the network.
#[test]
fn the_bypass_is_refused_with_a_grpc_address_off_loopback() {
    for grpc in [
        "0.0.0.0:50051",
        "[::]:50051",
        "192.0.2.7:50051",
        "[::ffff:0.0.0.0]:50051",
    ] {
        let yaml = format!(
            "api:\n  listen: 127.0.0.1:8000\n  allow_insecure_no_auth: true\n  grpc_listen: \"{grpc}\"\n"
        );
        let errs = match load_str(&yaml, None, &[]) {
            Ok(_) => panic!("bypass accepted with api.grpc_listen {grpc}"),
            Err(e) => e,
        };
        assert!(
            errs.0
                .iter()
                .any(|e| e.path == "api.allow_insecure_no_auth" && e.message.contains(grpc)),
            "{grpc}: {errs}"
        );
    }
    let ok = "api:\n  listen: 127.0.0.1:8000\n  allow_insecure_no_auth: true\n  grpc_listen: 127.0.0.1:50051\n";
    assert!(load_str(ok, None, &[]).is_ok());
}

/// Loopback spellings: `127.0.0.2` is loopback (allowed), the unspecified and mapped-unspecified
/// addresses are not.
#[test]
fn loopback_spellings() {
    let with = |listen: &str| {
        load_str(
            &format!("api:\n  listen: \"{listen}\"\n  allow_insecure_no_auth: true\n"),
            None,
            &[],
        )
    };
    assert!(with("127.0.0.2:8000").is_ok());
    assert!(with("[::1]:8000").is_ok());
    for bad in ["0.0.0.0:8000", "[::ffff:0.0.0.0]:8000", "[::]:8000"] {
        assert!(with(bad).is_err(), "{bad} accepted");
    }
}
