//! The overview page, `GET /ui/`: counters, and charts of events, alerts and actions over a window
//! (`?window=1h|24h|7d`, 24 hours by default), the top sources and scenarios, and actions by kind.
//!
//! Everything comes from the store's rollups (five reads: three series, two tops; the totals and the
//! actions by kind are summed from the series) and from counts read from indexes alone (active
//! actions and subjects from `actions_state_expires`, investigations from the `ts` index): nothing on
//! this page scans a record table, so it renders in the same time with a million events as with none
//! (measured by `cargo bench -p sentinel-api --bench ui_pages`).

use super::charts::{bar_figure, time_figure, BarChart, Series, TimeChart};
use super::{layout, page_query, urlencode, Nav, UiError, Viewer};
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use sentinel_core::Timestamp;
use sentinel_store::{bucket_of, RollupPoint, RollupSeries, RollupTotals, BUCKET_MS};
use std::collections::BTreeMap;

/// The window the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last hour, in 5-minute steps.
    Hour,
    /// The last 24 hours, in 1-hour steps.
    Day,
    /// The last 7 days, in 3-hour steps.
    Week,
}

const WINDOWS: [Window; 3] = [Window::Hour, Window::Day, Window::Week];

impl Window {
    /// Parses `1h`, `24h` or `7d`.
    pub fn parse(s: &str) -> Option<Window> {
        WINDOWS.into_iter().find(|w| w.as_str() == s)
    }

    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// Words for the window.
    pub fn label(self) -> &'static str {
        match self {
            Window::Hour => "last hour",
            Window::Day => "last 24 hours",
            Window::Week => "last 7 days",
        }
    }

    /// Its length in ms.
    pub fn ms(self) -> i64 {
        match self {
            Window::Hour => 3_600_000,
            Window::Day => 86_400_000,
            Window::Week => 7 * 86_400_000,
        }
    }

    /// One step of its charts in ms.
    pub fn step_ms(self) -> i64 {
        match self {
            Window::Hour => BUCKET_MS,
            Window::Day => 3_600_000,
            Window::Week => 3 * 3_600_000,
        }
    }
}

/// The overview's routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ui/", get(page))
}

/// Event kinds drawn as their own series; the rest are summed as "other".
const KINDS_DRAWN: usize = 3;
/// Rows of the top tables.
const TOP: u32 = 10;

/// The `n` keys of `points` with the most counts, most first (ties by key), as
/// [`sentinel_store::Store::rollup_top`] ranks them.
fn top(points: &[RollupPoint], n: usize) -> Vec<(String, u64)> {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for p in points {
        *by.entry(p.key.as_str()).or_default() += p.n;
    }
    let mut ranked: Vec<(String, u64)> = by.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

/// Every value of a series per step, in the order of `steps`.
fn per_step(points: &[RollupPoint], steps: &[i64], step: i64, key: Option<&str>) -> Vec<u64> {
    let mut by: BTreeMap<i64, u64> = BTreeMap::new();
    for p in points.iter().filter(|p| key.is_none_or(|k| p.key == k)) {
        *by.entry(bucket_of(p.bucket, step)).or_default() += p.n;
    }
    steps
        .iter()
        .map(|s| by.get(s).copied().unwrap_or(0))
        .collect()
}

async fn page(
    viewer: Viewer,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Markup, UiError> {
    let q = page_query(query.as_deref(), &["window"])?;
    let window = match q.get("window") {
        None => Window::Day,
        Some(w) => Window::parse(w)
            .ok_or_else(|| UiError::BadRequest("`window`: must be 1h, 24h or 7d".into()))?,
    };
    let now = Timestamp::now();
    let since = Timestamp::from_millis(now.as_millis() - window.ms());
    let until = Timestamp::from_millis(now.as_millis() + 1);
    let step = window.step_ms();
    let store = &state.store;
    // Totals and actions by kind are summed from the series read for the charts (the same rollup
    // rows over the same buckets), not read again.
    let (active, subjects, investigations, events, alerts, actions, sources, scenarios) = futures::try_join!(
        store.count_active_actions(now),
        store.count_active_subjects(now),
        store.count_investigations_since(since),
        store.rollup_series(RollupSeries::EventKind, since, until, step),
        store.rollup_series(RollupSeries::AlertSeverity, since, until, step),
        store.rollup_series(RollupSeries::ActionKind, since, until, step),
        store.rollup_top(RollupSeries::AlertSubject, since, until, TOP),
        store.rollup_top(RollupSeries::AlertScenario, since, until, TOP),
    )?;
    let total = |points: &[RollupPoint]| points.iter().map(|p| p.n).sum::<u64>();
    let totals = RollupTotals {
        events: total(&events),
        alerts: total(&alerts),
        actions: total(&actions),
    };
    let kinds = top(&actions, TOP as usize);

    let first = bucket_of(since.as_millis(), step);
    let last = bucket_of(now.as_millis(), step);
    let steps: Vec<i64> = (0..)
        .map(|i| first + i * step)
        .take_while(|s| *s <= last)
        .collect();

    // Events by kind: the busiest kinds each a series, the rest as "other".
    let mut event_series: Vec<Series> = Vec::new();
    let total_values = per_step(&events, &steps, step, None);
    event_series.push(Series {
        name: "all events".into(),
        values: total_values.clone(),
    });
    for (k, _) in top(&events, KINDS_DRAWN) {
        event_series.push(Series {
            values: per_step(&events, &steps, step, Some(&k)),
            name: k,
        });
    }
    let dated = window == Window::Week;
    let events_chart = TimeChart {
        id: "chart-events",
        caption: "Events over time, by kind",
        steps: steps.clone(),
        dated,
        series: event_series,
    };
    let responses_chart = TimeChart {
        id: "chart-alerts-actions",
        caption: "Alerts and actions over time",
        steps: steps.clone(),
        dated,
        series: vec![
            Series {
                name: "alerts".into(),
                values: per_step(&alerts, &steps, step, None),
            },
            Series {
                name: "actions".into(),
                values: per_step(&actions, &steps, step, None),
            },
        ],
    };
    let sources_chart = BarChart {
        id: "chart-sources",
        caption: "Top sources (alerts by subject)",
        key_header: "Subject",
        items: sources,
    };
    let scenarios_chart = BarChart {
        id: "chart-scenarios",
        caption: "Alerts by scenario",
        key_header: "Scenario",
        items: scenarios,
    };
    let kinds_chart = BarChart {
        id: "chart-action-kinds",
        caption: "Actions by kind",
        key_header: "Kind",
        items: kinds,
    };

    let body = html! {
        nav class="windows" aria-label="Window" {
            ul {
                @for w in WINDOWS {
                    li {
                        @if w == window {
                            a href={ "/ui/?window=" (w.as_str()) } aria-current="true" { (w.label()) }
                        } @else {
                            a href={ "/ui/?window=" (w.as_str()) } { (w.label()) }
                        }
                    }
                }
            }
        }
        section id="counters" aria-labelledby="counters-h" {
            h2 id="counters-h" { "At a glance (" (window.label()) ")" }
            dl class="counters" {
                div { dt { "Events" } dd id="count-events" { (totals.events) } }
                div { dt { "Alerts" } dd id="count-alerts" { (totals.alerts) } }
                div { dt { "Investigations" } dd id="count-investigations" { (investigations) } }
                div { dt { "Actions taken" } dd id="count-actions" { (totals.actions) } }
                div { dt { "Actions active now" } dd id="count-active-actions" { (active) } }
                div { dt { "Subjects under an active decision" } dd id="count-active-subjects" { (subjects) } }
            }
        }
        section id="charts" aria-label="Charts" {
            (time_figure(&events_chart))
            (time_figure(&responses_chart))
            (bar_figure(&sources_chart, "top-sources", |s| Some(format!("/ui/alerts?subject={}", urlencode(s)))))
            (bar_figure(&scenarios_chart, "top-scenarios", |s| Some(format!("/ui/alerts?scenario={}", urlencode(s)))))
            (bar_figure(&kinds_chart, "actions-by-kind", |_| Some("/ui/decisions".to_string())))
        }
    };
    Ok(layout("Overview", Nav::Overview, Some(&viewer), body))
}
