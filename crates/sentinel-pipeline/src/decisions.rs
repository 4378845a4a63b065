//! Manual decisions: what the API (or any other front end) asks of the ledger, and the trait the
//! ledger's desk answers it through. The ledger behind [`Decisions`] stays the one source of truth.

use async_trait::async_trait;
use sentinel_core::{ActionId, ActionRecord, ActionSpec, TraceId};
use std::net::IpAddr;

/// A decision to add, already parsed into its typed action.
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    /// What to do, to whom, for how long, with which (typed) parameters.
    pub spec: ActionSpec,
    /// Why (kept in the plan's reason).
    pub reason: String,
    /// Only show what would be done.
    pub dry_run: bool,
    /// The request's trace.
    pub trace_id: TraceId,
}

/// Which live decisions to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionSelector {
    /// One decision by id.
    Id(ActionId),
    /// Every live decision on this address.
    Ip(IpAddr),
    /// Every live decision.
    All,
}

/// Why a decision was not answered with its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionError {
    /// The request was refused (allowlist, bad parameter): a `400`.
    Invalid(String),
    /// The decision was made but its records were not committed: a `503`, never a 2xx.
    NotStored(String),
}

impl From<String> for DecisionError {
    fn from(reason: String) -> Self {
        DecisionError::Invalid(reason)
    }
}

/// The ledger, as the API sees it. An `Ok` answer means the records it describes are committed.
#[async_trait]
pub trait Decisions: Send + Sync {
    /// Adds (or previews) a decision. The daemon checks what only it knows (`policy.max_ttl`, the
    /// quarantine roots) and answers a problem as `` `field`: reason ``.
    async fn add(&self, req: DecisionRequest) -> Result<ActionRecord, DecisionError>;
    /// Live decisions, soonest expiry first.
    async fn list(&self) -> Vec<ActionRecord>;
    /// The kinds of action this ledger can take (a front end offers these). The default is every kind.
    fn kinds(&self) -> Vec<sentinel_core::ActionKind> {
        sentinel_core::ActionKind::ALL.to_vec()
    }
    /// One page of live decisions, newest first (by id): at most `limit` older than `before`, and
    /// whether more follow. The default pages [`Decisions::list`]; a desk over a large ledger should
    /// copy only the page.
    async fn list_page(
        &self,
        before: Option<sentinel_core::ActionId>,
        limit: usize,
    ) -> (Vec<ActionRecord>, bool) {
        let mut all = self.list().await;
        all.retain(|r| before.is_none_or(|b| r.id < b));
        all.sort_by_key(|r| std::cmp::Reverse(r.id));
        let more = all.len() > limit;
        all.truncate(limit);
        (all, more)
    }
    /// Reverts the selected live decisions; returns them in their new state.
    async fn delete(
        &self,
        sel: DecisionSelector,
        trace: TraceId,
    ) -> Result<Vec<ActionRecord>, DecisionError>;
}
