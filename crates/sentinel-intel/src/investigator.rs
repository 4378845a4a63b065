//! The investigator: runs every enricher on an alert's subject and correlates the answers into risk.
//!
//! The enrichers run concurrently under one deadline for the whole investigation, so slow providers do not
//! add up. An enricher that fails or has not answered by the deadline does not stop the investigation: it
//! becomes an uncertainty flag and lowers confidence.

use crate::config::{AssetRule, Criticality};
use crate::correlate::{correlate, Context};
use crate::history::{History, SourceHistory};
use sentinel_core::{Alert, EnrichError, Enricher, Investigation, InvestigationId, Timestamp};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Investigations in flight at once unless told otherwise (the configuration's default).
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Enricher names that ask no one remote (everything else counts as a remote provider).
const LOCAL_ENRICHERS: [&str; 2] = ["local_context", "feeds"];

/// Event attributes that may hold the address an event was aimed at.
const DESTINATION_ATTRS: [&str; 4] = ["dst_ip", "dest_ip", "dst_addr", "destination_ip"];

/// Runs enrichers and correlates their evidence.
pub struct Investigator {
    enrichers: Vec<Box<dyn Enricher>>,
    deadline: Duration,
    history: Option<(Arc<dyn History>, Duration)>,
    assets: Vec<AssetRule>,
    default_criticality: Criticality,
    offline: bool,
    remote_providers: usize,
    concurrency: usize,
}

impl Investigator {
    /// An investigator over these enrichers. They run at the same time, and the whole investigation is
    /// given at most `deadline`: whoever has not answered by then is recorded as uncertainty. Every
    /// enricher other than `local_context` and `feeds` counts as a remote provider until
    /// [`Investigator::remote_providers`] says otherwise; no history, no asset rules (medium
    /// criticality), 64 investigations at once.
    pub fn new(enrichers: Vec<Box<dyn Enricher>>, deadline: Duration) -> Self {
        let remote_providers = enrichers
            .iter()
            .filter(|e| !LOCAL_ENRICHERS.contains(&e.name()))
            .count();
        Self {
            enrichers,
            deadline,
            history: None,
            assets: Vec::new(),
            default_criticality: Criticality::Medium,
            offline: false,
            remote_providers,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Looks up the subject's history (alerts and actions in the `window` before the alert) alongside
    /// the enrichers, under the same deadline. A failed lookup becomes an uncertainty flag.
    pub fn with_history(mut self, history: Arc<dyn History>, window: Duration) -> Self {
        self.history = Some((history, window));
        self
    }

    /// Asset rules that give an alert's target its criticality; `default` for targets none names.
    pub fn with_assets(mut self, assets: Vec<AssetRule>, default: Criticality) -> Self {
        self.assets = assets;
        self.default_criticality = default;
        self
    }

    /// Offline mode: no remote provider is expected (correlation rests on local evidence).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        if offline {
            self.remote_providers = 0;
        }
        self
    }

    /// How many remote providers are on (their absence lowers confidence).
    pub fn remote_providers(mut self, n: usize) -> Self {
        self.remote_providers = if self.offline { 0 } else { n };
        self
    }

    /// How many investigations the investigate stage runs at once (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How many investigations may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The per-investigation deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The asset an alert is aimed at and its criticality. Candidates are the `target` of each of the
    /// alert's events and any destination address among their attributes (`dst_ip`, …). A rule matches a
    /// candidate by name (exact or `*` glob, ignoring ASCII case) or, for an address, by net. When several
    /// rules match, the most critical wins (the first of equals).
    pub fn asset_of(&self, alert: &Alert) -> (Option<String>, Criticality) {
        let mut names: Vec<&str> = Vec::new();
        let mut addrs: Vec<IpAddr> = Vec::new();
        for e in &alert.evidence {
            if let Some(t) = e.target.as_deref() {
                names.push(t);
                if let Some(ip) = parse_addr(t) {
                    addrs.push(ip);
                }
            }
            for key in DESTINATION_ATTRS {
                if let Some(ip) = e
                    .attrs
                    .get(key)
                    .and_then(|v| v.as_str())
                    .and_then(parse_addr)
                {
                    addrs.push(ip);
                }
            }
        }
        let mut best: Option<&AssetRule> = None;
        for rule in &self.assets {
            let hit = names
                .iter()
                .any(|n| rule.targets.iter().any(|pat| glob_match(pat, n)))
                || addrs
                    .iter()
                    .any(|ip| rule.nets.iter().any(|net| net.contains(&ip.to_canonical())));
            if hit && best.is_none_or(|b| rule.criticality > b.criticality) {
                best = Some(rule);
            }
        }
        match best {
            Some(r) => (Some(r.name.clone()), r.criticality),
            None => (None, self.default_criticality),
        }
    }

    /// Investigates one alert. Never fails: missing answers become uncertainty.
    pub async fn investigate(&self, alert: Alert) -> Investigation {
        let until = tokio::time::Instant::now() + self.deadline;
        let enrich = futures::future::join_all(
            self.enrichers
                .iter()
                .map(|e| tokio::time::timeout_at(until, e.enrich(&alert.subject, &alert))),
        );
        let history = async {
            let (h, window) = self.history.as_ref()?;
            let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
            let since = Timestamp::from_millis(alert.ts.as_millis().saturating_sub(window_ms));
            Some(tokio::time::timeout_at(until, h.history(&alert.subject, since, alert.ts)).await)
        };
        let (answers, history) = tokio::join!(enrich, history);
        let mut evidence = Vec::with_capacity(self.enrichers.len());
        let mut uncertainty = Vec::new();
        // A remote provider that does not look up this kind of subject (a container, a private
        // address) is neither evidence nor missing: the subject is out of its reach, not unknown.
        let mut remote_providers = self.remote_providers;
        let mut out_of_reach = Vec::new();
        for (e, answer) in self.enrichers.iter().zip(answers) {
            match answer {
                Ok(Ok(ev)) => evidence.push(ev),
                Ok(Err(EnrichError::NotApplicable)) => {
                    if !LOCAL_ENRICHERS.contains(&e.name()) && remote_providers > 0 {
                        remote_providers -= 1;
                        out_of_reach.push(e.name().to_string());
                    }
                }
                Ok(Err(err)) => uncertainty.push(format!("{}: {err}", e.name())),
                Err(_) => uncertainty.push(format!(
                    "{}: no answer within the investigation deadline of {:?}",
                    e.name(),
                    self.deadline
                )),
            }
        }
        let history: Option<SourceHistory> = match history {
            None => None,
            Some(Ok(Ok(h))) => Some(h),
            Some(Ok(Err(e))) => {
                uncertainty.push(format!("history: {e}"));
                None
            }
            Some(Err(_)) => {
                uncertainty.push(format!(
                    "history: no answer within the investigation deadline of {:?}",
                    self.deadline
                ));
                None
            }
        };
        let (asset, criticality) = self.asset_of(&alert);
        let ctx = Context {
            criticality,
            asset,
            history,
            offline: self.offline,
            remote_providers,
            out_of_reach,
        };
        let scored = correlate(&alert, &evidence, &uncertainty, &ctx);
        Investigation {
            id: InvestigationId::new(),
            ts: Timestamp::now(),
            trace_id: alert.trace_id.clone(),
            alert,
            evidence,
            risk_score: scored.risk_score,
            confidence: scored.confidence,
            uncertainty: scored.flags,
            contributions: scored.contributions,
        }
    }
}

/// An address written alone, or with a port (`203.0.113.7:443`, `[2001:db8::1]:443`).
fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// `*` matches any run of characters (also none); everything else itself, ignoring ASCII case.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::LocalContext;
    use async_trait::async_trait;
    use sentinel_core::{
        AlertId, EnrichError, Event, EventId, EventKind, Evidence, Severity, Subject, TraceId,
        Verdict,
    };

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

    /// A remote provider that never looks up private addresses, as the real clients do.
    struct PublicOnly;
    #[async_trait]
    impl Enricher for PublicOnly {
        fn name(&self) -> &str {
            "abuseipdb"
        }
        async fn enrich(&self, _: &Subject, _: &Alert) -> Result<Evidence, EnrichError> {
            Err(EnrichError::NotApplicable)
        }
    }

    #[tokio::test]
    async fn a_configured_provider_out_of_reach_is_not_called_unconfigured() {
        let inv = Investigator::new(
            vec![
                Box::new(LocalContext::new(3_600_000, 100)),
                Box::new(PublicOnly),
            ],
            Duration::from_secs(1),
        );
        let i = inv.investigate(alert("10.1.2.3", 50)).await;
        assert!(
            i.uncertainty
                .iter()
                .any(|u| u.contains("abuseipdb not asked")),
            "{:?}",
            i.uncertainty
        );
        assert!(
            !i.uncertainty.iter().any(|u| u.contains("none configured")),
            "{:?}",
            i.uncertainty
        );
    }

    /// A container (a Falco alert's subject): no provider or feed is asked, the flag says why, and a
    /// critical alert keeps a risk and confidence the default policy acts on.
    #[tokio::test]
    async fn a_container_is_investigated_without_providers() {
        let inv = Investigator::new(
            vec![
                Box::new(LocalContext::addresses_only()),
                Box::new(PublicOnly),
            ],
            Duration::from_secs(1),
        )
        .with_history(
            history(Duration::ZERO, Ok(SourceHistory::default())),
            Duration::from_secs(3600),
        );
        let mut a = alert("203.0.113.7", 95);
        a.subject = Subject::Container("web1".into());
        a.confidence = 0.9;
        let i = inv.investigate(a).await;
        assert_eq!(i.risk_score, 100);
        assert!((i.confidence - 0.9).abs() < 1e-6, "{i:?}");
        assert_eq!(
            i.uncertainty.len(),
            1,
            "one honest flag, no missing provider: {:?}",
            i.uncertainty
        );
        assert!(
            i.uncertainty[0].contains("container:web1 is not an address"),
            "{:?}",
            i.uncertainty
        );
        adds_up(&i);
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
        assert_eq!(second.risk_score, 55);
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
        // 80 + 10 (critical) − 40 (loopback).
        assert_eq!(i.risk_score, 50);
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

    /// A history that answers after `delay` with fixed counts (or fails), writing down what it was asked.
    struct FakeHistory {
        delay: Duration,
        answer: Result<SourceHistory, String>,
        asked: std::sync::Mutex<Vec<(Subject, Timestamp, Timestamp)>>,
    }
    #[async_trait]
    impl History for FakeHistory {
        async fn history(
            &self,
            subject: &Subject,
            since: Timestamp,
            before: Timestamp,
        ) -> Result<SourceHistory, String> {
            self.asked
                .lock()
                .unwrap()
                .push((subject.clone(), since, before));
            tokio::time::sleep(self.delay).await;
            self.answer.clone()
        }
    }

    fn history(delay: Duration, answer: Result<SourceHistory, String>) -> Arc<FakeHistory> {
        Arc::new(FakeHistory {
            delay,
            answer,
            asked: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn adds_up(i: &Investigation) {
        let sum: i32 = i.contributions.iter().map(|c| c.risk).sum();
        assert_eq!(sum, i32::from(i.risk_score), "{:?}", i.contributions);
        let conf: f32 = i.contributions.iter().map(|c| c.confidence).sum();
        assert!((conf - i.confidence).abs() < 1e-4);
    }

    #[tokio::test]
    async fn history_from_the_store_raises_risk() {
        let h = history(
            Duration::ZERO,
            Ok(SourceHistory {
                alerts: 2,
                actions: 1,
                last_seen: Some(Timestamp::from_millis(999_000)),
            }),
        );
        let inv = Investigator::new(
            vec![Box::new(LocalContext::new(3_600_000, 100))],
            Duration::from_secs(1),
        )
        .with_history(h.clone(), Duration::from_secs(600));
        let i = inv.investigate(alert("203.0.113.7", 50)).await;
        // 50 + 2 × 5 + 1 × 10.
        assert_eq!(i.risk_score, 70);
        let c = i
            .contributions
            .iter()
            .find(|c| c.input == "history")
            .unwrap();
        assert_eq!(c.risk, 20);
        adds_up(&i);
        let asked = h.asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            vec![(
                Subject::Ip("203.0.113.7".parse().unwrap()),
                Timestamp::from_millis(1_000_000 - 600_000),
                Timestamp::from_millis(1_000_000)
            )]
        );
    }

    #[tokio::test]
    async fn a_failed_history_is_uncertainty() {
        let inv = Investigator::new(Vec::new(), Duration::from_secs(1)).with_history(
            history(Duration::ZERO, Err("database is locked".into())),
            Duration::from_secs(60),
        );
        let i = inv.investigate(alert("203.0.113.7", 50)).await;
        assert!(
            i.uncertainty
                .contains(&"history: database is locked".to_string()),
            "{:?}",
            i.uncertainty
        );
        assert_eq!(i.risk_score, 50);
        assert!(!i.contributions.iter().any(|c| c.input == "history"));
    }

    /// The history lookup runs alongside the enrichers, under the same deadline: a hanging store and a
    /// slow enricher cost one deadline together, and what the enricher said still counts.
    #[tokio::test(start_paused = true)]
    async fn history_shares_the_deadline() {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let slowish = Box::new(Recorder {
            name: "abuseipdb",
            sleep: Duration::from_millis(1500),
            log: log.clone(),
        });
        let inv = Investigator::new(vec![slowish], Duration::from_secs(2)).with_history(
            history(Duration::from_secs(3600), Ok(SourceHistory::default())),
            Duration::from_secs(60),
        );
        let t0 = tokio::time::Instant::now();
        let i = inv.investigate(alert("203.0.113.7", 50)).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert_eq!(i.evidence.len(), 1);
        assert!(i
            .uncertainty
            .iter()
            .any(|u| u.starts_with("history: no answer within")));
    }

    fn aimed_at(mut a: Alert, target: Option<&str>, dst: Option<&str>) -> Alert {
        let mut attrs = serde_json::Map::new();
        if let Some(d) = dst {
            attrs.insert("dst_ip".into(), d.into());
        }
        a.evidence.push(Event {
            id: EventId::new(),
            kind: EventKind("http_request".into()),
            ts: a.ts,
            source: "api".into(),
            src_ip: a.subject.ip(),
            target: target.map(str::to_owned),
            attrs,
            trace_id: a.trace_id.clone(),
        });
        a
    }

    fn rule(name: &str, targets: &[&str], nets: &[&str], criticality: Criticality) -> AssetRule {
        AssetRule {
            name: name.into(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
            criticality,
        }
    }

    #[tokio::test]
    async fn asset_criticality_follows_the_target() {
        let inv = Investigator::new(Vec::new(), Duration::from_secs(1)).with_assets(
            vec![
                rule("lab", &["lab-*"], &[], Criticality::Low),
                rule(
                    "payments",
                    &["pay*-api", "checkout"],
                    &[],
                    Criticality::High,
                ),
                rule("db", &[], &["198.51.100.0/24"], Criticality::Critical),
            ],
            Criticality::Medium,
        );
        let base = alert("203.0.113.7", 50);
        let risk = |a: &Alert| {
            let inv = &inv;
            let a = a.clone();
            async move {
                let i = inv.investigate(a).await;
                adds_up(&i);
                let c = i
                    .contributions
                    .iter()
                    .find(|c| c.input == "asset")
                    .unwrap()
                    .clone();
                (i.risk_score, c.detail)
            }
        };
        let (r, d) = risk(&aimed_at(base.clone(), Some("PAYMENTS-api"), None)).await;
        assert_eq!(r, 60, "{d}");
        assert!(d.contains("payments"), "{d}");
        assert_eq!(
            risk(&aimed_at(base.clone(), Some("checkout"), None))
                .await
                .0,
            60
        );
        assert_eq!(
            risk(&aimed_at(base.clone(), Some("lab-7"), None)).await.0,
            40
        );
        assert_eq!(
            risk(&aimed_at(base.clone(), None, Some("198.51.100.20")))
                .await
                .0,
            70,
            "by destination address"
        );
        assert_eq!(
            risk(&aimed_at(base.clone(), Some("198.51.100.9:5432"), None))
                .await
                .0,
            70,
            "a target that is an address"
        );
        // Several matches: the most critical wins.
        assert_eq!(
            risk(&aimed_at(base.clone(), Some("lab-1"), Some("198.51.100.1")))
                .await
                .0,
            70
        );
        let (r, d) = risk(&aimed_at(base.clone(), Some("blog"), None)).await;
        assert_eq!(r, 50);
        assert!(d.contains("default criticality medium"), "{d}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("db-*", "db-primary"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("Web", "web"));
        assert!(!glob_match("db-*", "xdb-1"));
        assert!(!glob_match("a*b", "acbd"));
        assert!(!glob_match("web", "web2"));
    }

    struct Down;
    #[async_trait]
    impl Enricher for Down {
        fn name(&self) -> &str {
            "virustotal"
        }
        async fn enrich(&self, _: &Subject, _: &Alert) -> Result<Evidence, EnrichError> {
            Err(EnrichError::Refused(
                "circuit open after 5 failures; next try in 23 s".into(),
            ))
        }
    }

    #[tokio::test]
    async fn providers_down_mean_low_confidence_unless_offline() {
        let mut a = alert("203.0.113.7", 70);
        a.confidence = 0.8;
        let inv = Investigator::new(
            vec![Box::new(LocalContext::new(1000, 10)), Box::new(Down)],
            Duration::from_secs(1),
        );
        let i = inv.investigate(a.clone()).await;
        assert!(i.confidence < 0.5, "{i:?}");
        assert!(i
            .uncertainty
            .iter()
            .any(|u| u.starts_with("virustotal: provider refused: circuit open")));
        assert!(i
            .contributions
            .iter()
            .any(|c| c.input == "missing:virustotal"));
        adds_up(&i);
        let offline = Investigator::new(
            vec![Box::new(LocalContext::new(1000, 10))],
            Duration::from_secs(1),
        )
        .offline(true)
        .remote_providers(3);
        let i = offline.investigate(a).await;
        assert!((i.confidence - 0.8).abs() < 1e-6, "{i:?}");
        assert!(i
            .uncertainty
            .contains(&"offline: local evidence only".to_string()));
    }

    #[test]
    fn concurrency_is_at_least_one() {
        let inv = Investigator::new(Vec::new(), Duration::from_secs(1));
        assert_eq!(inv.concurrency(), DEFAULT_CONCURRENCY);
        assert_eq!(inv.with_concurrency(0).concurrency(), 1);
    }

    #[tokio::test]
    async fn evidence_verdicts_are_explained() {
        let inv = Investigator::new(
            vec![Box::new(Recorder {
                name: "otx",
                sleep: Duration::ZERO,
                log: Default::default(),
            })],
            Duration::from_secs(1),
        );
        let i = inv.investigate(alert("203.0.113.7", 50)).await;
        let c = i.contributions.iter().find(|c| c.input == "otx").unwrap();
        assert_eq!(c.detail, "otx: suspicious (score 50)");
        assert_eq!(c.risk, 6);
        assert_eq!(i.evidence[0].verdict, Verdict::Suspicious);
        adds_up(&i);
    }
}
