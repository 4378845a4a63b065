//! Sentinel's store: every event, alert, investigation, plan, action and audit record, plus the API
//! keys, in one SQLite file (the embedded default) or one PostgreSQL database (scale-out).
//!
//! This crate owns the schema (embedded migrations), the batched [`StoreWriter`] the pipeline writes
//! through (with commit acknowledgements, [`AckGroup`]), and the typed, filtered, paged reads the API
//! serves. [`Store::open_url`] picks the engine; callers see the same [`Store`] and [`StoreWriter`]
//! on both. Every call runs on both but SQLite's own query plan ([`Store::scenario_window_plan`]),
//! which fails on PostgreSQL with [`StoreError::Unsupported`], and [`backup_to`], which copies an
//! SQLite file.
//! Each record is kept whole as JSON in a `body` column with the fields reads filter on copied into
//! indexed columns. The writer's metrics (batch sizes, failures) are named here and registered by
//! [`WriterMonitor::register_metrics`]. It must not make pipeline decisions, hash secrets or know
//! about HTTP: callers hand it finished records and hashes.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod ack;
mod api_keys;
mod backend;
mod backup;
mod digest;
mod error;
mod feed;
mod filter;
mod hold;
mod listen;
mod metrics;
mod migrations;
mod outbox;
mod outbox_dead;
mod persist;
mod read;
mod record;
mod rollup;
mod scenario_window;
mod store;
mod ui_alerts;
mod writer;

pub use ack::{AckFailure, AckGroup, AckSummary, AckToken, MAX_LISTED_FAILURES};
pub use api_keys::{ApiKeyRow, Revoke};
pub use backup::{backup_to, StoreBackup};
pub use digest::StoreDigest;
pub use error::{StoreError, TryWriteError};
pub use feed::{FeedCursor, FeedFilter, FeedItem, FeedKind, FeedPage, FEED_MAX_LIMIT};
pub use filter::{ActionFilter, AlertFilter, EventFilter, Page, DEFAULT_LIMIT, MAX_LIMIT};
pub use hold::StoreHold;
pub use outbox::{
    DeadDelivery, NewOutboxRow, OutboxCount, OutboxGroup, OutboxRow, OutboxState, MAX_GROUP_ROWS,
};
pub use read::{AlertDetail, SubjectHistory, AUDIT_PER_TRACE_LIMIT};
pub use record::{audited_table, content_hash, sha256_hex, stored_body, AuditRow, Record};
pub use rollup::{
    bucket_of, RollupPoint, RollupSeries, RollupTotals, ACTIVE_ACTIONS_SQL, ACTIVE_SUBJECTS_SQL,
    BUCKET_MS, SUBJECT_BUCKET_MS,
};
pub use scenario_window::{ScenarioAlerts, ScenarioWindow, SCENARIO_WINDOW_SQL};
pub use store::{Store, StoreOptions, SyncMode};
pub use ui_alerts::{AlertActions, AuditTrail};
pub use writer::{
    BatchSizes, StoreWriter, WriterMonitor, WriterOptions, WriterStats, WriterTask, BATCH_BUCKETS,
};
