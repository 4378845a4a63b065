//! The whole investigation as [`sentinel_intel::build`] assembles it from configuration, against
//! real parts: fake providers speaking their wire format over loopback, a real `redis-server` shared
//! by two "nodes", and real feed files. Offline investigations are deterministic; a Redis-cached
//! answer is shared between nodes; concurrent investigations of one address make one request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use sentinel_core::{Alert, AlertId, Severity, Subject, Timestamp, TraceId, Verdict};
use sentinel_intel::config::{FeedConfig, FeedFormat, RedisUrl};
use sentinel_intel::{ApiKey, History, IntelConfig, SourceHistory};
use sentinel_testkit::redis::RedisServer;
use sentinel_testkit::ti::{Behaviour, FakeProvider, TiKind};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn alert(ip: &str) -> Alert {
    Alert {
        id: AlertId::new(),
        ts: Timestamp::from_millis(1_767_000_000_000),
        detector: "scenario".into(),
        scenario: "ssh_bruteforce".into(),
        severity: Severity::High,
        score: 75,
        confidence: 0.9,
        subject: Subject::Ip(ip.parse().unwrap()),
        reasons: vec![],
        evidence: vec![],
        trace_id: TraceId::new(),
    }
}

fn feed(dir: &Path, name: &str, body: &str, verdict: Verdict, score: u8) -> FeedConfig {
    let path = dir.join(format!("{name}.txt"));
    std::fs::write(&path, body).unwrap();
    FeedConfig {
        name: name.into(),
        path,
        format: FeedFormat::List,
        verdict,
        score,
    }
}

/// A fixed history, as the store would give it.
struct Fixed(SourceHistory);

#[async_trait]
impl History for Fixed {
    async fn history(
        &self,
        _subject: &Subject,
        _since: Timestamp,
        _before: Timestamp,
    ) -> Result<SourceHistory, String> {
        Ok(self.0)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_investigations_of_one_alert_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = IntelConfig::default();
    assert!(cfg.is_offline(), "no key: offline");
    cfg.feeds = vec![
        feed(
            dir.path(),
            "bad_nets",
            "203.0.113.0/24\n198.51.100.0/24\n",
            Verdict::Malicious,
            90,
        ),
        feed(
            dir.path(),
            "scanners",
            "203.0.113.7\n",
            Verdict::Suspicious,
            60,
        ),
    ];
    let history = SourceHistory {
        alerts: 2,
        actions: 1,
        last_seen: Some(Timestamp::from_millis(1_766_999_000_000)),
    };
    let a = alert("203.0.113.7");
    let mut runs = Vec::new();
    for _ in 0..2 {
        // A fresh Intel each time: the local enricher counts the alerts it has seen, which is input.
        let (intel, reports) = sentinel_intel::build(&cfg, Some(Arc::new(Fixed(history)))).unwrap();
        assert_eq!(reports.len(), 2);
        assert!(intel.is_offline());
        assert!(intel.provider_names().is_empty());
        runs.push(intel.investigator().investigate(a.clone()).await);
    }
    let (one, two) = (&runs[0], &runs[1]);
    assert_eq!(one.risk_score, two.risk_score);
    assert_eq!(one.confidence.to_bits(), two.confidence.to_bits());
    assert_eq!(one.contributions, two.contributions);
    assert_eq!(one.evidence, two.evidence);
    assert_eq!(one.uncertainty, two.uncertainty);
    // And it is the investigation the inputs call for, not merely the same twice.
    let inputs: Vec<&str> = one.contributions.iter().map(|c| c.input.as_str()).collect();
    for want in ["alert", "feeds", "history"] {
        assert!(inputs.contains(&want), "{inputs:?}");
    }
    let feeds = one
        .contributions
        .iter()
        .find(|c| c.input == "feeds")
        .unwrap();
    assert!(
        feeds.detail.contains("bad_nets") && feeds.detail.contains("scanners"),
        "{feeds:?}"
    );
    assert!(one.risk_score >= 70, "{one:?}");
    assert!(
        one.uncertainty
            .iter()
            .any(|f| f == "offline: local evidence only"),
        "{:?}",
        one.uncertainty
    );
    let risk: i32 = one.contributions.iter().map(|c| c.risk).sum();
    assert_eq!(risk, i32::from(one.risk_score));
}

fn online(fake: &FakeProvider, redis: Option<&RedisServer>) -> IntelConfig {
    let mut cfg = IntelConfig::default();
    cfg.abuseipdb.key = Some(ApiKey::new(fake.key()));
    cfg.abuseipdb.base_url = fake.base_url();
    cfg.deadline = Duration::from_secs(5);
    if let Some(r) = redis {
        cfg.cache.redis = Some(RedisUrl::new(r.url()));
        cfg.cache.prefix = "stack-test:intel:".into();
    }
    cfg
}

fn cache_source(inv: &sentinel_core::Investigation) -> String {
    let e = inv
        .evidence
        .iter()
        .find(|e| e.provider == "abuseipdb")
        .unwrap_or_else(|| panic!("no abuseipdb evidence: {inv:?}"));
    e.details["cache"]["source"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_cached_answer_is_shared_by_two_nodes() {
    let redis = RedisServer::start();
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    let ip: IpAddr = "203.0.113.44".parse().unwrap();
    fake.set(ip, Behaviour::listed(100, 40));
    let (first, _) = sentinel_intel::build(&online(&fake, Some(&redis)), None).unwrap();
    let (second, _) = sentinel_intel::build(&online(&fake, Some(&redis)), None).unwrap();
    assert_eq!(first.provider_names(), ["abuseipdb"]);

    let a = first
        .investigator()
        .investigate(alert("203.0.113.44"))
        .await;
    assert_eq!(cache_source(&a), "provider");
    assert_eq!(fake.hits(ip), 1);
    // The shared copy is written behind the answer (a stalled Redis never delays one): wait for it.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("stack-test:intel:abuseipdb:{ip}");
    let mut tries = 0;
    while !redis::cmd("EXISTS")
        .arg(&key)
        .query_async::<bool>(&mut c)
        .await
        .unwrap()
    {
        tries += 1;
        assert!(tries < 500, "{key} never written");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let b = second
        .investigator()
        .investigate(alert("203.0.113.44"))
        .await;
    assert_eq!(cache_source(&b), "redis", "{b:?}");
    assert_eq!(fake.hits(ip), 1, "the second node asked the provider again");
    // The shared answer is the provider's: the same verdict on both nodes.
    let verdict = |i: &sentinel_core::Investigation| {
        i.evidence
            .iter()
            .find(|e| e.provider == "abuseipdb")
            .map(|e| (e.verdict, e.score))
    };
    assert_eq!(verdict(&a), Some((Verdict::Malicious, Some(100))));
    assert_eq!(verdict(&a), verdict(&b));
    assert_eq!(second.stats().cache.redis_hits, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_concurrent_investigations_of_one_address_make_one_request() {
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    let ip: IpAddr = "198.51.100.77".parse().unwrap();
    // Slow enough that all ten are waiting while the one request is out.
    fake.set(
        ip,
        Behaviour::Slow(
            Duration::from_millis(300),
            Box::new(Behaviour::listed(90, 12)),
        ),
    );
    let (intel, _) = sentinel_intel::build(&online(&fake, None), None).unwrap();
    let inv = intel.investigator();
    let all = futures::future::join_all((0..10).map(|_| {
        let inv = inv.clone();
        async move { inv.investigate(alert("198.51.100.77")).await }
    }))
    .await;
    assert_eq!(fake.hits(ip), 1, "{:?}", fake.requests());
    for i in &all {
        let e = i.evidence.iter().find(|e| e.provider == "abuseipdb");
        assert_eq!(
            e.map(|e| (e.verdict, e.score)),
            Some((Verdict::Malicious, Some(90))),
            "{i:?}"
        );
    }
    let stats = intel.stats();
    assert_eq!(stats.providers[0].stats.requests, 1, "{stats:?}");
}
