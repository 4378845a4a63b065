//! Modes: a daemon started with umask 000 still keeps its data private — every directory under the
//! data directory is 0700 and every file 0600 (database, `-wal`, `-shm`, `api.addr`, `auth.secret`,
//! `admin.key`, source state), while it runs and after it stops; a data directory found wider is
//! tightened with a WARNING.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Sets this test process's umask to 000; the daemon inherits it. Both tests here want the same.
fn umask_000() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0));
}

/// Every path under `dir` with its mode, and whether it is a directory.
fn modes(dir: &Path) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = std::fs::symlink_metadata(&d).unwrap();
        out.push((
            d.display().to_string(),
            true,
            m.permissions().mode() & 0o7777,
        ));
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((
                    e.path().display().to_string(),
                    false,
                    m.permissions().mode() & 0o7777,
                ));
            }
        }
    }
    out
}

fn assert_private(dir: &Path, when: &str) -> Vec<String> {
    let all = modes(dir);
    let wrong: Vec<String> = all
        .iter()
        .filter(|(_, is_dir, m)| *m != if *is_dir { 0o700 } else { 0o600 })
        .map(|(p, is_dir, m)| format!("{p} ({}) is {m:04o}", if *is_dir { "dir" } else { "file" }))
        .collect();
    assert!(wrong.is_empty(), "{when}:\n{}", wrong.join("\n"));
    all.into_iter().map(|(p, _, _)| p).collect()
}

async fn post(d: &Daemon, path: &str, ct: &str, body: String) -> u16 {
    d.client()
        .post(d.url(path))
        .bearer_auth(&d.key)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_path_in_the_data_dir_is_private_under_umask_000() {
    umask_000();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "sources:\n  - {{ type: file, paths: [\"{}\"], format: sshd, poll_interval: 50ms }}\n",
            log.display()
        ),
    )
    .unwrap();
    // The umask really is 000 here: a file made now is world-writable.
    std::fs::write(dir.path().join("probe"), "").unwrap();
    let probe = std::fs::metadata(dir.path().join("probe"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(probe, 0o666, "the test's umask is not 000");

    let d = Daemon::start_in(dir, &[]);
    let events = json!([{"src_ip": "203.0.113.9", "failed_logins": 3}]).to_string();
    assert_eq!(
        post(&d, "/v1/events", "application/json", events).await,
        200
    );
    let line = json!({"src_ip": "203.0.113.10", "failed_logins": 40}).to_string();
    assert_eq!(
        post(
            &d,
            "/v1/events/stream",
            "application/x-ndjson",
            format!("{line}\n")
        )
        .await,
        200
    );
    assert_eq!(post(&d, "/v1/defend", "application/json", line).await, 200);
    let decision =
        json!({"ip": "198.51.100.7", "duration": "1h", "reason": "modes test"}).to_string();
    assert_eq!(
        post(&d, "/v1/decisions", "application/json", decision).await,
        201
    );
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        writeln!(
            f,
            "{} srv sshd[1]: Failed password for root from 203.0.113.11 port 5000 ssh2",
            sentinel_core::Timestamp::now().to_rfc3339()
        )
        .unwrap();
    }
    // The source's state file is written on its checkpoint; give it time to appear.
    let data = d.data();
    common::eventually(std::time::Duration::from_secs(10), || {
        let has_state = std::fs::read_dir(data.join("sources"))
            .map(|mut r| r.next().is_some())
            .unwrap_or(false);
        async move { has_state.then_some(()) }
    })
    .await;

    let running = assert_private(&d.data(), "while running");
    for name in [
        "sentinel.db",
        "sentinel.db-wal",
        "sentinel.db-shm",
        "api.addr",
        "auth.secret",
        "admin.key",
        "sources",
    ] {
        assert!(
            running.iter().any(|p| p.ends_with(&format!("/{name}"))),
            "{name} not found among {running:?}"
        );
    }
    let (dir, out) = d.stop();
    assert_private(&dir.path().join("data"), "after a clean stop");
    assert!(
        !out.contains("private_mode_restored"),
        "nothing should need tightening:\n{out}"
    );
}

#[test]
fn a_wide_data_dir_is_tightened_with_a_warning() {
    umask_000();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("old")).unwrap();
    std::fs::write(data.join("old/notes"), "x").unwrap();
    for (p, m) in [("", 0o755), ("old", 0o777), ("old/notes", 0o644)] {
        std::fs::set_permissions(data.join(p), std::fs::Permissions::from_mode(m)).unwrap();
    }
    let d = Daemon::start_in(dir, &[]);
    assert_private(&d.data(), "after start");
    let (_dir, out) = d.stop();
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("\"lvl\":\"warn\"") && l.contains("private_mode_restored"))
        .collect();
    assert_eq!(warnings.len(), 3, "one WARNING per path:\n{out}");
    assert!(
        warnings.iter().any(|l| l.contains("\"was\":\"0755\"")),
        "{out}"
    );
    assert!(out
        .lines()
        .any(|l| l.contains("\"lvl\":\"warn\"") && l.contains("data_dir_tightened")));
}

/// Without the daemon's own umask: the store alone creates its database 0600, and SQLite gives the
/// `-wal` and `-shm` files it makes the database file's mode.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_alone_keeps_its_files_private_under_umask_000() {
    umask_000();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh/store.db");
    let store = sentinel_store::Store::open(&db).await.unwrap();
    assert!(store.count_events().await.is_ok());
    let running = assert_private(&dir.path().join("fresh"), "store open");
    for name in ["store.db", "store.db-wal", "store.db-shm"] {
        assert!(
            running.iter().any(|p| p.ends_with(name)),
            "{name} not in {running:?}"
        );
    }
    store.close().await;
    // An existing database readable by others is restricted when opened again.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = sentinel_store::Store::open(&db).await.unwrap();
    assert_private(&dir.path().join("fresh"), "store reopened");
    store.close().await;
}
