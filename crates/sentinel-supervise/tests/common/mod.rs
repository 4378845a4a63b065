//! Shared test parts: a recording notifier (the `Notifier` seam's test double), child configs and
//! polling helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use sentinel_core::{Notice, Notifier, NotifyError};
use sentinel_supervise::config::{ChildConfig, ProbeConfig, ProcessTarget, RestartPolicy, Target};
use sentinel_supervise::{ChildStatus, Supervisor};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records every notice.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Notice>>);

impl Recorder {
    pub fn notices(&self) -> Vec<Notice> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl Notifier for Recorder {
    async fn notify(&self, n: &Notice) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

/// A restart policy for tests: small base, no jitter, no crash loop unless asked.
pub fn fast_policy(base_ms: u64) -> RestartPolicy {
    RestartPolicy {
        base: Duration::from_millis(base_ms),
        jitter: 0.0,
        crash_max: 1000,
        ..RestartPolicy::default()
    }
}

/// A process child running `sh -c script`.
pub fn sh(name: &str, script: &str) -> ChildConfig {
    ChildConfig {
        name: name.into(),
        target: Target::Process(ProcessTarget {
            command: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: Default::default(),
            clear_env: false,
            cwd: None,
            user: None,
        }),
        probe: None,
        restart: fast_policy(100),
        stop_grace: Some(Duration::from_secs(2)),
    }
}

pub fn probe(check: sentinel_supervise::config::Check) -> ProbeConfig {
    ProbeConfig {
        check,
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        failure_threshold: 2,
        start_period: Duration::ZERO,
    }
}

/// Polls `f` every 20 ms until it answers `Some`, or `limit` passes.
pub async fn until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn child<'a>(s: &'a [ChildStatus], name: &str) -> &'a ChildStatus {
    s.iter().find(|c| c.name == name).unwrap()
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The running pid of `name`, once it has one and it is alive.
pub async fn running_pid(sup: &Supervisor, name: &str, other_than: Option<u32>) -> Option<u32> {
    until(Duration::from_secs(15), || {
        let s = sup.status();
        let pid = child(&s, name).pid?;
        (Some(pid) != other_than && alive(pid)).then_some(pid)
    })
    .await
}

pub fn recorder() -> (Arc<Recorder>, Arc<dyn Notifier>) {
    let r = Arc::new(Recorder::default());
    let n: Arc<dyn Notifier> = r.clone();
    (r, n)
}
