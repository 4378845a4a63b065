//! Rate limits: per client address over a real socket (the router served with `ConnectInfo`, as the
//! daemon serves it), per key through the router, `/health` and `/ready` never limited, exempt
//! networks, and every refusal counted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_api::ratelimit::{Limit, RateSettings};
use sentinel_api::ApiSettings;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A limit that does not refill during a test (1 per hour) with a burst of `burst`.
fn hourly(burst: u32) -> Limit {
    Limit {
        count: 1,
        per: Duration::from_secs(3600),
        burst,
    }
}

fn setup(rate: RateSettings) -> Setup {
    let d = Setup::default();
    Setup {
        settings: ApiSettings { rate, ..d.settings },
        ..d
    }
}

/// The value of one sample line of the metrics text (0 when absent).
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Serves the router on 127.0.0.1 with the peer address of each connection, like the daemon.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// One HTTP/1.1 request on its own connection: the status and the raw head.
async fn request(addr: SocketAddr, method: &str, path: &str, key: Option<&str>) -> (u16, String) {
    let run = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = key
            .map(|k| format!("X-API-Key: {k}\r\n"))
            .unwrap_or_default();
        s.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {text:?}"));
        (status, text)
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the server answered")
}

fn retry_after(head: &str) -> u64 {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("retry-after")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no Retry-After: {head}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_limit_refuses_before_auth_and_spares_health() {
    let h = harness_with(setup(RateSettings {
        per_ip: Some(hourly(3)),
        ..RateSettings::default()
    }))
    .await;
    let addr = serve(h.app.clone()).await;
    // The burst passes (to authentication, which refuses a missing key)...
    for _ in 0..3 {
        let (status, _) = request(addr, "GET", "/v1/alerts", None).await;
        assert_eq!(status, 401);
    }
    let checks_before = sample(&h.state.metrics.render(), "sentinel_auth_checks_total");
    // ...then the address is refused before any key is looked at, with a whole-second wait.
    for path in ["/v1/alerts", "/metrics", "/v1/nothing-here"] {
        let (status, head) = request(addr, "GET", path, Some(&h.admin_key)).await;
        assert_eq!(status, 429, "{head}");
        assert!(head.contains("\"rate_limited\""), "{head}");
        assert!(retry_after(&head) >= 1, "{head}");
    }
    let text = h.state.metrics.render();
    assert_eq!(
        sample(&text, "sentinel_auth_checks_total"),
        checks_before,
        "a limited request costs no key check"
    );
    assert_eq!(
        sample(&text, "sentinel_api_rate_limited_total{by=\"ip\"}"),
        3
    );
    // Liveness and readiness are never limited.
    for _ in 0..10 {
        assert_eq!(request(addr, "GET", "/health", None).await.0, 200);
        let (ready, _) = request(addr, "GET", "/ready", None).await;
        assert_ne!(ready, 429);
    }
    assert_eq!(
        sample(
            &h.state.metrics.render(),
            "sentinel_api_rate_limited_total{by=\"ip\"}"
        ),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exempt_networks_are_not_limited_per_address() {
    let h = harness_with(setup(RateSettings {
        per_ip: Some(hourly(1)),
        exempt: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        ..RateSettings::default()
    }))
    .await;
    let addr = serve(h.app.clone()).await;
    for _ in 0..5 {
        let (status, head) = request(addr, "GET", "/v1/version", Some(&h.viewer_key)).await;
        assert_eq!(status, 200, "{head}");
    }
    assert_eq!(
        sample(
            &h.state.metrics.render(),
            "sentinel_api_rate_limited_total{by=\"ip\"}"
        ),
        0
    );
}

#[tokio::test]
async fn per_key_limit_is_per_key_and_requests_without_a_peer_are_served() {
    // Requests through `oneshot` carry no peer address (like a Unix-socket request): the
    // per-address limit does not apply and nothing panics; the per-key limit does.
    let h = harness_with(setup(RateSettings {
        per_ip: Some(hourly(1)),
        per_key: Some(hourly(2)),
        ..RateSettings::default()
    }))
    .await;
    for _ in 0..2 {
        let r = send(&h.app, get("/v1/version", Some(&h.admin_key))).await;
        assert_eq!(r.status, 200);
    }
    let r = send(&h.app, get("/v1/version", Some(&h.admin_key))).await;
    assert_eq!(r.status, 429);
    r.error("rate_limited");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Another key has its own budget.
    let r = send(&h.app, get("/v1/version", Some(&h.viewer_key))).await;
    assert_eq!(r.status, 200);
    // A bad key is refused by authentication, not charged to anyone's budget.
    let r = send(&h.app, get("/v1/version", Some("snl_wrong"))).await;
    assert_eq!(r.status, 401);
    assert_eq!(send(&h.app, get("/health", None)).await.status, 200);
    let text = h.state.metrics.render();
    assert_eq!(
        sample(&text, "sentinel_api_rate_limited_total{by=\"key\"}"),
        1
    );
    assert_eq!(
        sample(&text, "sentinel_api_rate_limited_total{by=\"ip\"}"),
        0
    );
}

#[tokio::test]
async fn a_full_key_table_shares_one_overflow_bucket_and_counts_it() {
    // Two tracked keys at most: the third key's requests go to the shared overflow bucket.
    let h = harness_with(setup(RateSettings {
        per_key: Some(hourly(1)),
        max_tracked: 2,
        ..RateSettings::default()
    }))
    .await;
    let third = sentinel_api::auth::Auth::generate_key();
    assert!(h.state.auth.insert(
        &h.state.auth.hash(&third),
        sentinel_api::auth::Principal {
            key_id: "k-third".into(),
            name: "third".into(),
            role: sentinel_api::auth::Role::Viewer,
        },
    ));
    assert_eq!(
        send(&h.app, get("/v1/version", Some(&h.admin_key)))
            .await
            .status,
        200
    );
    assert_eq!(
        send(&h.app, get("/v1/version", Some(&h.viewer_key)))
            .await
            .status,
        200
    );
    assert_eq!(
        send(&h.app, get("/v1/version", Some(&third))).await.status,
        200
    );
    assert_eq!(
        send(&h.app, get("/v1/version", Some(&third))).await.status,
        429
    );
    let text = h.state.metrics.render();
    assert_eq!(
        sample(&text, "sentinel_api_rate_overflow_total{by=\"key\"}"),
        2
    );
}
