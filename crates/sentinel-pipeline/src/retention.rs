//! Event retention: old events are pruned once a minute.

use sentinel_core::Timestamp;
use sentinel_store::Store;
use std::time::Duration;

/// Prunes events older than `retention`, and beyond `max_events`, every minute until aborted.
pub fn spawn_retention(
    store: Store,
    retention: Duration,
    max_events: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let cutoff =
                Timestamp::from_millis(Timestamp::now().as_millis() - retention.as_millis() as i64);
            match store.prune_events(cutoff, max_events).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(evt = "events_pruned", count = n),
                Err(e) => tracing::error!(evt = "prune_failed", error = %e),
            }
        }
    })
}
