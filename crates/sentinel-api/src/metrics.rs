//! Counters, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

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
                out
            }
        }
    };
}

metrics! {
    http_requests: "HTTP requests answered.",
    auth_failures: "Requests refused for a missing or wrong API key.",
    events_accepted: "Events accepted into the pipeline.",
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
    log_lines_parsed: "Log lines the parsers understood.",
    log_lines_unparsed: "Log lines no parser understood (or that said nothing of interest).",
    log_lines_read: "Lines the log sources read.",
    log_bytes_read: "Bytes the log sources read.",
    log_lines_too_long: "Lines cut because they were longer than the limit.",
    log_rotations: "File rotations followed.",
    log_truncations: "File truncations followed.",
    log_source_errors: "Errors in log sources (kept running).",
    log_peers_refused: "Syslog datagrams and connections dropped: sender not in allowed_peers.",
    scenario_keys_expired: "Scenario keys dropped as idle by event time.",
    scenario_keys_evicted: "Live scenario keys evicted at the per-scenario cap.",
}

#[cfg(test)]
mod tests {
    use super::*;

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
