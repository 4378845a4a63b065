//! Alerts per scenario in a recent window, for the dashboard's sources page: bounded work whatever
//! the store holds. The newest alerts at or after `since` are read through the `alerts_ts` index
//! (newest first, at most `cap` of them) and grouped; when the cap is reached the figures cover only
//! the newest `cap` alerts, and [`ScenarioWindow::truncated_at`] says from when. The window runs on
//! SQLite and PostgreSQL alike; [`Store::scenario_window_plan`] is SQLite's query plan, so SQLite only.

use crate::backend::on_backend;
use crate::error::StoreError;
use crate::store::Store;
use sentinel_core::Timestamp;

/// One scenario's alerts in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioAlerts {
    /// The scenario (as stored: any text a detector gave).
    pub scenario: String,
    /// Alerts in the window.
    pub alerts: u64,
    /// The newest one's time.
    pub last: Timestamp,
}

/// Alerts by scenario since a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScenarioWindow {
    /// Per scenario, most alerts first (then by name).
    pub scenarios: Vec<ScenarioAlerts>,
    /// `Some(t)` when more alerts were raised in the window than were read: the figures cover the
    /// newest ones, from `t` on.
    pub truncated_at: Option<Timestamp>,
}

/// The SQL of [`Store::alerts_by_scenario_since`] (public for `EXPLAIN QUERY PLAN` checks).
pub const SCENARIO_WINDOW_SQL: &str = "SELECT scenario, COUNT(*), MAX(ts), MIN(ts) FROM \
     (SELECT scenario, ts FROM alerts WHERE ts >= ? ORDER BY ts DESC LIMIT ?) AS w GROUP BY scenario";

impl Store {
    /// Alerts per scenario at or after `since`, reading at most `cap` alerts (the newest).
    pub async fn alerts_by_scenario_since(
        &self,
        since: Timestamp,
        cap: u32,
    ) -> Result<ScenarioWindow, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = on_backend!(self, |pool| {
            sqlx::query_as(&self.sql(SCENARIO_WINDOW_SQL))
                .bind(since.as_millis())
                .bind(i64::from(cap))
                .fetch_all(pool)
                .await?
        });
        let total: i64 = rows.iter().map(|r| r.1).sum();
        let oldest = rows.iter().map(|r| r.3).min();
        let mut scenarios: Vec<ScenarioAlerts> = rows
            .into_iter()
            .map(|(scenario, n, last, _)| ScenarioAlerts {
                scenario,
                alerts: u64::try_from(n).unwrap_or(0),
                last: Timestamp::from_millis(last),
            })
            .collect();
        scenarios.sort_by(|a, b| {
            b.alerts
                .cmp(&a.alerts)
                .then_with(|| a.scenario.cmp(&b.scenario))
        });
        let truncated_at = (total >= i64::from(cap) && cap > 0)
            .then(|| oldest.map(Timestamp::from_millis))
            .flatten();
        Ok(ScenarioWindow {
            scenarios,
            truncated_at,
        })
    }

    /// The query plan SQLite picks for [`SCENARIO_WINDOW_SQL`], one detail line per step.
    pub async fn scenario_window_plan(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {SCENARIO_WINDOW_SQL}"))
                .bind(0i64)
                .bind(1i64)
                .fetch_all(self.sqlite("Store::scenario_window_plan")?)
                .await?;
        Ok(rows.into_iter().map(|r| r.3).collect())
    }
}
