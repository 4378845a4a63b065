//! The Falco detector: every Falco runtime alert (an event of kind `runtime_alert` from service `falco`,
//! as the `falco` log format reads them) becomes an alert about what it happened in.
//!
//! - In a container (`container_id` other than `host`): scenario [`CONTAINER_SCENARIO`], subject
//!   [`Subject::Container`] by the container's name when it has one Docker accepts, else by its id.
//! - On the host (`container_id` `host` or absent): scenario [`HOST_SCENARIO`], subject the other end of
//!   the connection (`fd_rip`) when the event has one; without it the event is skipped and counted
//!   (`host_without_address`). The host itself is never a subject, so never isolated.
//!
//! Severity follows Falco's priority (Emergency, Alert, Critical → critical; Error → high; Warning →
//! medium; Notice, Informational, Debug → low), with the score scenario alerts of that severity carry;
//! confidence is [`CONFIDENCE`] (a Falco rule matched a system call, it did not guess). The reason names
//! the rule and quotes Falco's output; the evidence is the event. Rules listed in
//! `detect.falco.ignore_rules` raise nothing (counted). Stateless: every alert stands on its own.

use sentinel_core::params::ContainerName;
use sentinel_core::{Alert, AlertId, Detector, Event, Reason, Severity, Subject, Timestamp};
use serde::Serialize;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The scenario of an alert about a container.
pub const CONTAINER_SCENARIO: &str = "container_runtime_threat";
/// The scenario of an alert about the host, whose subject is the remote address of its connection.
pub const HOST_SCENARIO: &str = "host_runtime_threat";
/// The event kind the detector looks at (what the `falco` log format makes of every alert).
pub const RUNTIME_ALERT: &str = "runtime_alert";
/// The confidence of every alert: Falco matched a rule on what a process did.
pub const CONFIDENCE: f32 = 0.9;
/// The longest quote of Falco's output in an alert's reason, in bytes.
const MAX_QUOTE: usize = 300;

/// `detect.falco`: what the Falco detector leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FalcoSettings {
    /// Falco rule names (exactly as Falco writes them) that raise no alert.
    pub ignore_rules: Vec<String>,
}

impl FalcoSettings {
    /// The detector with these settings.
    pub fn build(&self) -> FalcoDetector {
        FalcoDetector {
            ignore_rules: self.ignore_rules.clone(),
            tally: Arc::default(),
        }
    }
}

/// What became of one Falco alert the detector saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FalcoOutcome {
    /// An alert about a container.
    ContainerAlert,
    /// An alert about the remote address of a host event.
    HostAlert,
    /// Its rule is in `ignore_rules`.
    IgnoredRule,
    /// A host event without a remote address: nothing to act on, and the host is never a subject.
    HostWithoutAddress,
    /// The container's name and id are neither a Docker name nor an id.
    UnusableContainer,
    /// No rule, or a priority Falco does not have.
    Malformed,
}

impl FalcoOutcome {
    /// Every outcome, in the order [`FalcoTally::read`] lists them.
    pub const ALL: [FalcoOutcome; 6] = [
        FalcoOutcome::ContainerAlert,
        FalcoOutcome::HostAlert,
        FalcoOutcome::IgnoredRule,
        FalcoOutcome::HostWithoutAddress,
        FalcoOutcome::UnusableContainer,
        FalcoOutcome::Malformed,
    ];

    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            FalcoOutcome::ContainerAlert => "container_alert",
            FalcoOutcome::HostAlert => "host_alert",
            FalcoOutcome::IgnoredRule => "ignored_rule",
            FalcoOutcome::HostWithoutAddress => "host_without_address",
            FalcoOutcome::UnusableContainer => "unusable_container",
            FalcoOutcome::Malformed => "malformed",
        }
    }
}

/// How many Falco alerts had each [`FalcoOutcome`], readable from another task while the detector runs.
#[derive(Debug, Default)]
pub struct FalcoTally([AtomicU64; 6]);

impl FalcoTally {
    fn bump(&self, o: FalcoOutcome) {
        let i = FalcoOutcome::ALL.iter().position(|x| *x == o).unwrap_or(0);
        if let Some(c) = self.0.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every outcome and its count, in [`FalcoOutcome::ALL`]'s order.
    pub fn read(&self) -> Vec<(&'static str, u64)> {
        FalcoOutcome::ALL
            .iter()
            .zip(&self.0)
            .map(|(o, c)| (o.as_str(), c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The Falco detector (see the module documentation).
#[derive(Debug)]
pub struct FalcoDetector {
    ignore_rules: Vec<String>,
    tally: Arc<FalcoTally>,
}

/// The severity of a Falco priority, given in any case; `None` for a name Falco does not have.
pub fn severity_of(priority: &str) -> Option<Severity> {
    let p = priority.trim().to_ascii_lowercase();
    Some(match p.as_str() {
        "emergency" | "alert" | "critical" => Severity::Critical,
        "error" => Severity::High,
        "warning" => Severity::Medium,
        "notice" | "informational" | "info" | "debug" => Severity::Low,
        _ => return None,
    })
}

/// The score an alert of this severity carries (the scale scenario alerts use).
fn score(s: Severity) -> u8 {
    match s {
        Severity::Info => 10,
        Severity::Low => 30,
        Severity::Medium => 50,
        Severity::High => 75,
        Severity::Critical => 95,
    }
}

fn attr<'e>(ev: &'e Event, key: &str) -> Option<&'e str> {
    ev.attrs
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "<NA>")
}

/// At most `max` bytes of `s`, cut at a character boundary, with `…` when cut.
fn quote(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl FalcoDetector {
    /// The outcome counters, shared: they keep moving while the detector runs elsewhere.
    pub fn tally(&self) -> Arc<FalcoTally> {
        self.tally.clone()
    }

    /// The alert one Falco event raises, or why it raises none.
    pub fn judge(&self, ev: &Event) -> Result<Alert, FalcoOutcome> {
        let rule = attr(ev, "rule").ok_or(FalcoOutcome::Malformed)?;
        let priority = attr(ev, "priority").ok_or(FalcoOutcome::Malformed)?;
        let severity = severity_of(priority).ok_or(FalcoOutcome::Malformed)?;
        if self.ignore_rules.iter().any(|r| r == rule) {
            return Err(FalcoOutcome::IgnoredRule);
        }
        let id = attr(ev, "container_id");
        let name = attr(ev, "container_name").filter(|n| *n != "host");
        let on_host = id == Some("host") || (id.is_none() && name.is_none());
        let (scenario, subject, place) = if on_host {
            let ip = attr(ev, "fd_rip")
                .and_then(|s| s.parse::<IpAddr>().ok())
                .map(|ip| ip.to_canonical())
                .filter(|ip| !ip.is_unspecified())
                .ok_or(FalcoOutcome::HostWithoutAddress)?;
            let host = attr(ev, "hostname").unwrap_or("the host");
            (
                HOST_SCENARIO,
                Subject::Ip(ip),
                format!("on {host}, remote address {ip}"),
            )
        } else {
            let usable = |s: &str| s.parse::<ContainerName>().is_ok();
            let chosen = name
                .filter(|n| usable(n))
                .or(id.filter(|i| usable(i)))
                .ok_or(FalcoOutcome::UnusableContainer)?;
            let place = match (name, id) {
                (Some(n), Some(i)) => format!("in container {n} (id {i})"),
                _ => format!("in container {chosen}"),
            };
            (
                CONTAINER_SCENARIO,
                Subject::Container(chosen.to_owned()),
                place,
            )
        };
        let output = attr(ev, "output").unwrap_or("");
        let sc = score(severity);
        Ok(Alert {
            id: AlertId::new(),
            ts: ev.ts,
            detector: "falco".into(),
            scenario: scenario.into(),
            severity,
            score: sc,
            confidence: CONFIDENCE,
            subject,
            reasons: vec![Reason {
                code: "falco_rule".into(),
                detail: format!(
                    "Falco rule `{rule}` ({priority}) {place}: {}",
                    quote(output, MAX_QUOTE)
                ),
                weight: sc,
            }],
            evidence: vec![ev.clone()],
            trace_id: ev.trace_id.clone(),
        })
    }
}

impl Detector for FalcoDetector {
    fn id(&self) -> &str {
        "falco"
    }

    fn observe(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        if ev.kind.0 != RUNTIME_ALERT || attr(ev, "service") != Some("falco") {
            return;
        }
        match self.judge(ev) {
            Ok(alert) => {
                self.tally.bump(match alert.subject {
                    Subject::Container(_) => FalcoOutcome::ContainerAlert,
                    _ => FalcoOutcome::HostAlert,
                });
                out.push(alert);
            }
            Err(outcome) => self.tally.bump(outcome),
        }
    }

    /// Stateless: time passing changes nothing.
    fn tick(&mut self, _now: Timestamp, _out: &mut Vec<Alert>) {}
}
