//! Counters, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

mod sources;
pub use sources::{Fail2banFilters, LogSources, SessionReading, SourceReading};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Sets the value (for counters mirrored from a component that counts on its own).
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// Counters with one label, e.g. unparsed lines by reason. The label set is small and bounded by the
/// code (reasons, scenario names), never by input.
#[derive(Debug, Default)]
pub struct Labeled(std::sync::Mutex<std::collections::BTreeMap<(&'static str, String), u64>>);

impl Labeled {
    /// Adds `n` to counter `name{label}`.
    pub fn add(&self, name: &'static str, label: &str, n: u64) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry((name, label.to_owned())).or_default() += n;
        }
    }

    /// Sets counter `name{label}`.
    pub fn set(&self, name: &'static str, label: &str, v: u64) {
        if let Ok(mut m) = self.0.lock() {
            m.insert((name, label.to_owned()), v);
        }
    }

    fn render(&self, label_key: &str, out: &mut String) {
        let Ok(m) = self.0.lock() else { return };
        let mut last = "";
        for ((name, label), v) in m.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE sentinel_{name}_total counter");
                last = name;
            }
            let label = escape_label(label);
            let _ = writeln!(out, "sentinel_{name}_total{{{label_key}=\"{label}\"}} {v}");
        }
    }
}

/// A label value in the text format: backslash, double quote and line feed escaped (a raw line feed would
/// end the sample and let the rest of the value read as a sample of its own).
fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Lines one source handed to one parser (a fail2ban filter or a built-in format): how many it matched and
/// how many it did not. A filter that never matches shows here as a source whose `matched` stays at 0.
#[derive(Debug, Default)]
pub struct LineCounts {
    /// Lines the parser understood (for a fail2ban filter: a failregex matched).
    pub matched: Counter,
    /// Lines it did not (no match, ignored, malformed).
    pub unmatched: Counter,
}

/// [`LineCounts`] per `(source, filter)`; the set is fixed by the configuration, not by input.
#[derive(Debug, Default)]
pub struct SourceLines(
    std::sync::Mutex<std::collections::BTreeMap<(String, String), std::sync::Arc<LineCounts>>>,
);

impl SourceLines {
    /// The counters of `(source, filter)`, created at zero (so they are rendered before the first line).
    pub fn counts(&self, source: &str, filter: &str) -> std::sync::Arc<LineCounts> {
        match self.0.lock() {
            Ok(mut m) => m
                .entry((source.to_owned(), filter.to_owned()))
                .or_default()
                .clone(),
            Err(_) => std::sync::Arc::default(),
        }
    }

    fn render(&self, out: &mut String) {
        let Ok(m) = self.0.lock() else { return };
        if m.is_empty() {
            return;
        }
        let esc = escape_label;
        for (name, help, pick) in [
            (
                "sentinel_source_lines_matched_total",
                "Lines a source's parser (fail2ban filter or format) matched, per source and filter.",
                true,
            ),
            (
                "sentinel_source_lines_unmatched_total",
                "Lines a source's parser did not match, per source and filter.",
                false,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((source, filter), c) in m.iter() {
                let v = if pick { c.matched.get() } else { c.unmatched.get() };
                let _ = writeln!(
                    out,
                    "{name}{{source=\"{}\",filter=\"{}\"}} {v}",
                    esc(source),
                    esc(filter)
                );
            }
        }
    }
}

/// The store writer's transactions: a histogram of records per committed transaction (group commit),
/// the largest one, and the batches that failed.
fn render_store_writer(w: &sentinel_store::WriterMonitor, out: &mut String) {
    let sizes = w.batch_sizes();
    let stats = w.stats();
    let name = "sentinel_store_batch_records";
    let _ = writeln!(
        out,
        "# HELP {name} Records per committed store transaction (group commit)."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (le, n) in &sizes.buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", sizes.count);
    let _ = writeln!(out, "{name}_sum {}", sizes.sum);
    let _ = writeln!(out, "{name}_count {}", sizes.count);
    scalar(
        out,
        "sentinel_store_batch_records_max",
        "gauge",
        "The most records committed in one store transaction.",
        sizes.max,
    );
    scalar(
        out,
        "sentinel_store_failed_batches_total",
        "counter",
        "Store transactions that failed and were retried record by record.",
        stats.failed_batches,
    );
    scalar(
        out,
        "sentinel_store_records_dropped_total",
        "counter",
        "Records the store could not write even on their own (each logged; an acknowledged one was \
         reported to its client).",
        stats.dropped,
    );
}

/// One unlabelled sample with its `HELP` and `TYPE` lines.
fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

macro_rules! metrics {
    ($($field:ident : $help:literal),* $(,)?) => {
        /// Every counter Sentinel keeps.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(
                #[doc = $help]
                pub $field: Counter,
            )*
            /// Counters with a `reason` label (unparsed lines) or `scenario` label (alerts).
            pub by_reason: Labeled,
            /// Counters with a `scenario` label.
            pub by_scenario: Labeled,
            /// Matched and unmatched lines per source and filter.
            pub source_lines: SourceLines,
            /// The log sources' own counters (`sentinel_log_*` totals and per source), read at render time.
            pub log_sources: LogSources,
            /// The fail2ban filters' session counters, read at render time.
            pub fail2ban_filters: Fail2banFilters,
            /// The store writer's counters (group-commit batch sizes), once the writer runs.
            pub store_writer: std::sync::OnceLock<sentinel_store::WriterMonitor>,
        }

        impl Metrics {
            /// Renders all counters in the Prometheus text format.
            pub fn render(&self) -> String {
                let mut out = String::new();
                $(
                    let name = concat!("sentinel_", stringify!($field), "_total");
                    let _ = writeln!(out, "# HELP {name} {}", $help);
                    let _ = writeln!(out, "# TYPE {name} counter");
                    let _ = writeln!(out, "{name} {}", self.$field.get());
                )*
                self.by_reason.render("reason", &mut out);
                self.by_scenario.render("scenario", &mut out);
                self.source_lines.render(&mut out);
                self.log_sources.render(&mut out);
                self.fail2ban_filters.render(&mut out);
                if let Some(w) = self.store_writer.get() {
                    render_store_writer(w, &mut out);
                }
                out
            }
        }
    };
}

metrics! {
    http_requests: "HTTP requests answered.",
    auth_failures: "Requests refused for a missing or wrong API key.",
    events_accepted: "Events handed to the pipeline (counted when queued, before they are stored).",
    events_invalid: "Events refused as malformed (per line or item).",
    events_rejected_busy: "Events refused because the pipeline queue was full.",
    defend_requests: "Calls to /v1/defend answered with a plan.",
    defend_timeouts: "Calls to /v1/defend that timed out waiting for the pipeline.",
    alerts_raised: "Alerts raised by detectors.",
    investigations: "Investigations concluded.",
    plans_decided: "Plans decided by the policy.",
    actions_recorded: "Action records produced.",
    actions_refused: "Actions refused by the allowlist or an actuator.",
    notices_sent: "Notices sent.",
    secrets_redacted: "Secret values masked in posted events, log lines and manual decisions.",
    store_write_errors: "Records the store failed to write.",
    events_not_stored: "Events (or /v1/defend records) handed to the pipeline that the store did not write; the client was told.",
    events_store_unconfirmed: "Events whose commit was not confirmed before the answer's deadline; the client got a 503.",
    log_lines_parsed: "Log lines the parsers understood.",
    log_lines_unparsed: "Log lines no parser understood (or that said nothing of interest).",
    scenario_keys_expired: "Scenario keys dropped as idle by event time.",
    scenario_keys_evicted: "Live scenario keys evicted at the per-scenario cap.",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_the_store_writers_batch_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let store = sentinel_store::Store::open(&dir.path().join("s.db"))
            .await
            .unwrap();
        let (writer, task) = store.writer(sentinel_store::WriterOptions::default());
        let m = Metrics::default();
        assert!(!m.render().contains("sentinel_store_batch_records"));
        m.store_writer.set(writer.monitor()).unwrap();
        let group = sentinel_store::AckGroup::new();
        for n in 0..3 {
            let ev = sentinel_core::Event {
                id: sentinel_core::EventId::new(),
                kind: sentinel_core::EventKind::telemetry(),
                ts: sentinel_core::Timestamp::now(),
                source: "test".into(),
                src_ip: None,
                target: None,
                attrs: Default::default(),
                trace_id: sentinel_core::TraceId::new(),
            };
            writer
                .write_acked(sentinel_store::Record::Event(ev), group.token(n))
                .await
                .unwrap();
        }
        assert_eq!(group.settled().await.committed, 3);
        let text = m.render();
        assert!(
            text.contains("# TYPE sentinel_store_batch_records histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("sentinel_store_batch_records_sum 3\n"),
            "{text}"
        );
        let count = writer.stats().batches;
        assert!((1..=3).contains(&count));
        assert!(
            text.contains(&format!("sentinel_store_batch_records_count {count}\n"))
                && text.contains(&format!(
                    "sentinel_store_batch_records_bucket{{le=\"+Inf\"}} {count}\n"
                ))
                && text.contains(&format!(
                    "sentinel_store_batch_records_bucket{{le=\"4\"}} {count}\n"
                )),
            "{text}"
        );
        assert!(
            text.contains("sentinel_store_records_dropped_total 0\n"),
            "{text}"
        );
        // A store that fails under the writer: the record nobody waits for (a log line's event, an
        // audit record) is dropped, and /metrics says so.
        store.close().await;
        let lost = sentinel_core::Event {
            id: sentinel_core::EventId::new(),
            kind: sentinel_core::EventKind::telemetry(),
            ts: sentinel_core::Timestamp::now(),
            source: "test".into(),
            src_ip: None,
            target: None,
            attrs: Default::default(),
            trace_id: sentinel_core::TraceId::new(),
        };
        writer
            .write(sentinel_store::Record::Event(lost))
            .await
            .unwrap();
        drop(writer);
        task.finish().await.unwrap();
        let text = m.render();
        assert!(
            text.contains("sentinel_store_records_dropped_total 1\n")
                && text.contains("sentinel_store_failed_batches_total 1\n"),
            "{text}"
        );
    }

    #[test]
    fn renders_every_counter() {
        let m = Metrics::default();
        m.events_accepted.add(3);
        let text = m.render();
        assert!(text.contains("sentinel_events_accepted_total 3\n"));
        assert!(text.contains("# TYPE sentinel_store_write_errors_total counter"));
        m.by_reason.add("log_lines_unparsed", "no_match", 2);
        m.by_reason.add("log_lines_unparsed", "bad_\"x", 1);
        let text = m.render();
        assert!(
            text.contains("sentinel_log_lines_unparsed_total{reason=\"no_match\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sentinel_log_lines_unparsed_total{reason=\"bad_\\\"x\"} 1\n"),
            "{text}"
        );
        let c = m.source_lines.counts("jail:sshd", "sshd");
        let text = m.render();
        assert!(
            text.contains(
                "sentinel_source_lines_matched_total{source=\"jail:sshd\",filter=\"sshd\"} 0\n"
            ),
            "{text}"
        );
        c.matched.add(2);
        c.unmatched.inc();
        // Names come from the configuration (file paths may hold any byte but NUL): a hostile one stays one
        // label value and cannot add a sample of its own.
        m.source_lines
            .counts("file:/var/log/a\"}\nsentinel_fake_total 99\n#", "x\\y")
            .matched
            .inc();
        let text = m.render();
        assert!(
            text.contains(
                "sentinel_source_lines_matched_total{source=\"file:/var/log/a\\\"}\\nsentinel_fake_total 99\\n#\",filter=\"x\\\\y\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("sentinel_fake_total")),
            "{text}"
        );
        let text = m.render();
        assert!(
            text.contains(
                "sentinel_source_lines_matched_total{source=\"jail:sshd\",filter=\"sshd\"} 2\n"
            ) && text.contains(
                "sentinel_source_lines_unmatched_total{source=\"jail:sshd\",filter=\"sshd\"} 1\n"
            ),
            "{text}"
        );
    }
}
