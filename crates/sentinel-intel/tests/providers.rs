//! The provider clients against fake servers speaking each provider's real wire format over loopback
//! HTTP: parsing into answers, the exact request, and every failure mapped as the resilience layer
//! expects (401/403, 429 with `Retry-After`, 5xx, timeouts, malformed answers), without the key ever
//! showing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::Verdict;
use sentinel_intel::config::ProviderSettings;
use sentinel_intel::{
    http_client, AbuseIpDb, ApiKey, IntelConfig, Otx, Provider, ProviderError, Reply, VirusTotal,
    MAX_PROVIDER_WAIT,
};
use sentinel_testkit::ti::{Behaviour, FakeProvider, RetryAfter, TiKind};
use serde_json::json;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const BAD: &str = "203.0.113.7";
const CLEAN: &str = "198.51.100.20";
const GOOD: &str = "192.0.2.53";
const V6: &str = "2001:db8::7";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn settings(fake: &FakeProvider) -> ProviderSettings {
    let defaults = IntelConfig::default();
    let mut s = match fake.kind() {
        TiKind::AbuseIpDb => defaults.abuseipdb,
        TiKind::VirusTotal => defaults.virustotal,
        TiKind::Otx => defaults.otx,
    };
    s.key = Some(ApiKey::new(fake.key()));
    s.base_url = fake.base_url();
    s.timeout = Duration::from_secs(5);
    s
}

fn build(kind: TiKind, s: &ProviderSettings) -> Result<Box<dyn Provider>, String> {
    let client = http_client()?;
    Ok(match kind {
        TiKind::AbuseIpDb => Box::new(AbuseIpDb::new(s, client)?),
        TiKind::VirusTotal => Box::new(VirusTotal::new(s, client)?),
        TiKind::Otx => Box::new(Otx::new(s, client)?),
    })
}

async fn start(kind: TiKind) -> (FakeProvider, Box<dyn Provider>) {
    let fake = FakeProvider::start(kind).await;
    let provider = build(kind, &settings(&fake)).unwrap();
    (fake, provider)
}

fn err(reply: &Reply) -> &ProviderError {
    reply.result.as_ref().expect_err("expected an error")
}

/// Everything a log line or error report could show of a reply.
fn shown(reply: &Reply) -> String {
    let display = match &reply.result {
        Ok(a) => serde_json::to_string(a).unwrap(),
        Err(e) => e.to_string(),
    };
    format!("{display} {reply:?}")
}

const KINDS: [TiKind; 3] = [TiKind::AbuseIpDb, TiKind::VirusTotal, TiKind::Otx];

// ---------------------------------------------------------------- AbuseIPDB

#[tokio::test]
async fn abuseipdb_answers_become_verdicts() {
    let (fake, p) = start(TiKind::AbuseIpDb).await;
    assert_eq!(p.name(), "abuseipdb");
    fake.set(ip(BAD), Behaviour::listed(100, 37));
    fake.set(ip(CLEAN), Behaviour::Unknown);
    fake.set(ip(GOOD), Behaviour::Harmless);
    fake.set(ip("203.0.113.40"), Behaviour::listed(40, 3));
    fake.set(ip("203.0.113.10"), Behaviour::listed(10, 2));

    let bad = p.lookup(ip(BAD)).await.result.unwrap();
    assert_eq!(bad.verdict, Verdict::Malicious);
    assert_eq!(bad.score, Some(100));
    assert!(!bad.negative);
    assert_eq!(
        bad.details,
        json!({
            "abuseConfidenceScore": 100, "totalReports": 37, "numDistinctUsers": 19,
            "isWhitelisted": false, "isTor": false, "usageType": "Data Center/Web Hosting/Transit",
            "countryCode": "NL", "lastReportedAt": "2026-11-29T18:04:11+00:00"
        })
    );

    let clean = p.lookup(ip(CLEAN)).await.result.unwrap();
    assert_eq!(clean.verdict, Verdict::Unknown);
    assert_eq!(clean.score, Some(0));
    assert!(clean.negative, "no reports: nothing known");
    assert_eq!(clean.details["lastReportedAt"], json!(null));

    let good = p.lookup(ip(GOOD)).await.result.unwrap();
    assert_eq!(good.verdict, Verdict::Benign);
    assert!(!good.negative);
    assert_eq!(good.details["isWhitelisted"], json!(true));

    let middling = p.lookup(ip("203.0.113.40")).await.result.unwrap();
    assert_eq!(
        (middling.verdict, middling.score),
        (Verdict::Suspicious, Some(40))
    );
    let low = p.lookup(ip("203.0.113.10")).await.result.unwrap();
    assert_eq!((low.verdict, low.negative), (Verdict::Unknown, false));
}

#[tokio::test]
async fn abuseipdb_sends_the_documented_request_and_reads_the_quota() {
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    let mut s = settings(&fake);
    s.max_age_days = 30;
    let p = build(TiKind::AbuseIpDb, &s).unwrap();
    fake.set(ip(BAD), Behaviour::listed(90, 5));
    // An IPv4-mapped IPv6 address is asked about in its IPv4 form.
    let reply = p.lookup(ip("::ffff:203.0.113.7")).await;
    assert_eq!(reply.result.unwrap().verdict, Verdict::Malicious);
    assert_eq!(reply.rate.limit, Some(1000));
    assert_eq!(reply.rate.remaining, Some(999));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/api/v2/check");
    assert_eq!(r.query("ipAddress"), Some(BAD));
    assert_eq!(r.query("maxAgeInDays"), Some("30"));
    assert_eq!(r.query("verbose"), Some(""));
    assert_eq!(r.header("Key"), Some(fake.key()));
    assert_eq!(r.header("Accept"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("sentinel/"));
    assert_eq!(fake.hits(ip(BAD)), 1);

    let second = p.lookup(ip(BAD)).await;
    assert_eq!(second.rate.remaining, Some(998));
}

#[tokio::test]
async fn abuseipdb_looks_up_ipv6() {
    let (fake, p) = start(TiKind::AbuseIpDb).await;
    fake.set(ip(V6), Behaviour::listed(80, 9));
    let answer = p.lookup(ip(V6)).await.result.unwrap();
    assert_eq!(answer.verdict, Verdict::Malicious);
    assert_eq!(fake.requests()[0].query("ipAddress"), Some(V6));
    assert_eq!(fake.hits(ip(V6)), 1);
}

#[tokio::test]
async fn abuseipdb_429_carries_retry_after_seconds_and_the_quota_headers() {
    let (fake, p) = start(TiKind::AbuseIpDb).await;
    fake.set_default(Behaviour::RateLimited {
        retry_after: Some(RetryAfter::Seconds(30)),
    });
    let reply = p.lookup(ip(BAD)).await;
    assert_eq!(
        err(&reply),
        &ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(reply.rate.limit, Some(1000));
    assert_eq!(reply.rate.remaining, Some(0));
    // X-RateLimit-Reset is epoch seconds, now + 30 on the server's clock.
    let reset = reply.rate.reset_after.unwrap();
    assert!(
        reset >= Duration::from_secs(28) && reset <= Duration::from_secs(31),
        "{reset:?}"
    );
    assert!(err(&reply).retryable());
}

// ---------------------------------------------------------------- VirusTotal

#[tokio::test]
async fn virustotal_answers_become_verdicts() {
    let (fake, p) = start(TiKind::VirusTotal).await;
    assert_eq!(p.name(), "virustotal");
    fake.set(ip(BAD), Behaviour::listed(40, 12));
    fake.set(ip("203.0.113.8"), Behaviour::listed(0, 4));
    fake.set(ip(CLEAN), Behaviour::Unknown);
    fake.set(ip(GOOD), Behaviour::Harmless);
    let stats = |m: u64, s: u64, h: u64, rep: i64| {
        Behaviour::Json(
            json!({"data": {"id": "x", "type": "ip_address", "attributes": {
            "last_analysis_stats": {"harmless": h, "malicious": m, "suspicious": s, "undetected": 0, "timeout": 0},
            "reputation": rep, "as_owner": "Example", "country": "NL"}}}),
        )
    };
    fake.set(ip("203.0.113.9"), stats(1, 0, 60, 0));
    fake.set(ip("203.0.113.10"), stats(0, 2, 60, 0));
    fake.set(ip("203.0.113.11"), stats(0, 0, 60, -20));
    fake.set(ip("203.0.113.12"), stats(0, 0, 0, 0));

    let bad = p.lookup(ip(BAD)).await.result.unwrap();
    assert_eq!(
        (bad.verdict, bad.score, bad.negative),
        (Verdict::Malicious, Some(100), false)
    );
    assert_eq!(
        bad.details,
        json!({
            "last_analysis_stats": {"harmless": 58, "malicious": 12, "suspicious": 0, "undetected": 30, "timeout": 0},
            "reputation": -40, "as_owner": "Example Hosting B.V.", "country": "NL"
        })
    );
    let four = p.lookup(ip("203.0.113.8")).await.result.unwrap();
    assert_eq!((four.verdict, four.score), (Verdict::Malicious, Some(75)));

    let one = p.lookup(ip("203.0.113.9")).await.result.unwrap();
    assert_eq!((one.verdict, one.score), (Verdict::Suspicious, Some(40)));
    let susp = p.lookup(ip("203.0.113.10")).await.result.unwrap();
    assert_eq!((susp.verdict, susp.score), (Verdict::Suspicious, Some(40)));
    let rep = p.lookup(ip("203.0.113.11")).await.result.unwrap();
    assert_eq!(rep.verdict, Verdict::Suspicious);

    // Harmless to the engines is not "safe": unknown, score 0, but something is known.
    let good = p.lookup(ip(GOOD)).await.result.unwrap();
    assert_eq!(
        (good.verdict, good.score, good.negative),
        (Verdict::Unknown, Some(0), false)
    );
    let empty = p.lookup(ip("203.0.113.12")).await.result.unwrap();
    assert_eq!((empty.verdict, empty.negative), (Verdict::Unknown, true));

    // 404 NotFoundError is VirusTotal knowing nothing: an answer, not an error.
    let unknown = p.lookup(ip(CLEAN)).await.result.unwrap();
    assert_eq!(
        (unknown.verdict, unknown.score, unknown.negative),
        (Verdict::Unknown, None, true)
    );
}

#[tokio::test]
async fn virustotal_sends_the_documented_request_for_v4_and_v6() {
    let (fake, p) = start(TiKind::VirusTotal).await;
    fake.set_default(Behaviour::listed(10, 5));
    assert_eq!(
        p.lookup(ip(BAD)).await.result.unwrap().verdict,
        Verdict::Malicious
    );
    assert_eq!(
        p.lookup(ip(V6)).await.result.unwrap().verdict,
        Verdict::Malicious
    );
    let r = fake.requests();
    assert_eq!(r[0].path, "/api/v3/ip_addresses/203.0.113.7");
    assert_eq!(r[1].path, "/api/v3/ip_addresses/2001:db8::7");
    for r in &r {
        assert_eq!(r.header("x-apikey"), Some(fake.key()));
        assert_eq!(r.header("accept"), Some("application/json"));
        assert!(r.query.is_empty());
    }
    assert_eq!((fake.hits(ip(BAD)), fake.hits(ip(V6))), (1, 1));
}

#[tokio::test]
async fn virustotal_quota_exceeded_is_rate_limited() {
    let (fake, p) = start(TiKind::VirusTotal).await;
    fake.set(ip(BAD), Behaviour::RateLimited { retry_after: None });
    fake.set(
        ip(CLEAN),
        Behaviour::RateLimited {
            retry_after: Some(RetryAfter::HttpDate(60)),
        },
    );
    let reply = p.lookup(ip(BAD)).await;
    assert_eq!(
        err(&reply),
        &ProviderError::RateLimited { retry_after: None }
    );
    let reply = p.lookup(ip(CLEAN)).await;
    let after = err(&reply).retry_after().unwrap();
    // An HTTP-date has one-second resolution.
    assert!(
        after >= Duration::from_secs(57) && after <= Duration::from_secs(60),
        "{after:?}"
    );
    assert_eq!(reply.rate.reset_after, Some(after));
}

#[tokio::test]
async fn virustotal_404_from_something_else_is_an_error_not_unknown() {
    let fake = FakeProvider::start(TiKind::VirusTotal).await;
    let mut s = settings(&fake);
    s.base_url = format!("{}/gateway", fake.base_url());
    let p = build(TiKind::VirusTotal, &s).unwrap();
    let reply = p.lookup(ip(BAD)).await;
    assert!(
        matches!(err(&reply), ProviderError::Status { status: 404, message } if message.contains("404 page not found")),
        "{reply:?}"
    );
    assert_eq!(
        fake.requests()[0].path,
        "/gateway/api/v3/ip_addresses/203.0.113.7",
        "a base_url path prefix is kept"
    );
}

// ---------------------------------------------------------------- OTX

#[tokio::test]
async fn otx_answers_become_verdicts() {
    let (fake, p) = start(TiKind::Otx).await;
    assert_eq!(p.name(), "otx");
    fake.set(
        ip(BAD),
        Behaviour::Listed {
            score: 0,
            reports: 7,
            tags: vec!["ssh".into(), "bruteforce".into(), "SSH".into()],
        },
    );
    fake.set(ip("203.0.113.8"), Behaviour::listed(0, 2));
    fake.set(ip(CLEAN), Behaviour::Unknown);
    fake.set(ip(GOOD), Behaviour::Harmless);

    let bad = p.lookup(ip(BAD)).await.result.unwrap();
    assert_eq!(
        (bad.verdict, bad.score, bad.negative),
        (Verdict::Malicious, Some(85), false)
    );
    assert_eq!(
        bad.details,
        json!({
            "pulse_info": {"count": 7}, "tags": ["ssh", "bruteforce"], "reputation": 0,
            "country_code": "NL", "asn": "AS64500 example hosting b.v.", "validation": []
        })
    );
    let two = p.lookup(ip("203.0.113.8")).await.result.unwrap();
    assert_eq!((two.verdict, two.score), (Verdict::Suspicious, Some(40)));

    let clean = p.lookup(ip(CLEAN)).await.result.unwrap();
    assert_eq!((clean.verdict, clean.negative), (Verdict::Unknown, true));
    let good = p.lookup(ip(GOOD)).await.result.unwrap();
    assert_eq!((good.verdict, good.negative), (Verdict::Unknown, true));
    assert_eq!(good.details["validation"][0]["source"], json!("whitelist"));
}

#[tokio::test]
async fn otx_keeps_at_most_twenty_tags() {
    let (fake, p) = start(TiKind::Otx).await;
    let tags: Vec<String> = (0..30).map(|i| format!("tag{i}")).collect();
    fake.set_default(Behaviour::Listed {
        score: 0,
        reports: 3,
        tags,
    });
    let answer = p.lookup(ip(BAD)).await.result.unwrap();
    let kept = answer.details["tags"].as_array().unwrap();
    assert_eq!(kept.len(), 20);
    assert_eq!(kept[0], json!("tag0"));
}

#[tokio::test]
async fn otx_uses_the_ipv4_and_ipv6_paths() {
    let (fake, p) = start(TiKind::Otx).await;
    fake.set_default(Behaviour::listed(0, 1));
    // The fake refuses an address under the wrong family, as OTX does.
    assert_eq!(
        p.lookup(ip(V6)).await.result.unwrap().verdict,
        Verdict::Suspicious
    );
    assert_eq!(
        p.lookup(ip(BAD)).await.result.unwrap().verdict,
        Verdict::Suspicious
    );
    let r = fake.requests();
    assert_eq!(r[0].path, "/api/v1/indicators/IPv6/2001:db8::7/general");
    assert_eq!(r[1].path, "/api/v1/indicators/IPv4/203.0.113.7/general");
    assert_eq!(r[0].header("X-OTX-API-KEY"), Some(fake.key()));
    assert_eq!(r[0].header("accept"), Some("application/json"));
}

#[tokio::test]
async fn otx_server_error_pages_are_retryable_status() {
    let (fake, p) = start(TiKind::Otx).await;
    fake.echo_key_in_errors(true);
    fake.set_default(Behaviour::Status(502));
    let reply = p.lookup(ip(BAD)).await;
    match err(&reply) {
        ProviderError::Status {
            status: 502,
            message,
        } => {
            assert!(message.contains("502 Bad Gateway"), "{message}");
            assert!(
                message.contains("[key]"),
                "the echoed key is scrubbed: {message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err(&reply).retryable());
    assert!(!shown(&reply).contains(fake.key()));
}

// ---------------------------------------------------------------- every provider

#[tokio::test]
async fn a_refused_key_is_unauthorized_with_the_providers_message_and_never_shown() {
    let expected = [
        (TiKind::AbuseIpDb, 401, "Authentication failed"),
        (
            TiKind::VirusTotal,
            401,
            "WrongCredentialsError: Wrong API key",
        ),
        (TiKind::Otx, 403, "Invalid API key."),
    ];
    for (kind, status, text) in expected {
        let fake = FakeProvider::start(kind).await;
        fake.echo_key_in_errors(true);
        let mut s = settings(&fake);
        let wrong = "wrong-key-5e1f0c8a9b7d6e";
        s.key = Some(ApiKey::new(wrong));
        let p = build(kind, &s).unwrap();
        let reply = p.lookup(ip(BAD)).await;
        match err(&reply) {
            ProviderError::Unauthorized {
                status: got,
                message,
            } => {
                assert_eq!(*got, status, "{kind:?}");
                assert!(message.contains(text), "{kind:?}: {message}");
                assert!(
                    message.contains("[key]"),
                    "{kind:?}: the server echoed the key: {message}"
                );
            }
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(!err(&reply).retryable());
        let shown = shown(&reply);
        assert!(!shown.contains(wrong), "{kind:?}: {shown}");
        assert!(!format!("{s:?}").contains(wrong));
        let header = match kind {
            TiKind::AbuseIpDb => "key",
            TiKind::VirusTotal => "x-apikey",
            TiKind::Otx => "x-otx-api-key",
        };
        assert_eq!(
            fake.requests()[0].header(header),
            Some(wrong),
            "{kind:?}: the key went in its header"
        );
    }
}

#[tokio::test]
async fn server_errors_are_retryable_status_with_the_providers_text() {
    let expected = [
        (TiKind::AbuseIpDb, 503, "unexpected condition"),
        (TiKind::VirusTotal, 503, "TransientError"),
        (TiKind::Otx, 500, "500 Internal Server Error"),
    ];
    for (kind, code, text) in expected {
        let (fake, p) = start(kind).await;
        fake.echo_key_in_errors(true);
        fake.set_default(Behaviour::Status(code));
        let reply = p.lookup(ip(BAD)).await;
        match err(&reply) {
            ProviderError::Status { status, message } => {
                assert_eq!(*status, code, "{kind:?}");
                assert!(message.contains(text), "{kind:?}: {message}");
            }
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(err(&reply).retryable(), "{kind:?}");
        assert!(!shown(&reply).contains(fake.key()), "{kind:?}");
    }
}

#[tokio::test]
async fn a_long_error_body_is_shortened_and_scrubbed() {
    for kind in KINDS {
        let (fake, p) = start(kind).await;
        let body = format!("{} {} {}", "x".repeat(100), fake.key(), "y".repeat(5000));
        fake.set_default(Behaviour::Raw {
            status: 500,
            headers: vec![("content-type".into(), "text/plain".into())],
            body,
        });
        let reply = p.lookup(ip(BAD)).await;
        match err(&reply) {
            ProviderError::Status {
                status: 500,
                message,
            } => {
                assert!(
                    message.chars().count() <= 201,
                    "{kind:?}: {} chars",
                    message.len()
                );
                assert!(message.contains("[key]"), "{kind:?}: {message}");
                assert!(!message.contains(fake.key()), "{kind:?}");
            }
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn rate_limits_parse_both_retry_after_forms() {
    for kind in KINDS {
        let (fake, p) = start(kind).await;
        fake.set(
            ip(BAD),
            Behaviour::RateLimited {
                retry_after: Some(RetryAfter::Seconds(45)),
            },
        );
        fake.set(
            ip(CLEAN),
            Behaviour::RateLimited {
                retry_after: Some(RetryAfter::HttpDate(120)),
            },
        );
        let secs = p.lookup(ip(BAD)).await;
        assert_eq!(
            err(&secs),
            &ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(45))
            },
            "{kind:?}"
        );
        assert!(secs.rate.reset_after.is_some(), "{kind:?}");
        let date = p.lookup(ip(CLEAN)).await;
        let after = err(&date)
            .retry_after()
            .expect("retry_after from an HTTP-date");
        assert!(
            after >= Duration::from_secs(117) && after <= Duration::from_secs(120),
            "{kind:?}: {after:?}"
        );
    }
}

#[tokio::test]
async fn slow_hanging_and_stalled_servers_time_out_per_attempt() {
    for kind in KINDS {
        let fake = FakeProvider::start(kind).await;
        let mut s = settings(&fake);
        s.timeout = Duration::from_millis(200);
        let p = build(kind, &s).unwrap();
        fake.set(ip(BAD), Behaviour::Hang);
        fake.set(
            ip(CLEAN),
            Behaviour::Slow(Duration::from_secs(30), Box::new(Behaviour::Unknown)),
        );
        fake.set(ip(GOOD), Behaviour::StallBody);
        fake.set(
            ip(V6),
            Behaviour::Slow(
                Duration::from_millis(50),
                Box::new(Behaviour::listed(90, 9)),
            ),
        );
        for target in [BAD, CLEAN, GOOD] {
            let started = Instant::now();
            let reply = p.lookup(ip(target)).await;
            assert_eq!(err(&reply), &ProviderError::Timeout, "{kind:?} {target}");
            // Only proves it did not wait for the server (30 s or forever).
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{kind:?} {target}"
            );
            assert!(err(&reply).retryable());
        }
        // Slow but within the timeout is an answer.
        assert!(p.lookup(ip(V6)).await.result.is_ok(), "{kind:?}");
    }
}

#[tokio::test]
async fn malformed_and_wrongly_shaped_answers_are_malformed() {
    let shapes = [
        (
            TiKind::AbuseIpDb,
            json!({"data": {"abuseConfidenceScore": "high", "totalReports": 1}}),
            "data.abuseConfidenceScore",
        ),
        (
            TiKind::AbuseIpDb,
            json!({"data": {"abuseConfidenceScore": 250, "totalReports": 1}}),
            "above 100",
        ),
        (TiKind::AbuseIpDb, json!({"errors": []}), "data"),
        (TiKind::VirusTotal, json!({"data": []}), "data"),
        (
            TiKind::VirusTotal,
            json!({"data": {"attributes": {"last_analysis_stats": {"malicious": "many"}}}}),
            "data.attributes.last_analysis_stats.malicious",
        ),
        (TiKind::Otx, json!({"pulse_info": {"pulses": []}}), "count"),
        (TiKind::Otx, json!([1, 2, 3]), ""),
    ];
    for (kind, body, path) in shapes {
        let (fake, p) = start(kind).await;
        fake.set_default(Behaviour::Json(body.clone()));
        let reply = p.lookup(ip(BAD)).await;
        match err(&reply) {
            ProviderError::Malformed(m) => assert!(m.contains(path), "{kind:?} {body}: {m}"),
            other => panic!("{kind:?} {body}: {other:?}"),
        }
        assert!(!err(&reply).retryable());
        assert!(err(&reply).counts_as_failure());
    }
    for kind in KINDS {
        let (fake, p) = start(kind).await;
        for broken in ["{\"data\": {", "<html>maintenance</html>", ""] {
            fake.set_default(Behaviour::Malformed(broken.into()));
            let reply = p.lookup(ip(BAD)).await;
            assert!(
                matches!(err(&reply), ProviderError::Malformed(_)),
                "{kind:?} {broken:?}: {reply:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for kind in KINDS {
        let fake = FakeProvider::start(kind).await;
        let mut s = settings(&fake);
        s.base_url = format!("http://127.0.0.1:{port}");
        let p = build(kind, &s).unwrap();
        let reply = p.lookup(ip(BAD)).await;
        assert!(
            matches!(err(&reply), ProviderError::Transport(m) if !m.is_empty()),
            "{kind:?}: {reply:?}"
        );
        assert!(err(&reply).retryable());
    }
}

#[tokio::test]
async fn construction_refuses_a_missing_key_and_a_non_http_base_url() {
    for kind in KINDS {
        let fake = FakeProvider::start(kind).await;
        let mut s = settings(&fake);
        s.base_url = "ftp://203.0.113.1/".into();
        let e = build(kind, &s).err().unwrap();
        assert!(e.contains("http:// or https://"), "{kind:?}: {e}");
        let mut s = settings(&fake);
        s.base_url = "https://user:s3cr3tpass@example.org".into();
        let e = build(kind, &s).err().unwrap();
        assert!(!e.contains("s3cr3tpass"), "{e}");
        let mut s = settings(&fake);
        s.key = None;
        let e = build(kind, &s).err().unwrap();
        assert!(e.contains("no API key"), "{kind:?}: {e}");
        build(kind, &settings(&fake)).unwrap();
        assert!(
            fake.requests().is_empty(),
            "nothing is sent at construction"
        );
    }
}

#[tokio::test]
async fn the_providers_debug_output_never_shows_the_key() {
    let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
    let s = settings(&fake);
    let client = http_client().unwrap();
    let a = AbuseIpDb::new(&s, client.clone()).unwrap();
    let v = VirusTotal::new(&s, client.clone()).unwrap();
    let o = Otx::new(&s, client).unwrap();
    let text = format!("{a:?} {v:?} {o:?} {s:?}");
    assert!(text.contains(&fake.base_url()));
    assert!(!text.contains(fake.key()), "{text}");
}

/// A provider (or something in front of it) that sends absurd quota headers: `Retry-After` of
/// u64::MAX seconds, a negative or garbage one, an `X-RateLimit-Reset` beyond what a clock can hold.
/// The answer is a rate limit with a wait capped at a sane ceiling, never a panic and never a
/// provider blocked for centuries.
#[tokio::test]
async fn absurd_quota_headers_are_capped_not_a_panic() {
    for kind in KINDS {
        let (fake, p) = start(kind).await;
        let huge = u64::MAX.to_string();
        fake.set(
            ip(BAD),
            Behaviour::Raw {
                status: 429,
                headers: vec![
                    ("retry-after".into(), huge.clone()),
                    ("x-ratelimit-remaining".into(), "0".into()),
                    ("x-ratelimit-reset".into(), huge.clone()),
                ],
                body: "{}".into(),
            },
        );
        fake.set(
            ip(CLEAN),
            Behaviour::Raw {
                status: 429,
                headers: vec![
                    // Ten years.
                    ("retry-after".into(), "315360000".into()),
                    ("x-ratelimit-remaining".into(), "0".into()),
                    ("x-ratelimit-reset".into(), "-5".into()),
                ],
                body: "{}".into(),
            },
        );
        for addr in [BAD, CLEAN] {
            let reply = p.lookup(ip(addr)).await;
            let after = err(&reply).retry_after().expect("a retry_after");
            assert!(
                after <= MAX_PROVIDER_WAIT,
                "{kind:?} {addr}: {after:?} above the cap"
            );
            let reset = reply.rate.reset_after.expect("a reset");
            assert!(
                reset <= MAX_PROVIDER_WAIT,
                "{kind:?} {addr}: {reset:?} above the cap"
            );
        }
    }
}

/// A hostile or broken provider pads its answer (each field within the 8 MiB body limit): megabyte
/// strings in `as_owner`, `usageType` and the pulse tags, a huge `validation` array. What the details
/// keep is bounded: they are cached (up to `max_entries` answers) and stored with every
/// investigation, so unbounded details would let one provider fill the memory and the store.
#[tokio::test]
async fn padded_answers_keep_bounded_details() {
    let big = "A".repeat(1 << 20);
    let answers = [
        (
            TiKind::AbuseIpDb,
            json!({"data": {"ipAddress": BAD, "abuseConfidenceScore": 90, "totalReports": 3,
                "usageType": big, "countryCode": big, "lastReportedAt": big}}),
        ),
        (
            TiKind::VirusTotal,
            json!({"data": {"id": BAD, "type": "ip_address", "attributes": {
                "last_analysis_stats": {"malicious": 5}, "reputation": -20,
                "as_owner": big, "country": big}}}),
        ),
        (
            TiKind::Otx,
            json!({"pulse_info": {"count": 7, "pulses": [{"tags": [big, format!("{big}x")]}]},
                "reputation": big, "country_code": big, "asn": big,
                "validation": vec![json!({"source": "x", "message": big}); 2]}),
        ),
    ];
    for (kind, body) in answers {
        let (fake, p) = start(kind).await;
        fake.set(ip(BAD), Behaviour::Json(body));
        let a = p.lookup(ip(BAD)).await.result.unwrap();
        assert_eq!(a.verdict, Verdict::Malicious, "{kind:?}");
        let kept = serde_json::to_string(&a.details).unwrap().len();
        assert!(kept <= 8 * 1024, "{kind:?}: details of {kept} bytes kept");
    }
}

/// A provider (or a gateway in front of it) that echoes the key into a 200 answer: the details are
/// cached, stored with the investigation and shown on the dashboard, so the key is scrubbed out of
/// them like out of error messages (also when the echo sits past where a long string is cut).
#[tokio::test]
async fn a_key_echoed_in_an_answer_never_reaches_the_details() {
    for kind in KINDS {
        let fake = FakeProvider::start(kind).await;
        let key = fake.key().to_owned();
        let echo = format!("echo {key}");
        let late = format!("{}{key}", "x".repeat(250));
        let body = match kind {
            TiKind::AbuseIpDb => json!({"data": {"ipAddress": BAD, "abuseConfidenceScore": 90,
                "totalReports": 3, "usageType": echo, "countryCode": late}}),
            TiKind::VirusTotal => json!({"data": {"id": BAD, "type": "ip_address", "attributes": {
                "last_analysis_stats": {"malicious": 5}, "as_owner": echo, "country": late}}}),
            TiKind::Otx => json!({"pulse_info": {"count": 7, "pulses": [{"tags": [echo, late]}]},
                "reputation": {&key: 1}, "asn": echo}),
        };
        fake.set(ip(BAD), Behaviour::Json(body));
        let p = build(kind, &settings(&fake)).unwrap();
        let a = p.lookup(ip(BAD)).await.result.unwrap();
        let shown = serde_json::to_string(&a.details).unwrap();
        assert!(!shown.contains(&key[..8]), "{kind:?}: {shown}");
        assert!(shown.contains("[key]"), "{kind:?}: {shown}");
    }
}

/// Hostile answers that held when attacked (kept so they keep holding): numbers out of range or of
/// the wrong kind, JSON nested past any sane depth, a body over the size limit, and a redirect to
/// another host, which is not followed (the key header would go with it).
#[tokio::test]
async fn hostile_answers_are_errors_and_redirects_are_not_followed() {
    let (fake, p) = start(TiKind::AbuseIpDb).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!("{{\"data\": \"{}\"}}", "A".repeat(9 << 20));
    for body in [
        r#"{"data": {"abuseConfidenceScore": 1e9, "totalReports": 1}}"#.to_owned(),
        r#"{"data": {"abuseConfidenceScore": -5, "totalReports": 1}}"#.to_owned(),
        r#"{"data": {"abuseConfidenceScore": 18446744073709551616, "totalReports": 1}}"#.to_owned(),
        r#"{"data": {"abuseConfidenceScore": 90, "totalReports": -1}}"#.to_owned(),
        deep,
        huge,
    ] {
        fake.set_default(Behaviour::Malformed(body.clone()));
        let reply = p.lookup(ip(BAD)).await;
        assert!(
            matches!(err(&reply), ProviderError::Malformed(_)),
            "{}: {reply:?}",
            &body[..body.len().min(80)]
        );
    }
    let elsewhere = FakeProvider::start(TiKind::AbuseIpDb).await;
    fake.set_default(Behaviour::Raw {
        status: 302,
        headers: vec![(
            "location".into(),
            format!("{}/api/v2/check?ipAddress={BAD}", elsewhere.base_url()),
        )],
        body: String::new(),
    });
    let reply = p.lookup(ip(BAD)).await;
    assert!(
        matches!(err(&reply), ProviderError::Status { status: 302, .. }),
        "{reply:?}"
    );
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
}
