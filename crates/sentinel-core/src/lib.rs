//! Sentinel's domain model and the seams between pipeline stages.
//!
//! This crate owns the types that travel along the golden path (`Event` → `Alert` → `Investigation` →
//! `Plan` → `ActionRecord`), the audit record, identifiers and timestamps, redaction of secrets, and the
//! traits every source, detector, enricher, policy, actuator, notifier, audit log and bus implements.
//! It must not do I/O or start an async runtime (it uses tokio's runtime-independent bounded channel, the
//! type of a source's line queue, and spawns onto the caller's runtime in [`tasks::Tasks::spawn`]):
//! everything else depends on it. The task tracker ([`tasks`]) counts the daemon's work in flight.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod action;
pub mod alert;
pub mod audit;
pub mod counts;
pub mod event;
pub mod ids;
pub mod observed;
pub mod params;
pub mod redact;
pub mod seams;
pub mod tasks;
pub mod time;

pub use action::{
    ActionKind, ActionRecord, ActionSpec, ActionState, Applied, Mode, Origin, Plan, Preview, Scope,
};
pub use alert::{Alert, Contribution, Evidence, Investigation, Reason, Severity, Subject, Verdict};
pub use audit::{AuditKind, AuditRecord, Notice, NoticeKind};
pub use counts::SourceCounts;
pub use event::{Event, EventKind};
pub use ids::{ActionId, AlertId, EventId, InvestigationId, PlanId, TraceId};
pub use observed::Observed;
pub use params::{ActionLimits, ActionParams, SpecError, SpecField};
pub use redact::Redactor;
pub use seams::{
    ActError, Actuator, AuditError, AuditLog, Bus, BusError, BusRx, Delivery, Detector,
    EnrichError, Enricher, LineTx, Notifier, NotifyError, Policy, RawLine, Receipt, Scored,
    Shutdown, SinkClosed, Source, SourceError, StateCounts, Topic,
};
pub use time::Timestamp;
