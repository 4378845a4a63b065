//! The daemon's notifications: builds the engine ([`sentinel_notify::build`]) on the daemon's store,
//! with a digest source that adds the investigation's provider errors to the store's figures, and
//! runs the forwarders that turn things the daemon sees outside the pipeline into notices: error-level
//! log lines (kind `error`), new signed audit checkpoints (kind `audit_checkpoint`). Its counters are
//! exported as `sentinel_notify_*` metrics ([`NotifyMetrics`]) and in the heartbeat (`queues.notify`).
//!
//! A forwarder runs only when a route takes its kind (else the notice would only repeat the log).
//!
//! Order at shutdown ([`NoticeTasks::stop`]): the forwarders hand over what they hold, then the
//! delivery workers stop; rows not yet delivered stay in the outbox and go out at the next start.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use sentinel_core::{Notice, NoticeKind, Notifier, Severity, Timestamp, TraceId};
use sentinel_intel::Intel;
use sentinel_notify::{
    ChannelStats, DigestFigures, DigestSource, Notifications, NotifyConfig, NotifyTask,
    StoreDigestSource,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The digest's top-N lists' length.
const DIGEST_TOP: usize = 10;

/// The running notification engine and the daemon's forwarders.
pub struct NoticeTasks {
    engine: NotifyTask,
    stop: watch::Sender<bool>,
    forwarders: Vec<JoinHandle<()>>,
}

impl NoticeTasks {
    /// Stops the forwarders (each queues what it already holds), then the delivery workers. Call it
    /// after the pipeline drained (its last notices are in the outbox) and before the store closes.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for f in self.forwarders {
            if let Err(e) = f.await {
                tracing::error!(evt = "notice_forwarder_failed", error = %e);
            }
        }
        self.engine.stop().await;
    }
}

/// Builds the engine from `cfg` on `store` and starts the forwarders. Fails (with the channel's
/// name) when a channel cannot be built: the daemon does not start with a channel that cannot send.
pub fn start(
    cfg: &NotifyConfig,
    store: sentinel_store::Store,
    intel: Option<Intel>,
    audit_log: Option<sentinel_audit::Log>,
) -> Result<(Notifications, NoticeTasks), String> {
    let digest: Arc<dyn DigestSource> = Arc::new(DaemonDigest {
        store: StoreDigestSource::new(store.clone(), DIGEST_TOP),
        intel,
        seen: Mutex::new(BTreeMap::new()),
    });
    let (notifications, engine) = sentinel_notify::build(cfg, store, Some(digest))?;
    let (stop, stopped) = watch::channel(false);
    let mut forwarders = Vec::new();
    // Without a route for them these would only repeat, as `evt=notice`, what the log already says.
    let routed = |kind, severity| cfg.routes.iter().any(|r| r.matches(kind, severity));
    if let Some(rx) =
        crate::logs::take_errors().filter(|_| routed(NoticeKind::Error, Severity::High))
    {
        forwarders.push(tokio::spawn(forward_errors(
            notifications.clone(),
            rx,
            stopped.clone(),
        )));
    }
    if let Some(log) = audit_log.filter(|_| routed(NoticeKind::AuditCheckpoint, Severity::Info)) {
        forwarders.push(tokio::spawn(forward_checkpoints(
            notifications.clone(),
            log.subscribe_checkpoints(),
            stopped,
        )));
    }
    tracing::info!(
        evt = "notify_ready",
        channels = ?cfg.channels.keys().collect::<Vec<_>>(),
        routes = cfg.routes.len(),
        digest = cfg.digest.is_some(),
    );
    Ok((
        notifications,
        NoticeTasks {
            engine,
            stop,
            forwarders,
        },
    ))
}

/// Queues `n`; a failure (the store) is logged, the daemon runs on.
async fn send(n: &Notifications, notice: Notice) {
    if let Err(e) = n.notify(&notice).await {
        tracing::warn!(evt = "notice_failed", kind = %notice.kind, title = %notice.title, error = %e);
    }
}

/// The notice for an error-level log line: kind `error`, severity high, keyed by its `evt` (a wave of
/// the same error is one message with a count).
pub fn error_notice(line: &crate::logs::ErrorLine) -> Notice {
    let trace = line
        .trace
        .as_deref()
        .and_then(TraceId::parse)
        .unwrap_or_default();
    Notice::new(
        NoticeKind::Error,
        Severity::High,
        format!("error: {}", line.evt),
        line.line.clone(),
        trace,
    )
    .with_key(line.evt.clone())
}

async fn forward_errors(
    n: Notifications,
    mut rx: tokio::sync::mpsc::Receiver<crate::logs::ErrorLine>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let line = tokio::select! {
            biased;
            l = rx.recv() => l,
            _ = stop.wait_for(|v| *v) => None,
        };
        let Some(line) = line else { break };
        send(&n, error_notice(&line)).await;
    }
    // What was logged before the stop is still told.
    while let Ok(line) = rx.try_recv() {
        send(&n, error_notice(&line)).await;
    }
}

/// The notice for a new signed audit checkpoint (kind `audit_checkpoint`, info): its size, root and
/// the signed note, which a receiver can keep as an off-host witness.
pub fn checkpoint_notice(cp: &sentinel_audit::note::SignedCheckpoint) -> Notice {
    let root = cp.text.lines().nth(2).unwrap_or_default();
    Notice::new(
        NoticeKind::AuditCheckpoint,
        Severity::Info,
        format!("audit checkpoint: {} records", cp.checkpoint.size),
        format!("size: {}\nroot: {root}\n\n{}", cp.checkpoint.size, cp.text),
        TraceId::new(),
    )
    .with_key("audit_checkpoint")
}

async fn forward_checkpoints(
    n: Notifications,
    mut rx: watch::Receiver<sentinel_audit::note::SignedCheckpoint>,
    mut stop: watch::Receiver<bool>,
) {
    // The checkpoint current at start is not news.
    rx.borrow_and_update();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|v| *v) => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
        let cp = rx.borrow_and_update().clone();
        send(&n, checkpoint_notice(&cp)).await;
    }
}

/// The daily digest's figures: the store's, plus each remote provider's failed requests since the
/// previous digest (since the daemon started, for the first): the providers keep running totals
/// only, so this subtracts the totals seen at the previous digest.
struct DaemonDigest {
    store: StoreDigestSource,
    intel: Option<Intel>,
    seen: Mutex<BTreeMap<String, u64>>,
}

#[async_trait::async_trait]
impl DigestSource for DaemonDigest {
    async fn figures(&self, since: Timestamp, until: Timestamp) -> Result<DigestFigures, String> {
        let mut f = self.store.figures(since, until).await?;
        if let Some(intel) = &self.intel {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            for p in intel.stats().providers {
                let x = p.stats.failures;
                // Addresses a provider does not look up are not errors.
                let total = x.rate_limited
                    + x.unauthorized
                    + x.status
                    + x.malformed
                    + x.timeout
                    + x.transport;
                let before = seen.insert(p.name.clone(), total).unwrap_or(0);
                let delta = total.saturating_sub(before);
                if delta > 0 {
                    f.provider_errors.push((p.name, delta));
                }
            }
        }
        Ok(f)
    }
}

/// The heartbeat's `queues.notify`: the engine's counters as JSON.
pub fn heartbeat_hook(n: Notifications) -> sentinel_api::JsonHook {
    Arc::new(move || serde_json::to_value(n.stats()).unwrap_or(serde_json::Value::Null))
}

/// The engine's counters as `sentinel_notify_*` metrics, read at each scrape; per channel with a
/// `channel` label (names from the configuration).
#[derive(Debug, Clone)]
pub struct NotifyMetrics(pub Notifications);

type Pick = fn(&ChannelStats) -> u64;

/// Per-channel counters: name without `_total`, help, value.
const COUNTERS: [(&str, &str, Pick); 4] = [
    (
        "sentinel_notify_delivered",
        "Messages a channel delivered (a message may fold several notices), per channel.",
        |c| c.delivered,
    ),
    (
        "sentinel_notify_folded",
        "Notices folded into a message with others of the same key, per channel.",
        |c| c.folded,
    ),
    (
        "sentinel_notify_attempts_failed",
        "Delivery attempts that failed (each retry counts), per channel.",
        |c| c.attempts_failed,
    ),
    (
        "sentinel_notify_dead",
        "Messages moved to the dead letters after their last attempt, per channel.",
        |c| c.dead,
    ),
];

/// Per-channel gauges.
const GAUGES: [(&str, &str, Pick); 2] = [
    (
        "sentinel_notify_outbox_pending",
        "Outbox rows waiting for delivery, per channel.",
        |c| c.outbox_pending,
    ),
    (
        "sentinel_notify_outbox_dead",
        "Outbox rows in the dead letters, per channel.",
        |c| c.outbox_dead,
    ),
];

impl Collector for NotifyMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        let totals: [(&str, &str, u64); 3] = [
            (
                "sentinel_notify_accepted",
                "Notices accepted into the outbox (on disk).",
                s.accepted,
            ),
            (
                "sentinel_notify_unrouted",
                "Notices no route matched (logged only).",
                s.unrouted,
            ),
            (
                "sentinel_notify_store_errors",
                "Notices the outbox could not take (store errors).",
                s.store_errors,
            ),
        ];
        for (name, help, v) in totals {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        for (name, help, pick) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (ch, c) in &s.channels {
                ConstCounter::new(pick(c)).encode(family.encode_family(&[("channel", ch)])?)?;
            }
        }
        for (name, help, pick) in GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (ch, c) in &s.channels {
                ConstGauge::new(i64::try_from(pick(c)).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&[("channel", ch)])?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// An error line is a high `error` notice keyed by its `evt`, its body the whole line.
    #[test]
    fn an_error_line_is_keyed_by_its_evt() {
        let trace = TraceId::new();
        let n = error_notice(&crate::logs::ErrorLine {
            evt: "stage_crashed".into(),
            trace: Some(trace.as_str().to_owned()),
            line: "{\"evt\":\"stage_crashed\"}".into(),
        });
        assert_eq!((n.kind, n.severity), (NoticeKind::Error, Severity::High));
        assert_eq!(n.title, "error: stage_crashed");
        assert_eq!(n.dedup_key(), "error:stage_crashed");
        assert_eq!(n.body, "{\"evt\":\"stage_crashed\"}");
        assert_eq!(n.trace_id, trace);
    }
}
