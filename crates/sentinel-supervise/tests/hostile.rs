//! A hostile environment for the supervisor, with real processes: commands and directories that do
//! not exist, a child that leaves a daemon behind, floods of output without newlines or with binary
//! garbage, a child that closes its output and keeps running, SIGKILL storms, and a stop while a
//! restart is pending.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sentinel_supervise::config::{SuperviseConfig, Target};
use sentinel_supervise::{ChildState, LastExit, Supervisor};
use std::time::{Duration, Instant};

fn cfg(children: Vec<sentinel_supervise::config::ChildConfig>) -> SuperviseConfig {
    SuperviseConfig {
        children,
        stop_grace: Duration::from_secs(2),
        output_lines: 5,
    }
}

fn kill9(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

/// Kills a pid on drop (a grandchild a failing test would leave behind).
struct Reap(Option<u32>);
impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            kill9(p);
        }
    }
}

/// A command that does not exist and a directory that does not exist: a clear start error in
/// the status and in a notice, restarts paced by the backoff (no tight loop), no panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_command_and_missing_cwd_fail_clearly_and_back_off() {
    let mut a = sh("nocmd", "true");
    if let Target::Process(t) = &mut a.target {
        t.command = "/nonexistent/sentinel-no-such-binary".into();
    }
    let mut b = sh("nocwd", "exec sleep 1000");
    if let Target::Process(t) = &mut b.target {
        t.cwd = Some("/nonexistent/sentinel-no-such-dir".into());
    }
    let (rec, n) = recorder();
    let t0 = Instant::now();
    let sup = Supervisor::start(cfg(vec![a, b]), n).await.unwrap();
    for name in ["nocmd", "nocwd"] {
        let err = until(Duration::from_secs(10), || {
            let s = sup.status();
            match &child(&s, name).last_exit {
                Some(LastExit::StartFailed { error }) => Some(error.clone()),
                _ => None,
            }
        })
        .await
        .unwrap_or_else(|| panic!("{name}: no start failure in {:?}", sup.status()));
        assert!(err.contains("No such file"), "{name}: {err}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let elapsed = t0.elapsed();
    let s = sup.status();
    for name in ["nocmd", "nocwd"] {
        let st = child(&s, name);
        assert!(
            matches!(st.state, ChildState::Backoff | ChildState::Starting),
            "{name}: {st:?}"
        );
        // 100 ms base doubling: 0.1+0.2+0.4+0.8+1.6+3.2 s; a tight loop would be thousands.
        assert!(
            st.restarts <= 8,
            "{name}: {} restarts in {elapsed:?}",
            st.restarts
        );
    }
    let notices = rec.notices();
    assert!(
        notices
            .iter()
            .any(|n| n.title == "nocmd failed to start"
                && n.body.contains("sentinel-no-such-binary")),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|n| n.title == "nocwd failed to start"),
        "{notices:?}"
    );
    sup.stop().await;
}

/// A child that starts a background daemon and exits: the daemon (same process group) is killed
/// with it, not left running beside the restarted child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_left_behind_by_an_exiting_child_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("daemon.pid");
    let script = format!(
        "if [ ! -e {p} ]; then sleep 1000 & echo $! > {p}; exit 3; fi; exec sleep 1000",
        p = pidfile.display()
    );
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![sh("forker", &script)]), n)
        .await
        .unwrap();
    let daemon: u32 = until(Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    })
    .await
    .unwrap();
    let _reap = Reap(Some(daemon));
    let gone = until(Duration::from_secs(10), || (!alive(daemon)).then_some(())).await;
    assert!(gone.is_some(), "daemon {daemon} outlived its parent");
    let s = sup.status();
    assert_eq!(
        child(&s, "forker").last_exit,
        Some(LastExit::Code { code: 3 })
    );
    sup.stop().await;
}

/// 10 MB on one line, then a megabyte of binary garbage: the crash notice carries a bounded tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_output_stay_bounded() {
    let script = "head -c 10000000 /dev/zero | tr '\\0' x; head -c 1000000 /dev/urandom; exit 1";
    let mut c = sh("flood", script);
    c.restart = fast_policy(60_000);
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let notice = until(Duration::from_secs(20), || rec.notices().into_iter().next())
        .await
        .expect("a crash notice");
    assert_eq!(notice.title, "flood exited (code 1)");
    // 5 lines of at most 4096 bytes each (lossy UTF-8 may triple a byte) plus the text around.
    assert!(
        notice.body.len() < 5 * 3 * 4096 + 1024,
        "notice body is {} bytes",
        notice.body.len()
    );
    sup.stop().await;
}

/// A child that closes stdout and stderr and keeps running is still running, not restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_its_output_is_not_an_exit() {
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![sh("quiet", "exec >&- 2>&-; exec sleep 1000")]), n)
        .await
        .unwrap();
    let pid = running_pid(&sup, "quiet", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = sup.status();
    let st = child(&s, "quiet");
    assert_eq!(st.state, ChildState::Running, "{st:?}");
    assert_eq!(st.pid, Some(pid));
    assert_eq!(st.restarts, 0);
    sup.stop().await;
    assert!(!alive(pid));
}

/// SIGKILL after SIGKILL (twice at once, too): one restart per death, one process at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_storms_count_one_restart_per_death() {
    let mut c = sh("victim", "exec sleep 1000");
    c.restart = fast_policy(50);
    c.restart.cap = Duration::from_millis(200);
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let mut pid = running_pid(&sup, "victim", None).await.unwrap();
    for _ in 0..6 {
        kill9(pid);
        kill9(pid);
        pid = running_pid(&sup, "victim", Some(pid))
            .await
            .expect("restarted");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = sup.status();
    let st = child(&s, "victim");
    assert_eq!(st.restarts, 6, "{st:?}");
    assert_eq!(st.pid, Some(pid));
    // Only one `sleep 1000` of ours: the status pid; its group has no other member.
    let pgid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(pgid.contains("sleep"));
    sup.stop().await;
    assert!(!alive(pid));
}

/// stop() while a 60 s restart wait is pending returns promptly and leaves the child stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_pending_backoff_is_prompt() {
    let mut c = sh("flaky", "exit 1");
    c.restart = fast_policy(60_000);
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    until(Duration::from_secs(10), || {
        let s = sup.status();
        (child(&s, "flaky").state == ChildState::Backoff).then_some(())
    })
    .await
    .expect("in backoff");
    let h = sup.status_handle();
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), sup.stop())
        .await
        .expect("stop() hung behind the backoff");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let s = h.status();
    assert_eq!(child(&s, "flaky").state, ChildState::Stopped);
    assert_eq!(child(&s, "flaky").restarts, 0);
}
