//! Commit signals across processes on PostgreSQL: a follower of the store (the live stream) in one
//! process wakes when a writer in another commits.
//!
//! Every transaction that adds events or audit rows (`Tx::begin_in_feed_order`) sends a notification
//! on [`CHANNEL`] carrying the id of the store handle that wrote it; PostgreSQL delivers it at commit
//! and drops it on rollback. Each PostgreSQL store handle runs one [`CommitListener`] task that turns
//! the notifications of other handles into ticks of [`Store::commits`](crate::Store::commits) (its own
//! commits tick it directly). When the listener's connection is lost, the next successful read ticks
//! once, since a notification may have been missed meanwhile. The task ends with the last clone of
//! its store, or when the store is closed. This module must not read records.

use crate::error::StoreError;
use sqlx::postgres::{PgListener, PgPool};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::watch;

/// The notification channel of commits.
pub(crate) const CHANNEL: &str = "sentinel_commits";
/// How long the listener waits before reading again after an error.
const RETRY: Duration = Duration::from_secs(1);

/// Numbers the store handles of this process (with the process id: unique among processes too).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The task turning other handles' commit notifications into ticks; stopped when dropped.
#[derive(Debug)]
pub(crate) struct CommitListener {
    id: String,
    task: tokio::task::JoinHandle<()>,
}

impl CommitListener {
    /// Listens on [`CHANNEL`] on a connection of `pool` (held for as long as the listener runs) and
    /// ticks `commits` for each notification another handle sent.
    pub(crate) async fn start(
        pool: &PgPool,
        commits: Weak<watch::Sender<u64>>,
    ) -> Result<CommitListener, StoreError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let own = id.clone();
        let task = tokio::spawn(async move {
            loop {
                let tick = match listener.try_recv().await {
                    Ok(Some(n)) => n.payload() != own,
                    // The connection was lost and is made again: something may have been missed.
                    Ok(None) => true,
                    Err(sqlx::Error::PoolClosed) => break,
                    Err(error) => {
                        tracing::warn!(%error, "store commit listener failed; listening again");
                        tokio::time::sleep(RETRY).await;
                        true
                    }
                };
                if tick {
                    let Some(commits) = commits.upgrade() else {
                        break; // the store is gone
                    };
                    commits.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
        });
        Ok(CommitListener { id, task })
    }

    /// The id this handle's notifications carry.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Stops listening now.
    pub(crate) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for CommitListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
