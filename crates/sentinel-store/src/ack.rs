//! Commit acknowledgements: how a caller learns that the records it handed to the writer are stored.
//!
//! A request makes one [`AckGroup`] and gives each record it needs stored an [`AckToken`] of that group.
//! The writer settles a token after the transaction holding its record commits (or fails). A token
//! dropped without being settled (a closed queue, a stage that ended, a record thrown away) counts as a
//! failure, so a waiter is never left hanging. The group keeps counts, not a slot per record, so its
//! memory stays constant however many records a long stream sends; only the first
//! [`MAX_LISTED_FAILURES`] failures are kept with their item and reason.
//!
//! This module must not know about records or SQL: it only counts.

use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// At most this many failures are kept with their item and reason (all are counted).
pub const MAX_LISTED_FAILURES: usize = 1000;

/// One record that could not be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckFailure {
    /// The caller's label for the item (an index or a line number).
    pub item: u64,
    /// Why it was not stored.
    pub error: String,
}

/// Where a group stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckSummary {
    /// Tokens not settled yet.
    pub outstanding: u64,
    /// Tokens whose record is committed.
    pub committed: u64,
    /// Tokens whose record was not stored.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct State {
    summary: AckSummary,
    failures: Vec<AckFailure>,
}

/// The acknowledgements of one request: counts of outstanding, committed and failed tokens.
#[derive(Debug, Default)]
pub struct AckGroup {
    state: Mutex<State>,
    settled: Notify,
    /// Nobody answers a person on it: the writer may let its records wait for a fuller batch.
    patient: bool,
}

impl AckGroup {
    /// A new, empty group.
    pub fn new() -> Arc<AckGroup> {
        Arc::new(AckGroup::default())
    }

    /// A new group whose waiter is a machine, not a person (a bus message acknowledged once its
    /// records are stored): the writer groups its records with others for up to its flush
    /// interval, as for records nobody waits on, instead of committing at once.
    pub fn patient() -> Arc<AckGroup> {
        Arc::new(AckGroup {
            patient: true,
            ..AckGroup::default()
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain counters: a panic elsewhere cannot leave it half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A token for one record, labelled `item` (reported back if the record is not stored).
    pub fn token(self: &Arc<Self>, item: u64) -> AckToken {
        self.lock().summary.outstanding += 1;
        AckToken {
            group: Some(Arc::clone(self)),
            item,
        }
    }

    /// The counts right now.
    pub fn summary(&self) -> AckSummary {
        self.lock().summary
    }

    /// The failures kept so far (at most [`MAX_LISTED_FAILURES`]), oldest first.
    pub fn failures(&self) -> Vec<AckFailure> {
        self.lock().failures.clone()
    }

    /// Waits until no token of this group is outstanding, then returns the counts. Tokens made after
    /// this returns are not waited for: make every token before waiting.
    pub async fn settled(&self) -> AckSummary {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            // Registered before the check, so a settlement between the check and the wait is not missed.
            notified.as_mut().enable();
            let summary = self.summary();
            if summary.outstanding == 0 {
                return summary;
            }
            notified.await;
        }
    }

    fn settle(&self, outcome: Result<(), (u64, String)>) {
        let mut st = self.lock();
        st.summary.outstanding = st.summary.outstanding.saturating_sub(1);
        match outcome {
            Ok(()) => st.summary.committed += 1,
            Err((item, error)) => {
                st.summary.failed += 1;
                if st.failures.len() < MAX_LISTED_FAILURES {
                    st.failures.push(AckFailure { item, error });
                }
            }
        }
        let done = st.summary.outstanding == 0;
        drop(st);
        if done {
            self.settled.notify_waiters();
        }
    }

    fn withdraw(&self) {
        let mut st = self.lock();
        st.summary.outstanding = st.summary.outstanding.saturating_sub(1);
        let done = st.summary.outstanding == 0;
        drop(st);
        if done {
            self.settled.notify_waiters();
        }
    }
}

/// The promise to report on one record. Settle it with [`AckToken::committed`] or
/// [`AckToken::failed`]; dropping it unsettled reports a failure.
#[derive(Debug)]
pub struct AckToken {
    group: Option<Arc<AckGroup>>,
    item: u64,
}

impl AckToken {
    /// The caller's label for the item.
    pub fn item(&self) -> u64 {
        self.item
    }

    /// Whether someone waits on this record now (the writer commits at once): false for a token
    /// of a [`AckGroup::patient`] group.
    pub fn urgent(&self) -> bool {
        self.group.as_ref().is_some_and(|g| !g.patient)
    }

    /// Another token of the same group with the same label, for a further record the same request
    /// promises. Make it before this one can be settled, so the group cannot settle in between.
    pub fn sibling(&self) -> AckToken {
        match &self.group {
            Some(g) => g.token(self.item),
            None => AckToken {
                group: None,
                item: self.item,
            },
        }
    }

    /// The record is committed.
    pub fn committed(mut self) {
        if let Some(g) = self.group.take() {
            g.settle(Ok(()));
        }
    }

    /// The record was not stored, for `error`.
    pub fn failed(mut self, error: impl Into<String>) {
        if let Some(g) = self.group.take() {
            g.settle(Err((self.item, error.into())));
        }
    }

    /// The record was never handed over (the caller was told so another way): neither committed nor
    /// failed.
    pub fn withdraw(mut self) {
        if let Some(g) = self.group.take() {
            g.withdraw();
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if let Some(g) = self.group.take() {
            g.settle(Err((
                self.item,
                "dropped before it was stored (Sentinel is stopping or a stage failed)".into(),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_group_settles_when_every_token_is_settled() {
        let g = AckGroup::new();
        let a = g.token(0);
        let b = g.token(1);
        let c = b.sibling();
        let d = g.token(2);
        let waiter = tokio::spawn({
            let g = Arc::clone(&g);
            async move { g.settled().await }
        });
        a.committed();
        b.failed("disk full");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "two tokens are still outstanding");
        d.withdraw();
        drop(c);
        let s = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            s,
            AckSummary {
                outstanding: 0,
                committed: 1,
                failed: 2
            }
        );
        let f = g.failures();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].item, f[0].error.as_str()), (1, "disk full"));
        assert_eq!(f[1].item, 1);
        assert!(f[1].error.contains("dropped"), "{f:?}");
    }

    #[tokio::test]
    async fn an_empty_group_is_settled_and_failures_are_bounded() {
        let g = AckGroup::new();
        assert_eq!(g.settled().await, AckSummary::default());
        for i in 0..(MAX_LISTED_FAILURES as u64 + 10) {
            g.token(i).failed("x");
        }
        assert_eq!(g.summary().failed, MAX_LISTED_FAILURES as u64 + 10);
        assert_eq!(g.failures().len(), MAX_LISTED_FAILURES);
    }
}
