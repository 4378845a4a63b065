//! `sentinel config check` reports an `audit.origin` that the existing audit log's key does not carry,
//! the same start-up failure `sentinel run` stops on, through the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, Daemon};

#[test]
fn config_check_reports_an_origin_the_existing_log_refuses() {
    let d = Daemon::start(&[("SENTINEL__AUDIT__ORIGIN", "sentinel/first")]);
    let (dir, _) = d.stop();

    let check = |origin: Option<&str>| {
        let mut c = command(dir.path());
        c.args(["config", "check", "--data-dir", "data"]);
        if let Some(o) = origin {
            c.env("SENTINEL__AUDIT__ORIGIN", o);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(Some("sentinel/second"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("audit.origin") && err.contains("sentinel/first"),
        "{err}"
    );
    // The daemon refuses the same configuration.
    let out = command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .env("SENTINEL__AUDIT__ORIGIN", "sentinel/second")
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The log's own name, or none: the log keeps its name.
    assert_eq!(check(Some("sentinel/first")).0, Some(0));
    assert_eq!(check(None).0, Some(0));
}
