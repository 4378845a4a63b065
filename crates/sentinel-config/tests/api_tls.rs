//! `api.tls`: off by default; with it, the certificate and key files are read and checked as the
//! API will serve them, and every problem is an error naming its key: missing or unreadable files,
//! PEM that does not parse, a key that is not the certificate's, a key group or others may read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::{load_str, TlsVersion};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A self-signed certificate and its key written to `dir` (the key 0600).
fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

fn yaml(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "api:\n  tls:\n    cert: {}\n    key: {}\n{extra}",
        cert.display(),
        key.display()
    )
}

#[test]
fn tls_is_off_by_default_and_on_with_good_files() {
    assert_eq!(load_str("", None, &[]).unwrap().api.tls, None);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "a");
    let c = load_str(&yaml(&cert, &key, ""), None, &[]).unwrap();
    let t = c.api.tls.clone().expect("api.tls");
    assert_eq!(
        (t.cert.as_path(), t.key.as_path()),
        (cert.as_path(), key.as_path())
    );
    assert_eq!(t.min_version, TlsVersion::V1_2);
    // Shown as it is (the word `key` would otherwise mask the path), and read back the same.
    let y = c.effective_yaml();
    assert!(y.contains(&format!("key: {}", key.display())), "{y}");
    assert!(y.contains("min_version: '1.2'"), "{y}");
    assert_eq!(load_str(&y, None, &[]).unwrap(), c);
    // A listener other hosts reach is no longer "without TLS".
    let c = load_str(&yaml(&cert, &key, "  listen: 0.0.0.0:8443\n"), None, &[]).unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // 1.3, written as a number (YAML's reading of 1.3), a string, or from the environment.
    for extra in ["    min_version: 1.3\n", "    min_version: \"1.3\"\n"] {
        let c = load_str(&yaml(&cert, &key, extra), None, &[]).unwrap();
        assert_eq!(c.api.tls.unwrap().min_version, TlsVersion::V1_3, "{extra}");
    }
    let env = [(
        "SENTINEL__API__TLS__MIN_VERSION".to_string(),
        "1.3".to_string(),
    )];
    let c = load_str(&yaml(&cert, &key, ""), None, &env).unwrap();
    assert_eq!(c.api.tls.unwrap().min_version, TlsVersion::V1_3);
}

/// A key file group or others may read is refused, as sshd refuses one, with the fix in the message.
#[test]
fn a_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "a");
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let errs = load_str(&yaml(&cert, &key, ""), None, &[]).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert!(errs.mentions("api.tls.key"), "{errs}");
        let msg = &errs.0[0].message;
        assert!(
            msg.contains("readable by group or others") && msg.contains("chmod 600"),
            "{msg}"
        );
        assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(load_str(&yaml(&cert, &key, ""), None, &[]).is_ok());
}

#[test]
fn missing_files_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "a");
    let nowhere = dir.path().join("nowhere.pem");
    let errs = load_str(&yaml(&nowhere, &key, ""), None, &[]).unwrap_err();
    assert!(errs.mentions("api.tls.cert"), "{errs}");
    assert!(errs.0[0].message.starts_with("cannot read"), "{errs}");
    assert!(errs.0[0].message.contains("nowhere.pem"), "{errs}");
    let errs = load_str(&yaml(&cert, &nowhere, ""), None, &[]).unwrap_err();
    assert!(errs.mentions("api.tls.key"), "{errs}");
    assert!(errs.0[0].message.starts_with("cannot read"), "{errs}");
    // A directory is not a file.
    let errs = load_str(&yaml(dir.path(), &key, ""), None, &[]).unwrap_err();
    assert!(errs.mentions("api.tls.cert"), "{errs}");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = pair(dir.path(), "a");
    let (_, other_key) = pair(dir.path(), "b");
    let errs = load_str(&yaml(&cert, &other_key, ""), None, &[]).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert!(errs.mentions("api.tls.key"), "{errs}");
    assert!(
        errs.0[0].message.contains("not the key of the certificate"),
        "{errs}"
    );
}

#[test]
fn files_that_are_not_pem_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "a");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let errs = load_str(&yaml(&junk, &key, ""), None, &[]).unwrap_err();
    assert!(errs.mentions("api.tls.cert"), "{errs}");
    assert!(errs.0[0].message.contains("no PEM certificate"), "{errs}");
    let errs = load_str(&yaml(&cert, &junk, ""), None, &[]).unwrap_err();
    assert!(errs.mentions("api.tls.key"), "{errs}");
    assert!(errs.0[0].message.contains("no PEM private key"), "{errs}");
    // The certificate given as the key (and the key as the certificate) is no better.
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o600)).unwrap();
    let errs = load_str(&yaml(&key, &cert, ""), None, &[]).unwrap_err();
    assert!(
        errs.mentions("api.tls.cert") || errs.mentions("api.tls.key"),
        "{errs}"
    );
}

#[test]
fn bad_shapes_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pair(dir.path(), "a");
    let cases = [
        (
            yaml(&cert, &key, "    min_version: 1.1\n"),
            "api.tls.min_version",
        ),
        (
            yaml(&cert, &key, "    min_version: tls13\n"),
            "api.tls.min_version",
        ),
        (yaml(&cert, &key, "    ciphers: all\n"), "api.tls.ciphers"),
        (
            format!("api:\n  tls:\n    cert: {}\n", cert.display()),
            "api.tls.key",
        ),
        (
            format!(
                "api:\n  tls:\n    cert: {}\n    key: null\n",
                cert.display()
            ),
            "api.tls.key",
        ),
        (
            format!("api:\n  tls:\n    cert: ''\n    key: {}\n", key.display()),
            "api.tls.cert",
        ),
        ("api:\n  tls: on\n".to_string(), "api.tls"),
    ];
    for (y, path) in cases {
        let errs = load_str(&y, None, &[]).unwrap_err();
        assert!(errs.mentions(path), "{y}: {errs}");
    }
}
