//! The store's part of the daily digest: what was seen and done in a window of time.
//!
//! Counts come from the indexed columns (`events.ts`, `alerts.ts`/`scenario`/`subject`,
//! `actions.created`/`updated`/`kind`/`state`); this module computes figures only and must not format
//! or send anything.

use crate::backend::on_backend;
use crate::error::StoreError;
use crate::store::Store;
use sentinel_core::Timestamp;
use serde::Serialize;

/// Figures for `[since, until)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreDigest {
    /// Events accepted.
    pub events: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts by scenario (detector), most first.
    pub alerts_by_scenario: Vec<(String, u64)>,
    /// Actions decided, by kind, most first.
    pub actions_by_kind: Vec<(String, u64)>,
    /// The subjects with the most alerts (`ip:…`, `user:…`), most first, at most `top`.
    pub top_sources: Vec<(String, u64)>,
    /// Actions undone in the window (reverted by an operator or expired).
    pub reverted: u64,
    /// The latest of those, as `"<kind> <subject>"`, newest first, at most `top`.
    pub reverted_recent: Vec<String>,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn pairs(rows: Vec<(String, i64)>) -> Vec<(String, u64)> {
    rows.into_iter().map(|(k, n)| (k, count(n))).collect()
}

impl Store {
    /// What happened between `since` (inclusive) and `until` (exclusive); lists of sources and of
    /// reverted actions hold at most `top` entries.
    pub async fn digest(
        &self,
        since: Timestamp,
        until: Timestamp,
        top: usize,
    ) -> Result<StoreDigest, StoreError> {
        let (s, u) = (since.as_millis(), until.as_millis());
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        let events: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar(&self.sql("SELECT COUNT(*) FROM events WHERE ts >= ? AND ts < ?"))
                .bind(s)
                .bind(u)
                .fetch_one(pool)
                .await?
        });
        let alerts: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar(&self.sql("SELECT COUNT(*) FROM alerts WHERE ts >= ? AND ts < ?"))
                .bind(s)
                .bind(u)
                .fetch_one(pool)
                .await?
        });
        let by_scenario: Vec<(String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(
                "SELECT scenario, COUNT(*) AS n FROM alerts WHERE ts >= ? AND ts < ? \
                 GROUP BY scenario ORDER BY n DESC, scenario ASC",
            ))
            .bind(s)
            .bind(u)
            .fetch_all(pool)
            .await?
        });
        let by_kind: Vec<(String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(
                "SELECT kind, COUNT(*) AS n FROM actions WHERE created >= ? AND created < ? \
                 GROUP BY kind ORDER BY n DESC, kind ASC",
            ))
            .bind(s)
            .bind(u)
            .fetch_all(pool)
            .await?
        });
        let sources: Vec<(String, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(
                "SELECT subject, COUNT(*) AS n FROM alerts WHERE ts >= ? AND ts < ? \
                 GROUP BY subject ORDER BY n DESC, subject ASC LIMIT ?",
            ))
            .bind(s)
            .bind(u)
            .bind(top)
            .fetch_all(pool)
            .await?
        });
        let reverted: i64 = on_backend!(self, |pool| {
            sqlx::query_scalar(&self.sql(
                "SELECT COUNT(*) FROM actions WHERE state IN ('reverted', 'expired') \
                 AND updated >= ? AND updated < ?",
            ))
            .bind(s)
            .bind(u)
            .fetch_one(pool)
            .await?
        });
        let recent: Vec<(String, String)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(
                "SELECT kind, subject FROM actions WHERE state IN ('reverted', 'expired') \
                 AND updated >= ? AND updated < ? ORDER BY updated DESC, id DESC LIMIT ?",
            ))
            .bind(s)
            .bind(u)
            .bind(top)
            .fetch_all(pool)
            .await?
        });
        Ok(StoreDigest {
            events: count(events),
            alerts: count(alerts),
            alerts_by_scenario: pairs(by_scenario),
            actions_by_kind: pairs(by_kind),
            top_sources: pairs(sources),
            reverted: count(reverted),
            reverted_recent: recent
                .into_iter()
                .map(|(k, subj)| format!("{k} {subj}"))
                .collect(),
        })
    }
}
