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
    secrets_redacted: "Secret values masked in posted events.",
    store_write_errors: "Records the store failed to write.",
    log_lines_parsed: "Log lines the parsers understood.",
    log_lines_unparsed: "Log lines no parser understood (or that said nothing of interest).",
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
    }
}
