//! The seams: one trait per kind of plugin. Implementations live in the stage crates.
//!
//! The traits use `async_trait` so that pipelines can hold `Box<dyn …>` of any plugin kind.

use crate::action::{ActionKind, ActionSpec, Applied, Plan, Preview};
use crate::alert::{Alert, Evidence, Investigation, Reason, Subject};
use crate::audit::{AuditRecord, Notice};
use crate::event::Event;
use crate::time::Timestamp;
use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;

/// A future that completes when the process is shutting down.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One line as a source read it, before any parsing: sources deliver lines, and turning them into [`Event`]s
/// is the parse stage's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// The line, without its line ending; invalid UTF-8 is replaced.
    pub text: String,
    /// Where it came from: `file:/var/log/auth.log`, `syslog:udp:127.0.0.1:5514`, `journald`.
    pub origin: std::sync::Arc<str>,
    /// When the source read it.
    pub received: Timestamp,
    /// The time the transport already knows (journald's `__REALTIME_TIMESTAMP`), if any.
    pub ts_hint: Option<Timestamp>,
}

/// Where a source delivers its lines: a bounded queue; sending waits while it is full (back-pressure), so a
/// source reads no faster than the pipeline parses.
pub type LineTx = tokio::sync::mpsc::Sender<RawLine>;

/// The pipeline no longer accepts what a source sends.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the pipeline is closed")]
pub struct SinkClosed;

/// Errors a source can end with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source could not read its input.
    #[error("source i/o: {0}")]
    Io(String),
    /// The pipeline closed under it.
    #[error(transparent)]
    Closed(#[from] SinkClosed),
}

/// Reads lines from somewhere (files, a socket, the journal) until shut down.
#[async_trait]
pub trait Source: Send {
    /// What kind of source this is (`file`, `syslog`, `journald`).
    fn kind(&self) -> &'static str;
    /// Delivers every line it reads to `out` until `shutdown` completes, the input ends, or `out` is closed
    /// (`SourceError::Closed`).
    async fn run(self: Box<Self>, out: LineTx, shutdown: Shutdown) -> Result<(), SourceError>;
}

/// What a detector made of one event, alert or not: what a caller waiting on that event is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// 0–100.
    pub score: u8,
    /// The scenario recognised (`none` when nothing fired).
    pub scenario: String,
    /// Every signal that fired.
    pub reasons: Vec<Reason>,
}

/// How much state a detector dropped: keys idle past their window, live keys evicted at a cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Keys dropped because they were idle.
    pub expired: u64,
    /// Live keys evicted because a cap was reached.
    pub evicted: u64,
}

/// Turns events into alerts. Pure and synchronous: no I/O, no clock but the one passed in.
pub trait Detector: Send {
    /// A stable name, e.g. `heuristic`.
    fn id(&self) -> &str;
    /// Looks at one event and appends any alerts it raises.
    fn observe(&mut self, ev: &Event, out: &mut Vec<Alert>);
    /// Scores one event for a caller who waits on the answer, appending any alerts. `seen` is the
    /// event as posted (it may hold what redaction masked: score it, never quote it); alerts quote
    /// `stored`, the redacted event. A detector that does not score single events observes `stored`
    /// and answers `None`.
    fn assess(&mut self, seen: &Event, stored: &Event, out: &mut Vec<Alert>) -> Option<Scored> {
        let _ = seen;
        self.observe(stored, out);
        None
    }
    /// Lets time pass (bucket leaks, window expiry) and appends any alerts that raises.
    fn tick(&mut self, now: Timestamp, out: &mut Vec<Alert>);
    /// The state this detector has dropped so far (nothing, for a stateless one).
    fn state_counts(&self) -> StateCounts {
        StateCounts::default()
    }
}

/// Errors an enricher can return; the investigation records them as uncertainty.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrichError {
    /// The provider did not answer in time.
    #[error("provider timed out")]
    Timeout,
    /// The provider refused (rate limit, auth).
    #[error("provider refused: {0}")]
    Refused(String),
    /// The provider's answer could not be understood.
    #[error("provider answer malformed: {0}")]
    Malformed(String),
    /// The subject is not something this enricher knows about.
    #[error("not applicable")]
    NotApplicable,
}

/// Finds out more about a subject.
#[async_trait]
pub trait Enricher: Send + Sync {
    /// The provider's name.
    fn name(&self) -> &str;
    /// Looks the subject up.
    async fn enrich(&self, subject: &Subject, alert: &Alert) -> Result<Evidence, EnrichError>;
}

/// Chooses a response. Pure.
pub trait Policy: Send + Sync {
    /// Decides what to do about an investigation.
    fn decide(&self, inv: &Investigation) -> Plan;
}

/// Errors an actuator can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActError {
    /// The action's parameters are not acceptable (a dangerous path, a bad address).
    #[error("refused: {0}")]
    Refused(String),
    /// The kernel or engine said no.
    #[error("backend: {0}")]
    Backend(String),
    /// The revert token could not be understood.
    #[error("bad revert token: {0}")]
    BadToken(String),
}

/// Applies and reverts one kind of action.
#[async_trait]
pub trait Actuator: Send + Sync {
    /// Which kind of action this applies.
    fn kind(&self) -> ActionKind;
    /// Dry run: the exact rules, commands or calls, with no effect.
    async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError>;
    /// Applies the action; the result is all `revert` needs.
    async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError>;
    /// Applies many actions, atomically where the backend allows (one nftables transaction); one result
    /// per spec, in order. The default applies them one by one.
    async fn apply_batch(&self, specs: &[ActionSpec]) -> Vec<Result<Applied, ActError>> {
        let mut out = Vec::with_capacity(specs.len());
        for s in specs {
            out.push(self.apply(s).await);
        }
        out
    }
    /// Reverts; idempotent (already gone is `Ok`).
    async fn revert(&self, t: &Applied) -> Result<(), ActError>;
    /// What is really in place now.
    async fn observe(&self) -> Result<Vec<Applied>, ActError>;
}

/// Errors a notifier can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// Delivery failed.
    #[error("delivery failed: {0}")]
    Delivery(String),
}

/// Tells people.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one notice.
    async fn notify(&self, n: &Notice) -> Result<(), NotifyError>;

    /// Sends a burst of notices; one error stands for the whole burst. The default sends them one
    /// by one (stopping at the first failure); a notifier with a store commits them together.
    async fn notify_many(&self, ns: &[Notice]) -> Result<(), NotifyError> {
        for n in ns {
            self.notify(n).await?;
        }
        Ok(())
    }
}

/// Errors an audit log can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Storage failed.
    #[error("audit storage: {0}")]
    Storage(String),
}

/// Word that an audit record is committed: it survives a crash from now on.
///
/// It carries no position and no inclusion proof yet: the trail is a table the store writer fills in
/// batches, which does not report row positions. The Merkle log (its own issue) brings both, and
/// signed checkpoints with them; until then the trait promises only what the store can keep.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// When the commit was confirmed.
    pub committed_at: Timestamp,
}

/// The append-only audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one record and answers once it is committed.
    async fn append(&self, r: AuditRecord) -> Result<Receipt, AuditError>;
    /// Appends one record in order, answering once it is queued, not committed: for stages that must
    /// not wait on the disk. A record that fails later is counted and logged by the log, never dropped
    /// silently.
    async fn append_queued(&self, r: AuditRecord) -> Result<(), AuditError>;
}

/// Errors a bus can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The bus is unreachable or closed.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The bus is away and the local buffer that keeps messages until it is back is full: this
    /// message was refused (and counted), nothing already buffered was dropped.
    #[error("bus buffer full: {capacity} messages already wait for the bus, this one was refused")]
    BufferFull {
        /// How many messages the buffer holds.
        capacity: usize,
    },
    /// The bus answered, and said no (a wrong key type, a malformed entry): retrying will not help.
    #[error("bus refused: {0}")]
    Refused(String),
}

/// A named stream on the bus (`events`, `alerts`, `decisions`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(pub String);

/// One message as a consumer received it.
///
/// Delivery is at least once: a message stays pending in its consumer group until a consumer
/// acknowledges it with [`BusRx::ack`]. A message never acknowledged (its consumer died, or gave up
/// on it) is delivered again, to this or another consumer of the group, with `attempts` raised; so
/// handlers must be idempotent (key what they do on a domain id, or on `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message's id on its topic: the same for every group and every redelivery of this message,
    /// unique on the topic. The handle [`BusRx::ack`] takes.
    pub id: String,
    /// The message as published.
    pub payload: Vec<u8>,
    /// How many times the group has delivered this message, this time included (1 the first time).
    pub attempts: u32,
}

/// A subscription's receiving end: one consumer of a consumer group.
#[async_trait]
pub trait BusRx: Send {
    /// The next message, or `None` when the bus is closed. Transient trouble (the bus away for a while)
    /// is waited out inside; an error is something retrying will not mend.
    async fn recv(&mut self) -> Option<Result<Delivery, BusError>>;
    /// Acknowledges a message by its [`Delivery::id`]: the group will not deliver it again. Call it once
    /// the message's effect is durable (stored, applied). Acknowledging twice, or an id the group no
    /// longer holds, is `Ok`. An error leaves the message pending: it will be delivered again.
    async fn ack(&mut self, id: &str) -> Result<(), BusError>;

    /// Acknowledges several messages (one round trip where the bus allows); an error leaves them
    /// all pending. The default acknowledges them one by one, stopping at the first error.
    async fn ack_many(&mut self, ids: &[String]) -> Result<(), BusError> {
        for id in ids {
            self.ack(id).await?;
        }
        Ok(())
    }
}

/// Carries messages between roles.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publishes one message. `Ok` means the bus took it (or, for a bus that buffers while its server is
    /// away, that it is buffered and will be sent in order).
    async fn publish(&self, topic: &Topic, m: Vec<u8>) -> Result<(), BusError>;
    /// Subscribes as one more consumer of `group` on `topic`; the consumers of a group share its
    /// messages, and every group gets every message.
    async fn subscribe(&self, topic: &Topic, group: &str) -> Result<Box<dyn BusRx>, BusError>;
}
