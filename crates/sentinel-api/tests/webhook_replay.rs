//! A hostile replayer of captured webhook deliveries, through the real router over a real store.
//! The delivery-id headers are not covered by any signature, so a captured delivery sent again under
//! a fresh id must still be a replay; and a generic delivery whose timestamp lies ahead of the clock
//! stays valid longer than one replay window, so it must be remembered as long as it is valid.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use hmac::{Hmac, Mac};
use sentinel_api::webhook::WebhookSettings;
use sentinel_api::ApiSettings;
use sentinel_notify::config::Secret;
use sha2::Sha256;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const GITHUB: &str = "gh-secret-for-replay-tests";
const GITEA: &str = "gitea-secret-for-replay-tests";
const GENERIC: &str = "generic-secret-for-replay-tests";

fn setup(window: Duration) -> Setup {
    let d = Setup::default();
    Setup {
        settings: ApiSettings {
            webhooks: WebhookSettings {
                github: Some(Secret::new(GITHUB)),
                gitea: Some(Secret::new(GITEA)),
                generic: Some(Secret::new(GENERIC)),
                replay_window: window,
                ..WebhookSettings::default()
            },
            ..d.settings
        },
        ..d
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn req(path: &str, headers: &[(&str, String)]) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Body::from(BODY.to_vec())).unwrap()
}

const BODY: &[u8] =
    br#"{"action":"opened","repository":{"full_name":"acme/site"},"sender":{"login":"octocat"}}"#;

fn github(sig: &str, delivery: &str) -> Request<Body> {
    req(
        "/webhook/github",
        &[
            ("x-hub-signature-256", sig.into()),
            ("x-github-delivery", delivery.into()),
            ("x-github-event", "pull_request".into()),
        ],
    )
}

fn gitea(sig: &str, delivery: &str) -> Request<Body> {
    req(
        "/webhook/gitea",
        &[
            ("x-gitea-signature", sig.into()),
            ("x-gitea-delivery", delivery.into()),
        ],
    )
}

fn generic(ts: &str, sig: &str, delivery: &str) -> Request<Body> {
    req(
        "/webhook/generic",
        &[
            ("x-sentinel-timestamp", ts.into()),
            ("x-sentinel-signature", sig.into()),
            ("x-sentinel-delivery", delivery.into()),
        ],
    )
}

fn replayed(state: &sentinel_api::AppState, source: &str) -> u64 {
    let series =
        format!("sentinel_webhook_rejected_total{{source=\"{source}\",reason=\"replayed\"}}");
    state
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_captured_delivery_under_a_fresh_delivery_id_is_a_replay() {
    let h = harness_with(setup(Duration::from_secs(300))).await;
    let mut seen = spawn_pipeline(h.rx, &h.store);

    // GitHub: the forge's delivery is accepted once.
    let sig = format!("sha256={}", hmac_hex(GITHUB, BODY));
    let first = send(&h.app, github(&sig, "gh-1")).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(received(&mut seen).len(), 1);
    // The attacker replays the captured bytes with ids of its own choosing (and the signature's hex in
    // upper case, which decodes to the same bytes).
    for (i, s) in [
        sig.clone(),
        sig.to_uppercase().replace("SHA256=", "sha256="),
    ]
    .iter()
    .enumerate()
    {
        let again = send(&h.app, github(s, &format!("attacker-{i}"))).await;
        assert_eq!(
            again.status,
            409,
            "replay #{i} under a fresh id: {}",
            String::from_utf8_lossy(&again.body)
        );
    }
    assert!(
        received(&mut seen).is_empty(),
        "a replay reached the pipeline"
    );
    assert_eq!(replayed(&h.state, "github"), 2);

    // Gitea: the same.
    let sig = hmac_hex(GITEA, BODY);
    assert_eq!(send(&h.app, gitea(&sig, "gt-1")).await.status, 200);
    assert_eq!(send(&h.app, gitea(&sig, "gt-2")).await.status, 409);
    assert_eq!(
        received(&mut seen).len(),
        1,
        "only the first gitea delivery"
    );
    assert_eq!(replayed(&h.state, "gitea"), 1);

    // Generic: the timestamp is signed, the id is not; within the window the same signed request
    // under a new id is a replay too (also with the timestamp written with leading zeros).
    let ts = now();
    let sig = sentinel_notify::channels::sign(GENERIC.as_bytes(), ts, BODY);
    assert_eq!(
        send(&h.app, generic(&ts.to_string(), &sig, "gn-1"))
            .await
            .status,
        200
    );
    assert_eq!(received(&mut seen).len(), 1);
    for (ts_text, id) in [(ts.to_string(), "gn-2"), (format!("00{ts}"), "gn-3")] {
        let r = send(&h.app, generic(&ts_text, &sig, id)).await;
        assert_ne!(r.status, 200, "replayed as {id} with ts {ts_text}");
    }
    assert!(
        received(&mut seen).is_empty(),
        "a replay reached the pipeline"
    );

    // A new body from the real sender is still accepted.
    let body2 = br#"{"kind":"deploy","service":"web"}"#;
    let ts = now();
    let r = Request::post("/webhook/generic")
        .header("content-type", "application/json")
        .header("x-sentinel-timestamp", ts.to_string())
        .header(
            "x-sentinel-signature",
            sentinel_notify::channels::sign(GENERIC.as_bytes(), ts, body2),
        )
        .header("x-sentinel-delivery", "gn-4")
        .body(Body::from(body2.to_vec()))
        .unwrap();
    assert_eq!(send(&h.app, r).await.status, 200);
    assert_eq!(received(&mut seen).len(), 1);
}

/// A generic timestamp may lie up to one window ahead of the clock, so a delivery stays valid for
/// two windows; remembered for only one, it can be replayed, same id and all, once forgotten.
#[tokio::test]
async fn a_future_timestamp_is_remembered_as_long_as_it_is_valid() {
    let window = Duration::from_secs(3);
    let h = harness_with(setup(window)).await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let ts = now() + window.as_secs();
    let sig = sentinel_notify::channels::sign(GENERIC.as_bytes(), ts, BODY);
    let first = send(&h.app, generic(&ts.to_string(), &sig, "future-1")).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let accepted_at = Instant::now();
    assert_eq!(received(&mut seen).len(), 1);
    // Wait until one window has passed since it was accepted (the timestamp is still valid then).
    while accepted_at.elapsed() <= window + Duration::from_millis(300) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = send(&h.app, generic(&ts.to_string(), &sig, "future-1")).await;
    // Refused either way: as a replay while the timestamp holds, as stale after (a slow machine).
    assert_ne!(
        again.status,
        200,
        "the same signed delivery was accepted twice ({} s after the first)",
        accepted_at.elapsed().as_secs_f32()
    );
    assert!(
        received(&mut seen).is_empty(),
        "the replay reached the pipeline"
    );
}
