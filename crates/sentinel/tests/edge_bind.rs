//! With its port taken, the daemon fails before it creates anything: no data directory, no admin key
//! printed or written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

#[test]
fn a_port_in_use_fails_with_nothing_created() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = common::command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", &addr])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon did not fail with its port taken");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("cannot listen on"), "{text}");
    assert!(!text.contains("snl_"), "an admin key was printed:\n{text}");
    assert!(
        !dir.path().join("data").exists(),
        "the data directory was created:\n{text}"
    );
    drop(taken);
}

/// The unsigned test webhook is, like the auth bypass, refused on an address other hosts can reach:
/// the daemon fails before it binds or creates anything.
#[test]
fn the_test_webhook_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", "0.0.0.0:0"])
        .env("SENTINEL_ENABLE_WEBHOOK_TEST", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut child = out;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon started with the test webhook on 0.0.0.0");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("SENTINEL_ENABLE_WEBHOOK_TEST=true is refused"),
        "{text}"
    );
    assert!(!dir.path().join("data").exists(), "{text}");
}
