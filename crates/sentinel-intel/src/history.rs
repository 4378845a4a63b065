//! A source's history in the store: how often it was alerted on and acted against recently.
//!
//! The investigator asks a [`History`] concurrently with the enrichers, under the same deadline; the
//! store-backed implementation lives in the pipeline (this crate never touches the store).

use async_trait::async_trait;
use sentinel_core::{Subject, Timestamp};
use serde::{Deserialize, Serialize};

/// What the store remembers about a subject over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHistory {
    /// Earlier alerts about the subject in the window.
    pub alerts: u64,
    /// Actions taken against the subject in the window.
    pub actions: u64,
    /// When the subject was last alerted on before the alert under investigation, if ever.
    pub last_seen: Option<Timestamp>,
}

/// Looks up a subject's history.
#[async_trait]
pub trait History: Send + Sync {
    /// The subject's alerts and actions from `since` up to (not including) `before`, the time of the
    /// alert under investigation: that alert is already stored, and must not count as its own history
    /// (whether its row is committed yet would otherwise make the answer a race). An error becomes an
    /// uncertainty flag.
    async fn history(
        &self,
        subject: &Subject,
        since: Timestamp,
        before: Timestamp,
    ) -> Result<SourceHistory, String>;
}
