//! The compliance suite every notifier passes, run for every channel kind with a real receiver
//! (webhook, Slack, Matrix, SMTP with STARTTLS and a private CA) through the whole engine:
//! `sentinel_notify::build` on a real SQLite store in a tempdir, the real channel, and the
//! testkit's fake receiver over TCP on loopback.
//!
//! One generic suite ([`suite`]) is written against [`Fixture`] — how to point a channel at its
//! fake, read what the fake received (after its own de-duplication by delivery id), make it fail
//! for a while or for good, and which secrets must never show — and the `compliance!` macro
//! instantiates it once per channel kind. The scenarios:
//!
//! - `deliver`: one notice arrives with its title and body, kind and severity visible.
//! - `fail`: a wrong credential makes a dead letter after exactly one attempt, listed with a reason
//!   that names no secret; once the credential is fixed, retrying it delivers it under the same
//!   delivery id. Where the fake can refuse for good by itself (SMTP 550), that too, on one engine.
//! - `retry`: the fake is down (503 / 451) for a while, then up: the message arrives once, after
//!   more than one attempt at the fake.
//! - `dedup`: a burst of 200 notices with one key within `group_wait` is one message saying 200.
//! - `restart`: notices accepted while the fake is down survive dropping the engine and starting a
//!   new one on the same store file, and arrive exactly once, under the delivery ids assigned
//!   before the restart.
//! - `lost_answer`: a proxy cuts the fake's answer to a message it stored; the engine sends it
//!   again under the same delivery id and the receiver, de-duplicating on it, has it once (Slack,
//!   whose incoming webhooks carry no id, gets the same post twice: at least once).
//! - `secrets`: the channel's secret is in no stored `last_error`, dead letter, or `Debug` output.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use sentinel_core::{Notice, NoticeKind, Notifier, Severity, TraceId};
use sentinel_notify::config::{
    ChannelConfig, MatrixConfig, RetrySettings, Route, Secret, SlackConfig, SmtpConfig,
    SmtpSecurity, WebhookConfig,
};
use sentinel_notify::{Notifications, NotifyConfig, NotifyTask};
use sentinel_store::{OutboxState, Store};
use sentinel_testkit::receivers::{MatrixFake, SlackFake, WebhookReceiver};
use sentinel_testkit::smtp::{SmtpOptions, SmtpSink};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// The one channel name every scenario routes to.
const CHANNEL: &str = "out";
/// Per-attempt timeout of every channel.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scenario waits for a condition before failing.
const DEADLINE: u64 = 20;

// ---------------------------------------------------------------------------------------------
// What a channel under test is

/// One message as a fake received it, after the fake's own de-duplication by delivery id.
#[derive(Debug, Clone)]
struct Got {
    /// The delivery id the receiver de-duplicates on (`None` where the protocol carries none: Slack).
    id: Option<String>,
    /// The title, or the subject line.
    title: String,
    /// Everything else the receiver got (body, kind, severity, count), as text.
    text: String,
    /// How many notices the message says it stands for.
    count: u64,
}

/// A channel kind under test with its fake receiver.
trait Fixture: Send + Sync {
    /// The `type:`.
    fn kind(&self) -> &'static str;
    /// The channel's configuration, pointing at the fake with the right credential.
    fn config(&self) -> ChannelConfig;
    /// The same with a wrong credential (token, signing secret, password, Slack URL): refused for good.
    fn wrong_credentials(&self) -> ChannelConfig;
    /// Every secret of both configurations; none may ever show.
    fn secrets(&self) -> Vec<String>;
    /// What the fake accepted, one entry per delivery id.
    fn received(&self) -> Vec<Got>;
    /// Attempts seen at the fake, accepted or refused.
    fn attempts(&self) -> usize;
    /// Down (a transient failure on every attempt: 503, 451) or back up.
    fn set_down(&self, down: bool);
    /// Refuses every message for good by itself (SMTP 550), or stops; `false` when the fake
    /// cannot (the HTTP fakes refuse for good only on a wrong credential).
    fn refuse(&self, on: bool) -> bool;
    /// Where the fake listens.
    fn addr(&self) -> SocketAddr;
}

/// Distinct secrets per fixture (a test-run marker), at least 4 characters so redaction applies.
fn marker() -> String {
    TraceId::new().as_str().to_ascii_lowercase()
}

/// `count: N between …` in a channel's text, else 1.
fn count_in(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("count: "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

struct Webhook {
    rx: WebhookReceiver,
    secret: String,
}

impl Webhook {
    async fn start() -> Arc<dyn Fixture> {
        let secret = format!("whsec-{}", marker());
        Arc::new(Webhook {
            rx: WebhookReceiver::start(&secret).await,
            secret,
        })
    }
}

impl Fixture for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn config(&self) -> ChannelConfig {
        ChannelConfig::Webhook(WebhookConfig {
            url: self.rx.url(),
            secret: Secret::new(self.secret.clone()),
            timeout: TIMEOUT,
        })
    }
    fn wrong_credentials(&self) -> ChannelConfig {
        ChannelConfig::Webhook(WebhookConfig {
            url: self.rx.url(),
            secret: Secret::new(format!("{}-rotated", self.secret)),
            timeout: TIMEOUT,
        })
    }
    fn secrets(&self) -> Vec<String> {
        vec![self.secret.clone()]
    }
    fn received(&self) -> Vec<Got> {
        self.rx
            .received()
            .into_iter()
            .map(|d| Got {
                id: Some(d.delivery_id.clone()),
                title: d.json["title"].as_str().unwrap_or_default().to_string(),
                text: String::from_utf8_lossy(&d.raw).into_owned(),
                count: d.json["count"].as_u64().unwrap_or(0),
            })
            .collect()
    }
    fn attempts(&self) -> usize {
        self.rx.attempts().len()
    }
    fn set_down(&self, down: bool) {
        self.rx.set_down(down);
    }
    fn refuse(&self, _on: bool) -> bool {
        false
    }
    fn addr(&self) -> SocketAddr {
        self.rx.addr()
    }
}

struct Slack {
    fake: SlackFake,
}

impl Slack {
    async fn start() -> Arc<dyn Fixture> {
        Arc::new(Slack {
            fake: SlackFake::start().await,
        })
    }
    fn wrong_url(&self) -> String {
        let url = self.fake.url();
        let token = self.fake.token();
        format!("{}{}", &url[..url.len() - token.len()], "0badc0de0badc0de")
    }
}

impl Fixture for Slack {
    fn kind(&self) -> &'static str {
        "slack"
    }
    fn config(&self) -> ChannelConfig {
        ChannelConfig::Slack(SlackConfig {
            url: Secret::new(self.fake.url()),
            timeout: TIMEOUT,
        })
    }
    fn wrong_credentials(&self) -> ChannelConfig {
        ChannelConfig::Slack(SlackConfig {
            url: Secret::new(self.wrong_url()),
            timeout: TIMEOUT,
        })
    }
    fn secrets(&self) -> Vec<String> {
        let wrong = self.wrong_url();
        let wrong_path = wrong
            .split_once("/services/")
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        let path = self
            .fake
            .url()
            .split_once("/services/")
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        vec![
            self.fake.url(),
            self.fake.token(),
            path,
            wrong,
            "0badc0de0badc0de".into(),
            wrong_path,
        ]
    }
    fn received(&self) -> Vec<Got> {
        self.fake
            .received()
            .into_iter()
            .map(|p| Got {
                id: None,
                title: p.text.lines().next().unwrap_or_default().to_string(),
                count: count_in(&p.text),
                text: p.text,
            })
            .collect()
    }
    fn attempts(&self) -> usize {
        self.fake.attempts().len()
    }
    fn set_down(&self, down: bool) {
        self.fake.set_down(down);
    }
    fn refuse(&self, _on: bool) -> bool {
        false
    }
    fn addr(&self) -> SocketAddr {
        self.fake.addr()
    }
}

struct Matrix {
    fake: MatrixFake,
    token: String,
}

const ROOM: &str = "!ops:fake.local";

impl Matrix {
    async fn start() -> Arc<dyn Fixture> {
        let token = format!("syt_{}", marker());
        Arc::new(Matrix {
            fake: MatrixFake::start(ROOM, &token).await,
            token,
        })
    }
}

impl Fixture for Matrix {
    fn kind(&self) -> &'static str {
        "matrix"
    }
    fn config(&self) -> ChannelConfig {
        ChannelConfig::Matrix(MatrixConfig {
            homeserver: self.fake.homeserver(),
            room: ROOM.into(),
            access_token: Secret::new(self.token.clone()),
            timeout: TIMEOUT,
        })
    }
    fn wrong_credentials(&self) -> ChannelConfig {
        ChannelConfig::Matrix(MatrixConfig {
            homeserver: self.fake.homeserver(),
            room: ROOM.into(),
            access_token: Secret::new(format!("{}-revoked", self.token)),
            timeout: TIMEOUT,
        })
    }
    fn secrets(&self) -> Vec<String> {
        vec![self.token.clone()]
    }
    fn received(&self) -> Vec<Got> {
        self.fake
            .received()
            .into_iter()
            .map(|e| {
                let body = e.content["body"].as_str().unwrap_or_default().to_string();
                Got {
                    id: Some(e.txn_id.clone()),
                    title: body.lines().next().unwrap_or_default().to_string(),
                    count: count_in(&body),
                    text: format!("{body}\n{}", e.content["formatted_body"]),
                }
            })
            .collect()
    }
    fn attempts(&self) -> usize {
        self.fake.attempts().len()
    }
    fn set_down(&self, down: bool) {
        self.fake.set_down(down);
    }
    fn refuse(&self, _on: bool) -> bool {
        false
    }
    fn addr(&self) -> SocketAddr {
        reqwest::Url::parse(&self.fake.homeserver())
            .unwrap()
            .socket_addrs(|| None)
            .unwrap()[0]
    }
}

struct Smtp {
    sink: SmtpSink,
    user: String,
    password: String,
}

impl Smtp {
    async fn start() -> Arc<dyn Fixture> {
        let user = "sentinel".to_string();
        let password = format!("pw-{}", marker());
        // STARTTLS offered and required, login required (only after TLS).
        let sink = SmtpSink::start(SmtpOptions::default().with_auth(&user, &password)).await;
        Arc::new(Smtp {
            sink,
            user,
            password,
        })
    }
    fn cfg(&self, password: &str) -> ChannelConfig {
        ChannelConfig::Smtp(SmtpConfig {
            host: "localhost".into(),
            port: self.sink.port(),
            security: SmtpSecurity::Starttls,
            username: Some(self.user.clone()),
            password: Some(Secret::new(password)),
            from: "Sentinel <sentinel@example.org>".into(),
            to: vec!["ops@example.org".into()],
            ca_file: Some(self.sink.ca_file().to_path_buf()),
            timeout: TIMEOUT,
        })
    }
}

impl Fixture for Smtp {
    fn kind(&self) -> &'static str {
        "smtp"
    }
    fn config(&self) -> ChannelConfig {
        self.cfg(&self.password)
    }
    fn wrong_credentials(&self) -> ChannelConfig {
        self.cfg(&format!("{}-old", self.password))
    }
    fn secrets(&self) -> Vec<String> {
        vec![self.password.clone()]
    }
    fn received(&self) -> Vec<Got> {
        // A careful mail receiver drops a repeat of a Message-ID it has.
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for m in self.sink.received() {
            assert!(m.tls, "mail came in over an encrypted connection");
            let id = m
                .message_id
                .clone()
                .map(|s| {
                    s.trim_start_matches('<')
                        .trim_end_matches('>')
                        .trim_end_matches("@sentinel")
                        .to_string()
                })
                .unwrap_or_default();
            if !seen.insert(id.clone()) {
                continue;
            }
            let subject = m.subject.clone().unwrap_or_default();
            out.push(Got {
                id: Some(id),
                count: count_in(&m.body),
                text: format!("{subject}\n{}", m.body),
                title: subject,
            });
        }
        out
    }
    fn attempts(&self) -> usize {
        self.sink.attempts() + self.sink.auth_failures()
    }
    fn set_down(&self, down: bool) {
        self.sink.fail_next(451, if down { usize::MAX } else { 0 });
    }
    fn refuse(&self, on: bool) -> bool {
        self.sink.fail_next(550, if on { usize::MAX } else { 0 });
        true
    }
    fn addr(&self) -> SocketAddr {
        self.sink.addr()
    }
}

// ---------------------------------------------------------------------------------------------
// The engine, as the daemon runs it

fn notify_config(channel: ChannelConfig, group_wait: Duration) -> NotifyConfig {
    NotifyConfig {
        channels: BTreeMap::from([(CHANNEL.to_string(), channel)]),
        routes: vec![Route {
            kinds: Vec::new(),
            min_severity: Severity::Info,
            channels: vec![CHANNEL.to_string()],
            group_wait,
            dedup_window: Duration::ZERO,
            throttle_max: 0,
            throttle_per: Duration::ZERO,
        }],
        retry: RetrySettings {
            base: Duration::from_millis(50),
            factor: 2.0,
            cap: Duration::from_millis(400),
            // Transient failures never run out during a scenario: only permanent ones make dead letters.
            max_attempts: 10_000,
        },
        digest: None,
        keep_delivered: Duration::from_secs(3600),
        max_pending: sentinel_notify::config::DEFAULT_MAX_PENDING,
    }
}

/// A running engine; its tasks are told to stop when it is dropped, even when a test fails.
struct Engine {
    notify: Notifications,
    task: Option<NotifyTask>,
    store: Store,
}

impl Engine {
    async fn start(db: &Path, cfg: &NotifyConfig) -> Engine {
        let store = Store::open(db).await.unwrap();
        let (notify, task) = sentinel_notify::build(cfg, store.clone(), None).unwrap();
        Engine {
            notify,
            task: Some(task),
            store,
        }
    }

    async fn stop(mut self) {
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(DEADLINE), t.stop())
                .await
                .expect("the engine stops");
        }
    }

    /// Submits one notice and answers its outbox row id.
    async fn submit(&self, n: &Notice) -> String {
        let s = self.notify.submit(n).await.unwrap();
        assert_eq!(s.channels, vec![CHANNEL.to_string()]);
        s.rows[0].clone()
    }

    /// The delivery id assigned to an outbox row (once a worker took it).
    async fn delivery_of(&self, row: &str) -> Option<String> {
        self.store
            .outbox_row(row)
            .await
            .unwrap()
            .and_then(|r| r.delivery)
    }
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("sentinel.db")
}

fn notice(title: &str, body: &str) -> Notice {
    Notice::new(
        NoticeKind::Alert,
        Severity::High,
        title,
        body,
        TraceId::new(),
    )
}

/// Polls `cond` every 25 ms until it holds, for up to [`DEADLINE`] seconds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(DEADLINE);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls the async `probe` every 25 ms until it answers `Some`, for up to [`DEADLINE`] seconds.
async fn eventually_some<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(DEADLINE);
    loop {
        if let Some(t) = probe().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Nothing more arrives for a while (no late duplicate).
async fn settles(f: &dyn Fixture, expected: usize) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    let got = f.received();
    assert_eq!(got.len(), expected, "no extra message arrives: {got:#?}");
}

/// Debug of the concrete channel built from `cfg`.
fn channel_debug(name: &str, cfg: &ChannelConfig) -> String {
    use sentinel_notify::channels::{matrix, slack, smtp, webhook};
    match cfg {
        ChannelConfig::Webhook(c) => {
            format!("{:?}", webhook::WebhookChannel::new(name, c).unwrap())
        }
        ChannelConfig::Slack(c) => format!("{:?}", slack::SlackChannel::new(name, c).unwrap()),
        ChannelConfig::Matrix(c) => format!("{:?}", matrix::MatrixChannel::new(name, c).unwrap()),
        ChannelConfig::Smtp(c) => format!("{:?}", smtp::SmtpChannel::new(name, c).unwrap()),
        other => format!("{other:?}"),
    }
}

/// `cfg` pointed at another port of 127.0.0.1 (the same credentials).
fn at_port(cfg: &ChannelConfig, port: u16) -> ChannelConfig {
    fn swap(url: &str, port: u16) -> String {
        let mut u = reqwest::Url::parse(url).unwrap();
        u.set_port(Some(port)).unwrap();
        u.to_string()
    }
    match cfg.clone() {
        ChannelConfig::Webhook(mut c) => {
            c.url = swap(&c.url, port);
            ChannelConfig::Webhook(c)
        }
        ChannelConfig::Slack(mut c) => {
            c.url = Secret::new(swap(c.url.expose(), port));
            ChannelConfig::Slack(c)
        }
        ChannelConfig::Matrix(mut c) => {
            c.homeserver = swap(&c.homeserver, port);
            ChannelConfig::Matrix(c)
        }
        ChannelConfig::Smtp(mut c) => {
            c.port = port;
            ChannelConfig::Smtp(c)
        }
        other => other,
    }
}

fn assert_no_secret(f: &dyn Fixture, what: &str, text: &str) {
    for s in f.secrets() {
        assert!(
            !s.is_empty() && !text.contains(&s),
            "{} {what} shows a secret: {text}",
            f.kind()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A lost answer

/// A TCP proxy on loopback in front of a fake that, once, cuts the connection instead of passing
/// on the fake's answer to a message the fake has just stored: the receiver has the message, the
/// sender does not know it (the lost answer that receiver-side de-duplication is for). It sees
/// only bytes (SMTP is encrypted after STARTTLS), so "just stored" is the fake's own record.
struct CuttingProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CuttingProxy {
    async fn start(f: Arc<dyn Fixture>) -> CuttingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let done = cut.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let (f, done) = (f.clone(), done.clone());
                conns.spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect(f.addr()).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = upstream.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut uw).await;
                        let _ = uw.shutdown().await;
                    });
                    let stored_before = f.received().len();
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match ur.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if f.received().len() > stored_before && !done.swap(true, Ordering::SeqCst)
                        {
                            // The fake stored the message and is answering: lose the answer.
                            up.abort();
                            return;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
                while conns.try_join_next().is_some() {}
            }
        });
        CuttingProxy { port, cut, task }
    }

    fn has_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// The suite

mod suite {
    use super::*;

    /// One notice arrives with its title and body; kind and severity are visible.
    pub async fn deliver(f: Arc<dyn Fixture>) {
        let f = f.as_ref();
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::start(&db(&dir), &notify_config(f.config(), Duration::ZERO)).await;
        let n = notice(
            "ssh brute force from 203.0.113.7",
            "412 failed logins in 60 s",
        );
        let row = e.submit(&n).await;
        eventually("the message", || !f.received().is_empty()).await;
        settles(f, 1).await;
        let got = &f.received()[0];
        assert!(got.title.contains(&n.title), "{} title: {got:#?}", f.kind());
        assert!(got.text.contains(&n.body), "{} body: {got:#?}", f.kind());
        let all = format!("{}\n{}", got.title, got.text).to_ascii_lowercase();
        assert!(all.contains("alert"), "{} kind visible: {got:#?}", f.kind());
        assert!(
            all.contains("high"),
            "{} severity visible: {got:#?}",
            f.kind()
        );
        assert_eq!(got.count, 1);
        assert_eq!(f.attempts(), 1, "one attempt");
        let delivery = e.delivery_of(&row).await.expect("a delivery id");
        if let Some(id) = &got.id {
            assert_eq!(id, &delivery, "the receiver sees the outbox's delivery id");
        }
        eventually("the delivery recorded", || e.notify.stats().delivered == 1).await;
        let r = e.store.outbox_row(&row).await.unwrap().unwrap();
        assert_eq!(r.state, OutboxState::Delivered);
        assert_eq!(r.attempts, 1);
        e.stop().await;
    }

    /// Waits for exactly one dead letter and answers it.
    async fn one_dead_letter(e: &Engine) -> sentinel_notify::DeadLetter {
        let mut dead = eventually_some("a dead letter", || async {
            let d = e.notify.dead_letters(10, None).await.unwrap();
            (!d.is_empty()).then_some(d)
        })
        .await;
        assert_eq!(dead.len(), 1, "{dead:#?}");
        dead.remove(0)
    }

    /// A permanent failure is a dead letter after one attempt; fixed and retried, it arrives
    /// under the same delivery id.
    pub async fn fail(f: Arc<dyn Fixture>) {
        let f = f.as_ref();
        let dir = tempfile::tempdir().unwrap();
        // A credential that is wrong (rotated, revoked) is refused for good.
        let e = Engine::start(
            &db(&dir),
            &notify_config(f.wrong_credentials(), Duration::ZERO),
        )
        .await;
        let n = notice(
            "block of 198.51.100.9 failed",
            "nftables: permission denied",
        );
        e.submit(&n).await;
        let d = one_dead_letter(&e).await;
        assert_eq!(d.channel, CHANNEL);
        assert_eq!(
            d.attempts,
            1,
            "{}: a permanent failure is not retried",
            f.kind()
        );
        assert_eq!(f.attempts(), 1, "{}: one attempt at the fake", f.kind());
        assert_eq!(d.message.title, n.title);
        assert_eq!(d.message.delivery_id, d.delivery_id);
        let reason = d.last_error.clone().expect("a reason");
        assert!(!reason.is_empty());
        assert_no_secret(f, "dead letter reason", &reason);
        assert_no_secret(f, "dead letter", &format!("{d:?}"));
        assert!(f.received().is_empty());
        // Nothing more is tried.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(f.attempts(), 1, "{}: no retry of a dead letter", f.kind());
        e.stop().await;

        // The operator fixes the credential, restarts, and retries the dead letter.
        let e = Engine::start(&db(&dir), &notify_config(f.config(), Duration::ZERO)).await;
        assert_eq!(one_dead_letter(&e).await.delivery_id, d.delivery_id);
        assert!(e.notify.retry_dead_letter(&d.delivery_id).await.unwrap());
        eventually("the retried message", || f.received().len() == 1).await;
        settles(f, 1).await;
        let got = &f.received()[0];
        assert!(got.title.contains(&n.title), "{got:#?}");
        assert_eq!(got.count, 1);
        if let Some(id) = &got.id {
            assert_eq!(id, &d.delivery_id, "the same delivery id after the retry");
        }
        eventually_some("the dead letter list emptied", || async {
            e.notify
                .dead_letters(10, None)
                .await
                .unwrap()
                .is_empty()
                .then_some(())
        })
        .await;
        assert!(!e.notify.retry_dead_letter(&d.delivery_id).await.unwrap());

        // Where the fake can refuse for good by itself (SMTP 550), the same on one engine.
        if f.refuse(true) {
            let before = f.attempts();
            let n2 = notice("second refusal", "mailbox unavailable");
            e.submit(&n2).await;
            let d2 = one_dead_letter(&e).await;
            assert_eq!(
                d2.attempts,
                1,
                "{}: refused for good, not retried",
                f.kind()
            );
            assert_eq!(f.attempts(), before + 1);
            assert_no_secret(f, "dead letter", &format!("{d2:?}"));
            assert!(f.refuse(false));
            assert!(e.notify.retry_dead_letter(&d2.delivery_id).await.unwrap());
            eventually("the second retried message", || f.received().len() == 2).await;
            settles(f, 2).await;
            let got = &f.received()[1];
            assert!(got.title.contains(&n2.title), "{got:#?}");
            if let Some(id) = &got.id {
                assert_eq!(id, &d2.delivery_id);
            }
        }
        e.stop().await;
    }

    /// Down for a while, then up: the message arrives once, after more than one attempt.
    pub async fn retry(f: Arc<dyn Fixture>) {
        let f = f.as_ref();
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::start(&db(&dir), &notify_config(f.config(), Duration::ZERO)).await;
        f.set_down(true);
        let n = notice("an outage", "the receiver was down");
        let row = e.submit(&n).await;
        eventually("three failed attempts", || f.attempts() >= 3).await;
        let r = eventually_some("a stored error", || async {
            let r = e.store.outbox_row(&row).await.unwrap()?;
            (r.attempts >= 2 && r.last_error.is_some()).then_some(r)
        })
        .await;
        assert_eq!(r.state, OutboxState::Pending, "transient: still pending");
        assert_no_secret(
            f,
            "stored last_error",
            r.last_error.as_deref().unwrap_or(""),
        );
        let delivery = r.delivery.clone().expect("a delivery id while retrying");
        assert!(f.received().is_empty());
        f.set_down(false);
        eventually("the message after the outage", || !f.received().is_empty()).await;
        settles(f, 1).await;
        let got = &f.received()[0];
        assert!(got.title.contains(&n.title), "{got:#?}");
        assert_eq!(got.count, 1);
        if let Some(id) = &got.id {
            assert_eq!(id, &delivery, "the id stays the same across retries");
        }
        assert!(
            f.attempts() > 1,
            "attempts seen at the fake: {}",
            f.attempts()
        );
        eventually("the delivery recorded", || e.notify.stats().delivered == 1).await;
        let r = e.store.outbox_row(&row).await.unwrap().unwrap();
        assert_eq!(r.state, OutboxState::Delivered);
        assert!(r.attempts > 1);
        assert_eq!(r.last_error, None);
        assert_eq!(e.notify.stats().dead, 0);
        e.stop().await;
    }

    /// 200 notices with one key within `group_wait` are one message carrying the count 200.
    pub async fn dedup(f: Arc<dyn Fixture>) {
        const BURST: usize = 200;
        let group_wait = Duration::from_secs(5);
        let f = f.as_ref();
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::start(&db(&dir), &notify_config(f.config(), group_wait)).await;
        let started = Instant::now();
        let mut writers = Vec::new();
        for w in 0..4 {
            let notify = e.notify.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..BURST / 4 {
                    let n = notice(&format!("ssh wave {w}/{i}"), "one more failed login")
                        .with_key("wave:203.0.113.7");
                    notify.notify(&n).await.unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let queued_in = started.elapsed();
        assert!(
            queued_in < group_wait,
            "the burst must be queued within group_wait to be one message; it took {queued_in:?}"
        );
        assert_eq!(e.notify.stats().accepted, BURST as u64);
        eventually("the folded message", || !f.received().is_empty()).await;
        settles(f, 1).await;
        let got = &f.received()[0];
        assert_eq!(got.count, BURST as u64, "{got:#?}");
        assert!(
            got.text.contains("200"),
            "the text carries the count: {got:#?}"
        );
        assert!(got.title.contains("ssh wave"), "{got:#?}");
        assert_eq!(f.attempts(), 1, "one message sent");
        eventually("the delivery recorded", || e.notify.stats().delivered == 1).await;
        assert_eq!(e.notify.stats().folded, (BURST - 1) as u64);
        e.stop().await;
    }

    /// Notices accepted while the fake is down survive dropping the engine, and arrive exactly
    /// once from a new engine on the same store, under the ids assigned before the restart.
    pub async fn restart(f: Arc<dyn Fixture>) {
        const N: usize = 5;
        let f = f.as_ref();
        let dir = tempfile::tempdir().unwrap();
        let cfg = notify_config(f.config(), Duration::ZERO);
        f.set_down(true);
        let e = Engine::start(&db(&dir), &cfg).await;
        let mut rows = Vec::new();
        let mut titles = BTreeSet::new();
        for i in 0..N {
            let n = notice(&format!("accepted while down #{i}"), "keep me");
            titles.insert(n.title.clone());
            rows.push(e.submit(&n).await);
        }
        eventually("every notice tried and failed", || f.attempts() >= N).await;
        let mut ids = BTreeSet::new();
        for r in &rows {
            let row = eventually_some("a delivery id", || async { e.delivery_of(r).await }).await;
            ids.insert(row);
        }
        assert_eq!(ids.len(), N, "one delivery per key");
        // Gone without a graceful stop: the process died.
        drop(e);
        assert!(f.received().is_empty());

        let before = f.attempts();
        let e = Engine::start(&db(&dir), &cfg).await;
        eventually("the new engine tries again", || f.attempts() > before).await;
        f.set_down(false);
        eventually("every notice after the restart", || f.received().len() >= N).await;
        settles(f, N).await;
        let got = f.received();
        let got_titles: BTreeSet<String> = got
            .iter()
            .map(|g| {
                titles
                    .iter()
                    .find(|t| g.title.contains(t.as_str()))
                    .cloned()
                    .unwrap_or_else(|| panic!("an unexpected message: {g:#?}"))
            })
            .collect();
        assert_eq!(got_titles, titles, "each notice exactly once");
        if got.iter().all(|g| g.id.is_some()) {
            let got_ids: BTreeSet<String> = got.iter().filter_map(|g| g.id.clone()).collect();
            assert_eq!(got_ids, ids, "the delivery ids from before the restart");
        }
        eventually("every delivery recorded", || {
            e.notify.stats().delivered == N as u64
        })
        .await;
        for r in &rows {
            let row = e.store.outbox_row(r).await.unwrap().unwrap();
            assert_eq!(row.state, OutboxState::Delivered);
        }
        e.stop().await;
    }

    /// The channel's secret shows nowhere: stored errors, dead letters, Debug, serialised config.
    pub async fn secrets(f: Arc<dyn Fixture>) {
        let f = f.as_ref();
        let dir = tempfile::tempdir().unwrap();
        let mut seen: Vec<(String, String)> = Vec::new();

        let wrong = notify_config(f.wrong_credentials(), Duration::ZERO);
        let e = Engine::start(&db(&dir), &wrong).await;
        let dead_row = e.submit(&notice("refused", "wrong credential")).await;
        let d = one_dead_letter(&e).await;
        seen.push(("dead letter".into(), format!("{d:?}")));
        seen.push((
            "dead letter JSON".into(),
            serde_json::to_string(&d).unwrap(),
        ));
        seen.push(("engine".into(), format!("{:?}", e.notify)));
        seen.push(("stats".into(), format!("{:?}", e.notify.stats())));
        e.stop().await;

        let good = notify_config(f.config(), Duration::ZERO);
        let e = Engine::start(&db(&dir), &good).await;
        f.set_down(true);
        let row = e.submit(&notice("delayed", "receiver down")).await;
        let r = eventually_some("a stored transient error", || async {
            let r = e.store.outbox_row(&row).await.unwrap()?;
            (r.attempts >= 2 && r.last_error.is_some()).then_some(r)
        })
        .await;
        seen.push(("pending row".into(), format!("{r:?}")));
        let dr = e.store.outbox_row(&dead_row).await.unwrap().unwrap();
        assert_eq!(dr.state, OutboxState::Dead);
        seen.push(("dead row".into(), format!("{dr:?}")));
        for d in e.notify.dead_letters(100, None).await.unwrap() {
            seen.push(("listed dead letter".into(), format!("{d:?}")));
        }
        f.set_down(false);
        eventually("the delayed message", || !f.received().is_empty()).await;
        seen.push(("engine".into(), format!("{:?}", e.notify)));
        e.stop().await;

        // Nobody listening at all (connection refused): transient, and still no secret.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let gone = notify_config(at_port(&f.config(), closed), Duration::ZERO);
        let e = Engine::start(&db(&dir), &gone).await;
        let row = e.submit(&notice("unreachable", "nobody listening")).await;
        let u = eventually_some("a stored connection error", || async {
            let r = e.store.outbox_row(&row).await.unwrap()?;
            (r.attempts >= 2 && r.last_error.is_some()).then_some(r)
        })
        .await;
        assert_eq!(
            u.state,
            OutboxState::Pending,
            "connection refused is transient"
        );
        seen.push(("unreachable row".into(), format!("{u:?}")));
        e.stop().await;

        for cfg in [&wrong, &good, &gone] {
            seen.push(("notify config".into(), format!("{cfg:?}")));
            seen.push((
                "notify config JSON".into(),
                serde_json::to_string(cfg).unwrap(),
            ));
            let c = &cfg.channels[CHANNEL];
            seen.push(("channel".into(), channel_debug(CHANNEL, c)));
        }
        // The stored errors are real (the test can fail), and name no secret.
        assert!(d.last_error.as_deref().is_some_and(|s| !s.is_empty()));
        assert!(r.last_error.as_deref().is_some_and(|s| !s.is_empty()));
        assert!(u.last_error.as_deref().is_some_and(|s| !s.is_empty()));
        for (what, text) in &seen {
            assert_no_secret(f, what, text);
        }
        // The secrets are really in the configuration (what is checked is not vacuous).
        let exposed = match &good.channels[CHANNEL] {
            ChannelConfig::Webhook(c) => c.secret.expose().to_string(),
            ChannelConfig::Slack(c) => c.url.expose().to_string(),
            ChannelConfig::Matrix(c) => c.access_token.expose().to_string(),
            ChannelConfig::Smtp(c) => c.password.as_ref().unwrap().expose().to_string(),
            _ => String::new(),
        };
        assert!(f.secrets().iter().any(|s| exposed.contains(s.as_str())));
    }
    /// The fake stores the message but its answer is lost: the engine tries again under the same
    /// delivery id, and a receiver that de-duplicates on it has the message once. (Slack's
    /// incoming webhooks carry no id: there the retry is a second, identical post — at least once.)
    pub async fn lost_answer(f: Arc<dyn Fixture>) {
        let dir = tempfile::tempdir().unwrap();
        let proxy = CuttingProxy::start(f.clone()).await;
        let cfg = notify_config(at_port(&f.config(), proxy.port), Duration::ZERO);
        let e = Engine::start(&db(&dir), &cfg).await;
        let n = notice("answer lost", "stored, but the sender never heard");
        let row = e.submit(&n).await;
        eventually("the delivery recorded", || e.notify.stats().delivered == 1).await;
        assert!(proxy.has_cut(), "the first answer was lost");
        let r = e.store.outbox_row(&row).await.unwrap().unwrap();
        assert_eq!(r.state, OutboxState::Delivered);
        assert!(r.attempts >= 2, "sent again after the lost answer: {r:?}");
        let delivery = r.delivery.clone().unwrap();
        assert!(f.attempts() >= 2, "the fake saw the repeat");
        let got = f.received();
        if got.iter().all(|g| g.id.is_some()) {
            settles(f.as_ref(), 1).await;
            let got = f.received();
            assert_eq!(got[0].id.as_deref(), Some(delivery.as_str()));
            assert!(got[0].title.contains(&n.title), "{got:#?}");
        } else {
            settles(f.as_ref(), 2).await;
            let got = f.received();
            assert_eq!(got[0].text, got[1].text, "the same message twice");
        }
        e.stop().await;
    }
}

/// Instantiates the suite for each channel kind: `kind => fixture constructor`.
macro_rules! compliance {
    ($($kind:ident => $fixture:ident),* $(,)?) => {$(
        mod $kind {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn deliver() {
                suite::deliver($fixture::start().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fail() {
                suite::fail($fixture::start().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retry() {
                suite::retry($fixture::start().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dedup() {
                suite::dedup($fixture::start().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn restart() {
                suite::restart($fixture::start().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lost_answer() {
                suite::lost_answer($fixture::start().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn secrets() {
                suite::secrets($fixture::start().await).await;
            }
        }
    )*};
}

compliance! {
    webhook => Webhook,
    slack => Slack,
    matrix => Matrix,
    smtp => Smtp,
}
