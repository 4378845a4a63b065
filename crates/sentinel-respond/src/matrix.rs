//! The policy matrix: the first rule whose severity, risk band and confidence band all match decides.

use sentinel_core::{
    ActionKind, ActionParams, ActionSpec, Investigation, Mode, Plan, PlanId, Policy, Severity,
    Subject, Timestamp,
};
use std::time::Duration;

/// A band of risk or confidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Band {
    /// Below the medium threshold.
    Low,
    /// At or above medium, below high.
    Medium,
    /// At or above high.
    High,
}

impl Band {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::Medium => "medium",
            Band::High => "high",
        }
    }
}

/// Thresholds that split a value into bands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    /// Values at or above this are at least medium.
    pub medium: f64,
    /// Values at or above this are high.
    pub high: f64,
}

impl Bands {
    /// The band `v` falls in.
    pub fn of(&self, v: f64) -> Band {
        if v >= self.high {
            Band::High
        } else if v >= self.medium {
            Band::Medium
        } else {
            Band::Low
        }
    }
}

/// One action a rule asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionTemplate {
    /// What to do.
    pub kind: ActionKind,
    /// For how long.
    pub ttl: Duration,
    /// Kind-specific parameters, parsed when the configuration was loaded.
    pub params: ActionParams,
}

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixRule {
    /// A name for the plan's reason.
    pub name: String,
    /// Severities it matches.
    pub severity: Vec<Severity>,
    /// Risk bands it matches.
    pub risk: Vec<Band>,
    /// Confidence bands it matches.
    pub confidence: Vec<Band>,
    /// What it asks for (may be empty: record only).
    pub actions: Vec<ActionTemplate>,
}

/// The policy: ordered rules, band thresholds and the mode plans are made in.
#[derive(Debug, Clone)]
pub struct PolicyMatrix {
    rules: Vec<MatrixRule>,
    risk: Bands,
    confidence: Bands,
    mode: Mode,
}

impl PolicyMatrix {
    /// A matrix; `risk` thresholds are on 0–100, `confidence` on 0–1.
    pub fn new(rules: Vec<MatrixRule>, risk: Bands, confidence: Bands, mode: Mode) -> Self {
        Self {
            rules,
            risk,
            confidence,
            mode,
        }
    }

    /// The mode plans are made in.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// Whether an action kind can apply to a subject.
fn fits(kind: ActionKind, subject: &Subject) -> bool {
    matches!(
        (kind, subject),
        (
            ActionKind::BlockIp | ActionKind::RateLimit | ActionKind::RedirectToHoneypot,
            Subject::Ip(_)
        ) | (ActionKind::IsolateContainer, Subject::Container(_))
            | (ActionKind::QuarantineFile, Subject::File(_))
    )
}

impl Policy for PolicyMatrix {
    fn decide(&self, inv: &Investigation) -> Plan {
        let severity = inv.alert.severity;
        let risk_band = self.risk.of(f64::from(inv.risk_score));
        let conf_band = self.confidence.of(f64::from(inv.confidence));
        let rule = self.rules.iter().enumerate().find(|(_, r)| {
            r.severity.contains(&severity)
                && r.risk.contains(&risk_band)
                && r.confidence.contains(&conf_band)
        });
        let (actions, reason) = match rule {
            Some((i, r)) => {
                let name = if r.name.is_empty() {
                    format!("rule #{}", i + 1)
                } else {
                    r.name.clone()
                };
                let mut skipped = Vec::new();
                let mut unfit = Vec::new();
                let actions: Vec<ActionSpec> = r
                    .actions
                    .iter()
                    .filter(|t| {
                        let ok = fits(t.kind, &inv.alert.subject);
                        if !ok {
                            skipped.push(t.kind.as_str());
                        }
                        ok
                    })
                    .filter_map(|t| {
                        // An IPv4 source logged in its IPv4-mapped IPv6 form (a dual-stack
                        // socket) is acted on as the IPv4 address nftables matches.
                        let subject = match &inv.alert.subject {
                            sentinel_core::Subject::Ip(ip) => {
                                sentinel_core::Subject::Ip(ip.to_canonical())
                            }
                            other => other.clone(),
                        };
                        match ActionSpec::new(t.kind, subject, t.ttl.as_secs(), t.params.clone()) {
                            Ok(spec) => Some(spec),
                            Err(e) => {
                                unfit.push(format!("{} ({e})", t.kind));
                                None
                            }
                        }
                    })
                    .collect();
                let mut reason = format!(
                    "{name} matched severity={severity} risk={} ({}) confidence={} ({:.2})",
                    risk_band.as_str(),
                    inv.risk_score,
                    conf_band.as_str(),
                    inv.confidence
                );
                if !skipped.is_empty() {
                    reason.push_str(&format!(
                        "; skipped {} (not applicable to {})",
                        skipped.join(", "),
                        inv.alert.subject
                    ));
                }
                if !unfit.is_empty() {
                    reason.push_str(&format!("; refused {}", unfit.join(", ")));
                }
                (actions, reason)
            }
            None => (
                Vec::new(),
                format!(
                    "no rule matched severity={severity} risk={} confidence={}; recorded only",
                    risk_band.as_str(),
                    conf_band.as_str()
                ),
            ),
        };
        Plan {
            id: PlanId::new(),
            ts: Timestamp::now(),
            alert_id: inv.alert.id,
            investigation_id: inv.id,
            mode: self.mode,
            severity,
            risk_band: risk_band.as_str().into(),
            confidence_band: conf_band.as_str().into(),
            actions,
            reason,
            trace_id: inv.trace_id.clone(),
            scope: sentinel_core::Scope::Global,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_core::{Alert, AlertId, InvestigationId, TraceId};

    fn inv(severity: Severity, risk: u8, confidence: f32, subject: Subject) -> Investigation {
        let alert = Alert {
            id: AlertId::new(),
            ts: Timestamp::now(),
            detector: "t".into(),
            scenario: "s".into(),
            severity,
            score: risk,
            confidence,
            subject,
            reasons: vec![],
            evidence: vec![],
            trace_id: TraceId::new(),
        };
        Investigation {
            id: InvestigationId::new(),
            ts: Timestamp::now(),
            trace_id: alert.trace_id.clone(),
            alert,
            evidence: vec![],
            risk_score: risk,
            confidence,
            uncertainty: vec![],
            contributions: vec![],
        }
    }

    fn matrix() -> PolicyMatrix {
        use Band::*;
        PolicyMatrix::new(
            vec![
                MatrixRule {
                    name: "block".into(),
                    severity: vec![Severity::Critical, Severity::High],
                    risk: vec![High],
                    confidence: vec![High, Medium],
                    actions: vec![
                        ActionTemplate {
                            kind: ActionKind::BlockIp,
                            ttl: Duration::from_secs(3600),
                            params: ActionParams::none(ActionKind::BlockIp),
                        },
                        ActionTemplate {
                            kind: ActionKind::IsolateContainer,
                            ttl: Duration::from_secs(60),
                            params: ActionParams::none(ActionKind::IsolateContainer),
                        },
                    ],
                },
                MatrixRule {
                    name: "slow down".into(),
                    severity: vec![Severity::High, Severity::Medium],
                    risk: vec![Medium, High],
                    confidence: vec![Low, Medium, High],
                    actions: vec![ActionTemplate {
                        kind: ActionKind::RateLimit,
                        ttl: Duration::from_secs(600),
                        params: ActionParams::parse(
                            ActionKind::RateLimit,
                            &serde_json::json!({"rate_per_sec": 10}),
                        )
                        .unwrap(),
                    }],
                },
            ],
            Bands {
                medium: 40.0,
                high: 70.0,
            },
            Bands {
                medium: 0.5,
                high: 0.8,
            },
            Mode::Observe,
        )
    }

    #[test]
    fn first_matching_rule_decides() {
        let ip = Subject::Ip("203.0.113.7".parse().unwrap());
        let p = matrix().decide(&inv(Severity::High, 85, 0.9, ip.clone()));
        assert_eq!(p.actions.len(), 1, "container isolation does not fit an IP");
        assert_eq!(p.actions[0].kind, ActionKind::BlockIp);
        assert_eq!(p.actions[0].ttl_secs, 3600);
        assert!(p.reason.starts_with("block matched"), "{}", p.reason);
        assert!(p.reason.contains("skipped isolate_container"));
        assert_eq!(
            (p.risk_band.as_str(), p.confidence_band.as_str()),
            ("high", "high")
        );

        let p = matrix().decide(&inv(Severity::High, 50, 0.3, ip.clone()));
        assert_eq!(p.actions[0].kind, ActionKind::RateLimit);
        assert_eq!(p.actions[0].params.to_json()["rate_per_sec"], 10);
    }

    #[test]
    fn a_container_is_isolated_never_blocked_and_an_address_never_isolated() {
        let c = Subject::Container("web1".into());
        let p = matrix().decide(&inv(Severity::Critical, 100, 0.9, c.clone()));
        assert_eq!(p.actions.len(), 1, "{:?}", p.actions);
        assert_eq!(p.actions[0].kind, ActionKind::IsolateContainer);
        assert_eq!(p.actions[0].subject, c);
        assert_eq!(p.actions[0].ttl_secs, 60);
        assert!(
            p.reason
                .contains("skipped block_ip (not applicable to container:web1)"),
            "{}",
            p.reason
        );
        // Every kind, against each subject: only the kinds that fit it survive.
        for subject in [
            Subject::Ip("203.0.113.7".parse().unwrap()),
            c.clone(),
            Subject::File("/srv/x".into()),
            Subject::User("bob".into()),
        ] {
            for kind in ActionKind::ALL {
                let ok = fits(kind, &subject);
                let isolate = kind == ActionKind::IsolateContainer;
                let block = kind == ActionKind::BlockIp;
                if matches!(subject, Subject::Ip(_)) {
                    assert!(!(isolate && ok), "an address is never isolated");
                }
                if matches!(subject, Subject::Container(_)) {
                    assert_eq!(ok, isolate, "{kind} on a container");
                    assert!(!(block && ok));
                }
            }
        }
    }

    #[test]
    fn nothing_matches_records_only() {
        let p = matrix().decide(&inv(
            Severity::Low,
            10,
            0.9,
            Subject::Ip("203.0.113.7".parse().unwrap()),
        ));
        assert!(p.actions.is_empty());
        assert!(p.reason.starts_with("no rule matched"));
        assert_eq!(p.mode, Mode::Observe);
    }
}
