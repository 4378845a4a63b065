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

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_detect::scenario::{parse_scenarios, BUILTIN};
    use sentinel_detect::{EngineOptions, ScenarioEngine};

    #[test]
    fn the_snapshot_joins_sources_parsers_reasons_and_scenarios() {
        let m = Metrics::new();
        assert_eq!(m.sources_snapshot(), SourcesSnapshot::default());
        m.log_sources
            .register("file:/var/log/a.log", || SourceCounts {
                lines_read: 7,
                errors: 1,
                ..SourceCounts::default()
            });
        let c = m.source_lines.counts("file:/var/log/a.log", "sshd");
        c.matched.add(4);
        c.unmatched_because("no_match");
        c.unmatched_because("no_match");
        c.unmatched_because("ignored");
        // A parser counted under a label no reader registered: still listed, without a start time.
        m.source_lines.counts("jail:x", "x");
        m.log_lines_parsed.add(4);
        m.events_accepted.add(10);
        m.events_invalid.add(2);
        m.by_scenario.add("alerts_by_scenario", "heuristic", 3);
        let engine = ScenarioEngine::new(
            parse_scenarios("builtin", BUILTIN).unwrap(),
            EngineOptions::default(),
        );
        m.scenarios.set(engine.tally()).unwrap();
        let s = m.sources_snapshot();
        assert_eq!(s.sources.len(), 2);
        let a = &s.sources[0];
        assert_eq!(a.source, "file:/var/log/a.log");
        assert!(a.since.is_some());
        assert_eq!((a.read.lines_read, a.read.errors), (7, 1));
        assert_eq!((a.parsed(), a.unparsed()), (4, 3));
        assert_eq!(
            a.filters[0].unmatched_by_reason,
            vec![("ignored".to_owned(), 1), ("no_match".to_owned(), 2)]
        );
        assert_eq!(s.sources[1].since, None);
        assert_eq!(s.http.accepted, 6);
        assert_eq!(s.http.invalid, 2);
        let h = s.scenarios.iter().find(|x| x.name == "heuristic").unwrap();
        assert_eq!((h.matched, h.alerts), (None, 3));
        let ssh = s
            .scenarios
            .iter()
            .find(|x| x.name == "ssh_bruteforce")
            .unwrap();
        assert_eq!((ssh.matched, ssh.alerts), (Some(0), 0));
    }
}
