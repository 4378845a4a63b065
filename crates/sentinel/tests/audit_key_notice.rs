//! On first start the daemon tells the operator the audit log's verifier key on stderr, as it does the
//! admin key, so a copy can be kept off the host for `sentinel audit verify --key`; later starts do not
//! repeat it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;

#[test]
fn the_verifier_key_is_shown_on_the_first_start_only() {
    let d = Daemon::start(&[]);
    let key = std::fs::read_to_string(d.data().join("audit/key.pub")).unwrap();
    let key = key.trim();
    let (dir, out) = d.stop();
    let notice = "Sentinel created the audit log's signing key";
    assert!(out.contains(notice), "{out}");
    assert!(out.contains(&format!("\n    {key}\n")), "{out}");

    let d = Daemon::start_in(dir, &[]);
    let (_, out) = d.stop();
    assert!(!out.contains(notice), "{out}");
}
