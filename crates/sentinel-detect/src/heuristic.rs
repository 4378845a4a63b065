//! The heuristic detector: a deterministic score over the fields applications send as telemetry.
//!
//! Each signal adds points with a stated reason; the sum (capped at 100) maps to a severity, and the
//! number of independent signals sets the confidence. It keeps no state between events.

use crate::signatures::{normalise, scan, SignatureFamily};
use sentinel_core::{Alert, AlertId, Detector, Event, Reason, Severity, Subject, Timestamp};
use serde_json::Value;

/// Thresholds for the heuristic detector.
#[derive(Debug, Clone, PartialEq)]
pub struct HeuristicSettings {
    /// Scores below this raise no alert.
    pub min_score: u8,
    /// Failed logins at or above this count are a signal.
    pub failed_logins_threshold: u64,
    /// Requests per minute at or above this are a signal.
    pub request_rate_threshold: u64,
    /// Bytes sent out at or above this are a signal.
    pub bytes_out_threshold: u64,
    /// Destination ports that are a signal by themselves.
    pub bad_ports: Vec<u16>,
}

impl Default for HeuristicSettings {
    fn default() -> Self {
        Self {
            min_score: 20,
            failed_logins_threshold: 5,
            request_rate_threshold: 120,
            bytes_out_threshold: 50_000_000,
            bad_ports: vec![23, 2323, 4444, 5555, 6667, 31337],
        }
    }
}

/// Text attributes scanned for payload signatures: request parts and the fields of a login form
/// (an injection is typed into those; the pipeline hands over the event as posted, unredacted).
const PAYLOAD_FIELDS: [&str; 11] = [
    "payload", "path", "query", "body", "url", "uri", "user", "username", "login", "password",
    "passwd",
];
/// Attributes scanned for scanner user agents.
const AGENT_FIELDS: [&str; 2] = ["user_agent", "ua"];

/// The heuristic detector.
#[derive(Debug, Clone)]
pub struct Heuristic {
    settings: HeuristicSettings,
}

/// What the heuristic made of one event, whether or not it crossed the alert threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// 0–100.
    pub score: u8,
    /// Every signal that fired.
    pub reasons: Vec<Reason>,
    /// The scenario named by the strongest signal.
    pub scenario: &'static str,
}

impl Heuristic {
    /// A detector with these thresholds.
    pub fn new(settings: HeuristicSettings) -> Self {
        Self { settings }
    }

    /// Scores one event.
    pub fn assess(&self, ev: &Event) -> Assessment {
        let s = &self.settings;
        let mut reasons: Vec<(Reason, &'static str)> = Vec::new();

        if let Some(n) = uint(ev, "failed_logins") {
            if n >= s.failed_logins_threshold {
                let over = (n / s.failed_logins_threshold.max(1)).min(4) as u8;
                reasons.push((
                    Reason {
                        code: "failed_logins".into(),
                        detail: format!(
                            "{n} failed logins (threshold {})",
                            s.failed_logins_threshold
                        ),
                        weight: 25 + 5 * over,
                    },
                    "credential_bruteforce",
                ));
            }
        }
        if let Some(n) = uint(ev, "request_rate") {
            if n >= s.request_rate_threshold {
                let over = (n / s.request_rate_threshold.max(1)).min(5) as u8;
                reasons.push((
                    Reason {
                        code: "request_rate".into(),
                        detail: format!(
                            "{n} requests/min (threshold {})",
                            s.request_rate_threshold
                        ),
                        weight: 20 + 4 * over,
                    },
                    "http_flood",
                ));
            }
        }
        if let Some(n) = uint(ev, "bytes_out") {
            if n >= s.bytes_out_threshold {
                reasons.push((
                    Reason {
                        code: "bytes_out".into(),
                        detail: format!("{n} bytes out (threshold {})", s.bytes_out_threshold),
                        weight: 30,
                    },
                    "data_exfiltration",
                ));
            }
        }
        if let Some(port) = uint(ev, "dst_port").and_then(|p| u16::try_from(p).ok()) {
            if s.bad_ports.contains(&port) {
                reasons.push((
                    Reason {
                        code: "bad_port".into(),
                        detail: format!("destination port {port} is on the known-bad list"),
                        weight: 25,
                    },
                    "suspicious_port",
                ));
            }
        }

        let mut families: Vec<SignatureFamily> = Vec::new();
        for field in PAYLOAD_FIELDS {
            if let Some(text) = ev.attrs.get(field).and_then(Value::as_str) {
                for (fam, frag) in scan(&normalise(text), None) {
                    if fam != SignatureFamily::ScannerAgent && !families.contains(&fam) {
                        families.push(fam);
                        reasons.push((signature_reason(fam, field, frag), "web_attack"));
                    }
                }
            }
        }
        for field in AGENT_FIELDS {
            if let Some(text) = ev.attrs.get(field).and_then(Value::as_str) {
                let fam = SignatureFamily::ScannerAgent;
                if families.contains(&fam) {
                    continue;
                }
                if let Some((_, frag)) = scan(&text.to_lowercase(), Some(fam)).into_iter().next() {
                    families.push(fam);
                    reasons.push((signature_reason(fam, field, frag), "scanner"));
                }
            }
        }

        let total: u32 = reasons.iter().map(|(r, _)| u32::from(r.weight)).sum();
        let scenario = reasons
            .iter()
            .max_by_key(|(r, _)| r.weight)
            .map(|(_, sc)| *sc)
            .unwrap_or("none");
        Assessment {
            score: total.min(100) as u8,
            reasons: reasons.into_iter().map(|(r, _)| r).collect(),
            scenario,
        }
    }
}

impl Heuristic {
    /// The alert an assessment raises, if it crosses the threshold and the event names a subject.
    pub fn alert_from(&self, ev: &Event, a: Assessment) -> Option<Alert> {
        if a.score < self.settings.min_score {
            return None;
        }
        let subject = subject_of(ev)?;
        let signals = a.reasons.len() as f32;
        let confidence = (0.45 + 0.15 * signals + f32::from(a.score) / 500.0).min(0.99);
        Some(Alert {
            id: AlertId::new(),
            ts: ev.ts,
            detector: "heuristic".into(),
            scenario: a.scenario.into(),
            severity: Severity::from_score(a.score),
            score: a.score,
            confidence,
            subject,
            reasons: a.reasons,
            evidence: vec![ev.clone()],
            trace_id: ev.trace_id.clone(),
        })
    }
}

fn signature_reason(fam: SignatureFamily, field: &str, frag: &str) -> Reason {
    Reason {
        code: fam.code().into(),
        detail: format!("`{field}` contains `{frag}`"),
        weight: fam.weight(),
    }
}

/// A non-negative integer attribute; numbers given as strings are accepted, negatives are not.
fn uint(ev: &Event, key: &str) -> Option<u64> {
    match ev.attrs.get(key)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Who an event is about: the source address, else the user it names.
fn subject_of(ev: &Event) -> Option<Subject> {
    if let Some(ip) = ev.src_ip {
        return Some(Subject::Ip(ip));
    }
    ev.attrs
        .get("user")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(|u| Subject::User(u.to_owned()))
}

impl Detector for Heuristic {
    fn id(&self) -> &str {
        "heuristic"
    }

    fn observe(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        let a = Heuristic::assess(self, ev);
        out.extend(self.alert_from(ev, a));
    }

    fn assess(
        &mut self,
        seen: &Event,
        stored: &Event,
        out: &mut Vec<Alert>,
    ) -> Option<sentinel_core::Scored> {
        let a = Heuristic::assess(self, seen);
        let scored = sentinel_core::Scored {
            score: a.score,
            scenario: a.scenario.to_owned(),
            reasons: a.reasons.clone(),
        };
        out.extend(self.alert_from(stored, a));
        Some(scored)
    }

    /// Stateless: time passing changes nothing.
    fn tick(&mut self, _now: Timestamp, _out: &mut Vec<Alert>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_core::{EventId, EventKind, TraceId};
    use serde_json::json;

    fn event(attrs: Value) -> Event {
        Event {
            id: EventId::new(),
            kind: EventKind::telemetry(),
            ts: Timestamp::from_millis(1_700_000_000_000),
            source: "test".into(),
            src_ip: Some("203.0.113.7".parse().unwrap()),
            target: None,
            attrs: attrs.as_object().cloned().unwrap(),
            trace_id: TraceId::new(),
        }
    }

    fn run(attrs: Value) -> Vec<Alert> {
        let mut d = Heuristic::new(HeuristicSettings::default());
        let mut out = Vec::new();
        d.observe(&event(attrs), &mut out);
        out
    }

    #[test]
    fn benign_telemetry_raises_nothing() {
        let out = run(
            json!({"failed_logins": 1, "request_rate": 30, "bytes_out": 2048,
            "dst_port": 443, "path": "/api/orders?page=2", "user_agent": "Mozilla/5.0"}),
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn brute_force_with_scanner_is_high() {
        let out = run(json!({"failed_logins": 40, "user_agent": "hydra v9.4"}));
        assert_eq!(out.len(), 1);
        let a = &out[0];
        assert_eq!(a.scenario, "credential_bruteforce");
        assert_eq!(a.score, 45 + 25);
        assert_eq!(a.severity, Severity::High);
        let codes: Vec<_> = a.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, ["failed_logins", "scanner_agent"]);
        assert_eq!(a.subject, Subject::Ip("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn payload_families_count_once_each() {
        let out = run(
            json!({"payload": "' OR 1=1 -- UNION SELECT", "query": "q=<script>alert(1)</script>&x=' or 1=1"}),
        );
        let a = &out[0];
        assert_eq!(a.reasons.len(), 2, "{:?}", a.reasons);
        assert_eq!(a.score, 75);
        assert_eq!(a.scenario, "web_attack");
    }

    #[test]
    fn score_is_capped_and_critical() {
        let out = run(
            json!({"failed_logins": 500, "request_rate": 10000, "bytes_out": 1e12,
            "dst_port": 4444, "payload": "${jndi:ldap://x}"}),
        );
        assert_eq!(out[0].score, 100);
        assert_eq!(out[0].severity, Severity::Critical);
        assert!(out[0].confidence > 0.9);
    }

    #[test]
    fn malformed_numbers_are_ignored_not_fatal() {
        let out = run(
            json!({"failed_logins": "lots", "request_rate": -5, "dst_port": 99999, "bytes_out": null}),
        );
        assert!(out.is_empty());
        let out = run(json!({"failed_logins": "12"}));
        assert_eq!(out[0].reasons[0].code, "failed_logins");
    }

    #[test]
    fn below_threshold_scores_are_still_assessed() {
        let d = Heuristic::new(HeuristicSettings {
            min_score: 90,
            ..Default::default()
        });
        let a = d.assess(&event(json!({"dst_port": 23})));
        assert_eq!(a.score, 25);
        assert_eq!(a.scenario, "suspicious_port");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use sentinel_core::{EventId, EventKind, TraceId};

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever attributes arrive, scoring never panics, stays within 0–100, and the score is the
        /// capped sum of the reasons' weights.
        #[test]
        fn scoring_is_total_and_consistent(
            attrs in prop::collection::btree_map(
                prop_oneof![Just("failed_logins".to_string()), Just("request_rate".to_string()),
                    Just("bytes_out".to_string()), Just("dst_port".to_string()), Just("payload".to_string()),
                    Just("user_agent".to_string()), "[a-z]{1,8}"],
                arb_json(), 0..8)
        ) {
            let ev = Event {
                id: EventId::new(),
                kind: EventKind::telemetry(),
                ts: Timestamp::from_millis(0),
                source: "prop".into(),
                src_ip: None,
                target: None,
                attrs: attrs.into_iter().collect(),
                trace_id: TraceId::new(),
            };
            let h = Heuristic::new(HeuristicSettings::default());
            let a = h.assess(&ev);
            let sum: u32 = a.reasons.iter().map(|r| u32::from(r.weight)).sum();
            prop_assert!(a.score <= 100);
            prop_assert_eq!(u32::from(a.score), sum.min(100));
        }
    }
}
