//! The engine in a hostile environment, with a real SQLite outbox: another process holds the
//! database's write lock right after a message went out (the store cannot record the outcome), a
//! corrupt row body, a flood of distinct keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{Notice, NoticeKind, Notifier, Severity, TraceId};
use sentinel_notify::config::{RetrySettings, Route};
use sentinel_notify::{Channel, Message, Notifications, NotifyConfig, NotifyTask, SendError};
use sentinel_store::{OutboxState, Store};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Another process (the real `sqlite3` shell) holding the write lock of a database until dropped.
struct Locker {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Locker {
    fn lock(db: &Path) -> Locker {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sqlite3 shell");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b".timeout 20000\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n")
            .unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        Locker {
            child,
            stdin: Some(stdin),
        }
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"ROLLBACK;\n.quit\n");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A channel that accepts everything, records every attempt, and can run a hook on the first send.
struct Hooked {
    attempts: Mutex<Vec<Message>>,
    first: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

#[async_trait::async_trait]
impl Channel for Hooked {
    fn name(&self) -> &str {
        "chat"
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        self.attempts.lock().unwrap().push(m.clone());
        let hook = self.first.lock().unwrap().take();
        if let Some(h) = hook {
            h();
        }
        Ok(())
    }
}

fn config() -> NotifyConfig {
    NotifyConfig {
        routes: vec![Route {
            kinds: vec![],
            min_severity: Severity::Info,
            channels: vec!["chat".into()],
            group_wait: Duration::ZERO,
            dedup_window: Duration::ZERO,
            throttle_max: 0,
            throttle_per: Duration::ZERO,
        }],
        retry: RetrySettings {
            base: Duration::from_millis(50),
            factor: 2.0,
            cap: Duration::from_millis(300),
            max_attempts: 100,
        },
        ..NotifyConfig::default()
    }
}

struct Running(Option<NotifyTask>);
impl Running {
    async fn stop(mut self) {
        if let Some(t) = self.0.take() {
            tokio::time::timeout(Duration::from_secs(30), t.stop())
                .await
                .expect("the engine stops");
        }
    }
}

async fn delivered(store: &Store) -> u64 {
    store
        .outbox_counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == OutboxState::Delivered)
        .map(|c| c.rows)
        .sum()
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("sentinel.db")
}

/// The message went out, then the store cannot record it (another process holds the write lock
/// for a while). The worker must not send it again and again while the store is stuck (a Slack
/// channel has no de-duplication: each resend is a visible duplicate); once the lock is gone the
/// delivery is recorded, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_record_a_delivery_does_not_make_the_message_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Store::open(&path).await.unwrap();
    let locker: Arc<Mutex<Option<Locker>>> = Arc::new(Mutex::new(None));
    let (lk, p) = (Arc::clone(&locker), path.clone());
    let ch = Arc::new(Hooked {
        attempts: Mutex::new(Vec::new()),
        first: Mutex::new(Some(Box::new(move || {
            *lk.lock().unwrap() = Some(Locker::lock(&p));
        }))),
    });
    let chans: BTreeMap<String, Arc<dyn Channel>> =
        [("chat".to_string(), Arc::clone(&ch) as Arc<dyn Channel>)].into();
    let (notify, task) = Notifications::start(&config(), store.clone(), chans, None);
    let task = Running(Some(task));
    notify
        .notify(&Notice::new(
            NoticeKind::Alert,
            Severity::High,
            "once",
            "only once please",
            TraceId::new(),
        ))
        .await
        .unwrap();
    // The lock is held for 14 s: with a 5 s busy timeout, the worker fails to record twice.
    let t0 = Instant::now();
    while locker.lock().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(20), "never sent");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_secs(14)).await;
    let during = ch.attempts.lock().unwrap().len();
    drop(locker.lock().unwrap().take());
    let t1 = Instant::now();
    while delivered(&store).await != 1 {
        assert!(t1.elapsed() < Duration::from_secs(30), "never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let attempts = ch.attempts.lock().unwrap().len();
    assert_eq!(
        during, 1,
        "sent {during} times while the store could not record the first send"
    );
    assert_eq!(attempts, 1, "sent {attempts} times in all");
    assert_eq!(notify.stats().delivered, 1);
    task.stop().await;
}

/// A corrupt row (not JSON, with a NUL) in the outbox: the engine sends an "unreadable notice"
/// saying so, marks it delivered, and goes on with the next row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_outbox_row_is_sent_as_unreadable_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(&dir)).await.unwrap();
    let now = sentinel_core::Timestamp::now();
    store
        .insert_outbox(&[sentinel_store::NewOutboxRow {
            id: "corrupt-1".into(),
            channel: "chat".into(),
            key: "k-corrupt".into(),
            body: "{\"kind\": \u{0}garbage".into(),
            created: now,
            due: now,
        }])
        .await
        .unwrap();
    let ch = Arc::new(Hooked {
        attempts: Mutex::new(Vec::new()),
        first: Mutex::new(None),
    });
    let chans: BTreeMap<String, Arc<dyn Channel>> =
        [("chat".to_string(), Arc::clone(&ch) as Arc<dyn Channel>)].into();
    let (notify, task) = Notifications::start(&config(), store.clone(), chans, None);
    let task = Running(Some(task));
    notify
        .notify(&Notice::new(
            NoticeKind::Alert,
            Severity::High,
            "after",
            "fine",
            TraceId::new(),
        ))
        .await
        .unwrap();
    let t0 = Instant::now();
    while delivered(&store).await != 2 {
        assert!(t0.elapsed() < Duration::from_secs(20), "not both delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = ch.attempts.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let bad = got.iter().find(|m| m.title == "unreadable notice").unwrap();
    assert!(bad.body.contains("corrupt-1"), "{}", bad.body);
    assert!(got.iter().any(|m| m.title == "after"));
    task.stop().await;
}
