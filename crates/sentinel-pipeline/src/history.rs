//! The investigator's view of a source's history, read from the store ([`StoreHistory`]).

use async_trait::async_trait;
use sentinel_core::{Subject, Timestamp};
use sentinel_intel::{History, SourceHistory};
use sentinel_store::Store;

/// A subject's earlier alerts and actions, counted in the store over the `alerts.subject` and
/// `actions.subject` indexes.
#[derive(Clone)]
pub struct StoreHistory {
    store: Store,
}

impl StoreHistory {
    /// Reads history from `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[async_trait]
impl History for StoreHistory {
    async fn history(
        &self,
        subject: &Subject,
        since: Timestamp,
        before: Timestamp,
    ) -> Result<SourceHistory, String> {
        let h = self
            .store
            .subject_history(subject, since, before)
            .await
            .map_err(|e| format!("store: {e}"))?;
        Ok(SourceHistory {
            alerts: h.alerts,
            actions: h.actions,
            last_seen: h.last_alert,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_core::{Alert, AlertId, Severity, TraceId};
    use sentinel_store::{Record, WriterOptions};
    use std::time::Duration;

    fn alert(ts: i64, ip: &str) -> Alert {
        Alert {
            id: AlertId::new(),
            ts: Timestamp::from_millis(ts),
            detector: "heuristic".into(),
            scenario: "web_attack".into(),
            severity: Severity::High,
            score: 70,
            confidence: 0.7,
            subject: Subject::Ip(ip.parse().unwrap()),
            reasons: vec![],
            evidence: vec![],
            trace_id: TraceId::new(),
        }
    }

    /// Stored alerts reach the investigation: an investigator with the store's history scores a source
    /// that offended twice before higher than a fresh one, and says why.
    #[tokio::test]
    async fn the_store_history_reaches_the_investigation() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let (writer, task) = store.writer(WriterOptions {
            queue_capacity: 64,
            batch_size: 16,
            flush_interval: Duration::from_millis(5),
        });
        for ts in [10_000, 20_000, 30_000] {
            writer
                .write(Record::from(alert(ts, "203.0.113.7")))
                .await
                .unwrap();
        }
        drop(writer);
        task.finish().await.unwrap();

        let h = StoreHistory::new(store.clone());
        let got = h
            .history(
                &Subject::Ip("203.0.113.7".parse().unwrap()),
                Timestamp::from_millis(15_000),
                Timestamp::from_millis(40_000),
            )
            .await
            .unwrap();
        assert_eq!(
            got,
            SourceHistory {
                alerts: 2,
                actions: 0,
                last_seen: Some(Timestamp::from_millis(30_000))
            }
        );

        let inv = sentinel_intel::Investigator::new(Vec::new(), Duration::from_secs(2))
            .with_history(std::sync::Arc::new(h), Duration::from_secs(60));
        let repeat = inv.investigate(alert(40_000, "203.0.113.7")).await;
        let fresh = inv.investigate(alert(40_000, "203.0.113.99")).await;
        assert_eq!(
            i32::from(repeat.risk_score) - i32::from(fresh.risk_score),
            15
        );
        let c = repeat
            .contributions
            .iter()
            .find(|c| c.input == "history")
            .unwrap();
        assert!(c.detail.starts_with("3 earlier alerts"), "{}", c.detail);
    }

    /// A store that cannot answer becomes an uncertainty flag, not a failed investigation.
    #[tokio::test]
    async fn a_closed_store_is_uncertainty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        store.close().await;
        let inv = sentinel_intel::Investigator::new(Vec::new(), Duration::from_secs(2))
            .with_history(
                std::sync::Arc::new(StoreHistory::new(store)),
                Duration::from_secs(60),
            );
        let i = inv.investigate(alert(40_000, "203.0.113.7")).await;
        assert!(
            i.uncertainty
                .iter()
                .any(|u| u.starts_with("history: store: ")),
            "{:?}",
            i.uncertainty
        );
        assert_eq!(i.risk_score, 75);
    }
}
