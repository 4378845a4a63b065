//! A typed reading of what the log sources, their parsers and the scenarios have counted, for the
//! dashboard's sources page ([`Metrics::sources_snapshot`]). It reads the same counters `/metrics`
//! renders (nothing is copied on a timer), so the page and a scrape agree.

use super::Metrics;
use sentinel_core::{SourceCounts, Timestamp};
use std::collections::BTreeMap;

/// One parser (a fail2ban filter or a built-in format) of one source: what it matched and what not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// The parser's name (the filter's, or the format's).
    pub filter: String,
    /// Lines it understood.
    pub matched: u64,
    /// Lines it did not.
    pub unmatched: u64,
    /// [`FilterStats::unmatched`] by reason (`no_match`, `ignored`, or the malformed part), sorted.
    pub unmatched_by_reason: Vec<(String, u64)>,
}

/// One running log source (a tailed file, a jail, journald, a syslog listener) by its `source` label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// The source's label, as in `/metrics` (`file:…`, `jail:…`, `journald`, `syslog:…`).
    pub source: String,
    /// When it started (`None` for a source whose parser counted lines but that registered no reader).
    pub since: Option<Timestamp>,
    /// The source's own counters (lines and bytes read, errors, …).
    pub read: SourceCounts,
    /// Its parsers' counts.
    pub filters: Vec<FilterStats>,
}

impl SourceStats {
    /// Lines its parsers understood.
    pub fn parsed(&self) -> u64 {
        self.filters.iter().map(|f| f.matched).sum()
    }

    /// Lines its parsers did not understand.
    pub fn unparsed(&self) -> u64 {
        self.filters.iter().map(|f| f.unmatched).sum()
    }
}

/// Events that came in over HTTP (`POST /v1/events`, `/v1/defend`, webhooks) rather than from a log
/// source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpIntakeStats {
    /// Events accepted at the HTTP doors: every accepted event less the log lines parsed (a log line
    /// parsed but not yet handed to a full intake queue makes this briefly lower than the truth).
    pub accepted: u64,
    /// Events refused as malformed.
    pub invalid: u64,
    /// Events refused because the pipeline queue was full.
    pub rejected_busy: u64,
}

/// One scenario's figures since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScenarioStats {
    /// The scenario's name.
    pub name: String,
    /// Observations it counted (`None` when the engine's counters are not wired, e.g. an API without
    /// a pipeline of its own).
    pub matched: Option<u64>,
    /// Alerts it raised.
    pub alerts: u64,
}

/// Everything the sources page shows from memory, read at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcesSnapshot {
    /// Every log source, by label.
    pub sources: Vec<SourceStats>,
    /// Log lines parsed, all sources.
    pub lines_parsed: u64,
    /// Log lines not parsed, all sources.
    pub lines_unparsed: u64,
    /// Unparsed log lines by reason, all sources, sorted by reason.
    pub unparsed_by_reason: Vec<(String, u64)>,
    /// The HTTP doors.
    pub http: HttpIntakeStats,
    /// Every running scenario (and any other that raised an alert), by name.
    pub scenarios: Vec<ScenarioStats>,
}

impl Metrics {
    /// What the log sources, their parsers and the scenarios have counted, read now.
    pub fn sources_snapshot(&self) -> SourcesSnapshot {
        let mut sources: BTreeMap<String, SourceStats> = self
            .log_sources
            .read_since()
            .into_iter()
            .map(|(label, (since, read))| {
                let s = SourceStats {
                    source: label.clone(),
                    since: Some(since),
                    read,
                    filters: Vec::new(),
                };
                (label, s)
            })
            .collect();
        for ((source, filter), counts) in self.source_lines.all() {
            let s = sources
                .entry(source.clone())
                .or_insert_with(|| SourceStats {
                    source,
                    ..SourceStats::default()
                });
            s.filters.push(FilterStats {
                filter,
                matched: counts.matched.get(),
                unmatched: counts.unmatched.get(),
                unmatched_by_reason: counts
                    .unmatched_by_reason()
                    .into_iter()
                    .map(|(r, n)| (r.to_owned(), n))
                    .collect(),
            });
        }
        let lines_parsed = self.log_lines_parsed.get();
        let mut scenarios: BTreeMap<String, ScenarioStats> = BTreeMap::new();
        if let Some(tally) = self.scenarios.get() {
            for c in tally.read() {
                scenarios.insert(
                    c.name.clone(),
                    ScenarioStats {
                        name: c.name,
                        matched: Some(c.matched),
                        alerts: c.alerts,
                    },
                );
            }
        }
        // The pipeline's count (every detector's alerts, after the stage handed them on) is the one
        // `/metrics` shows: it wins over the engine's own when both are there.
        for (name, n) in self.by_scenario.family("alerts_by_scenario") {
            scenarios
                .entry(name.clone())
                .or_insert_with(|| ScenarioStats {
                    name,
                    ..ScenarioStats::default()
                })
                .alerts = n;
        }
        SourcesSnapshot {
            sources: sources.into_values().collect(),
            lines_parsed,
            lines_unparsed: self.log_lines_unparsed.get(),
            unparsed_by_reason: self.by_reason.family("log_lines_unparsed_by_reason"),
            http: HttpIntakeStats {
                accepted: self.events_accepted.get().saturating_sub(lines_parsed),
                invalid: self.events_invalid.get(),
                rejected_busy: self.events_rejected_busy.get(),
            },
            scenarios: scenarios.into_values().collect(),
        }
    }
}
