//! A stopping supervisor hands every crash notice it raised to the notifier before `stop` returns,
//! even from a slow notifier: the caller may stop the notification engine next without losing one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use async_trait::async_trait;
use common::*;
use sentinel_core::{Notice, Notifier, NotifyError};
use sentinel_supervise::config::SuperviseConfig;
use sentinel_supervise::{ChildState, Supervisor};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Takes 700 ms to accept each notice.
#[derive(Default)]
struct Slow(Mutex<Vec<Notice>>);

#[async_trait]
impl Notifier for Slow {
    async fn notify(&self, n: &Notice) -> Result<(), NotifyError> {
        tokio::time::sleep(Duration::from_millis(700)).await;
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_after_the_crash_notices_in_flight_are_accepted() {
    let slow = Arc::new(Slow::default());
    let mut crasher = sh("crasher", "echo going-down; exit 3");
    crasher.restart = fast_policy(60_000);
    let cfg = SuperviseConfig {
        children: vec![sh("steady", "exec sleep 1000"), crasher],
        stop_grace: Duration::from_secs(2),
        output_lines: 5,
    };
    let sup = Supervisor::start(cfg, slow.clone()).await.unwrap();
    let h = sup.status_handle();
    until(Duration::from_secs(10), || {
        h.status()
            .into_iter()
            .find(|c| c.name == "crasher" && c.state == ChildState::Backoff)
    })
    .await
    .expect("the crasher went down");
    assert!(sup.ended().is_empty(), "every child is watched");
    // The notice is still on its way (700 ms): stop waits for it.
    assert!(slow.0.lock().unwrap().is_empty());
    sup.stop().await;
    let got = slow.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].title, "crasher exited (code 3)");
    assert!(got[0].body.contains("going-down"));
    assert!(h.status().iter().all(|c| c.state == ChildState::Stopped));
}
