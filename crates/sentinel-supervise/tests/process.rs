//! Supervised processes, for real: restart after SIGKILL, backoff growth, crash loops and their
//! notice, probe failures (HTTP, TCP, exec), environment and user, graceful stop in reverse order
//! with SIGKILL after the grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sentinel_core::{NoticeKind, Severity};
use sentinel_supervise::config::{Check, SuperviseConfig, Target};
use sentinel_supervise::{ChildState, LastExit, SuperviseError, Supervisor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn cfg(children: Vec<sentinel_supervise::config::ChildConfig>) -> SuperviseConfig {
    SuperviseConfig {
        children,
        stop_grace: Duration::from_secs(2),
        output_lines: 5,
    }
}

fn kill9(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_with_sigkill_is_restarted_within_two_seconds() {
    let mut c = sh("sleeper", "exec sleep 1000");
    // The real default schedule: the first restart waits 1 s (+ up to 10 % jitter).
    c.restart = Default::default();
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let pid = running_pid(&sup, "sleeper", None).await.unwrap();
    kill9(pid);
    let t0 = Instant::now();
    let new = until(Duration::from_secs(10), || {
        let s = sup.status();
        let p = child(&s, "sleeper").pid?;
        (p != pid && alive(p)).then_some(p)
    })
    .await
    .expect("restarted");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "restart took {took:?}");
    assert!(!alive(pid));
    let s = sup.status();
    let st = child(&s, "sleeper");
    assert_eq!(st.restarts, 1);
    assert_eq!(st.last_exit, Some(LastExit::Signal { signal: 9 }));
    assert_eq!(st.kind, "process");
    let notices = until(Duration::from_secs(5), || {
        let n = rec.notices();
        (!n.is_empty()).then_some(n)
    })
    .await
    .unwrap();
    assert_eq!(notices[0].title, "sleeper exited (signal 9)");
    assert_eq!(notices[0].kind, NoticeKind::Crash);
    assert_eq!(notices[0].severity, Severity::High);
    assert_eq!(notices[0].key.as_deref(), Some("crash:sleeper"));
    sup.stop().await;
    assert!(!alive(new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_crashes_double_the_wait_between_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts");
    let c = sh(
        "crasher",
        &format!("date +%s%N >> {}; exit 1", log.display()),
    );
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let starts = until(Duration::from_secs(20), || {
        let t = std::fs::read_to_string(&log).ok()?;
        let v: Vec<u128> = t.lines().filter_map(|l| l.trim().parse().ok()).collect();
        (v.len() >= 6).then_some(v)
    })
    .await
    .expect("six starts");
    sup.stop().await;
    let gaps: Vec<Duration> = starts
        .windows(2)
        .map(|w| Duration::from_nanos((w[1] - w[0]) as u64))
        .collect();
    for (i, g) in gaps.iter().take(5).enumerate() {
        let want = Duration::from_millis(100 << i);
        assert!(*g >= want, "gap {i} = {g:?} < {want:?} (gaps {gaps:?})");
        assert!(
            *g < want + Duration::from_millis(1500),
            "gap {i} = {g:?} far beyond {want:?} (gaps {gaps:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_alive_for_reset_after_starts_the_backoff_again_from_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts");
    // Lives 0.5 s, longer than reset_after (0.3 s): every wait is the base again (0.3 s), where
    // without the reset they would grow 0.3, 0.6, 1.2, 2.4 s.
    let mut c = sh(
        "steady",
        &format!("date +%s%N >> {}; sleep 0.5; exit 1", log.display()),
    );
    c.restart.base = Duration::from_millis(300);
    c.restart.reset_after = Duration::from_millis(300);
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let backoff = until(Duration::from_secs(10), || {
        let s = sup.status();
        let c = child(&s, "steady").clone();
        (c.state == ChildState::Backoff).then_some(c)
    })
    .await
    .expect("in backoff");
    let left = backoff.next_restart_in_ms.expect("next restart shown");
    assert!(left <= 300, "{left}");
    let starts = until(Duration::from_secs(20), || {
        let t = std::fs::read_to_string(&log).ok()?;
        let v: Vec<u128> = t.lines().filter_map(|l| l.trim().parse().ok()).collect();
        (v.len() >= 5).then_some(v)
    })
    .await
    .expect("five starts");
    sup.stop().await;
    let gaps: Vec<Duration> = starts
        .windows(2)
        .map(|w| Duration::from_nanos((w[1] - w[0]) as u64))
        .collect();
    for g in &gaps[..4] {
        assert!(*g >= Duration::from_millis(800), "{gaps:?}");
        assert!(
            *g < Duration::from_millis(1500),
            "the backoff grew: {gaps:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_stops_restarting_and_sends_a_critical_notice_with_the_output() {
    let mut c = sh(
        "looper",
        "echo \"starting $$\"; echo 'fatal: bad config line 3' >&2; exit 3",
    );
    c.restart.base = Duration::from_millis(50);
    c.restart.crash_max = 3;
    c.restart.crash_window = Duration::from_secs(60);
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    until(Duration::from_secs(15), || {
        (child(&sup.status(), "looper").state == ChildState::CrashLoop).then_some(())
    })
    .await
    .expect("crash loop");
    let critical = until(Duration::from_secs(5), || {
        rec.notices()
            .into_iter()
            .find(|n| n.severity == Severity::Critical)
    })
    .await
    .expect("critical notice");
    assert_eq!(
        critical.title,
        "looper is crash-looping: stopped restarting after 3 restarts in 1m"
    );
    assert_eq!(critical.kind, NoticeKind::Crash);
    assert_eq!(critical.key.as_deref(), Some("crash_loop:looper"));
    assert!(
        critical.body.contains("fatal: bad config line 3"),
        "{}",
        critical.body
    );
    assert!(critical.body.contains("starting "), "{}", critical.body);
    // The output spans runs: each restart is marked where it begins.
    assert!(
        critical.body.contains("--- restart 3 ---"),
        "{}",
        critical.body
    );
    // No more restarts.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s = sup.status();
    let st = child(&s, "looper");
    assert_eq!(st.state, ChildState::CrashLoop);
    assert_eq!(st.restarts, 3);
    assert_eq!(st.pid, None);
    assert_eq!(st.last_exit, Some(LastExit::Code { code: 3 }));
    let high: Vec<_> = rec
        .notices()
        .into_iter()
        .filter(|n| n.severity == Severity::High)
        .collect();
    assert_eq!(high.len(), 3, "one notice per restart");
    assert_eq!(high[0].title, "looper exited (code 3)");
    assert!(high[0].body.contains("fatal: bad config line 3"));
    assert!(
        high[0].body.contains("Next restart in 50ms"),
        "{}",
        high[0].body
    );
    sup.stop().await;
}

/// A tiny HTTP server on 127.0.0.1:0 answering 200 or 503 as `healthy` says.
async fn health_server(healthy: Arc<AtomicBool>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let ok = healthy.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let status = if ok {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}/ready")
}

/// Waits for the child to be healthy, breaks its health, and expects a restart (a new pid, the old
/// one gone) and an "unhealthy" notice.
async fn expect_unhealthy_restart(
    check: Check,
    break_it: impl FnOnce(),
    rec: &Recorder,
    sup: &Supervisor,
) {
    let _ = check;
    let pid = until(Duration::from_secs(15), || {
        let s = sup.status();
        let c = child(&s, "svc");
        (c.state == ChildState::Healthy).then_some(c.pid).flatten()
    })
    .await
    .expect("healthy");
    break_it();
    let new = running_pid(sup, "svc", Some(pid)).await.expect("restarted");
    assert_ne!(new, pid);
    assert!(!alive(pid), "the unhealthy process was stopped");
    let n = until(Duration::from_secs(5), || {
        rec.notices()
            .into_iter()
            .find(|n| n.title == "svc is unhealthy")
    })
    .await
    .expect("unhealthy notice");
    assert_eq!(n.severity, Severity::High);
    let s = sup.status();
    assert!(matches!(
        child(&s, "svc").last_exit,
        Some(LastExit::Unhealthy { .. })
    ));
    assert!(child(&s, "svc").restarts >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_http_probe_restarts_the_child() {
    let healthy = Arc::new(AtomicBool::new(true));
    let url = health_server(healthy.clone()).await;
    let mut c = sh("svc", "exec sleep 1000");
    c.probe = Some(probe(Check::Http { url: url.clone() }));
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let h = healthy.clone();
    expect_unhealthy_restart(
        Check::Http { url },
        move || h.store(false, Ordering::SeqCst),
        &rec,
        &sup,
    )
    .await;
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tcp_probe_restarts_the_child() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut c = sh("svc", "exec sleep 1000");
    c.probe = Some(probe(Check::Tcp { addr }));
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    expect_unhealthy_restart(Check::Tcp { addr }, move || drop(l), &rec, &sup).await;
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_exec_probe_restarts_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let sick = dir.path().join("sick");
    let check = Check::Exec {
        command: "/bin/sh".into(),
        args: vec!["-c".into(), format!("test ! -e {}", sick.display())],
    };
    let mut c = sh("svc", "exec sleep 1000");
    c.probe = Some(probe(check.clone()));
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let s2 = sick.clone();
    expect_unhealthy_restart(check, move || std::fs::write(&s2, b"").unwrap(), &rec, &sup).await;
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_probe_that_hangs_is_killed_at_its_timeout_and_counts_as_a_failure() {
    let mut c = sh("svc", "exec sleep 1000");
    let mut p = probe(Check::Exec {
        command: "/bin/sleep".into(),
        args: vec!["1000".into()],
    });
    p.timeout = Duration::from_millis(200);
    p.failure_threshold = 1;
    c.probe = Some(p);
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let n = until(Duration::from_secs(15), || {
        rec.notices()
            .into_iter()
            .find(|n| n.title == "svc is unhealthy")
    })
    .await
    .expect("unhealthy notice");
    assert!(n.body.contains("timed out"), "{}", n.body);
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_ignores_sigterm_is_killed_after_the_grace_period_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner.pid");
    let mut c = sh(
        "stubborn",
        &format!(
            "trap '' TERM; sleep 1000 & echo $! > {}; wait",
            inner.display()
        ),
    );
    c.stop_grace = Some(Duration::from_secs(1));
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let pid = running_pid(&sup, "stubborn", None).await.unwrap();
    let inner_pid: u32 = until(Duration::from_secs(10), || {
        std::fs::read_to_string(&inner).ok()?.trim().parse().ok()
    })
    .await
    .unwrap();
    assert!(alive(inner_pid));
    let t0 = Instant::now();
    sup.stop().await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "SIGTERM was ignored, so the grace ran out: {took:?}"
    );
    assert!(!alive(pid), "the child was SIGKILLed");
    assert!(
        until(Duration::from_secs(5), || (!alive(inner_pid)).then_some(()))
            .await
            .is_some(),
        "its grandchild in the same group was killed too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_stop_in_reverse_start_order() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["first", "second", "third"];
    let children = names
        .iter()
        .map(|n| {
            let f = dir.path().join(n);
            sh(
                n,
                &format!(
                    "trap 'date +%s%N > {}; exit 0' TERM; touch {}.ready; \
                     while true; do sleep 0.05; done",
                    f.display(),
                    f.display()
                ),
            )
        })
        .collect();
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(children), n).await.unwrap();
    for n in names {
        running_pid(&sup, n, None).await.unwrap();
        // The trap is set once the marker is there.
        let ready = dir.path().join(format!("{n}.ready"));
        until(Duration::from_secs(10), || ready.exists().then_some(()))
            .await
            .unwrap();
    }
    let s = sup.status();
    assert_eq!(
        s.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        names.to_vec()
    );
    let handle = sup.status_handle();
    sup.stop().await;
    assert!(
        handle
            .status()
            .iter()
            .all(|c| c.state == ChildState::Stopped && c.pid.is_none()),
        "{:?}",
        handle.status()
    );
    let t: Vec<u128> = names
        .iter()
        .map(|n| {
            std::fs::read_to_string(dir.path().join(n))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(t[2] < t[1] && t[1] < t[0], "stop times {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_directory_and_user_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut c = sh(
        "env",
        &format!(
            "echo \"$FOO|$HOME|$(pwd)|$(id -u)\" > {}; exec sleep 1000",
            out.display()
        ),
    );
    if let Target::Process(t) = &mut c.target {
        t.env.insert("FOO".into(), "bar".into());
        t.clear_env = true;
        t.cwd = Some(dir.path().to_path_buf());
        if rustix::process::geteuid().is_root() {
            t.user = Some("nobody".into());
        }
    }
    let (_rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![c]), n).await.unwrap();
    let line = until(Duration::from_secs(10), || {
        let t = std::fs::read_to_string(&out).ok()?;
        t.ends_with('\n').then_some(t)
    })
    .await
    .unwrap();
    let uid = if rustix::process::geteuid().is_root() {
        "65534".to_string()
    } else {
        rustix::process::geteuid().as_raw().to_string()
    };
    assert_eq!(
        line.trim(),
        format!(
            "bar||{}|{uid}",
            dir.path().canonicalize().unwrap().display()
        )
    );
    sup.stop().await;
}

#[tokio::test]
async fn bad_configurations_are_refused_with_every_problem() {
    let mut a = sh("dup", "true");
    a.probe = Some(probe(Check::DockerHealth));
    let b = sh("dup", "true");
    let mut c = sh("who", "true");
    if let Target::Process(t) = &mut c.target {
        t.user = Some("no-such-user-here".into());
    }
    let (_rec, n) = recorder();
    let err = Supervisor::start(cfg(vec![a, b, c]), n).await.unwrap_err();
    let SuperviseError::Config(problems) = &err else {
        panic!("{err:?}")
    };
    let text = problems.join("\n");
    assert!(
        text.contains("docker_health applies to containers only"),
        "{text}"
    );
    assert!(text.contains("used twice"), "{text}");
    assert!(text.contains("no user \"no-such-user-here\""), "{text}");
}
