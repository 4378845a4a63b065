//! `notify_many`: a burst of notices is routed notice by notice and committed in one transaction —
//! every routed notice is in the outbox when it returns, folded by key on delivery, unrouted ones
//! are counted and logged only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use sentinel_core::{Notice, NoticeKind, Notifier, Severity, TraceId};
use sentinel_notify::config::Route;
use sentinel_notify::{Channel, Message, Notifications, NotifyConfig, SendError};
use sentinel_store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Recording(Mutex<Vec<Message>>);

#[async_trait::async_trait]
impl Channel for Recording {
    fn name(&self) -> &str {
        "rec"
    }
    fn kind(&self) -> &'static str {
        "webhook"
    }
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        self.0.lock().unwrap().push(m.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_committed_at_once_and_folds_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sentinel.db")).await.unwrap();
    let mut cfg = NotifyConfig::default();
    cfg.routes.push(Route {
        kinds: vec![NoticeKind::Alert],
        min_severity: Severity::High,
        channels: vec!["rec".into()],
        group_wait: Duration::from_millis(300),
        dedup_window: Duration::ZERO,
        throttle_max: 100,
        throttle_per: Duration::from_secs(1),
    });
    let rec = Arc::new(Recording::default());
    let mut channels: BTreeMap<String, Arc<dyn Channel>> = BTreeMap::new();
    channels.insert("rec".into(), rec.clone());
    let (n, task) = Notifications::start(&cfg, store.clone(), channels, None);

    let mut burst = Vec::new();
    for i in 0..300 {
        let key = if i % 2 == 0 { "ssh" } else { "http" };
        burst.push(
            Notice::new(
                NoticeKind::Alert,
                Severity::High,
                format!("alert {i}"),
                "b",
                TraceId::new(),
            )
            .with_key(key),
        );
    }
    // Below the route's severity: logged, counted, not queued.
    burst.push(Notice::new(
        NoticeKind::Alert,
        Severity::Low,
        "low",
        "b",
        TraceId::new(),
    ));
    n.notify_many(&burst).await.unwrap();
    let s = n.stats();
    assert_eq!(s.accepted, 300);
    assert_eq!(s.unrouted, 1);
    let pending: u64 = store
        .outbox_counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == sentinel_store::OutboxState::Pending)
        .map(|c| c.rows)
        .sum();
    assert_eq!(
        pending, 300,
        "every routed notice is on disk when notify_many returns"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    while rec.0.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the two keys were not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rec.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one message per key: {got:?}");
    assert!(got.iter().all(|m| m.count == 150), "{got:?}");
    task.stop().await;
}
