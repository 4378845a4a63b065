//! Shared state of the router.

use crate::auth::Auth;
use sentinel_core::Redactor;
use sentinel_pipeline::intake::IntakeTx;
use sentinel_pipeline::metrics::Metrics;
use sentinel_store::Store;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The default [`ApiSettings::max_notify_pending`].
pub const DEFAULT_MAX_NOTIFY_PENDING: u64 = 10_000;

/// Limits and switches of the HTTP edge.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest request body accepted (and longest NDJSON line).
    pub max_body_bytes: usize,
    /// How long `/v1/defend` waits for the plan.
    pub defend_timeout: Duration,
    /// How long event intake waits for room in a full queue before answering 429.
    pub intake_wait: Duration,
    /// How long any request may take (NDJSON streams excepted) before a 503.
    pub request_timeout: Duration,
    /// Requests served at once; more are refused with 503 and `Retry-After`.
    pub max_in_flight: usize,
    /// Outbox rows waiting for delivery above which `POST /v1/notify` refuses new notices (429 with
    /// `Retry-After`, counted in `sentinel_notices_rejected_busy_total`): a flood of sends while a
    /// channel is down must not grow the store without bound. The daemon's own notices (alerts,
    /// errors, crashes) are not refused.
    pub max_notify_pending: u64,
    /// The connection server's limits and the NDJSON streams' ([`crate::serve`]).
    pub edge: crate::serve::EdgeSettings,
    /// Rate limits per client address and per key (`api.rate_limit`; off by default here).
    pub rate: crate::ratelimit::RateSettings,
    /// Signed webhook routes (`api.webhooks`; none by default: a route exists only with its secret).
    pub webhooks: crate::webhook::WebhookSettings,
    /// The per-install identity secret `POST /v1/identity` proves possession of (`None`: no such
    /// route; see `routes/identity.rs`).
    pub server_id: Option<crate::ServerId>,
    /// How list answers are paged.
    pub paging: PagingSettings,
    /// Set on a node whose roles take no events (no sensor): why, for the 503 its event routes
    /// answer (instead of "shutting down").
    pub no_intake: Option<String>,
}

impl ApiSettings {
    /// What an event route answers when the intake is closed: this node takes no events, or it is
    /// shutting down.
    pub fn intake_closed(&self, then: &str) -> String {
        match &self.no_intake {
            Some(why) => why.clone(),
            None => format!("Sentinel is shutting down{then}"),
        }
    }
}

/// How list answers are paged (see `paging.rs`).
#[derive(Debug, Clone)]
pub struct PagingSettings {
    /// The byte budget of one list answer (`api.max_page_bytes`): a page stops before the item that
    /// would take it over; an item larger than the whole budget is answered as a marker.
    pub max_page_bytes: usize,
}

impl Default for PagingSettings {
    fn default() -> Self {
        Self {
            max_page_bytes: crate::paging::DEFAULT_MAX_PAGE_BYTES,
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            defend_timeout: Duration::from_secs(2),
            intake_wait: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            max_notify_pending: DEFAULT_MAX_NOTIFY_PENDING,
            server_id: None,
            paging: PagingSettings::default(),
            rate: Default::default(),
            webhooks: Default::default(),
            edge: crate::serve::EdgeSettings::default(),
            no_intake: None,
        }
    }
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// Records, for queries and readiness.
    pub store: Store,
    /// The pipeline's intake queue.
    pub intake: IntakeTx,
    /// API keys.
    pub auth: Arc<Auth>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Set once the pipeline runs.
    pub ready: Arc<AtomicBool>,
    /// Masks secrets in posted events.
    pub redactor: Arc<Redactor>,
    /// Limits.
    pub settings: ApiSettings,
    /// The Merkle audit log, for records, proofs and checkpoints (`None` where this node keeps none).
    pub audit: Option<sentinel_audit::Log>,
    /// The action ledger, for manual decisions (`None` where this role has none).
    pub decisions: Option<Arc<dyn crate::decisions::Decisions>>,
    /// The investigation, for one-off lookups and its counters (`None` where this role has none).
    pub intel: Option<sentinel_intel::Intel>,
    /// The notification engine, for `/v1/notify` (`None` where this role sends none).
    pub notify: Option<sentinel_notify::Notifications>,
    /// Where operator actions without a desk of their own (sending a notice, retrying a dead letter)
    /// are recorded in the audit trail (`None`: they are logged only).
    pub operator_audit: Option<sentinel_pipeline::recorder::Recorder>,
    /// Process facts and hooks for `GET /v1/system/heartbeat` (`SystemInfo::default()` where none).
    pub system: crate::SystemInfo,
    /// The dashboard's sessions and settings (`api.ui`).
    pub ui: crate::ui::UiState,
}
