//! Signed webhooks through the real router over a real store: what is refused never reaches the
//! pipeline (and is counted per reason), what is accepted becomes a stored event, a route without a
//! secret does not exist.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use hmac::{Hmac, Mac};
use sentinel_api::webhook::WebhookSettings;
use sentinel_api::ApiSettings;
use sentinel_notify::config::Secret;
use serde_json::json;
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

const GITHUB: &str = "gh-secret-for-tests";
const GITEA: &str = "gitea-secret-for-tests";
const GENERIC: &str = "generic-secret-for-tests";

fn hooks(settings: WebhookSettings) -> Setup {
    let d = Setup::default();
    Setup {
        settings: ApiSettings {
            webhooks: settings,
            ..d.settings
        },
        ..d
    }
}

fn all_secrets() -> WebhookSettings {
    WebhookSettings {
        github: Some(Secret::new(GITHUB)),
        gitea: Some(Secret::new(GITEA)),
        generic: Some(Secret::new(GENERIC)),
        ..WebhookSettings::default()
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

fn req(path: &str, headers: &[(&str, String)], body: &[u8]) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

fn github_body(repo: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": "opened",
        "repository": {"full_name": repo},
        "sender": {"login": "octocat"},
        "pull_request": {"title": "t"},
    }))
    .unwrap()
}

fn github(body: &[u8], delivery: &str) -> Request<Body> {
    req(
        "/webhook/github",
        &[
            (
                "x-hub-signature-256",
                format!("sha256={}", hmac_hex(GITHUB, body)),
            ),
            ("x-github-delivery", delivery.into()),
            ("x-github-event", "pull_request".into()),
        ],
        body,
    )
}

fn generic(body: &[u8], ts: u64, delivery: &str) -> Request<Body> {
    req(
        "/webhook/generic",
        &[
            ("x-sentinel-timestamp", ts.to_string()),
            (
                "x-sentinel-signature",
                sentinel_notify::channels::sign(GENERIC.as_bytes(), ts, body),
            ),
            ("x-sentinel-delivery", delivery.into()),
        ],
        body,
    )
}

fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

fn accepted(state: &sentinel_api::AppState, source: &str) -> u64 {
    sample(
        &state.metrics.render(),
        &format!("sentinel_webhook_accepted_total{{source=\"{source}\"}}"),
    )
}

#[tokio::test]
async fn github_deliveries_are_verified_before_anything_and_replays_refused() {
    let h = harness_with(hooks(all_secrets())).await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let body = github_body("acme/site");

    // No signature, a wrong one, one over another body, a malformed one: one identical 401.
    let mut unsigned = github(&body, "d-1");
    unsigned.headers_mut().remove("x-hub-signature-256");
    let missing = send(&h.app, unsigned).await;
    assert_eq!(missing.status, 401);
    let mut wrong = github(&body, "d-1");
    wrong.headers_mut().insert(
        "x-hub-signature-256",
        format!("sha256={}", hmac_hex("not-the-secret", &body))
            .parse()
            .unwrap(),
    );
    let mismatch = send(&h.app, wrong).await;
    let mut other_body = github(&github_body("acme/other"), "d-1");
    *other_body.body_mut() = Body::from(body.clone());
    let tampered = send(&h.app, other_body).await;
    let mut bad = github(&body, "d-1");
    bad.headers_mut()
        .insert("x-hub-signature-256", "sha1=abc".parse().unwrap());
    let malformed = send(&h.app, bad).await;
    for r in [&mismatch, &tampered, &malformed] {
        assert_eq!(r.status, 401);
        assert_eq!(r.body, missing.body, "one error for every bad signature");
    }
    assert_eq!(
        missing.error("unauthorized"),
        "missing or invalid signature"
    );
    assert_eq!(rejected_text(&h.state, "github", "missing"), 1);
    assert_eq!(rejected_text(&h.state, "github", "mismatch"), 2);
    assert_eq!(rejected_text(&h.state, "github", "malformed"), 1);
    // An API key is no substitute for the signature.
    let mut keyed = github(&body, "d-1");
    keyed.headers_mut().remove("x-hub-signature-256");
    keyed
        .headers_mut()
        .insert("x-api-key", h.admin_key.parse().unwrap());
    assert_eq!(send(&h.app, keyed).await.status, 401);

    // The valid delivery is accepted and becomes an event: the first the pipeline sees, so none of
    // the refused ones reached it.
    let ok = send(&h.app, github(&body, "d-1")).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let answer = ok.json();
    assert_eq!(answer["accepted"], true);
    let events = received(&mut seen);
    assert_eq!(events.len(), 1, "{events:?}");
    let ev = &events[0];
    assert_eq!(ev.id.to_string(), answer["event_id"]);
    assert_eq!(ev.kind.0, "webhook");
    assert_eq!(ev.source, "webhook/github");
    assert_eq!(ev.attrs["event"], "pull_request");
    assert_eq!(ev.attrs["repo"], "acme/site");
    assert_eq!(ev.attrs["sender"], "octocat");
    assert_eq!(ev.attrs["action"], "opened");
    assert_eq!(ev.attrs["delivery"], "d-1");
    let kept = stored(&h.store, answer["trace_id"].as_str().unwrap()).await;
    assert_eq!(kept.len(), 1, "the answer came once the event was stored");
    assert_eq!(accepted(&h.state, "github"), 1);

    // The same delivery again (a captured request replayed) is refused and never handled.
    let replay = send(&h.app, github(&body, "d-1")).await;
    assert_eq!(replay.status, 409);
    replay.error("duplicate_delivery");
    assert_eq!(rejected_text(&h.state, "github", "replayed"), 1);
    // A delivery without an id cannot be de-duplicated: refused after the signature holds.
    let mut no_id = github(&body, "x");
    no_id.headers_mut().remove("x-github-delivery");
    assert_eq!(send(&h.app, no_id).await.status, 400);
    assert_eq!(rejected_text(&h.state, "github", "no_delivery_id"), 1);
    // The next accepted delivery is the next event seen: nothing refused slipped in between.
    // (A new delivery has a new body: the same signed body again would be a replay.)
    assert_eq!(
        send(&h.app, github(&github_body("acme/next"), "d-2"))
            .await
            .status,
        200
    );
    let events = received(&mut seen);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].attrs["delivery"], "d-2");
    assert_eq!(accepted(&h.state, "github"), 2);
}

#[tokio::test]
async fn gitea_signatures_are_plain_hex() {
    let h = harness_with(hooks(all_secrets())).await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let body = github_body("acme/gitea-repo");
    let sign = |secret: &str, id: &str| {
        req(
            "/webhook/gitea",
            &[
                ("x-gitea-signature", hmac_hex(secret, &body)),
                ("x-gitea-delivery", id.into()),
                ("x-gitea-event", "push".into()),
            ],
            &body,
        )
    };
    let r = send(&h.app, sign("wrong", "g-1")).await;
    assert_eq!(r.status, 401);
    assert_eq!(rejected_text(&h.state, "gitea", "mismatch"), 1);
    // GitHub's secret does not open Gitea's route.
    assert_eq!(send(&h.app, sign(GITHUB, "g-1")).await.status, 401);
    let r = send(&h.app, sign(GITEA, "g-1")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let events = received(&mut seen);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].source, "webhook/gitea");
    assert_eq!(events[0].attrs["event"], "push");
    assert_eq!(events[0].attrs["repo"], "acme/gitea-repo");
    assert_eq!(send(&h.app, sign(GITEA, "g-1")).await.status, 409);
}

fn rejected_text(state: &sentinel_api::AppState, source: &str, reason: &str) -> u64 {
    sample(
        &state.metrics.render(),
        &format!("sentinel_webhook_rejected_total{{source=\"{source}\",reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn generic_deliveries_need_a_fresh_timestamp_and_a_new_delivery_id() {
    let h = harness_with(hooks(all_secrets())).await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let body = serde_json::to_vec(&json!({
        "kind": "deploy", "src_ip": "198.51.100.9", "source": "github", "service": "web", "password": "hunter2"
    }))
    .unwrap();
    // Signed correctly but ten minutes old (outside the 5-minute window): the same 401.
    let stale = send(&h.app, generic(&body, now() - 600, "s-1")).await;
    assert_eq!(stale.status, 401);
    assert_eq!(stale.error("unauthorized"), "missing or invalid signature");
    assert_eq!(rejected_text(&h.state, "generic", "stale"), 1);
    // A timestamp that is not the signed one.
    let mut moved = generic(&body, now(), "s-1");
    moved.headers_mut().insert(
        "x-sentinel-timestamp",
        (now() - 1).to_string().parse().unwrap(),
    );
    assert_eq!(send(&h.app, moved).await.status, 401);
    assert_eq!(rejected_text(&h.state, "generic", "mismatch"), 1);
    let mut no_ts = generic(&body, now(), "s-1");
    no_ts.headers_mut().remove("x-sentinel-timestamp");
    assert_eq!(send(&h.app, no_ts).await.status, 401);
    assert_eq!(rejected_text(&h.state, "generic", "missing"), 1);

    let ok = send(&h.app, generic(&body, now(), "s-1")).await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let events = received(&mut seen);
    assert_eq!(
        events.len(),
        1,
        "only the valid delivery reached the pipeline"
    );
    let ev = &events[0];
    assert_eq!(ev.kind.0, "deploy");
    assert_eq!(
        ev.source, "webhook/generic",
        "the route names the source, not the body"
    );
    assert_eq!(ev.src_ip, Some("198.51.100.9".parse().unwrap()));
    assert_eq!(ev.attrs["service"], "web");
    assert_eq!(
        ev.attrs["password"], "***",
        "secrets are masked as in any event"
    );
    // Re-signed with a new timestamp, the same delivery id is still a replay.
    let again = send(&h.app, generic(&body, now(), "s-1")).await;
    assert_eq!(again.status, 409);
    assert_eq!(rejected_text(&h.state, "generic", "replayed"), 1);
    // A verified body that is not an object is refused and its id released: the corrected retry
    // is accepted.
    assert_eq!(
        send(&h.app, generic(b"[1]", now(), "s-2")).await.status,
        400
    );
    assert_eq!(rejected_text(&h.state, "generic", "bad_body"), 1);
    assert_eq!(send(&h.app, generic(b"{}", now(), "s-2")).await.status, 200);
    let events = received(&mut seen);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind.0, "webhook");
    // Over the body limit: refused before the signature is even computed.
    let big = vec![b' '; 4096];
    assert_eq!(send(&h.app, generic(&big, now(), "s-3")).await.status, 413);
    assert_eq!(rejected_text(&h.state, "generic", "too_large"), 1);
    assert!(received(&mut seen).is_empty());
}

#[tokio::test]
async fn a_route_without_a_secret_does_not_exist() {
    let h = harness_with(hooks(WebhookSettings {
        github: Some(Secret::new(GITHUB)),
        ..WebhookSettings::default()
    }))
    .await;
    let unknown = send(&h.app, req("/webhook/nothing", &[], b"{}")).await;
    assert_eq!(unknown.status, 404);
    for path in ["/webhook/gitea", "/webhook/generic", "/webhook/test"] {
        let r = send(&h.app, req(path, &[], b"{}")).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, unknown.body, "{path} answers like any unknown path");
    }
    // The configured one exists (and refuses the unsigned body).
    assert_eq!(
        send(&h.app, req("/webhook/github", &[], b"{}"))
            .await
            .status,
        401
    );
    // With no secret at all, no webhook route exists.
    let none = harness_with(hooks(WebhookSettings::default())).await;
    let r = send(&none.app, req("/webhook/github", &[], b"{}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, unknown.body);
}

#[tokio::test]
async fn the_test_route_exists_only_when_enabled() {
    let h = harness_with(hooks(WebhookSettings {
        enable_test: true,
        ..WebhookSettings::default()
    }))
    .await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let r = send(&h.app, req("/webhook/test", &[], br#"{"note": "hello"}"#)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let events = received(&mut seen);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].source, "webhook/test");
    assert_eq!(events[0].attrs["note"], "hello");
    assert_eq!(
        sample(
            &h.state.metrics.render(),
            "sentinel_webhook_accepted_total{source=\"test\"}"
        ),
        1
    );
}

/// GitHub's webhook form defaults to `application/x-www-form-urlencoded`: the JSON arrives in the
/// form's `payload` field and the signature covers the form bytes. Such a delivery is read (before,
/// a user who kept GitHub's default got "malformed JSON at line 1 column 1"); a form without
/// `payload` is a 400 saying what is missing, counted, and never handled.
#[tokio::test]
async fn a_github_form_delivery_is_read_from_its_payload_field() {
    let h = harness_with(hooks(all_secrets())).await;
    let mut seen = spawn_pipeline(h.rx, &h.store);
    let json = github_body("acme/form");
    let form =
        serde_urlencoded::to_string([("payload", String::from_utf8(json).unwrap())]).unwrap();
    let form_req = |body: &str, id: &str| {
        let mut r = github(body.as_bytes(), id);
        r.headers_mut().insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        r
    };
    let r = send(&h.app, form_req(&form, "f-1")).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let events = received(&mut seen);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].attrs["repo"], "acme/form");
    assert_eq!(events[0].attrs["sender"], "octocat");
    assert_eq!(accepted(&h.state, "github"), 1);

    let r = send(&h.app, form_req("other=1", "f-2")).await;
    assert_eq!(r.status, 400);
    let msg = r.error("bad_request");
    assert!(msg.contains("`payload`"), "{msg}");
    assert_eq!(rejected_text(&h.state, "github", "bad_body"), 1);
    assert_eq!(accepted(&h.state, "github"), 1);
    assert!(
        received(&mut seen).is_empty(),
        "nothing refused was handled"
    );
}
