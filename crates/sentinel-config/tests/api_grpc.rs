//! `api.grpc_listen`: off by default, an address when set, a clear error naming the key otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::load_str;

#[test]
fn grpc_is_off_by_default_and_takes_an_address() {
    let d = load_str("", None, &[]).unwrap();
    assert_eq!(d.api.grpc_listen, None);
    assert!(d.warnings().is_empty(), "{:?}", d.warnings());
    let c = load_str("api:\n  grpc_listen: 127.0.0.1:50051\n", None, &[]).unwrap();
    assert_eq!(c.api.grpc_listen, Some("127.0.0.1:50051".parse().unwrap()));
    let again = load_str(&c.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again, c, "the effective YAML reads back the same");
    let v6 = load_str("api:\n  grpc_listen: '[::1]:0'\n", None, &[]).unwrap();
    assert_eq!(v6.api.grpc_listen, Some("[::1]:0".parse().unwrap()));
}

#[test]
fn a_bad_grpc_address_is_an_error_naming_the_key() {
    for bad in [
        "grpc_listen: localhost",
        "grpc_listen: ''",
        "grpc_listen: 50051",
        "grpc_listen: [1]",
    ] {
        let errs = load_str(&format!("api:\n  {bad}\n"), None, &[]).unwrap_err();
        assert!(errs.mentions("api.grpc_listen"), "{bad}: {errs}");
        assert_eq!(errs.0.len(), 1, "{bad}: {errs}");
    }
}

#[test]
fn a_grpc_address_off_loopback_without_tls_warns() {
    let c = load_str("api:\n  grpc_listen: 0.0.0.0:50051\n", None, &[]).unwrap();
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("api.grpc_listen 0.0.0.0:50051 is not loopback"),
        "{w:?}"
    );
    let c = load_str(
        "api:\n  grpc_listen: 0.0.0.0:50051\n  tls_terminated_by_proxy: true\n",
        None,
        &[],
    )
    .unwrap();
    assert!(c.warnings().is_empty());
}
