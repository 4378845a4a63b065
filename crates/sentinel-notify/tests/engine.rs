//! The notification engine against a real SQLite outbox in a tempdir, with in-test channels (a
//! receiver that de-duplicates by delivery id, can be switched down, lose its answers, or refuse
//! for good): folding bursts, de-duplication windows, at-least-once delivery across an outage and a
//! restart with stable delivery ids, dead letters and requeues, retries running out, throttling,
//! routing, and the digest.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use sentinel_core::{Notice, NoticeKind, Notifier, Severity, Timestamp, TraceId};
use sentinel_notify::config::{DigestConfig, RetrySettings, Route};
use sentinel_notify::{
    Channel, Message, Notifications, NotifyConfig, NotifyTask, SendError, StoreDigestSource,
};
use sentinel_store::{OutboxState, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the in-test receiver does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Accepts it.
    Up,
    /// Refuses it, transiently (a 503).
    Down,
    /// Accepts it but the answer is lost: the sender sees a transient error.
    LoseAnswer,
    /// Refuses it for good (a 410).
    Refuse,
    /// Never answers.
    Hang,
}

/// A receiver that de-duplicates by delivery id, like the real ones do.
struct Receiver {
    mode: Mutex<Mode>,
    /// Unique deliveries, with when each first arrived.
    seen: Mutex<BTreeMap<String, (Message, Instant)>>,
    /// Every attempt, in order.
    attempts: Mutex<Vec<Message>>,
}

impl Receiver {
    fn new(mode: Mode) -> Arc<Receiver> {
        Arc::new(Receiver {
            mode: Mutex::new(mode),
            seen: Mutex::new(BTreeMap::new()),
            attempts: Mutex::new(Vec::new()),
        })
    }
    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
    fn received(&self) -> Vec<(Message, Instant)> {
        let mut v: Vec<_> = self.seen.lock().unwrap().values().cloned().collect();
        v.sort_by_key(|(_, at)| *at);
        v
    }
    fn unique(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    fn attempts(&self) -> Vec<Message> {
        self.attempts.lock().unwrap().clone()
    }
    fn accept(&self, m: &Message) {
        self.seen
            .lock()
            .unwrap()
            .entry(m.delivery_id.clone())
            .or_insert_with(|| (m.clone(), Instant::now()));
    }
}

struct TestChannel {
    name: String,
    rx: Arc<Receiver>,
}

#[async_trait::async_trait]
impl Channel for TestChannel {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        self.rx.attempts.lock().unwrap().push(m.clone());
        let mode = *self.rx.mode.lock().unwrap();
        match mode {
            Mode::Up => {
                self.rx.accept(m);
                Ok(())
            }
            Mode::Down => Err(SendError::transient("503 service unavailable")),
            Mode::LoseAnswer => {
                self.rx.accept(m);
                Err(SendError::transient("timed out reading the answer"))
            }
            Mode::Refuse => Err(SendError::Permanent("410 gone".into())),
            Mode::Hang => {
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    }
}

fn channels(list: &[(&str, &Arc<Receiver>)]) -> BTreeMap<String, Arc<dyn Channel>> {
    list.iter()
        .map(|(name, rx)| {
            let ch: Arc<dyn Channel> = Arc::new(TestChannel {
                name: (*name).to_string(),
                rx: Arc::clone(rx),
            });
            ((*name).to_string(), ch)
        })
        .collect()
}

fn route(channels: &[&str], kinds: &[NoticeKind], min: Severity) -> Route {
    Route {
        kinds: kinds.to_vec(),
        min_severity: min,
        channels: channels.iter().map(|c| c.to_string()).collect(),
        group_wait: Duration::ZERO,
        dedup_window: Duration::ZERO,
        throttle_max: 0,
        throttle_per: Duration::ZERO,
    }
}

fn fast_retry(max_attempts: u32) -> RetrySettings {
    RetrySettings {
        base: Duration::from_millis(50),
        factor: 2.0,
        cap: Duration::from_millis(300),
        max_attempts,
    }
}

fn config(routes: Vec<Route>, retry: RetrySettings) -> NotifyConfig {
    NotifyConfig {
        routes,
        retry,
        ..NotifyConfig::default()
    }
}

fn notice(kind: NoticeKind, severity: Severity, title: &str) -> Notice {
    Notice::new(
        kind,
        severity,
        title,
        format!("details of {title}"),
        TraceId::new(),
    )
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("sentinel.db")
}

async fn open(path: &Path) -> Store {
    Store::open(path).await.unwrap()
}

/// Polls `cond` every 25 ms for up to `secs` seconds.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Stops the engine's tasks when the test ends, even when it fails.
struct Running(Option<NotifyTask>);

impl Running {
    async fn stop(mut self) {
        if let Some(t) = self.0.take() {
            tokio::time::timeout(Duration::from_secs(20), t.stop())
                .await
                .expect("the engine stops");
        }
    }
}

fn start(
    cfg: &NotifyConfig,
    store: &Store,
    chans: BTreeMap<String, Arc<dyn Channel>>,
) -> (Notifications, Running) {
    let (n, t) = Notifications::start(cfg, store.clone(), chans, None);
    (n, Running(Some(t)))
}

async fn states(store: &Store) -> BTreeMap<OutboxState, u64> {
    let mut m = BTreeMap::new();
    for c in store.outbox_counts().await.unwrap() {
        *m.entry(c.state).or_insert(0) += c.rows;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_key_is_one_message_with_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let rx = Receiver::new(Mode::Up);
    let mut r = route(&["hook"], &[], Severity::Info);
    r.group_wait = Duration::from_secs(6);
    let (notify, task) = start(
        &config(vec![r], fast_retry(5)),
        &store,
        channels(&[("hook", &rx)]),
    );
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..8 {
        let notify = notify.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..125 {
                let n = notice(NoticeKind::Alert, Severity::Medium, &format!("ssh {w}/{i}"))
                    .with_key("wave:203.0.113.7");
                notify.notify(&n).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let queued_in = started.elapsed();
    assert_eq!(notify.stats().accepted, 1000);
    eventually(30, "the folded message", || rx.unique() >= 1).await;
    // Nothing else follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.received();
    assert_eq!(
        got.len(),
        1,
        "one message for the burst (queued in {queued_in:?}); got counts {:?}",
        got.iter().map(|(m, _)| m.count).collect::<Vec<_>>()
    );
    let m = &got[0].0;
    assert_eq!(m.count, 1000);
    assert!(m.body.ends_with("… and 999 more"), "{}", m.body);
    assert!(m.first_seen <= m.last_seen);
    assert!(
        got[0].1.duration_since(started) >= Duration::from_secs(5),
        "held for group_wait"
    );
    eventually(10, "the delivery recorded", || {
        notify.stats().delivered == 1
    })
    .await;
    let s = notify.stats();
    assert_eq!(s.folded, 999);
    assert_eq!(s.channels["hook"].delivered, 1);
    assert_eq!(
        states(&store).await.get(&OutboxState::Delivered),
        Some(&1000)
    );
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_inside_the_dedup_window_become_one_summary_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let rx = Receiver::new(Mode::Up);
    let mut r = route(&["hook"], &[], Severity::Info);
    r.dedup_window = Duration::from_secs(2);
    let (notify, task) = start(
        &config(vec![r], fast_retry(5)),
        &store,
        channels(&[("hook", &rx)]),
    );
    let n = |i: u32| {
        notice(NoticeKind::Crash, Severity::High, &format!("crash {i}")).with_key("crash:web")
    };
    notify.notify(&n(0)).await.unwrap();
    eventually(20, "the first message", || rx.unique() == 1).await;
    for i in 1..=5 {
        notify.notify(&n(i)).await.unwrap();
    }
    // Another key is not held by this one's window.
    notify
        .notify(&notice(NoticeKind::Crash, Severity::High, "other").with_key("crash:db"))
        .await
        .unwrap();
    eventually(20, "the summary", || rx.unique() == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.received();
    assert_eq!(got.len(), 3);
    let first = got.iter().find(|(m, _)| m.title == "crash 0").unwrap();
    let other = got.iter().find(|(m, _)| m.title == "other").unwrap();
    let summary = got.iter().find(|(m, _)| m.title == "crash 1").unwrap();
    assert_eq!(first.0.count, 1);
    assert_eq!(other.0.count, 1);
    assert!(other.1 < summary.1, "the other key went at once");
    assert_eq!(summary.0.count, 5);
    assert!(
        summary.1.duration_since(first.1) >= Duration::from_millis(1_900),
        "the summary waited for the window: {:?}",
        summary.1.duration_since(first.1)
    );
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_a_restart_deliver_everything_once_under_the_same_delivery_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = open(&path).await;
    let rx = Receiver::new(Mode::Down);
    let cfg = config(
        vec![route(&["hook"], &[], Severity::Info)],
        fast_retry(10_000),
    );
    let (notify, task) = start(&cfg, &store, channels(&[("hook", &rx)]));
    let total = 20;
    for i in 0..total {
        notify
            .notify(&notice(NoticeKind::Alert, Severity::High, &format!("n{i}")))
            .await
            .unwrap();
    }
    // Every message tried at least twice while the receiver is down.
    eventually(30, "retries during the outage", || {
        let a = rx.attempts();
        (0..total).all(|i| a.iter().filter(|m| m.title == format!("n{i}")).count() >= 2)
    })
    .await;
    // The receiver comes back but its answers are lost: it has the messages, the sender retries.
    rx.set(Mode::LoseAnswer);
    eventually(30, "some messages through with lost answers", || {
        rx.unique() >= 5
    })
    .await;
    rx.set(Mode::Down);
    let failed_before = notify.stats().attempts_failed;
    assert!(failed_before >= 2 * total as u64);
    // Sentinel stops mid-outage.
    task.stop().await;
    drop(notify);
    store.close().await;
    drop(store);

    let store = open(&path).await;
    let pending = states(&store).await;
    assert_eq!(pending.get(&OutboxState::Pending), Some(&(total as u64)));
    assert_eq!(pending.get(&OutboxState::Delivered), None);

    // Sentinel starts again; the receiver is up.
    rx.set(Mode::Up);
    let (notify, task) = start(&cfg, &store, channels(&[("hook", &rx)]));
    eventually(30, "everything delivered", || rx.unique() == total).await;
    let s = &store;
    let deadline = Instant::now() + Duration::from_secs(20);
    while states(s).await.get(&OutboxState::Delivered) != Some(&(total as u64)) {
        assert!(Instant::now() < deadline, "rows marked delivered");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let got = rx.received();
    assert_eq!(got.len(), total, "each message once at the receiver");
    assert_eq!(got.iter().map(|(m, _)| m.count).sum::<u64>(), total as u64);
    let titles: BTreeSet<_> = got.iter().map(|(m, _)| m.title.clone()).collect();
    assert_eq!(titles.len(), total, "each notice in exactly one message");
    // One delivery id per notice across every attempt, before and after the restart.
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in rx.attempts() {
        ids.entry(a.title).or_default().insert(a.delivery_id);
    }
    for (title, set) in &ids {
        assert_eq!(set.len(), 1, "{title} was sent under {set:?}");
    }
    let seen: BTreeSet<_> = got.iter().map(|(m, _)| m.delivery_id.clone()).collect();
    let attempted: BTreeSet<_> = ids.values().flatten().cloned().collect();
    assert_eq!(seen, attempted);
    assert_eq!(notify.stats().delivered, total as u64);
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_abandons_a_hung_send_and_the_next_start_sends_it_under_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = open(&path).await;
    let rx = Receiver::new(Mode::Hang);
    let cfg = config(vec![route(&["hook"], &[], Severity::Info)], fast_retry(5));
    let (notify, task) = start(&cfg, &store, channels(&[("hook", &rx)]));
    notify
        .notify(&notice(NoticeKind::Error, Severity::High, "stuck"))
        .await
        .unwrap();
    eventually(20, "the hung attempt", || rx.attempts().len() == 1).await;
    task.stop().await;
    let id = rx.attempts()[0].delivery_id.clone();
    let rows = store.outbox_delivery_rows(&id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, OutboxState::Pending);

    rx.set(Mode::Up);
    let (_notify, task) = start(&cfg, &store, channels(&[("hook", &rx)]));
    eventually(20, "the retry after restart", || rx.unique() == 1).await;
    assert_eq!(rx.received()[0].0.delivery_id, id);
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_is_a_dead_letter_until_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let rx = Receiver::new(Mode::Refuse);
    let cfg = config(vec![route(&["hook"], &[], Severity::Info)], fast_retry(5));
    let (notify, task) = start(&cfg, &store, channels(&[("hook", &rx)]));
    notify
        .notify(&notice(
            NoticeKind::ActionFailed,
            Severity::High,
            "block failed",
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let d = notify.dead_letters(10, None).await.unwrap();
        if !d.is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "a dead letter");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.channel, "hook");
    assert_eq!(d.attempts, 1, "a permanent error is not retried");
    assert_eq!(d.last_error.as_deref(), Some("410 gone"));
    assert_eq!(d.message.title, "block failed");
    assert_eq!(d.message.delivery_id, d.delivery_id);
    assert_eq!(rx.attempts().len(), 1);
    eventually(20, "the dead letter counted", || {
        let s = notify.stats();
        s.dead == 1 && s.outbox_dead == 1 && s.outbox_pending == 0
    })
    .await;
    assert!(notify
        .dead_letters(10, Some(d.delivery_id.clone()))
        .await
        .unwrap()
        .is_empty());

    rx.set(Mode::Up);
    assert!(notify.retry_dead_letter(&d.delivery_id).await.unwrap());
    eventually(20, "the requeued message", || rx.unique() == 1).await;
    assert_eq!(rx.received()[0].0.delivery_id, d.delivery_id);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !notify.dead_letters(10, None).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "dead letter list emptied");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!notify.retry_dead_letter(&d.delivery_id).await.unwrap());
    assert!(!notify.retry_dead_letter("no-such-id").await.unwrap());
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_run_out_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let rx = Receiver::new(Mode::Down);
    let cfg = config(vec![route(&["hook"], &[], Severity::Info)], fast_retry(3));
    let (notify, task) = start(&cfg, &store, channels(&[("hook", &rx)]));
    notify
        .notify(&notice(NoticeKind::Error, Severity::Critical, "store down"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let d = notify.dead_letters(10, None).await.unwrap();
        if !d.is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "a dead letter");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("503 service unavailable")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let attempts = rx.attempts();
    assert_eq!(attempts.len(), 3, "no attempt after the last");
    assert!(attempts
        .iter()
        .all(|m| m.delivery_id == dead[0].delivery_id));
    let s = notify.stats();
    assert_eq!(s.attempts_failed, 3);
    assert_eq!(s.dead, 1);
    assert_eq!(s.delivered, 0);
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_channel_holds_the_excess_for_the_next_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let rx = Receiver::new(Mode::Up);
    let mut r = route(&["hook"], &[], Severity::Info);
    r.throttle_max = 2;
    r.throttle_per = Duration::from_secs(2);
    let (notify, task) = start(
        &config(vec![r], fast_retry(5)),
        &store,
        channels(&[("hook", &rx)]),
    );
    for i in 0..3 {
        notify
            .notify(&notice(NoticeKind::Alert, Severity::High, &format!("t{i}")))
            .await
            .unwrap();
    }
    eventually(30, "all three", || rx.unique() == 3).await;
    let got = rx.received();
    let gap = got[2].1.duration_since(got[0].1);
    assert!(
        gap >= Duration::from_millis(1_900),
        "third waited for the window: {gap:?}"
    );
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_choose_channels_by_kind_and_severity() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let pager = Receiver::new(Mode::Up);
    let ops = Receiver::new(Mode::Up);
    let cfg = config(
        vec![
            route(&["pager"], &[NoticeKind::Alert], Severity::High),
            route(&["ops", "pager"], &[NoticeKind::Crash], Severity::Info),
        ],
        fast_retry(5),
    );
    let (notify, task) = start(&cfg, &store, channels(&[("pager", &pager), ("ops", &ops)]));
    let low = notify
        .submit(&notice(NoticeKind::Alert, Severity::Medium, "medium alert"))
        .await
        .unwrap();
    assert!(low.rows.is_empty() && low.channels.is_empty());
    let high = notify
        .submit(&notice(
            NoticeKind::Alert,
            Severity::Critical,
            "critical alert",
        ))
        .await
        .unwrap();
    assert_eq!(high.channels, vec!["pager"]);
    assert_eq!(high.rows.len(), 1);
    let crash = notify
        .submit(&notice(NoticeKind::Crash, Severity::Info, "web restarted"))
        .await
        .unwrap();
    assert_eq!(crash.channels, vec!["ops", "pager"]);
    let row = store.outbox_row(&crash.rows[0]).await.unwrap().unwrap();
    assert_eq!(row.channel, "ops");
    assert_eq!(row.key, "crash:web restarted");
    let applied = notify
        .submit(&notice(
            NoticeKind::ActionApplied,
            Severity::Critical,
            "blocked",
        ))
        .await
        .unwrap();
    assert!(applied.rows.is_empty());

    eventually(20, "pager's two", || pager.unique() == 2).await;
    eventually(20, "ops' one", || ops.unique() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let titles: BTreeSet<_> = pager.received().into_iter().map(|(m, _)| m.title).collect();
    assert_eq!(
        titles,
        BTreeSet::from(["critical alert".to_string(), "web restarted".to_string()])
    );
    assert_eq!(ops.received()[0].0.title, "web restarted");
    let s = notify.stats();
    assert_eq!(s.accepted, 2);
    assert_eq!(s.unrouted, 2);
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_route_nothing_reaches_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let (notify, task) = start(&NotifyConfig::default(), &store, BTreeMap::new());
    for kind in NoticeKind::ALL {
        notify
            .notify(&notice(kind, Severity::Critical, "anything"))
            .await
            .unwrap();
    }
    assert!(store.outbox_counts().await.unwrap().is_empty());
    let s = notify.stats();
    assert_eq!(s.unrouted, NoticeKind::ALL.len() as u64);
    assert_eq!(s.accepted, 0);
    assert_eq!(s.outbox_pending, 0);
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_digest_goes_once_per_day_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = open(&path).await;
    let mail = Receiver::new(Mode::Up);
    // Twelve hours from now: the scheduler's own catch-up (a digest time passed < 6 h ago) stays
    // out of the way of the explicit calls below.
    let hour = ((Timestamp::now().as_millis() / 3_600_000 + 12) % 24) as u8;
    let cfg = NotifyConfig {
        digest: Some(DigestConfig {
            at: (hour, 0),
            channels: vec!["mail".into()],
            top: 5,
        }),
        ..config(Vec::new(), fast_retry(5))
    };
    let source = Arc::new(StoreDigestSource::new(store.clone(), 5));
    let (notify, task) = Notifications::start(
        &cfg,
        store.clone(),
        channels(&[("mail", &mail)]),
        Some(source.clone()),
    );
    let day_end = Timestamp::parse_rfc3339("2026-11-30T08:00:00Z").unwrap();
    let first = notify.send_daily_digest(day_end).await.unwrap();
    assert_eq!(first.channels, vec!["mail"]);
    assert!(notify
        .send_daily_digest(day_end)
        .await
        .unwrap()
        .rows
        .is_empty());
    eventually(20, "the digest", || mail.unique() == 1).await;
    let m = mail.received()[0].0.clone();
    assert_eq!(m.kind, NoticeKind::Digest);
    for needle in [
        "events: 0",
        "alerts: 0",
        "alerts by scenario",
        "actions by kind",
        "top sources",
        "provider errors: 0",
        "reverted: 0",
    ] {
        assert!(m.body.contains(needle), "{needle} missing from\n{}", m.body);
    }
    task.stop().await;

    let (notify, task) = Notifications::start(
        &cfg,
        store.clone(),
        channels(&[("mail", &mail)]),
        Some(source),
    );
    assert!(notify
        .send_daily_digest(day_end)
        .await
        .unwrap()
        .rows
        .is_empty());
    let next_day = Timestamp::parse_rfc3339("2026-12-01T08:00:00Z").unwrap();
    assert_eq!(
        notify.send_daily_digest(next_day).await.unwrap().rows.len(),
        1
    );
    // An operator's digest does not use up the day's.
    assert_eq!(notify.send_digest_now().await.unwrap().rows.len(), 1);
    eventually(20, "the next two", || mail.unique() == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mail.unique(), 3);
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_as_a_floor() {
    struct SlowDown(Arc<Receiver>, AtomicBool);
    #[async_trait::async_trait]
    impl Channel for SlowDown {
        fn name(&self) -> &str {
            "hook"
        }
        fn kind(&self) -> &'static str {
            "test"
        }
        async fn send(&self, m: &Message) -> Result<(), SendError> {
            self.0.attempts.lock().unwrap().push(m.clone());
            if !self.1.swap(true, Ordering::SeqCst) {
                return Err(SendError::Transient {
                    reason: "429 too many requests".into(),
                    retry_after: Some(Duration::from_millis(1_500)),
                });
            }
            self.0.accept(m);
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let rx = Receiver::new(Mode::Up);
    let ch: Arc<dyn Channel> = Arc::new(SlowDown(rx.clone(), AtomicBool::new(false)));
    let cfg = config(vec![route(&["hook"], &[], Severity::Info)], fast_retry(5));
    let (notify, task) = start(&cfg, &store, BTreeMap::from([("hook".to_string(), ch)]));
    let t0 = Instant::now();
    notify
        .notify(&notice(NoticeKind::Test, Severity::Info, "hello"))
        .await
        .unwrap();
    eventually(20, "the retry", || rx.unique() == 1).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(1_400),
        "waited for Retry-After: {:?}",
        t0.elapsed()
    );
    assert_eq!(rx.attempts().len(), 2);
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_time_missed_while_down_is_caught_up_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let mail = Receiver::new(Mode::Up);
    // Two minutes ago: the daemon was "down" at the digest time.
    let t = (Timestamp::now().as_millis() - 120_000).rem_euclid(86_400_000);
    let at = ((t / 3_600_000) as u8, ((t / 60_000) % 60) as u8);
    let cfg = NotifyConfig {
        digest: Some(DigestConfig {
            at,
            channels: vec!["mail".into()],
            top: 5,
        }),
        ..config(Vec::new(), fast_retry(5))
    };
    let source = Arc::new(StoreDigestSource::new(store.clone(), 5));
    let (_notify, task) = Notifications::start(
        &cfg,
        store.clone(),
        channels(&[("mail", &mail)]),
        Some(source.clone()),
    );
    eventually(20, "the missed digest", || mail.unique() == 1).await;
    assert_eq!(mail.received()[0].0.kind, NoticeKind::Digest);
    task.stop().await;
    // Another start the same day does not send it again.
    let (_notify, task) = Notifications::start(
        &cfg,
        store.clone(),
        channels(&[("mail", &mail)]),
        Some(source),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mail.unique(), 1);
    assert_eq!(mail.attempts().len(), 1);
    task.stop().await;
}
