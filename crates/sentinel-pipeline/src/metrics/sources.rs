//! Counters that log sources and fail2ban filters keep in their own atomics, read each time `/metrics` is
//! rendered: nothing is copied on a timer, so a scrape sees exactly what the components have counted.
//!
//! This module knows nothing of the ingest crate: the daemon registers, per configured source, a function
//! that reads the source's counters. Labels come from the configuration (bounded), never from input.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// What one log source has counted since it started (the source's own counters, read at once).
pub use sentinel_core::SourceCounts as SourceReading;

type Read<T> = Box<dyn Fn() -> T + Send + Sync>;

/// One exported source counter: the total's name (the documented `sentinel_log_*` name), the per-source
/// name, the help text and the field it reads.
struct SourceCounter {
    total: &'static str,
    per_source: &'static str,
    help: &'static str,
    field: fn(&SourceReading) -> u64,
}

const SOURCE_COUNTERS: &[SourceCounter] = &[
    SourceCounter {
        total: "sentinel_log_lines_read_total",
        per_source: "sentinel_source_lines_read_total",
        help: "Lines the log sources read",
        field: |r| r.lines_read,
    },
    SourceCounter {
        total: "sentinel_log_bytes_read_total",
        per_source: "sentinel_source_bytes_read_total",
        help: "Bytes the log sources read (line endings and cut bytes included)",
        field: |r| r.bytes_read,
    },
    SourceCounter {
        total: "sentinel_log_lines_too_long_total",
        per_source: "sentinel_source_lines_too_long_total",
        help: "Lines cut because they were longer than the limit",
        field: |r| r.lines_too_long,
    },
    SourceCounter {
        total: "sentinel_log_lines_invalid_utf8_total",
        per_source: "sentinel_source_lines_invalid_utf8_total",
        help: "Lines whose invalid UTF-8 was replaced",
        field: |r| r.lines_invalid_utf8,
    },
    SourceCounter {
        total: "sentinel_log_rotations_total",
        per_source: "sentinel_source_rotations_total",
        help: "File rotations (a new file at a tailed path) followed",
        field: |r| r.rotations,
    },
    SourceCounter {
        total: "sentinel_log_truncations_total",
        per_source: "sentinel_source_truncations_total",
        help: "File truncations (copytruncate, rewrite) followed",
        field: |r| r.truncations,
    },
    SourceCounter {
        total: "sentinel_log_source_errors_total",
        per_source: "sentinel_source_errors_total",
        help: "Errors in log sources, which kept running (I/O, broken syslog framing, bad journal entries, checkpoint writes)",
        field: |r| r.errors,
    },
    SourceCounter {
        total: "sentinel_log_connections_refused_total",
        per_source: "sentinel_source_connections_refused_total",
        help: "Syslog TCP connections refused at the connection limit",
        field: |r| r.connections_refused,
    },
    SourceCounter {
        total: "sentinel_log_peers_refused_total",
        per_source: "sentinel_source_peers_refused_total",
        help: "Syslog datagrams and connections dropped: sender not in allowed_peers",
        field: |r| r.peers_refused,
    },
    SourceCounter {
        total: "sentinel_log_source_restarts_total",
        per_source: "sentinel_source_restarts_total",
        help: "Restarts of a source's child process (journalctl)",
        field: |r| r.restarts,
    },
];

/// A source's `source` label, when it was registered (started) and how to read its counters.
type SourceEntry = (String, sentinel_core::Timestamp, Read<SourceReading>);

/// The running log sources, each under its `source` label (clones share the list).
#[derive(Default, Clone)]
pub struct LogSources(Arc<Mutex<Vec<SourceEntry>>>);

impl std::fmt::Debug for LogSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSources").finish_non_exhaustive()
    }
}

impl LogSources {
    /// Adds a source: `read` is called at every render. Sources that share a label are summed.
    pub fn register(&self, source: &str, read: impl Fn() -> SourceReading + Send + Sync + 'static) {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        v.push((
            source.to_owned(),
            sentinel_core::Timestamp::now(),
            Box::new(read),
        ));
    }

    /// Every source's counters by label, read now.
    pub fn read(&self) -> BTreeMap<String, SourceReading> {
        self.read_since()
            .into_iter()
            .map(|(label, (_, r))| (label, r))
            .collect()
    }

    /// Every source's counters by label, read now, with when the source (the earliest of those under
    /// the label) was registered.
    pub fn read_since(&self) -> BTreeMap<String, (sentinel_core::Timestamp, SourceReading)> {
        let mut by_label: BTreeMap<String, (sentinel_core::Timestamp, SourceReading)> =
            BTreeMap::new();
        let v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (label, since, read) in v.iter() {
            let e = by_label
                .entry(label.clone())
                .or_insert((*since, SourceReading::default()));
            e.0 = e.0.min(*since);
            e.1 += read();
        }
        by_label
    }
}

/// The totals under the documented `sentinel_log_*` names (always, 0 without sources) and the same
/// counters per source (`sentinel_source_*{source="…"}`), from one reading so they agree.
impl Collector for LogSources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let by_label = self.read();
        let mut total = SourceReading::default();
        for r in by_label.values() {
            total += *r;
        }
        for c in SOURCE_COUNTERS {
            let help = format!("{}, all sources.", c.help);
            let v = ConstCounter::new((c.field)(&total));
            v.encode(encoder.encode_descriptor(family(c.total), &help, None, v.metric_type())?)?;
        }
        if by_label.is_empty() {
            return Ok(());
        }
        for c in SOURCE_COUNTERS {
            let help = format!("{}, per source.", c.help);
            let mut family_encoder = encoder.encode_descriptor(
                family(c.per_source),
                &help,
                None,
                MetricType::Counter,
            )?;
            for (label, r) in &by_label {
                let labels = [("source", label.as_str())];
                ConstCounter::new((c.field)(r)).encode(family_encoder.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A counter family's name as the registry takes it: without `_total`, which the encoder adds.
fn family(counter: &str) -> &str {
    counter.strip_suffix("_total").unwrap_or(counter)
}

/// What one fail2ban filter's multi-line state has counted (see the ingest crate's `SessionStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionReading {
    /// `<F-MLFID>` sessions live now (a gauge).
    pub live: u64,
    /// Sessions evicted at the per-filter session cap.
    pub evicted: u64,
    /// Sessions forgotten after 5 minutes (log time) without a line.
    pub expired: u64,
    /// Failures held as pending because their session's host was not known yet.
    pub pending: u64,
    /// User names not remembered because their session already had the most allowed.
    pub users_dropped: u64,
    /// Lines dropped early from the `maxlines` buffer because it was over its byte budget.
    pub buffer_trimmed: u64,
}

impl std::ops::AddAssign for SessionReading {
    fn add_assign(&mut self, r: Self) {
        self.live += r.live;
        self.evicted += r.evicted;
        self.expired += r.expired;
        self.pending += r.pending;
        self.users_dropped += r.users_dropped;
        self.buffer_trimmed += r.buffer_trimmed;
    }
}

/// A filter's `(source, filter)` labels and how to read its counters.
type FilterEntry = ((String, String), Read<SessionReading>);

/// The fail2ban filters of the running sources, each under its `(source, filter)` labels (clones share
/// the list).
#[derive(Default, Clone)]
pub struct Fail2banFilters(Arc<Mutex<Vec<FilterEntry>>>);

impl std::fmt::Debug for Fail2banFilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fail2banFilters").finish_non_exhaustive()
    }
}

impl Fail2banFilters {
    /// Adds the filter `filter` of source `source`: `read` is called at every render.
    pub fn register(
        &self,
        source: &str,
        filter: &str,
        read: impl Fn() -> SessionReading + Send + Sync + 'static,
    ) {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        v.push(((source.to_owned(), filter.to_owned()), Box::new(read)));
    }
}

/// The session counters per source and filter (nothing when no source uses a fail2ban filter).
impl Collector for Fail2banFilters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut by_label: BTreeMap<(String, String), SessionReading> = BTreeMap::new();
        {
            let v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            for (label, read) in v.iter() {
                *by_label.entry(label.clone()).or_default() += read();
            }
        }
        if by_label.is_empty() {
            return Ok(());
        }
        type Field = fn(&SessionReading) -> u64;
        let families: [(&str, MetricType, &str, Field); 6] = [
            (
                "sentinel_fail2ban_sessions_live",
                MetricType::Gauge,
                "fail2ban <F-MLFID> sessions held now, per source and filter.",
                |r| r.live,
            ),
            (
                "sentinel_fail2ban_sessions_evicted",
                MetricType::Counter,
                "fail2ban sessions evicted at the session cap, per source and filter.",
                |r| r.evicted,
            ),
            (
                "sentinel_fail2ban_sessions_expired",
                MetricType::Counter,
                "fail2ban sessions forgotten after 5 minutes of log time without a line, per source and filter.",
                |r| r.expired,
            ),
            (
                "sentinel_fail2ban_pending_failures",
                MetricType::Counter,
                "fail2ban failures held until their session's host is known, per source and filter.",
                |r| r.pending,
            ),
            (
                "sentinel_fail2ban_session_users_dropped",
                MetricType::Counter,
                "User names a fail2ban session did not remember (per-session cap), per source and filter.",
                |r| r.users_dropped,
            ),
            (
                "sentinel_fail2ban_buffer_lines_trimmed",
                MetricType::Counter,
                "Lines dropped early from a fail2ban maxlines buffer over its byte budget, per source and filter.",
                |r| r.buffer_trimmed,
            ),
        ];
        for (name, kind, help, field) in families {
            let mut family_encoder = encoder.encode_descriptor(name, help, None, kind)?;
            for ((source, filter), r) in &by_label {
                let labels = [("source", source.as_str()), ("filter", filter.as_str())];
                let metric_encoder = family_encoder.encode_family(&labels)?;
                match kind {
                    MetricType::Gauge => ConstGauge::new(field(r)).encode(metric_encoder)?,
                    _ => ConstCounter::new(field(r)).encode(metric_encoder)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn source_counters_are_read_at_render_time_and_totals_agree() {
        let m = Metrics::default();
        // No source: the documented totals are still there, at 0, and no per-source family.
        let text = m.render();
        for c in SOURCE_COUNTERS {
            assert_eq!(sample(&text, c.total), Some("0"), "{}: {text}", c.total);
            assert!(!text.contains(c.per_source), "{text}");
        }
        let lines = Arc::new(AtomicU64::new(0));
        let l = lines.clone();
        m.log_sources
            .register("file:/var/log/a.log", move || SourceReading {
                lines_read: l.load(Ordering::Relaxed),
                bytes_read: 10,
                peers_refused: 1,
                ..SourceReading::default()
            });
        m.log_sources
            .register("syslog:udp:127.0.0.1:514", || SourceReading {
                lines_read: 5,
                restarts: 2,
                errors: 3,
                ..SourceReading::default()
            });
        lines.store(7, Ordering::Relaxed);
        let text = m.render();
        assert_eq!(sample(&text, "sentinel_log_lines_read_total"), Some("12"));
        assert_eq!(sample(&text, "sentinel_log_bytes_read_total"), Some("10"));
        assert_eq!(sample(&text, "sentinel_log_source_errors_total"), Some("3"));
        assert_eq!(sample(&text, "sentinel_log_peers_refused_total"), Some("1"));
        assert_eq!(
            sample(&text, "sentinel_log_source_restarts_total"),
            Some("2")
        );
        assert_eq!(
            sample(
                &text,
                "sentinel_source_lines_read_total{source=\"file:/var/log/a.log\"}"
            ),
            Some("7"),
            "{text}"
        );
        // A counter that moves between scrapes is seen at once (no copy on a timer).
        lines.store(9, Ordering::Relaxed);
        let text = m.render();
        assert_eq!(sample(&text, "sentinel_log_lines_read_total"), Some("14"));
        assert_eq!(
            text.matches("# TYPE sentinel_log_lines_read_total counter")
                .count(),
            1
        );
    }

    #[test]
    fn session_counters_render_per_source_and_filter() {
        let m = Metrics::default();
        assert!(!m.render().contains("sentinel_fail2ban_"));
        let evicted = Arc::new(AtomicU64::new(0));
        let e = evicted.clone();
        m.fail2ban_filters
            .register("jail:sshd", "sshd", move || SessionReading {
                live: 1000,
                evicted: e.load(Ordering::Relaxed),
                users_dropped: 6,
                ..SessionReading::default()
            });
        evicted.store(5, Ordering::Relaxed);
        let text = m.render();
        let series = |name: &str| format!("{name}{{source=\"jail:sshd\",filter=\"sshd\"}}");
        assert_eq!(
            sample(&text, &series("sentinel_fail2ban_sessions_evicted_total")),
            Some("5"),
            "{text}"
        );
        assert_eq!(
            sample(&text, &series("sentinel_fail2ban_sessions_live")),
            Some("1000")
        );
        assert_eq!(
            sample(
                &text,
                &series("sentinel_fail2ban_session_users_dropped_total")
            ),
            Some("6")
        );
        assert!(text.contains("# TYPE sentinel_fail2ban_sessions_live gauge\n"));
    }
}
