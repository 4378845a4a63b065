//! `GET /ui/sources`: sources and scenarios. Per log source (and its parser or fail2ban filter): lines
//! read, parsed, and unparsed by reason; the HTTP doors; per scenario: what it counted and the alerts
//! it raised, since the start and in the last 24 hours. A source, filter or scenario that matched
//! nothing is marked `silent` with the words "matched nothing" and how long it has been running, so
//! the operator can tell a quiet log from a broken filter.
//!
//! Figures come from memory ([`sentinel_pipeline::metrics::Metrics::sources_snapshot`], the counters
//! `/metrics` renders) and one bounded store read (the newest alerts of the last 24 hours, through the
//! `alerts_ts` index, at most [`WINDOW_CAP`]).

use crate::state::AppState;
use crate::ui::{head_row, layout, time_tag, urlencode, Nav, UiError, Viewer};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use sentinel_core::Timestamp;
use sentinel_pipeline::metrics::{FilterStats, SourceStats};
use std::collections::BTreeMap;
use std::time::Duration;

/// The window of the "alerts in the last 24 h" column.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The most alerts the page reads from the store for that column (the newest).
pub const WINDOW_CAP: u32 = 20_000;

/// The page's routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ui/sources", get(page))
}

/// How long since `t`, to the second.
fn since(t: Timestamp, now: Timestamp) -> String {
    let secs = (now.as_millis() - t.as_millis()).max(0) / 1000;
    humantime::format_duration(Duration::from_secs(secs as u64)).to_string()
}

fn reasons(list: &[(String, u64)]) -> Markup {
    html! {
        @if list.is_empty() {
            "none"
        } @else {
            ul class="reasons counts" {
                @for (reason, n) in list {
                    li class="pair" { span class="reason" { (reason) } ": " (n) }
                }
            }
        }
    }
}

/// One row of `table#sources`: a source with one of its parsers.
fn source_row(s: &SourceStats, f: Option<&FilterStats>, now: Timestamp) -> Markup {
    let matched = f.map_or(0, |f| f.matched);
    let silent = matched == 0;
    let running = s.since.map(|t| since(t, now));
    html! {
        tr data-source=(s.source) data-filter=[f.map(|f| f.filter.as_str())] class=[silent.then_some("silent")] {
            th scope="row" { (s.source) }
            td { @if let Some(f) = f { (f.filter) } @else { "none" } }
            td { @if let Some(t) = s.since { (time_tag(t)) } @else { "unknown" } }
            td class="num" { (s.read.lines_read) }
            td class="num" { (matched) }
            td class="num" { (f.map_or(0, |f| f.unmatched)) }
            td { (reasons(f.map_or(&[][..], |f| &f.unmatched_by_reason[..]))) }
            td class="num" { (s.read.errors) }
            td {
                @if silent {
                    strong class="state state-silent" { "matched nothing" }
                    " in " (s.read.lines_read) " lines read"
                    @if let Some(r) = &running { " over " (r) " of running" }
                } @else {
                    span class="state state-ok" { "matching" }
                }
            }
        }
    }
}

/// One scenario's row, from memory and the store's window.
struct ScenarioRow {
    matched: Option<u64>,
    alerts: u64,
    window: u64,
    last: Option<Timestamp>,
}

/// `GET /ui/sources` (viewer).
async fn page(viewer: Viewer, State(state): State<AppState>) -> Result<Markup, UiError> {
    let now = Timestamp::now();
    let snap = state.metrics.sources_snapshot();
    let window_from = Timestamp::from_millis(now.as_millis() - WINDOW.as_millis() as i64);
    let window = state
        .store
        .alerts_by_scenario_since(window_from, WINDOW_CAP)
        .await?;
    let mut scenarios: BTreeMap<String, ScenarioRow> = BTreeMap::new();
    for s in &snap.scenarios {
        scenarios.insert(
            s.name.clone(),
            ScenarioRow {
                matched: s.matched,
                alerts: s.alerts,
                window: 0,
                last: None,
            },
        );
    }
    for w in &window.scenarios {
        let row = scenarios.entry(w.scenario.clone()).or_insert(ScenarioRow {
            matched: None,
            alerts: 0,
            window: 0,
            last: None,
        });
        row.window = w.alerts;
        row.last = Some(w.last);
    }
    let started = state.system.started_at;
    let body = html! {
        p class="summary" {
            "Running for " (since(started, now)) " (since " (time_tag(started)) "). "
            "Log lines parsed: " (snap.lines_parsed) "; not parsed: " (snap.lines_unparsed) "."
        }
        section aria-labelledby="h-sources" {
            h2 id="h-sources" { "Log sources" }
            table id="sources" {
                caption { "Lines read, parsed and not parsed, per source and parser (since the source started)" }
                (head_row(["Source", "Parser or filter", "Running since", "Lines read", "Parsed", "Not parsed", "Not parsed, by reason", "Errors", "State"]))
                tbody {
                    @for s in &snap.sources {
                        @if s.filters.is_empty() {
                            (source_row(s, None, now))
                        } @else {
                            @for f in &s.filters { (source_row(s, Some(f), now)) }
                        }
                    }
                    tr data-source="http" {
                        th scope="row" { "HTTP intake (API and webhooks)" }
                        td { "JSON events" }
                        td { (time_tag(started)) }
                        td class="num" { (snap.http.accepted + snap.http.invalid + snap.http.rejected_busy) }
                        td class="num" { (snap.http.accepted) }
                        td class="num" { (snap.http.invalid + snap.http.rejected_busy) }
                        td {
                            ul class="reasons counts" {
                                li class="pair" { span class="reason" { "invalid" } ": " (snap.http.invalid) }
                                li class="pair" { span class="reason" { "queue_full" } ": " (snap.http.rejected_busy) }
                            }
                        }
                        td class="num" { "0" }
                        td { span class="state state-ok" { "accepting" } }
                    }
                }
            }
            @if snap.sources.is_empty() {
                p { "No log source is configured: events come in over HTTP only." }
            }
        }
        section aria-labelledby="h-unparsed" {
            h2 id="h-unparsed" { "Lines not parsed, by reason (all sources)" }
            (reasons(&snap.unparsed_by_reason))
        }
        section aria-labelledby="h-scenarios" {
            h2 id="h-scenarios" { "Scenarios" }
            @if let Some(t) = window.truncated_at {
                p class="note" {
                    "More than " (WINDOW_CAP) " alerts in the last 24 hours: the window columns count the newest "
                    (WINDOW_CAP) ", raised since " (time_tag(t)) "."
                }
            }
            table id="scenarios" {
                caption { "Observations counted and alerts raised, per scenario" }
                (head_row(["Scenario", "Matched since start", "Alerts since start", "Alerts, last 24 h", "Last alert", "State"]))
                tbody {
                    @for (name, r) in &scenarios {
                        @let silent = r.matched == Some(0);
                        tr data-scenario=(name) class=[silent.then_some("silent")] {
                            th scope="row" {
                                a href={ "/ui/alerts?scenario=" (urlencode(name)) } { (name) }
                            }
                            td class="num" { @if let Some(m) = r.matched { (m) } @else { "not counted here" } }
                            td class="num" { (r.alerts) }
                            td class="num" { (r.window) }
                            td { @if let Some(t) = r.last { (time_tag(t)) } @else { "none in 24 h" } }
                            td {
                                @if silent {
                                    strong class="state state-silent" { "matched nothing" }
                                    " in " (since(started, now)) " of running"
                                } @else if r.alerts > 0 || r.window > 0 {
                                    span class="state state-ok" { "alerting" }
                                } @else {
                                    span class="state state-ok" { "matching" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(
        "Sources and scenarios",
        Nav::Sources,
        Some(&viewer),
        body,
    ))
}
