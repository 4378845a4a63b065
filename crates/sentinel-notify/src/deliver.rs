//! One channel's delivery worker, and folding outbox rows into one [`Message`].
//!
//! The worker wakes when a notice is queued for its channel or when the earliest row is due, takes
//! the due groups, holds back a key still inside its de-duplication window (derived from the outbox,
//! so it holds across restarts), writes a new group's delivery id to its rows before the first send,
//! throttles, sends, and records the outcome: delivered, retried later with backoff, or dead. It never
//! deletes a row it has not delivered: stopping mid-send leaves the rows pending, to be sent again
//! under the same delivery id (at-least-once).
//!
//! When the store cannot record an outcome (the database is locked by another process, the disk is
//! full), the worker keeps the outcome in memory and records it once the store works again, instead
//! of sending the message again each time it rescans: a channel with no de-duplication (Slack, email)
//! would otherwise show a duplicate every second for as long as the store is stuck.

use crate::backoff::Backoff;
use crate::channel::{Channel, Message, SendError};
use crate::engine::Shared;
use crate::route::Throttle;
use sentinel_core::{Notice, NoticeKind, Severity, Timestamp, TraceId};
use sentinel_store::{OutboxGroup, OutboxRow};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Groups taken per scan.
const GROUPS_PER_SCAN: usize = 16;
/// The longest a worker sleeps without looking at the outbox.
const IDLE: Duration = Duration::from_secs(30);
/// The wait after the store failed.
const STORE_BACKOFF: Duration = Duration::from_secs(1);

/// Folds the rows of one delivery (oldest first) into the message sent for it: the kind, title, body
/// and trace of the first of its most severe notices, that severity, the count, first and last seen. A row whose
/// body does not parse counts as an unreadable high-severity notice (logged).
pub fn fold(delivery_id: &str, rows: &[OutboxRow]) -> Message {
    let mut first: Option<Notice> = None;
    let mut severity = Severity::Info;
    let mut first_seen: Option<Timestamp> = None;
    let mut last_seen: Option<Timestamp> = None;
    for r in rows {
        let n = match serde_json::from_str::<Notice>(&r.body) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(evt = "notice_unreadable", row = %r.id, channel = %r.channel, delivery = delivery_id, error = %e, "outbox row does not parse as a notice");
                Notice::new(
                    NoticeKind::Error,
                    Severity::High,
                    "unreadable notice",
                    format!("outbox row {} does not parse: {e}", r.id),
                    TraceId::new(),
                )
            }
        };
        severity = severity.max(n.severity);
        first_seen = Some(first_seen.map_or(r.created, |t| t.min(r.created)));
        last_seen = Some(last_seen.map_or(r.created, |t| t.max(r.created)));
        // The message leads with the first of its most severe notices: a critical one is never
        // announced under an earlier low one's title.
        if first.as_ref().is_none_or(|f| n.severity > f.severity) {
            first = Some(n);
        }
    }
    let count = u64::try_from(rows.len()).unwrap_or(u64::MAX);
    let first = first.unwrap_or_else(|| {
        Notice::new(
            NoticeKind::Error,
            Severity::Info,
            "empty delivery",
            "",
            TraceId::new(),
        )
    });
    let mut body = first.body;
    if count > 1 {
        if !body.is_empty() {
            body.push_str("\n\n");
        }
        body.push_str(&format!("… and {} more", count - 1));
    }
    let now = Timestamp::now();
    Message {
        delivery_id: delivery_id.to_owned(),
        kind: first.kind,
        severity,
        title: first.title,
        body,
        trace_id: first.trace_id,
        count,
        first_seen: first_seen.unwrap_or(now),
        last_seen: last_seen.unwrap_or(now),
    }
}

/// At most `max` sends per `per`, as a log of recent send times.
struct SendLog {
    limit: Option<Throttle>,
    sent: VecDeque<Instant>,
}

impl SendLog {
    fn new(limit: Option<Throttle>) -> SendLog {
        SendLog {
            limit,
            sent: VecDeque::new(),
        }
    }

    /// How long to wait before the next send may go.
    fn wait(&mut self, now: Instant) -> Duration {
        let Some(t) = self.limit else {
            return Duration::ZERO;
        };
        while self
            .sent
            .front()
            .is_some_and(|s| now.duration_since(*s) >= t.per)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < usize::try_from(t.max).unwrap_or(usize::MAX) {
            return Duration::ZERO;
        }
        self.sent.front().map_or(Duration::ZERO, |s| {
            (*s + t.per).saturating_duration_since(now)
        })
    }

    fn record(&mut self, now: Instant) {
        if self.limit.is_some() {
            self.sent.push_back(now);
        }
    }
}

/// Sleeps `d` unless stopped first; `true` when stopped.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

fn until(t: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(t.as_millis() - now.as_millis()).unwrap_or(0))
}

/// An outcome that was decided (the message was sent, or refused) but not yet recorded in the store.
enum Unrecorded {
    /// Sent: mark the delivery delivered.
    Delivered {
        at: Timestamp,
        rows: usize,
        count: u64,
        attempts: u32,
        kind: NoticeKind,
        title: String,
    },
    /// Failed for now: retry no sooner than `due`.
    Retry { due: Timestamp, reason: String },
    /// Given up on: make it a dead letter.
    Dead {
        at: Timestamp,
        rows: usize,
        attempts: u32,
        reason: String,
    },
}

/// Writes an outcome to the store (and counts and logs it once it is written).
async fn record(
    shared: &Shared,
    name: &str,
    delivery: &str,
    u: &Unrecorded,
) -> Result<u64, sentinel_store::StoreError> {
    match u {
        Unrecorded::Delivered {
            at,
            rows,
            count,
            attempts,
            kind,
            title,
        } => {
            let n = shared.store.outbox_delivered(delivery, *at).await?;
            shared.counters.delivered(name, *rows);
            tracing::info!(evt = "notice_delivered", channel = %name, delivery = %delivery, count, attempts, kind = %kind, title = %title);
            Ok(n)
        }
        Unrecorded::Retry { due, reason } => {
            shared.store.outbox_retry(delivery, *due, reason).await
        }
        Unrecorded::Dead {
            at,
            rows,
            attempts,
            reason,
        } => dead(shared, name, delivery, *rows, *attempts, reason, *at).await,
    }
}

/// What became of one group.
enum Outcome {
    /// Carry on with the next group.
    Next,
    /// The store failed: wait a little before scanning again.
    StoreFailed,
    /// Asked to stop.
    Stopped,
}

/// Runs the worker of `channel` until `stop` turns true (or its sender is dropped).
pub(crate) async fn run(
    shared: Arc<Shared>,
    channel: Arc<dyn Channel>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let name = channel.name().to_owned();
    let mut log = SendLog::new(shared.router.throttle(&name));
    // Outcomes decided but not yet written to the store, by delivery id.
    let mut unrecorded: HashMap<String, Unrecorded> = HashMap::new();
    tracing::debug!(channel = %name, kind = channel.kind(), "delivery worker started");
    'scan: loop {
        if *stop.borrow() {
            break;
        }
        let now = Timestamp::now();
        let groups = match shared
            .store
            .outbox_due_groups(&name, now, GROUPS_PER_SCAN)
            .await
        {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(evt = "notify_outbox_failed", channel = %name, error = %e, "cannot read the outbox");
                if pause(&mut stop, STORE_BACKOFF).await {
                    break;
                }
                continue;
            }
        };
        if groups.is_empty() {
            let wait = match shared.store.outbox_next_due(&name).await {
                Ok(Some(t)) => until(t, Timestamp::now()).min(IDLE),
                Ok(None) => IDLE,
                Err(e) => {
                    tracing::error!(evt = "notify_outbox_failed", channel = %name, error = %e, "cannot read the outbox");
                    STORE_BACKOFF
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
            continue;
        }
        for g in groups {
            let outcome = deliver_group(
                &shared,
                channel.as_ref(),
                &mut log,
                &mut stop,
                &mut unrecorded,
                g,
            )
            .await;
            match outcome {
                Outcome::Next => {}
                Outcome::StoreFailed => {
                    if pause(&mut stop, STORE_BACKOFF).await {
                        break 'scan;
                    }
                    continue 'scan;
                }
                Outcome::Stopped => break 'scan,
            }
        }
    }
    tracing::debug!(channel = %name, "delivery worker stopped");
}

async fn deliver_group(
    shared: &Shared,
    channel: &dyn Channel,
    log: &mut SendLog,
    stop: &mut watch::Receiver<bool>,
    unrecorded: &mut HashMap<String, Unrecorded>,
    g: OutboxGroup,
) -> Outcome {
    let name = channel.name();
    let store = &shared.store;
    let (delivery, rows) = match g.delivery {
        Some(d) => {
            // Sent (or refused) already: only the store has to catch up; do not send it again.
            if let Some(u) = unrecorded.get(&d) {
                return match record(shared, name, &d, u).await {
                    Ok(_) => {
                        tracing::info!(evt = "notify_outcome_recorded_late", channel = %name, delivery = %d, "the store recorded an earlier outcome");
                        unrecorded.remove(&d);
                        Outcome::Next
                    }
                    Err(e) => {
                        tracing::error!(evt = "notify_outbox_failed", channel = %name, delivery = %d, error = %e, "still cannot record a delivery outcome; not sending it again");
                        Outcome::StoreFailed
                    }
                };
            }
            (d, g.rows)
        }
        None => {
            if g.rows.is_empty() {
                return Outcome::Next;
            }
            // The de-duplication window of this key on this channel, from the route that sends
            // the group's most severe notice here (none when no route does any more).
            let probe = fold("", &g.rows);
            let window = shared
                .router
                .target(name, probe.kind, probe.severity)
                .map_or(Duration::ZERO, |t| t.dedup_window);
            if !window.is_zero() {
                match store.outbox_last_delivered(name, &g.key).await {
                    Ok(Some(t)) => {
                        let open_until = t.plus(window);
                        if open_until > Timestamp::now() {
                            if let Err(e) = store.outbox_defer(name, &g.key, open_until).await {
                                tracing::error!(evt = "notify_outbox_failed", channel = %name, error = %e, "cannot defer a key");
                                return Outcome::StoreFailed;
                            }
                            tracing::debug!(channel = %name, key = %g.key, until = %open_until, "held for the de-duplication window");
                            return Outcome::Next;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(evt = "notify_outbox_failed", channel = %name, error = %e, "cannot read the last delivery");
                        return Outcome::StoreFailed;
                    }
                }
            }
            let delivery = crate::engine::new_id();
            let ids: Vec<String> = g.rows.iter().map(|r| r.id.clone()).collect();
            match store.outbox_assign(&delivery, &ids).await {
                Ok(n) if n == ids.len() as u64 => (delivery, g.rows),
                Ok(_) => match store.outbox_delivery_rows(&delivery).await {
                    Ok(rows) => (delivery, rows),
                    Err(e) => {
                        tracing::error!(evt = "notify_outbox_failed", channel = %name, error = %e, "cannot read a delivery");
                        return Outcome::StoreFailed;
                    }
                },
                Err(e) => {
                    tracing::error!(evt = "notify_outbox_failed", channel = %name, error = %e, "cannot assign a delivery id");
                    return Outcome::StoreFailed;
                }
            }
        }
    };
    if rows.is_empty() {
        return Outcome::Next;
    }
    loop {
        let wait = log.wait(Instant::now());
        if wait.is_zero() {
            break;
        }
        tracing::debug!(channel = %name, wait_ms = wait.as_millis() as u64, "throttled");
        if pause(stop, wait).await {
            return Outcome::Stopped;
        }
    }
    let message = fold(&delivery, &rows);
    let before = rows.iter().map(|r| r.attempts).max().unwrap_or(0);
    log.record(Instant::now());
    let sent = tokio::select! {
        r = channel.send(&message) => r,
        _ = stop.changed() => return Outcome::Stopped,
    };
    let now = Timestamp::now();
    let attempts = before.saturating_add(1);
    let outcome = match sent {
        Ok(()) => Unrecorded::Delivered {
            at: now,
            rows: rows.len(),
            count: message.count,
            attempts,
            kind: message.kind,
            title: message.title.clone(),
        },
        Err(SendError::Permanent(reason)) => {
            shared.counters.attempt_failed(name);
            Unrecorded::Dead {
                at: now,
                rows: rows.len(),
                attempts,
                reason,
            }
        }
        Err(SendError::Transient {
            reason,
            retry_after,
        }) => {
            shared.counters.attempt_failed(name);
            if attempts >= shared.retry.max_attempts.max(1) {
                Unrecorded::Dead {
                    at: now,
                    rows: rows.len(),
                    attempts,
                    reason,
                }
            } else {
                let delay = retry_delay(&shared.backoff, attempts, retry_after);
                tracing::warn!(evt = "notice_delivery_failed", channel = %name, delivery = %delivery, attempts, retry_in_ms = delay.as_millis() as u64, error = %reason, "delivery failed; will retry");
                Unrecorded::Retry {
                    due: now.plus(delay),
                    reason,
                }
            }
        }
    };
    match record(shared, name, &delivery, &outcome).await {
        Ok(_) => Outcome::Next,
        Err(e) => {
            tracing::error!(evt = "notify_outbox_failed", channel = %name, delivery = %delivery, error = %e, "cannot record a delivery outcome; kept in memory and recorded when the store works again (a restart before then sends it again under the same delivery id)");
            unrecorded.insert(delivery, outcome);
            Outcome::StoreFailed
        }
    }
}

fn retry_delay(b: &Backoff, attempts: u32, retry_after: Option<Duration>) -> Duration {
    b.delay(attempts, retry_after, &mut rand::thread_rng())
}

async fn dead(
    shared: &Shared,
    channel: &str,
    delivery: &str,
    rows: usize,
    attempts: u32,
    reason: &str,
    now: Timestamp,
) -> Result<u64, sentinel_store::StoreError> {
    let n = shared.store.outbox_dead(delivery, now, reason).await?;
    shared.counters.dead(channel, rows);
    tracing::error!(evt = "notice_dead_letter", channel = %channel, delivery = %delivery, attempts, count = rows, error = %reason, "notice not delivered; kept as a dead letter");
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_store::OutboxState;

    fn row(i: i64, n: &Notice) -> OutboxRow {
        OutboxRow {
            id: format!("r{i}"),
            channel: "c".into(),
            key: n.dedup_key(),
            body: serde_json::to_string(n).unwrap(),
            created: Timestamp::from_millis(1_000 + i),
            due: Timestamp::from_millis(0),
            delivery: None,
            attempts: 0,
            last_error: None,
            state: OutboxState::Pending,
            done_at: None,
        }
    }

    #[test]
    fn fold_leads_with_the_first_of_the_most_severe() {
        let t = TraceId::new();
        let a = Notice::new(
            NoticeKind::Alert,
            Severity::Low,
            "first",
            "body one",
            t.clone(),
        );
        let b = Notice::new(
            NoticeKind::Alert,
            Severity::Critical,
            "second",
            "body two",
            TraceId::new(),
        );
        let mut rows = vec![row(0, &a), row(1, &b), row(2, &a)];
        rows[2].body = "not json".into();
        let m = fold("d1", &rows);
        assert_eq!(m.delivery_id, "d1");
        assert_eq!(m.count, 3);
        // Led by the first of the most severe (the critical one), not by the earlier low one.
        assert_eq!(m.title, "second");
        assert_eq!(m.severity, Severity::Critical);
        assert_eq!(m.trace_id, b.trace_id);
        assert_eq!(m.body, "body two\n\n… and 2 more");
        assert_eq!(m.first_seen, Timestamp::from_millis(1_000));
        assert_eq!(m.last_seen, Timestamp::from_millis(1_002));
        let one = fold("d2", &rows[..1]);
        assert_eq!(one.count, 1);
        assert_eq!(one.body, "body one");
    }

    #[test]
    fn send_log_throttles_to_max_per_window() {
        let mut log = SendLog::new(Some(Throttle {
            max: 2,
            per: Duration::from_secs(10),
        }));
        let t0 = Instant::now();
        assert_eq!(log.wait(t0), Duration::ZERO);
        log.record(t0);
        log.record(t0 + Duration::from_secs(1));
        assert_eq!(
            log.wait(t0 + Duration::from_secs(2)),
            Duration::from_secs(8)
        );
        assert_eq!(log.wait(t0 + Duration::from_secs(10)), Duration::ZERO);
        let mut free = SendLog::new(None);
        for _ in 0..100 {
            free.record(t0);
        }
        assert_eq!(free.wait(t0), Duration::ZERO);
    }
}
