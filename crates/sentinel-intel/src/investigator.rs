//! The investigator: runs every enricher on an alert's subject and correlates the answers into risk.
//!
//! The enrichers run concurrently under one deadline for the whole investigation, so slow providers do not
//! add up. An enricher that fails or has not answered by the deadline does not stop the investigation: it
//! becomes an uncertainty flag and lowers confidence.

use sentinel_core::{
    Alert, Enricher, Evidence, Investigation, InvestigationId, Timestamp, Verdict,
};
use std::time::Duration;

/// Runs enrichers and correlates their evidence.
pub struct Investigator {
    enrichers: Vec<Box<dyn Enricher>>,
    deadline: Duration,
}

impl Investigator {
    /// An investigator over these enrichers. They run at the same time, and the whole investigation is
    /// given at most `deadline`: whoever has not answered by then is recorded as uncertainty.
    pub fn new(enrichers: Vec<Box<dyn Enricher>>, deadline: Duration) -> Self {
        Self {
            enrichers,
            deadline,
        }
    }

    /// The per-investigation deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Investigates one alert. Never fails: missing answers become uncertainty.
    pub async fn investigate(&self, alert: Alert) -> Investigation {
        let until = tokio::time::Instant::now() + self.deadline;
        let answers = futures::future::join_all(
            self.enrichers
                .iter()
                .map(|e| tokio::time::timeout_at(until, e.enrich(&alert.subject, &alert))),
        )
        .await;
        let mut evidence = Vec::with_capacity(self.enrichers.len());
        let mut uncertainty = Vec::new();
        for (e, answer) in self.enrichers.iter().zip(answers) {
            match answer {
                Ok(Ok(ev)) => evidence.push(ev),
                Ok(Err(err)) => uncertainty.push(format!("{}: {err}", e.name())),
                Err(_) => uncertainty.push(format!(
                    "{}: no answer within the investigation deadline of {:?}",
                    e.name(),
                    self.deadline
                )),
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
            contributions: Vec::new(),
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
                .any(|u| u.starts_with("slow: no answer within")),
            "{:?}",
            i.uncertainty
        );
        assert!(i.confidence < 0.7);
    }

    /// Sleeps for real, writing down when it starts and when it ends.
    struct Recorder {
        name: &'static str,
        sleep: Duration,
        log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }
    #[async_trait]
    impl Enricher for Recorder {
        fn name(&self) -> &str {
            self.name
        }
        async fn enrich(&self, _: &Subject, _: &Alert) -> Result<Evidence, EnrichError> {
            self.log
                .lock()
                .unwrap()
                .push(format!("start {}", self.name));
            tokio::time::sleep(self.sleep).await;
            self.log.lock().unwrap().push(format!("end {}", self.name));
            Ok(Evidence {
                provider: self.name.into(),
                verdict: Verdict::Suspicious,
                score: Some(50),
                details: serde_json::Value::Null,
            })
        }
    }

    #[tokio::test]
    async fn enrichers_run_at_the_same_time() {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let rec = |name| {
            Box::new(Recorder {
                name,
                sleep: Duration::from_millis(300),
                log: log.clone(),
            }) as Box<dyn Enricher>
        };
        let inv = Investigator::new(vec![rec("a"), rec("b")], Duration::from_secs(30));
        let i = inv.investigate(alert("203.0.113.7", 50)).await;
        let log = log.lock().unwrap().clone();
        // Both started before either finished: they overlapped.
        let first_end = log.iter().position(|l| l.starts_with("end")).unwrap();
        assert_eq!(
            log[..first_end]
                .iter()
                .filter(|l| l.starts_with("start"))
                .count(),
            2,
            "{log:?}"
        );
        assert_eq!(i.evidence.len(), 2);
        assert_eq!(
            i.evidence[0].provider, "a",
            "evidence keeps the enrichers' order"
        );
        assert_eq!(i.evidence[1].provider, "b");
    }

    /// On tokio's paused clock (time jumps to the next timer, so nothing here waits): three enrichers that
    /// never answer cost one deadline together, not one each.
    #[tokio::test(start_paused = true)]
    async fn one_deadline_for_the_whole_investigation() {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let hang = |name| {
            Box::new(Recorder {
                name,
                sleep: Duration::from_secs(3600),
                log: log.clone(),
            }) as Box<dyn Enricher>
        };
        let quick = Box::new(Recorder {
            name: "quick",
            sleep: Duration::from_millis(10),
            log: log.clone(),
        });
        let inv = Investigator::new(
            vec![hang("h1"), quick, hang("h2"), hang("h3")],
            Duration::from_secs(2),
        );
        let t0 = tokio::time::Instant::now();
        let i = inv.investigate(alert("203.0.113.7", 50)).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert_eq!(i.evidence.len(), 1);
        assert_eq!(i.evidence[0].provider, "quick");
        for h in ["h1", "h2", "h3"] {
            assert!(
                i.uncertainty
                    .iter()
                    .any(|u| u.starts_with(&format!("{h}: no answer within"))),
                "{:?}",
                i.uncertainty
            );
        }
    }
}
