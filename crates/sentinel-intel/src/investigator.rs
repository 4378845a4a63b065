//! The investigator: runs every enricher on an alert's subject and correlates the answers into risk.
//!
//! An enricher that fails or times out does not stop the investigation: it becomes an uncertainty flag
//! and lowers confidence.

use sentinel_core::{
    Alert, Enricher, Evidence, Investigation, InvestigationId, Timestamp, Verdict,
};
use std::time::Duration;

/// Runs enrichers and correlates their evidence.
pub struct Investigator {
    enrichers: Vec<Box<dyn Enricher>>,
    timeout: Duration,
}

impl Investigator {
    /// An investigator over these enrichers, each given at most `timeout`.
    pub fn new(enrichers: Vec<Box<dyn Enricher>>, timeout: Duration) -> Self {
        Self { enrichers, timeout }
    }

    /// Investigates one alert. Never fails: missing answers become uncertainty.
    pub async fn investigate(&self, alert: Alert) -> Investigation {
        let mut evidence = Vec::with_capacity(self.enrichers.len());
        let mut uncertainty = Vec::new();
        for e in &self.enrichers {
            let fut = e.enrich(&alert.subject, &alert);
            match tokio::time::timeout(self.timeout, fut).await {
                Ok(Ok(ev)) => evidence.push(ev),
                Ok(Err(err)) => uncertainty.push(format!("{}: {err}", e.name())),
                Err(_) => {
                    uncertainty.push(format!("{}: timed out after {:?}", e.name(), self.timeout))
                }
            }
        }
        if !evidence.iter().any(|e| e.provider != "local_context") {
            uncertainty.push("no threat-intelligence provider answered".into());
        }
        let (risk_score, confidence) = correlate(&alert, &evidence, uncertainty.len());
        Investigation {
            id: InvestigationId::new(),
            ts: Timestamp::now(),
            trace_id: alert.trace_id.clone(),
            alert,
            evidence,
            risk_score,
            confidence,
            uncertainty,
        }
    }
}

/// Risk: the detector's score, raised by malicious or suspicious verdicts, lowered by benign ones and
/// by a loopback source. Confidence: the detector's, nudged by agreement and lowered by uncertainty.
fn correlate(alert: &Alert, evidence: &[Evidence], uncertain: usize) -> (u8, f32) {
    let mut risk = i32::from(alert.score);
    let mut agree = 0i32;
    for e in evidence {
        match e.verdict {
            Verdict::Malicious => {
                risk += 25;
                agree += 1;
            }
            Verdict::Suspicious => {
                risk += 10;
                agree += 1;
            }
            Verdict::Benign => {
                risk -= 40;
                agree -= 1;
            }
            Verdict::Unknown => {}
        }
    }
    let conf = alert.confidence + 0.05 * agree as f32 - 0.05 * uncertain as f32;
    (risk.clamp(0, 100) as u8, conf.clamp(0.05, 0.99))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalContext;
    use async_trait::async_trait;
    use sentinel_core::{AlertId, EnrichError, Severity, Subject, TraceId};

    fn alert(ip: &str, score: u8) -> Alert {
        Alert {
            id: AlertId::new(),
            ts: Timestamp::from_millis(1_000_000),
            detector: "heuristic".into(),
            scenario: "web_attack".into(),
            severity: Severity::from_score(score),
            score,
            confidence: 0.7,
            subject: Subject::Ip(ip.parse().unwrap()),
            reasons: vec![],
            evidence: vec![],
            trace_id: TraceId::new(),
        }
    }

    struct Slow;
    #[async_trait]
    impl Enricher for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        async fn enrich(&self, _: &Subject, _: &Alert) -> Result<Evidence, EnrichError> {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Err(EnrichError::Timeout)
        }
    }

    #[tokio::test]
    async fn repeat_offenders_gain_risk() {
        let inv = Investigator::new(
            vec![Box::new(LocalContext::new(3_600_000, 100))],
            Duration::from_secs(1),
        );
        let first = inv.investigate(alert("203.0.113.7", 50)).await;
        assert_eq!(first.risk_score, 50);
        let second = inv.investigate(alert("203.0.113.7", 50)).await;
        assert_eq!(second.risk_score, 60);
        assert!(second
            .uncertainty
            .iter()
            .any(|u| u.contains("no threat-intelligence")));
        assert_eq!(second.trace_id, second.alert.trace_id);
    }

    #[tokio::test]
    async fn loopback_is_benign_and_slow_providers_are_uncertain() {
        let inv = Investigator::new(
            vec![Box::new(LocalContext::new(3_600_000, 100)), Box::new(Slow)],
            Duration::from_millis(50),
        );
        let i = inv.investigate(alert("127.0.0.1", 80)).await;
        assert_eq!(i.risk_score, 40);
        assert!(
            i.uncertainty
                .iter()
                .any(|u| u.starts_with("slow: timed out")),
            "{:?}",
            i.uncertainty
        );
        assert!(i.confidence < 0.7);
    }
}
