//! The daemon's `intel_ready` line says whether investigations are offline and why, through the real
//! binary on its embedded defaults (no provider key) and with `intel.offline` set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;

fn ready_line(out: &str) -> String {
    out.lines()
        .find(|l| l.contains("\"evt\":\"intel_ready\""))
        .unwrap_or_else(|| panic!("no intel_ready line:\n{out}"))
        .to_owned()
}

#[test]
fn intel_ready_explains_offline_mode() {
    let d = Daemon::start(&[]);
    let (_dir, out) = d.stop();
    let line = ready_line(&out);
    assert!(
        line.contains("offline (no provider key is set): local feeds and the store's history only"),
        "{line}"
    );

    let d = Daemon::start(&[("SENTINEL__INTEL__OFFLINE", "true")]);
    let (_dir, out) = d.stop();
    let line = ready_line(&out);
    assert!(line.contains("offline (intel.offline is set)"), "{line}");
}
