//! The notification engine: [`Notifications`] accepts notices (routing them and writing one outbox
//! row per channel before it answers), and its [`NotifyTask`] runs one delivery worker per channel,
//! the daily digest scheduler and the outbox housekeeping (pruning, gauges).
//!
//! It owns no channel logic (channels are handed in as [`Channel`]s) and no storage layout (the
//! store's outbox calls); it decides what goes where and when.

use crate::backoff::Backoff;
use crate::channel::{Channel, Message};
use crate::config::{DigestConfig, NotifyConfig, RetrySettings};
use crate::digest::{digest_notice, next_run, utc_date, DigestSource, DAY_MS};
use crate::route::Router;
use crate::stats::{Counters, NotifyStats};
use sentinel_core::{Notice, NoticeKind, Notifier, NotifyError, Severity, Timestamp, TraceId};
use sentinel_store::{NewOutboxRow, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// How often delivered rows are pruned and the outbox gauges re-read from the store.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
/// How long [`NotifyTask::stop`] waits for each task before abandoning it.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The most dead letters one page lists.
pub const MAX_DEAD_LETTER_PAGE: usize = 500;

/// A new unique id (a ULID in text form): outbox rows and delivery ids.
pub(crate) fn new_id() -> String {
    TraceId::new().as_str().to_owned()
}

/// What the engine shares with its workers.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) router: Router,
    pub(crate) retry: RetrySettings,
    pub(crate) backoff: Backoff,
    pub(crate) counters: Counters,
    digest: Option<DigestConfig>,
    digest_source: Option<Arc<dyn DigestSource>>,
    keep_delivered: Duration,
    wakers: BTreeMap<String, Arc<Notify>>,
}

/// Where a submitted notice went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Submitted {
    /// The outbox row ids written, one per channel.
    pub rows: Vec<String>,
    /// The channels, in the same order.
    pub channels: Vec<String>,
}

/// A message that was given up on, as it was (or would have been) sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Its delivery id (also the paging cursor and what [`Notifications::retry_dead_letter`] takes).
    pub delivery_id: String,
    /// The channel.
    pub channel: String,
    /// The message.
    pub message: Message,
    /// Attempts made.
    pub attempts: u32,
    /// The error it died of.
    pub last_error: Option<String>,
    /// When its first notice was accepted.
    pub created: Timestamp,
    /// When it died.
    pub died_at: Timestamp,
}

/// Why an outbox query of the engine failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The paging cursor is not the delivery id of a dead letter.
    #[error("invalid cursor")]
    BadCursor,
    /// The store failed.
    #[error("outbox: {0}")]
    Store(String),
}

impl From<StoreError> for OutboxError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadCursor => OutboxError::BadCursor,
            other => OutboxError::Store(other.to_string()),
        }
    }
}

/// The notification engine's handle: the pipeline's [`Notifier`]; cheap to clone.
#[derive(Clone)]
pub struct Notifications {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications")
            .field("channels", &self.shared.wakers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The engine's background tasks; [`NotifyTask::stop`] ends them (dropping it asks them to stop).
#[derive(Debug)]
pub struct NotifyTask {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl NotifyTask {
    /// Stops every worker promptly: a send in flight is abandoned (its rows stay pending and are
    /// sent again, under the same delivery id, by the next start).
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for h in std::mem::take(&mut self.handles) {
            let abort = h.abort_handle();
            if tokio::time::timeout(STOP_GRACE, h).await.is_err() {
                tracing::warn!(
                    evt = "notify_task_abandoned",
                    "a notification task did not stop in time; aborted"
                );
                abort.abort();
            }
        }
    }
}

impl Drop for NotifyTask {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Notifications {
    /// Starts the engine on `store`: one delivery worker per channel in `channels` (keyed by
    /// name), the digest scheduler when `cfg.digest` and `digest` are both given, and the outbox
    /// housekeeping. Rows left pending by an earlier run are picked up at once. Needs a Tokio
    /// runtime.
    pub fn start(
        cfg: &NotifyConfig,
        store: Store,
        channels: BTreeMap<String, Arc<dyn Channel>>,
        digest: Option<Arc<dyn DigestSource>>,
    ) -> (Notifications, NotifyTask) {
        let router = Router::new(cfg.routes.clone());
        let mut names: Vec<String> = channels.keys().cloned().collect();
        for c in router
            .channels()
            .into_iter()
            .chain(cfg.digest.iter().flat_map(|d| d.channels.iter().cloned()))
        {
            if !names.contains(&c) {
                tracing::error!(evt = "notify_channel_missing", channel = %c, "a route names a channel that was not built; its notices wait in the outbox");
                names.push(c);
            }
        }
        let wakers: BTreeMap<String, Arc<Notify>> = channels
            .keys()
            .map(|k| (k.clone(), Arc::new(Notify::new())))
            .collect();
        let shared = Arc::new(Shared {
            store,
            backoff: Backoff::from_settings(&cfg.retry),
            retry: cfg.retry.clone(),
            counters: Counters::new(names),
            router,
            digest: cfg.digest.clone(),
            digest_source: digest,
            keep_delivered: cfg.keep_delivered,
            wakers,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut handles = Vec::new();
        for (name, ch) in channels {
            let Some(wake) = shared.wakers.get(&name).cloned() else {
                continue;
            };
            handles.push(tokio::spawn(crate::deliver::run(
                shared.clone(),
                ch,
                wake,
                stop_rx.clone(),
            )));
        }
        handles.push(tokio::spawn(housekeeping(shared.clone(), stop_rx.clone())));
        if let (Some(d), Some(_)) = (&shared.digest, &shared.digest_source) {
            handles.push(tokio::spawn(digest_scheduler(
                shared.clone(),
                d.at,
                stop_rx,
            )));
        } else if shared.digest.is_some() {
            tracing::warn!(
                evt = "digest_disabled",
                "a digest is configured but no digest source was given; no digest is sent"
            );
        }
        (Notifications { shared }, NotifyTask { stop, handles })
    }

    /// Routes `n` and writes one outbox row per channel, committed before it returns. No route:
    /// the notice is only logged (`evt=notice`), as the embedded defaults want. Fails only when the
    /// outbox cannot be written (counted and logged).
    pub async fn submit(&self, n: &Notice) -> Result<Submitted, NotifyError> {
        let targets = self.shared.router.targets(n.kind, n.severity);
        if targets.is_empty() {
            self.shared.counters.unrouted();
            tracing::warn!(
                evt = "notice",
                trace = %n.trace_id,
                kind = %n.kind,
                severity = %n.severity,
                title = %n.title,
                body = %n.body,
            );
            return Ok(Submitted::default());
        }
        let now = Timestamp::now();
        let rows: Vec<(String, Duration)> = targets
            .into_iter()
            .map(|t| (t.channel, t.group_wait))
            .collect();
        self.insert(
            n,
            now,
            rows.iter()
                .map(|(c, w)| (new_id(), c.clone(), now.plus(*w)))
                .collect(),
        )
        .await
    }

    /// Routes every notice and writes all their outbox rows in ONE transaction, committed before
    /// it returns (how the pipeline's notify stage hands over a burst: one commit, not one per
    /// notice). On a store failure nothing of the batch is accepted and every notice is counted.
    pub async fn submit_many(&self, ns: &[Notice]) -> Result<(), NotifyError> {
        let now = Timestamp::now();
        let mut new = Vec::new();
        let mut channels_of = Vec::with_capacity(ns.len());
        for n in ns {
            let targets = self.shared.router.targets(n.kind, n.severity);
            if targets.is_empty() {
                self.shared.counters.unrouted();
                tracing::warn!(evt = "notice", trace = %n.trace_id, kind = %n.kind, severity = %n.severity, title = %n.title, body = %n.body);
                continue;
            }
            let body = match serde_json::to_string(n) {
                Ok(b) => b,
                Err(e) => {
                    self.shared.counters.store_error();
                    tracing::error!(evt = "notify_outbox_failed", trace = %n.trace_id, error = %e, "cannot encode a notice");
                    continue;
                }
            };
            let key = n.dedup_key();
            let mut channels = Vec::with_capacity(targets.len());
            for t in targets {
                new.push(NewOutboxRow {
                    id: new_id(),
                    channel: t.channel.clone(),
                    key: key.clone(),
                    body: body.clone(),
                    created: now,
                    due: now.plus(t.group_wait),
                });
                channels.push(t.channel);
            }
            channels_of.push(channels);
        }
        if new.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.shared.store.insert_outbox(&new).await {
            for _ in &channels_of {
                self.shared.counters.store_error();
            }
            tracing::error!(evt = "notify_outbox_failed", notices = channels_of.len(), error = %e, "cannot queue notices");
            return Err(NotifyError::Delivery(format!("outbox: {e}")));
        }
        let mut woken = std::collections::BTreeSet::new();
        for channels in &channels_of {
            self.shared.counters.accepted(channels);
            woken.extend(channels.iter().cloned());
        }
        for c in woken {
            if let Some(w) = self.shared.wakers.get(&c) {
                w.notify_one();
            }
        }
        Ok(())
    }

    async fn insert(
        &self,
        n: &Notice,
        now: Timestamp,
        rows: Vec<(String, String, Timestamp)>,
    ) -> Result<Submitted, NotifyError> {
        let body = serde_json::to_string(n).map_err(|e| {
            self.shared.counters.store_error();
            NotifyError::Delivery(format!("cannot encode the notice: {e}"))
        })?;
        let key = n.dedup_key();
        let new: Vec<NewOutboxRow> = rows
            .iter()
            .map(|(id, channel, due)| NewOutboxRow {
                id: id.clone(),
                channel: channel.clone(),
                key: key.clone(),
                body: body.clone(),
                created: now,
                due: *due,
            })
            .collect();
        let added = match self.shared.store.insert_outbox(&new).await {
            Ok(a) => a,
            Err(e) => {
                self.shared.counters.store_error();
                tracing::error!(evt = "notify_outbox_failed", trace = %n.trace_id, kind = %n.kind, title = %n.title, error = %e, "cannot queue a notice");
                return Err(NotifyError::Delivery(format!("outbox: {e}")));
            }
        };
        if added == 0 {
            return Ok(Submitted::default());
        }
        let channels: Vec<String> = rows.iter().map(|(_, c, _)| c.clone()).collect();
        self.shared.counters.accepted(&channels);
        for c in &channels {
            if let Some(w) = self.shared.wakers.get(c) {
                w.notify_one();
            }
        }
        tracing::debug!(evt = "notice_queued", trace = %n.trace_id, kind = %n.kind, key = %key, channels = ?channels);
        Ok(Submitted {
            rows: rows.into_iter().map(|(id, _, _)| id).collect(),
            channels,
        })
    }

    /// Dead letters, newest first, at most `limit` (capped at [`MAX_DEAD_LETTER_PAGE`]); `before`
    /// is the last delivery id of the previous page.
    pub async fn dead_letters(
        &self,
        limit: usize,
        before: Option<String>,
    ) -> Result<Vec<DeadLetter>, OutboxError> {
        let dead = self
            .shared
            .store
            .outbox_dead_letters(limit.clamp(1, MAX_DEAD_LETTER_PAGE), before.as_deref())
            .await?;
        Ok(dead
            .into_iter()
            .map(|d| DeadLetter {
                message: crate::deliver::fold(&d.delivery, &d.rows),
                delivery_id: d.delivery,
                channel: d.channel,
                attempts: d.attempts,
                last_error: d.last_error,
                created: d.created,
                died_at: d.died_at,
            })
            .collect())
    }

    /// Puts a dead letter back in line (same delivery id, attempts reset, due now); `false` when
    /// no dead letter has that id.
    pub async fn retry_dead_letter(&self, delivery_id: &str) -> Result<bool, OutboxError> {
        let rows = self.shared.store.outbox_delivery_rows(delivery_id).await?;
        let done = self
            .shared
            .store
            .outbox_requeue(delivery_id, Timestamp::now())
            .await?;
        if done {
            tracing::info!(evt = "notice_dead_letter_requeued", delivery = %delivery_id, rows = rows.len());
            if let Some(w) = rows
                .first()
                .and_then(|r| self.shared.wakers.get(&r.channel))
            {
                w.notify_one();
            }
            if let Ok(counts) = self.shared.store.outbox_counts().await {
                self.shared.counters.set_outbox(&counts);
            }
        }
        Ok(done)
    }

    /// Counters since start and the outbox gauges; reads atomics only.
    pub fn stats(&self) -> NotifyStats {
        self.shared.counters.snapshot()
    }

    /// Sends a digest of the last 24 hours now, to the digest's channels (or, with no digest
    /// configured, wherever routes send digests). It does not count as the day's scheduled one.
    pub async fn send_digest_now(&self) -> Result<Submitted, NotifyError> {
        let until = Timestamp::now();
        let since = Timestamp::from_millis(until.as_millis() - DAY_MS);
        self.send_digest(since, until, &format!("manual-{}", new_id()), false)
            .await
    }

    /// Sends the scheduled digest of the 24 hours before `until` (the scheduler calls this at
    /// `digest.at`), keyed by the UTC date of `until`: at most once per day, even across restarts
    /// (its outbox rows have fixed ids; a second call for the same day queues nothing and answers
    /// an empty [`Submitted`]).
    pub async fn send_daily_digest(&self, until: Timestamp) -> Result<Submitted, NotifyError> {
        let since = Timestamp::from_millis(until.as_millis() - DAY_MS);
        self.send_digest(since, until, &utc_date(until), true).await
    }

    /// Sends the digest for `[since, until)` under `key`; `scheduled` ones have fixed row ids so a
    /// day's digest is queued at most once.
    async fn send_digest(
        &self,
        since: Timestamp,
        until: Timestamp,
        key: &str,
        scheduled: bool,
    ) -> Result<Submitted, NotifyError> {
        let Some(source) = &self.shared.digest_source else {
            return Err(NotifyError::Delivery("no digest source".into()));
        };
        let figures = source.figures(since, until).await.map_err(|e| {
            tracing::error!(evt = "digest_failed", error = %e, "cannot compute the digest");
            NotifyError::Delivery(format!("digest figures: {e}"))
        })?;
        let notice = digest_notice(&figures, since, until, key);
        let now = Timestamp::now();
        let channels: Vec<String> = match &self.shared.digest {
            Some(d) => d.channels.clone(),
            None => self
                .shared
                .router
                .targets(NoticeKind::Digest, Severity::Info)
                .into_iter()
                .map(|t| t.channel)
                .collect(),
        };
        if channels.is_empty() {
            return self.submit(&notice).await;
        }
        let rows = channels
            .into_iter()
            .map(|c| {
                let id = if scheduled {
                    format!("{}:{c}", notice.dedup_key())
                } else {
                    new_id()
                };
                (id, c, now)
            })
            .collect();
        let done = self.insert(&notice, now, rows).await?;
        if done.rows.is_empty() {
            tracing::info!(evt = "digest_already_sent", key = %key, "today's digest is already in the outbox");
        } else {
            tracing::info!(evt = "digest_queued", key = %key, channels = ?done.channels);
        }
        Ok(done)
    }
}

#[async_trait::async_trait]
impl Notifier for Notifications {
    async fn notify(&self, n: &Notice) -> Result<(), NotifyError> {
        self.submit(n).await.map(|_| ())
    }

    async fn notify_many(&self, ns: &[Notice]) -> Result<(), NotifyError> {
        self.submit_many(ns).await
    }
}

async fn housekeeping(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        match shared.store.outbox_counts().await {
            Ok(c) => shared.counters.set_outbox(&c),
            Err(e) => {
                tracing::error!(evt = "notify_outbox_failed", error = %e, "cannot count the outbox")
            }
        }
        let cutoff = Timestamp::now().as_millis()
            - i64::try_from(shared.keep_delivered.as_millis()).unwrap_or(i64::MAX);
        match shared
            .store
            .outbox_prune_delivered(Timestamp::from_millis(cutoff))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(pruned = n, "pruned delivered outbox rows"),
            Err(e) => {
                tracing::error!(evt = "notify_outbox_failed", error = %e, "cannot prune the outbox")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HOUSEKEEPING) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// How long after the digest time a start still sends the day's digest it missed (6 h).
const DIGEST_CATCH_UP_MS: i64 = 6 * 3_600_000;

async fn digest_scheduler(shared: Arc<Shared>, at: (u8, u8), mut stop: watch::Receiver<bool>) {
    let handle = Notifications {
        shared: shared.clone(),
    };
    // Down at the digest time (a restart, an upgrade): the day's digest goes at start instead, if
    // the time passed less than DIGEST_CATCH_UP ago. The day's fixed row ids keep it to once.
    let now = Timestamp::now();
    let missed = Timestamp::from_millis(next_run(now, at).as_millis() - DAY_MS);
    if now.as_millis() - missed.as_millis() <= DIGEST_CATCH_UP_MS {
        match handle.send_daily_digest(missed).await {
            Ok(s) if !s.rows.is_empty() => {
                tracing::info!(evt = "digest_catch_up", day = %utc_date(missed), "the digest time passed while Sentinel was not running; sent now");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(evt = "digest_failed", day = %utc_date(missed), error = %e, "the missed daily digest was not sent");
            }
        }
    }
    loop {
        let target = next_run(Timestamp::now(), at);
        // Sleep in bounded steps so a wall-clock change is noticed.
        loop {
            let now = Timestamp::now();
            if now >= target {
                break;
            }
            let ms = u64::try_from(target.as_millis() - now.as_millis()).unwrap_or(0);
            let step = Duration::from_millis(ms).min(Duration::from_secs(600));
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
        if let Err(e) = handle.send_daily_digest(target).await {
            tracing::error!(evt = "digest_failed", day = %utc_date(target), error = %e, "the daily digest was not sent");
        }
    }
}
