//! The resilience layer around a provider: retries and backoff, `Retry-After`, the circuit breaker, the
//! rate limiter, coalescing, the answer cache (memory, and a real `redis-server` shared by two "nodes").
//!
//! The provider here is a small scripted [`Provider`] (it replies what each test tells it to and records
//! when it was asked): these tests are about the layer, not about any provider's wire format. Time is
//! tokio's paused clock wherever waits matter, so nothing here depends on the machine's speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use sentinel_core::{
    Alert, AlertId, EnrichError, Enricher, Evidence, Severity, Subject, Timestamp, TraceId, Verdict,
};
use sentinel_intel::config::{BreakerSettings, RedisUrl, RetrySettings};
use sentinel_intel::{
    Answer, AnswerCache, ApiKey, BreakerState, GuardSettings, Guarded, Investigator, Provider,
    ProviderError, Quota, RateInfo, Reply, MAX_PROVIDER_WAIT,
};
use sentinel_testkit::redis::RedisServer;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const KEY: &str = "sk-live-0123456789abcdef-SECRET";

#[derive(Clone)]
struct Step {
    delay: Duration,
    reply: Reply,
}

fn step(reply: Reply) -> Step {
    Step {
        delay: Duration::ZERO,
        reply,
    }
}

/// Replies from per-address scripts, then a shared script, then a default; records every call.
struct Scripted {
    key: ApiKey,
    per_ip: Mutex<HashMap<IpAddr, VecDeque<Step>>>,
    script: Mutex<VecDeque<Step>>,
    default: Mutex<Step>,
    calls: Mutex<Vec<(Instant, IpAddr)>>,
}

impl Scripted {
    fn new(default: Step) -> Arc<Self> {
        Arc::new(Scripted {
            key: ApiKey::new(KEY),
            per_ip: Mutex::new(HashMap::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            calls: Mutex::new(Vec::new()),
        })
    }
    fn then(&self, s: Step) {
        self.script.lock().unwrap().push_back(s);
    }
    fn for_ip(&self, ip: IpAddr, s: Step) {
        self.per_ip
            .lock()
            .unwrap()
            .entry(ip)
            .or_default()
            .push_back(s);
    }
    fn set_default(&self, s: Step) {
        *self.default.lock().unwrap() = s;
    }
    fn calls(&self) -> Vec<(Instant, IpAddr)> {
        self.calls.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    async fn lookup(&self, ip: IpAddr) -> Reply {
        self.calls.lock().unwrap().push((Instant::now(), ip));
        let next = self
            .per_ip
            .lock()
            .unwrap()
            .get_mut(&ip)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.script.lock().unwrap().pop_front())
            .unwrap_or_else(|| self.default.lock().unwrap().clone());
        tokio::time::sleep(next.delay).await;
        let mut reply = next.reply;
        // A provider scrubs whatever the server echoed of the key from its messages.
        if let Err(ProviderError::Unauthorized { message, .. }) = &mut reply.result {
            *message = self.key.scrub(message);
        }
        reply
    }
}

fn ok(verdict: Verdict, score: u8) -> Reply {
    Reply::new(Ok(Answer {
        verdict,
        score: Some(score),
        details: serde_json::json!({"abuseConfidenceScore": score}),
        negative: false,
    }))
}

fn negative() -> Reply {
    Reply::new(Ok(Answer {
        verdict: Verdict::Unknown,
        score: Some(0),
        details: serde_json::json!({"totalReports": 0}),
        negative: true,
    }))
}

fn fail(e: ProviderError) -> Reply {
    Reply::new(Err(e))
}

fn s503() -> Reply {
    fail(ProviderError::Status {
        status: 503,
        message: "unavailable".into(),
    })
}

fn rate_limited(secs: u64) -> Reply {
    fail(ProviderError::RateLimited {
        retry_after: Some(Duration::from_secs(secs)),
    })
}

fn settings() -> GuardSettings {
    GuardSettings {
        quota: Quota {
            requests: 10_000,
            per: Duration::from_secs(1),
            burst: 10_000,
        },
        retry: RetrySettings {
            attempts: 3,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        breaker: BreakerSettings {
            failures: 100,
            cooldown: Duration::from_secs(30),
        },
        ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(10),
        deadline: Duration::from_secs(10),
    }
}

fn guard(p: &Arc<Scripted>, s: GuardSettings) -> Guarded {
    Guarded::new(p.clone(), s, Arc::new(AnswerCache::memory(1000)))
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([203, 0, 113, n])
}

fn alert(ip: IpAddr) -> Alert {
    Alert {
        id: AlertId::new(),
        ts: Timestamp::from_millis(1_000_000),
        detector: "heuristic".into(),
        scenario: "web_attack".into(),
        severity: Severity::from_score(60),
        score: 60,
        confidence: 0.7,
        subject: Subject::Ip(ip),
        reasons: vec![],
        evidence: vec![],
        trace_id: TraceId::new(),
    }
}

async fn ask(g: &Guarded, ip: IpAddr) -> Result<Evidence, EnrichError> {
    g.enrich(&Subject::Ip(ip), &alert(ip)).await
}

fn source(e: &Evidence) -> &str {
    e.details["cache"]["source"].as_str().unwrap()
}

fn refused(r: Result<Evidence, EnrichError>) -> String {
    match r {
        Err(EnrichError::Refused(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_by_the_retry_and_by_every_other_request() {
    let p = Scripted::new(step(ok(Verdict::Malicious, 90)));
    p.then(step(rate_limited(3)));
    let g = guard(&p, settings());
    let t0 = Instant::now();
    let first = ask(&g, ip(1));
    // Another address asked one second later must not reach the provider before the 3 s either.
    let second = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ask(&g, ip(2)).await
    };
    let (a, b) = tokio::join!(first, second);
    assert_eq!(a.unwrap().verdict, Verdict::Malicious);
    assert_eq!(b.unwrap().verdict, Verdict::Malicious);
    let calls = p.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0], (t0, ip(1)));
    for (at, _) in &calls[1..] {
        assert!(*at >= t0 + Duration::from_secs(3), "{:?}", *at - t0);
    }
    let s = g.stats();
    assert_eq!((s.retries, s.failures.rate_limited, s.successes), (1, 1, 2));
    assert!(s.rate_limited_waits >= 1);
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_within_bounds_and_is_jittered() {
    let mut gaps: Vec<[Duration; 3]> = Vec::new();
    for _ in 0..40 {
        let p = Scripted::new(step(ok(Verdict::Suspicious, 40)));
        for _ in 0..3 {
            p.then(step(s503()));
        }
        let mut s = settings();
        s.retry = RetrySettings {
            attempts: 4,
            base: Duration::from_secs(1),
            max: Duration::from_secs(3),
        };
        s.deadline = Duration::from_secs(60);
        let g = guard(&p, s);
        assert_eq!(ask(&g, ip(1)).await.unwrap().verdict, Verdict::Suspicious);
        let t: Vec<Instant> = p.calls().iter().map(|c| c.0).collect();
        assert_eq!(t.len(), 4);
        gaps.push([t[1] - t[0], t[2] - t[1], t[3] - t[2]]);
    }
    // Ceilings: base × 2ⁿ capped at max = 1 s, 2 s, 3 s (not 4 s).
    let ceilings = [1, 2, 3].map(Duration::from_secs);
    for g in &gaps {
        for n in 0..3 {
            assert!(g[n] <= ceilings[n], "retry {n} waited {:?}", g[n]);
        }
    }
    // Jittered: the waits differ from run to run instead of being the ceiling each time.
    let mut distinct: Vec<Duration> = gaps.iter().map(|g| g[2]).collect();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 30, "{distinct:?}");
    // Growing: on average the third wait (0..3 s) is well above the first (0..1 s).
    let mean = |n: usize| gaps.iter().map(|g| g[n]).sum::<Duration>() / gaps.len() as u32;
    assert!(
        mean(2) > mean(0) + Duration::from_millis(300),
        "{:?} {:?}",
        mean(0),
        mean(2)
    );
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_attempts() {
    let p = Scripted::new(step(s503()));
    let g = guard(&p, settings());
    let m = refused(ask(&g, ip(1)).await);
    assert_eq!(p.count(), 3);
    assert!(
        m.contains("HTTP 503") && m.contains("after 3 attempts"),
        "{m}"
    );
    let s = g.stats();
    assert_eq!((s.requests, s.retries, s.failures.status), (3, 2, 3));
    // A non-retryable failure is not retried at all.
    let p = Scripted::new(step(fail(ProviderError::Status {
        status: 404,
        message: "not found".into(),
    })));
    let g = guard(&p, settings());
    assert!(refused(ask(&g, ip(1)).await).contains("HTTP 404"));
    assert_eq!(p.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_budget() {
    let p = Scripted::new(step(s503()));
    let mut s = settings();
    s.retry = RetrySettings {
        // Full jitter: 19 waits of 0..1 s all fitting in 2.5 s has a chance of about 3e-10.
        attempts: 20,
        base: Duration::from_secs(1),
        max: Duration::from_secs(1),
    };
    s.deadline = Duration::from_millis(2500);
    let g = guard(&p, s);
    let t0 = Instant::now();
    let r = ask(&g, ip(1)).await;
    assert!(r.is_err());
    assert!(
        t0.elapsed() <= Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    let n = p.count();
    assert!((2..20).contains(&n), "{n} attempts");
    // Every attempt was inside the budget.
    assert!(p
        .calls()
        .iter()
        .all(|(at, _)| *at <= t0 + Duration::from_millis(2500)));

    // A Retry-After beyond the budget: no waiting for it, the reason is said at once.
    let p = Scripted::new(step(rate_limited(30)));
    let mut s = settings();
    s.deadline = Duration::from_secs(2);
    let g = guard(&p, s);
    let t0 = Instant::now();
    let m = refused(ask(&g, ip(1)).await);
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(p.count(), 1);
    assert!(
        m.contains("rate limited by the provider (retry after 30 s)"),
        "{m}"
    );
    // And the next address does not even ask: the provider is blocked for 30 s.
    let m = refused(ask(&g, ip(2)).await);
    assert_eq!(p.count(), 1);
    assert!(m.contains("retry after 30 s"), "{m}");
    assert_eq!(g.stats().fast_fails, 1);
}

fn breaker_settings() -> GuardSettings {
    let mut s = settings();
    s.retry.attempts = 1;
    s.breaker = BreakerSettings {
        failures: 3,
        cooldown: Duration::from_secs(30),
    };
    s
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_fails_fast_half_opens_with_one_trial_and_closes() {
    let p = Scripted::new(step(s503()));
    let g = guard(&p, breaker_settings());
    for n in 1..=3 {
        assert!(ask(&g, ip(n)).await.is_err());
    }
    assert_eq!(g.stats().breaker, BreakerState::Open);
    assert_eq!(g.stats().breaker_opens, 1);
    // Open: the provider is not asked.
    let t0 = Instant::now();
    let m = refused(ask(&g, ip(4)).await);
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(m, "circuit open after 3 failures; next try in 30 s");
    assert_eq!(p.count(), 3);

    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(g.stats().breaker, BreakerState::HalfOpen);
    p.set_default(Step {
        delay: Duration::from_secs(1),
        reply: ok(Verdict::Benign, 0),
    });
    // Five calls at once: exactly one trial reaches the provider.
    let results = futures::future::join_all((10..15).map(|n| ask(&g, ip(n)))).await;
    assert_eq!(p.count(), 4);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert!(refused(r).contains("half-open"));
    }
    assert_eq!(g.stats().breaker, BreakerState::Closed);
    assert!(ask(&g, ip(20)).await.is_ok());
    assert_eq!(p.count(), 5);
    assert_eq!(g.stats().fast_fails, 5);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_circuit_opens() {
    let p = Scripted::new(step(s503()));
    let mut s = breaker_settings();
    s.breaker.failures = 2;
    s.retry.attempts = 5;
    let g = guard(&p, s);
    let t0 = Instant::now();
    let m = refused(ask(&g, ip(1)).await);
    assert_eq!(p.count(), 2);
    // No backoff is slept for a retry the open circuit would refuse.
    assert!(
        t0.elapsed() <= Duration::from_millis(100),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        m,
        "HTTP 503: unavailable (after 2 attempts; no retry: circuit open after 2 failures; next try in 30 s)"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_trial_reopens_the_circuit() {
    let p = Scripted::new(step(s503()));
    let g = guard(&p, breaker_settings());
    for n in 1..=3 {
        assert!(ask(&g, ip(n)).await.is_err());
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(refused(ask(&g, ip(4)).await).contains("HTTP 503"));
    assert_eq!(p.count(), 4);
    let s = g.stats();
    assert_eq!((s.breaker, s.breaker_opens), (BreakerState::Open, 2));
    assert!(refused(ask(&g, ip(5)).await).contains("next try in 30 s"));
    assert_eq!(p.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn limiter_never_exceeds_the_quota() {
    let p = Scripted::new(step(ok(Verdict::Unknown, 0)));
    let mut s = settings();
    s.quota = Quota {
        requests: 5,
        per: Duration::from_secs(10),
        burst: 2,
    };
    s.deadline = Duration::from_secs(1000);
    let g = guard(&p, s);
    let t0 = Instant::now();
    let results = futures::future::join_all((1..=30).map(|n| ask(&g, ip(n)))).await;
    assert!(results.iter().all(Result::is_ok));
    let times: Vec<Instant> = p.calls().iter().map(|c| c.0).collect();
    assert_eq!(times.len(), 30);
    // The burst goes at once…
    assert_eq!(times.iter().filter(|t| **t == t0).count(), 2);
    // …and no window of 10 s ever holds more than 5 requests.
    for t in &times {
        let in_window = times
            .iter()
            .filter(|u| **u >= *t && **u < *t + Duration::from_secs(10))
            .count();
        assert!(
            in_window <= 5,
            "{in_window} requests in 10 s from {:?}",
            *t - t0
        );
    }
    assert!(g.stats().rate_limited_waits >= 28);
}

#[tokio::test(start_paused = true)]
async fn limiter_fails_fast_when_the_wait_exceeds_the_budget() {
    let p = Scripted::new(step(ok(Verdict::Unknown, 0)));
    let mut s = settings();
    s.quota = Quota {
        requests: 1,
        per: Duration::from_secs(60),
        burst: 1,
    };
    s.deadline = Duration::from_secs(2);
    let g = guard(&p, s);
    assert!(ask(&g, ip(1)).await.is_ok());
    let t0 = Instant::now();
    let m = refused(ask(&g, ip(2)).await);
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert!(
        m.contains("local rate limit") && m.contains("next slot in 60 s"),
        "{m}"
    );
    assert_eq!(p.count(), 1);
    assert_eq!(g.stats().fast_fails, 1);
}

#[tokio::test(start_paused = true)]
async fn no_requests_remaining_blocks_until_the_reset() {
    let p = Scripted::new(step(ok(Verdict::Unknown, 0)));
    let mut last = ok(Verdict::Suspicious, 30);
    last.rate = RateInfo {
        limit: Some(1000),
        remaining: Some(0),
        reset_after: Some(Duration::from_secs(5)),
    };
    p.then(step(last));
    let mut s = settings();
    s.deadline = Duration::from_secs(2);
    let g = guard(&p, s);
    assert!(ask(&g, ip(1)).await.is_ok());
    let m = refused(ask(&g, ip(2)).await);
    assert!(
        m.contains("rate limited by the provider (retry after 5 s)"),
        "{m}"
    );
    assert_eq!(p.count(), 1);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(ask(&g, ip(2)).await.is_ok());
    assert_eq!(p.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn ten_calls_on_one_address_make_one_request() {
    let p = Scripted::new(Step {
        delay: Duration::from_millis(500),
        reply: ok(Verdict::Malicious, 95),
    });
    let g = guard(&p, settings());
    let results = futures::future::join_all((0..10).map(|_| ask(&g, ip(7)))).await;
    assert_eq!(p.count(), 1);
    for r in results {
        let e = r.unwrap();
        assert_eq!((e.verdict, e.score), (Verdict::Malicious, Some(95)));
        assert_eq!(source(&e), "provider");
    }
    assert_eq!(g.stats().coalesced, 9);
}

#[tokio::test(start_paused = true)]
async fn a_request_everyone_gave_up_on_still_fills_the_cache() {
    let p = Scripted::new(Step {
        delay: Duration::from_secs(5),
        reply: ok(Verdict::Malicious, 80),
    });
    let mut s = settings();
    s.deadline = Duration::from_secs(1);
    let g = guard(&p, s);
    let t0 = Instant::now();
    assert!(matches!(ask(&g, ip(9)).await, Err(EnrichError::Timeout)));
    assert_eq!(t0.elapsed(), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let e = ask(&g, ip(9)).await.unwrap();
    assert_eq!(e.verdict, Verdict::Malicious);
    assert_eq!(e.details["cache"]["hit"], true);
    assert_eq!(source(&e), "memory");
    assert_eq!(p.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn cache_hits_expire_and_negative_answers_expire_sooner() {
    let p = Scripted::new(step(ok(Verdict::Malicious, 90)));
    p.for_ip(ip(2), step(negative()));
    p.for_ip(ip(2), step(negative()));
    let g = guard(&p, settings());
    for n in [1, 2] {
        let e = ask(&g, ip(n)).await.unwrap();
        assert_eq!(e.details["cache"]["hit"], false);
    }
    assert_eq!(p.count(), 2);
    for n in [1, 2] {
        let e = ask(&g, ip(n)).await.unwrap();
        assert_eq!(e.details["cache"]["hit"], true);
        assert_eq!(source(&e), "memory");
        assert!(e.details["cache"]["age_secs"].is_u64());
        // The provider's own details are kept beside the cache state.
        assert!(
            e.details.get("abuseConfidenceScore").is_some()
                || e.details.get("totalReports").is_some()
        );
    }
    assert_eq!(p.count(), 2);
    // Past the negative TTL (10 s), before the TTL (60 s).
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(ask(&g, ip(2)).await.unwrap().details["cache"]["hit"], false);
    assert_eq!(ask(&g, ip(1)).await.unwrap().details["cache"]["hit"], true);
    assert_eq!(p.count(), 3);
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(ask(&g, ip(1)).await.unwrap().details["cache"]["hit"], false);
    assert_eq!(p.count(), 4);
    let s = g.stats();
    assert_eq!((s.cache_hits, s.cache_misses), (3, 4));
}

#[tokio::test(start_paused = true)]
async fn malformed_answers_are_uncertainty_not_cached_and_count_against_the_provider() {
    let p = Scripted::new(step(fail(ProviderError::Malformed(
        "expected value at line 1 column 1".into(),
    ))));
    let mut s = breaker_settings();
    s.retry.attempts = 3;
    let g = guard(&p, s);
    for n in 1..=3 {
        match ask(&g, ip(1)).await {
            Err(EnrichError::Malformed(m)) => assert!(m.contains("line 1 column 1"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Not retried, not cached: each call asks once.
        assert_eq!(p.count(), n);
    }
    let s = g.stats();
    assert_eq!((s.failures.malformed, s.breaker), (3, BreakerState::Open));
    // Through the investigator: an uncertainty flag, not a failed investigation.
    let inv = Investigator::new(vec![Box::new(g.clone())], Duration::from_secs(2))
        .investigate(alert(ip(1)))
        .await;
    assert!(inv.evidence.iter().all(|e| e.provider != "scripted"));
    assert!(
        inv.uncertainty.iter().any(|u| u.starts_with("scripted: ")),
        "{:?}",
        inv.uncertainty
    );
}

#[tokio::test(start_paused = true)]
async fn the_key_never_shows() {
    let p = Scripted::new(step(fail(ProviderError::Unauthorized {
        status: 401,
        message: format!("invalid API key {KEY}"),
    })));
    let g = guard(&p, settings());
    let r = ask(&g, ip(1)).await;
    let shown = format!("{r:?} {} {g:?} {:?}", r.as_ref().unwrap_err(), g.stats());
    assert!(shown.contains("refused the API key (HTTP 401)"), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    // Errors are not retried or cached when the key is refused.
    assert_eq!(p.count(), 1);
}

#[tokio::test]
async fn a_redis_answer_is_shared_by_every_node() {
    let server = RedisServer::start();
    let url = RedisUrl::new(server.url());
    let node = || Arc::new(AnswerCache::with_redis(100, &url, "test:intel:").unwrap());
    let (cache1, cache2) = (node(), node());
    let p1 = Scripted::new(step(ok(Verdict::Malicious, 90)));
    p1.for_ip(ip(2), step(negative()));
    let g1 = Guarded::new(p1.clone(), settings(), cache1);
    // Node 2's provider would fail if asked.
    let p2 = Scripted::new(step(s503()));
    let g2 = Guarded::new(p2.clone(), settings(), cache2.clone());

    assert_eq!(source(&ask(&g1, ip(1)).await.unwrap()), "provider");
    assert_eq!(source(&ask(&g1, ip(2)).await.unwrap()), "provider");
    // The shared copy is written behind the answer: wait until it is there.
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for n in [1, 2] {
        let key = format!("test:intel:scripted:{}", ip(n));
        let mut tries = 0;
        while !redis::cmd("EXISTS")
            .arg(&key)
            .query_async::<bool>(&mut c)
            .await
            .unwrap()
        {
            tries += 1;
            assert!(tries < 500, "{key} never written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let e = ask(&g2, ip(1)).await.unwrap();
    assert_eq!((e.verdict, e.score), (Verdict::Malicious, Some(90)));
    assert_eq!(e.details["cache"]["hit"], true);
    assert_eq!(source(&e), "redis");
    // Now in node 2's memory too.
    assert_eq!(source(&ask(&g2, ip(1)).await.unwrap()), "memory");
    assert_eq!(ask(&g2, ip(2)).await.unwrap().verdict, Verdict::Unknown);
    assert_eq!(p2.count(), 0);
    let s = cache2.stats();
    assert_eq!((s.redis_hits, s.memory_hits, s.redis_errors), (2, 1, 0));

    // The stored form: `<prefix><provider>:<ip>`, JSON with fetched_at, expiring with the TTL.
    for (n, ttl_ms) in [(1, 60_000), (2, 10_000)] {
        let key = format!("test:intel:scripted:{}", ip(n));
        let (value, pttl): (String, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&value).unwrap();
        assert!(
            v["fetched_at_ms"].as_u64().unwrap() > 1_700_000_000_000,
            "{v}"
        );
        assert!(v["answer"]["verdict"].is_string(), "{v}");
        assert!(pttl > 0 && pttl <= ttl_ms, "{key}: {pttl}");
    }
}

#[tokio::test]
async fn redis_down_is_a_counted_miss_and_the_investigation_still_answers() {
    let mut server = RedisServer::start();
    let cache = Arc::new(
        AnswerCache::with_redis(100, &RedisUrl::new(server.url()), "test:intel:").unwrap(),
    );
    let p = Scripted::new(step(ok(Verdict::Suspicious, 50)));
    let g = Guarded::new(p.clone(), settings(), cache.clone());
    assert!(ask(&g, ip(1)).await.is_ok());
    assert_eq!(cache.stats().redis_errors, 0);
    server.kill();

    let inv = Investigator::new(vec![Box::new(g.clone())], Duration::from_secs(5))
        .investigate(alert(ip(2)))
        .await;
    let e = inv
        .evidence
        .iter()
        .find(|e| e.provider == "scripted")
        .unwrap();
    assert_eq!(e.verdict, Verdict::Suspicious);
    assert_eq!(e.details["cache"]["source"], "provider");
    // What memory holds still answers.
    assert_eq!(source(&ask(&g, ip(1)).await.unwrap()), "memory");
    let s = cache.stats();
    assert!(s.redis_errors >= 1, "{s:?}");
    assert!(s.misses >= 2, "{s:?}");
    assert_eq!(p.count(), 2);

    // A Redis that was never there: the same.
    let cache = Arc::new(
        AnswerCache::with_redis(100, &RedisUrl::new(server.url()), "test:intel:").unwrap(),
    );
    let g = Guarded::new(p.clone(), settings(), cache.clone());
    assert!(ask(&g, ip(3)).await.is_ok());
    assert!(cache.stats().redis_errors >= 1);
}

/// Inside addresses never reach a provider, and their absence is not held against the investigation:
/// the provider does not apply, it is not missing.
#[tokio::test(start_paused = true)]
async fn private_and_loopback_addresses_are_never_sent() {
    let p = Scripted::new(step(ok(Verdict::Malicious, 90)));
    let g = guard(&p, settings());
    let inv = Investigator::new(vec![Box::new(g.clone())], Duration::from_secs(2));
    for inside in [
        "10.1.2.3",
        "192.168.0.9",
        "127.0.0.1",
        "fd00::5",
        "fe80::1",
        "100.64.1.1",
    ] {
        let a: IpAddr = inside.parse().unwrap();
        assert!(matches!(ask(&g, a).await, Err(EnrichError::NotApplicable)));
        let i = inv.investigate(alert(a)).await;
        assert!(
            i.uncertainty.iter().all(|u| !u.starts_with("scripted")),
            "{:?}",
            i.uncertainty
        );
        assert!(
            i.contributions
                .iter()
                .all(|c| !c.input.starts_with("missing")),
            "{:?}",
            i.contributions
        );
    }
    assert_eq!(p.count(), 0);
    // A public (here: documentation) address is asked.
    assert!(ask(&g, ip(9)).await.is_ok());
    assert_eq!(p.count(), 1);
}

/// A provider (any `Provider`, not only the built-in clients) that asks for an absurd wait: a
/// `Retry-After` of `Duration::MAX`, no requests remaining until a reset of `Duration::MAX`. The call
/// is refused with a rate-limit message (no panic in the request task, which would only say "ended
/// without an answer"), and the provider is blocked for at most [`MAX_PROVIDER_WAIT`], not forever.
#[tokio::test(start_paused = true)]
async fn an_absurd_wait_from_the_provider_is_capped_not_a_panic() {
    let p = Scripted::new(step(ok(Verdict::Malicious, 90)));
    let mut huge = fail(ProviderError::RateLimited {
        retry_after: Some(Duration::MAX),
    });
    huge.rate = RateInfo {
        limit: Some(1000),
        remaining: Some(0),
        reset_after: Some(Duration::MAX),
    };
    p.then(step(huge));
    let g = guard(&p, settings());
    let m = refused(ask(&g, ip(1)).await);
    assert!(m.contains("rate limited"), "{m}");
    let m = refused(ask(&g, ip(2)).await);
    assert!(m.contains("rate limited by the provider"), "{m}");
    assert_eq!(p.count(), 1);
    tokio::time::advance(MAX_PROVIDER_WAIT).await;
    assert_eq!(ask(&g, ip(2)).await.unwrap().verdict, Verdict::Malicious);
    assert_eq!(p.count(), 2);
}

/// An IPv4 address seen in its IPv4-mapped IPv6 form (`::ffff:203.0.113.7`, as a dual-stack
/// listener logs it) is the same source: one cache entry, one request, not one per spelling.
#[tokio::test(start_paused = true)]
async fn a_mapped_address_shares_the_cache_and_the_request_of_its_ipv4_form() {
    let p = Scripted::new(Step {
        delay: Duration::from_millis(500),
        reply: ok(Verdict::Malicious, 95),
    });
    let g = guard(&p, settings());
    let v4 = ip(7);
    let IpAddr::V4(a) = v4 else { unreachable!() };
    let mapped = IpAddr::V6(a.to_ipv6_mapped());
    let (x, y) = tokio::join!(ask(&g, v4), ask(&g, mapped));
    assert_eq!(x.unwrap().verdict, Verdict::Malicious);
    assert_eq!(y.unwrap().verdict, Verdict::Malicious);
    assert_eq!(p.count(), 1, "{:?}", p.calls());
    assert_eq!(source(&ask(&g, mapped).await.unwrap()), "memory");
    assert_eq!(p.count(), 1);
}

/// What Sentinel does with values it did not write under its own Redis keys. Redis is inside the
/// trust boundary: a well-formed answer planted there (here a "benign" verdict, the kind that would
/// whitelist an attacker) is believed, and this test records that. What it must not believe is a
/// value no Sentinel writes: garbage, a score above 100, a huge value. Those are counted misses
/// and the provider is asked.
#[tokio::test]
async fn values_planted_in_redis() {
    let server = RedisServer::start();
    let url = RedisUrl::new(server.url());
    let cache = Arc::new(AnswerCache::with_redis(100, &url, "test:intel:").unwrap());
    let p = Scripted::new(step(ok(Verdict::Malicious, 90)));
    let g = Guarded::new(p.clone(), settings(), cache.clone());
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let plant = |n: u8, value: String| {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("test:intel:scripted:{}", ip(n)))
            .arg(value)
            .arg("PX")
            .arg(60_000);
        cmd
    };
    let answer = |score: u32, details: serde_json::Value| {
        serde_json::json!({
            "answer": {"verdict": "benign", "score": score, "details": details, "negative": false},
            "fetched_at_ms": 1_785_000_000_000u64,
        })
        .to_string()
    };
    let planted = [
        (1, answer(0, serde_json::json!({}))),
        (2, "<html>not json</html>".to_owned()),
        (3, answer(250, serde_json::json!({}))),
        (
            4,
            answer(0, serde_json::json!({"pad": "A".repeat(4 << 20)})),
        ),
    ];
    for (n, value) in planted {
        plant(n, value).query_async::<()>(&mut c).await.unwrap();
    }
    // The trust boundary: a well-formed planted answer is believed.
    let e = ask(&g, ip(1)).await.unwrap();
    assert_eq!((e.verdict, source(&e)), (Verdict::Benign, "redis"));
    // Values no Sentinel writes are misses: the provider answers.
    for n in [2, 3, 4] {
        let e = ask(&g, ip(n)).await.unwrap();
        assert_eq!(
            (e.verdict, source(&e)),
            (Verdict::Malicious, "provider"),
            "planted value {n}"
        );
    }
    assert_eq!(p.count(), 3);
    assert!(cache.stats().redis_errors >= 3, "{:?}", cache.stats());
}

/// A Redis that stalls on writes (here `CLIENT PAUSE … WRITE`: reads answer, writes hang) must not
/// hold back an answer the provider already gave: the shared copy is written after the callers have
/// it. With a 200 ms deadline, below one Redis timeout, the answer still arrives (the bound is
/// generous: the provider answers at once, and only a wait for the stalled write could miss it).
#[tokio::test]
async fn a_stalled_redis_write_does_not_hold_back_the_answer() {
    let server = RedisServer::start();
    let url = RedisUrl::new(server.url());
    let cache = Arc::new(AnswerCache::with_redis(100, &url, "test:intel:").unwrap());
    let p = Scripted::new(step(ok(Verdict::Malicious, 90)));
    let mut s = settings();
    s.deadline = Duration::from_millis(200);
    let g = Guarded::new(p.clone(), s, cache.clone());
    // Connected, and the first write done, before the stall.
    assert_eq!(source(&ask(&g, ip(1)).await.unwrap()), "provider");
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let e = ask(&g, ip(2)).await.unwrap();
    assert_eq!((e.verdict, source(&e)), (Verdict::Malicious, "provider"));
}
