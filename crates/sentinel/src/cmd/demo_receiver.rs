//! `demo-target --kind receiver`: a receiver for Sentinel's webhook notification channel. It keeps
//! the last deliveries in memory (at most [`RING`] of them and [`RING_BYTES`] in all) for
//! `GET /received`, logs one line per delivery, and with `--secret` checks each signature with
//! [`sentinel_notify::channels::verify`], the scheme the channel signs with: a bad or missing
//! signature is answered 401 (the channel then makes the message a dead letter) and counted.

use super::demo_target::{AppendLog, Limits};
use super::demo_web::{peer_ip, read_body, serve_http, shown_ip, with_access_log};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sentinel_notify::channels::webhook::{HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Deliveries kept.
pub const RING: usize = 1000;
/// Bytes of deliveries kept (the oldest go first past it).
pub const RING_BYTES: usize = 16 << 20;
/// Largest body accepted (Sentinel's messages are well under it).
const MAX_BODY: usize = 64 << 10;
/// Headers kept per delivery, and the longest value kept.
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 512;
/// How far a signature's timestamp may be from this clock (the channel's documented 5 minutes).
const TOLERANCE_SECS: u64 = 300;

/// The receiver's state.
pub struct Receiver {
    name: String,
    secret: Option<Vec<u8>>,
    log: Option<Arc<AppendLog>>,
    ring: Mutex<Ring>,
    received: AtomicU64,
    verified: AtomicU64,
    rejected: AtomicU64,
    too_large: AtomicU64,
}

#[derive(Default)]
struct Ring {
    items: VecDeque<(Value, usize)>,
    bytes: usize,
    evicted: u64,
}

impl Receiver {
    /// A receiver named `name`, checking signatures with `secret` when given.
    pub fn new(name: String, secret: Option<Vec<u8>>, log: Option<Arc<AppendLog>>) -> Receiver {
        Receiver {
            name,
            secret,
            log,
            ring: Mutex::new(Ring::default()),
            received: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
        }
    }

    fn keep(&self, delivery: Value) {
        let size = delivery.to_string().len();
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        while !ring.items.is_empty() && (ring.items.len() >= RING || ring.bytes + size > RING_BYTES)
        {
            if let Some((_, s)) = ring.items.pop_front() {
                ring.bytes -= s;
                ring.evicted += 1;
            }
        }
        ring.bytes += size;
        ring.items.push_back((delivery, size));
    }
}

/// Serves the receiver on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rx: Receiver,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(
        evt = "receiver_ready",
        name = %rx.name,
        verifies = rx.secret.is_some(),
        msg = if rx.secret.is_some() {
            "signatures are checked; a bad one is answered 401"
        } else {
            "no --secret: deliveries are stored unverified"
        },
    );
    let log = rx.log.clone();
    serve_http(listener, router(Arc::new(rx), log), limits, shutdown).await
}

/// The routes: `POST /<any path>` stores a delivery, `GET /received` lists them, `GET /stats`
/// counts them, `GET /ready` answers 200.
pub fn router(rx: Arc<Receiver>, log: Option<Arc<AppendLog>>) -> Router {
    let app = Router::new()
        .route("/ready", get(|| async { "ready" }))
        .route("/received", get(received))
        .route("/stats", get(stats))
        .route("/", post(deliver))
        .route("/{*path}", post(deliver))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(rx);
    with_access_log(app, log)
}

async fn received(State(rx): State<Arc<Receiver>>) -> Json<Vec<Value>> {
    let ring = rx.ring.lock().unwrap_or_else(PoisonError::into_inner);
    Json(ring.items.iter().map(|(v, _)| v.clone()).collect())
}

async fn stats(State(rx): State<Arc<Receiver>>) -> Json<Value> {
    let (stored, evicted) = {
        let ring = rx.ring.lock().unwrap_or_else(PoisonError::into_inner);
        (ring.items.len(), ring.evicted)
    };
    Json(json!({
        "received": rx.received.load(Ordering::Relaxed),
        "verified": rx.verified.load(Ordering::Relaxed),
        "rejected": rx.rejected.load(Ordering::Relaxed),
        "too_large": rx.too_large.load(Ordering::Relaxed),
        "stored": stored,
        "evicted": evicted,
    }))
}

async fn deliver(State(rx): State<Arc<Receiver>>, req: Request) -> Response {
    let peer = peer_ip(req.extensions());
    let path = req.uri().path().chars().take(256).collect::<String>();
    let headers = req.headers().clone();
    let body = match read_body(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(status) => {
            let n = rx.too_large.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(evt = "delivery_refused", path = %path, peer = %shown_ip(peer), status = status.as_u16(), refused = n);
            return (status, "body too large or too slow\n").into_response();
        }
    };
    let seq = rx.received.fetch_add(1, Ordering::Relaxed) + 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let check = rx
        .secret
        .as_deref()
        .map(|secret| check(secret, &headers, &body, now));
    let (verified, error) = match &check {
        Some(Ok(())) => (true, None),
        Some(Err(e)) => (false, Some(e.clone())),
        None => (false, None),
    };
    let status = match check {
        Some(Err(_)) => {
            rx.rejected.fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED
        }
        Some(Ok(())) => {
            rx.verified.fetch_add(1, Ordering::Relaxed);
            StatusCode::OK
        }
        None => StatusCode::OK,
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let delivery_id = header_text(&headers, HEADER_DELIVERY);
    let (kind, title) = match &parsed {
        Some(v) => (
            v["kind"].as_str().map(str::to_owned),
            v["title"]
                .as_str()
                .map(|t| t.chars().take(200).collect::<String>()),
        ),
        None => (None, None),
    };
    tracing::info!(
        evt = "delivery",
        receiver = %rx.name,
        seq,
        path = %path,
        peer = %shown_ip(peer),
        delivery_id = delivery_id.as_deref(),
        kind = kind.as_deref(),
        title = title.as_deref(),
        verified,
        status = status.as_u16(),
        error = error.as_deref(),
        rejected = rx.rejected.load(Ordering::Relaxed),
    );
    rx.keep(json!({
        "seq": seq,
        "received_at": sentinel_core::Timestamp::now().to_rfc3339(),
        "path": path,
        "peer": peer.map(|p| p.to_string()),
        "headers": headers_json(&headers),
        "body_is_json": parsed.is_some(),
        "body": parsed.unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
        "delivery_id": delivery_id,
        "verified": verified,
        "status": status.as_u16(),
        "error": error,
    }));
    match status {
        StatusCode::OK => (status, "stored\n").into_response(),
        _ => (status, "bad signature\n").into_response(),
    }
}

/// Checks the signature headers over `body`; the reason when they do not match.
fn check(secret: &[u8], headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), String> {
    let (Some(ts), Some(sig)) = (
        header_text(headers, HEADER_TIMESTAMP),
        header_text(headers, HEADER_SIGNATURE),
    ) else {
        return Err(format!("missing {HEADER_TIMESTAMP} or {HEADER_SIGNATURE}"));
    };
    sentinel_notify::channels::verify(secret, &ts, &sig, body, now, TOLERANCE_SECS)
        .map_err(|e| e.to_string())
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .chars()
            .take(MAX_HEADER_VALUE)
            .collect()
    })
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers.iter().take(MAX_HEADERS) {
        let v: String = String::from_utf8_lossy(value.as_bytes())
            .chars()
            .take(MAX_HEADER_VALUE)
            .collect();
        map.entry(name.as_str().to_owned())
            .and_modify(|e| {
                if let Value::String(s) = e {
                    s.push_str(", ");
                    s.push_str(&v);
                }
            })
            .or_insert(Value::String(v));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_deliveries_within_its_bounds() {
        let rx = Receiver::new("r".into(), None, None);
        for i in 0..(RING + 5) {
            rx.keep(json!({ "seq": i }));
        }
        let ring = rx.ring.lock().unwrap();
        assert_eq!(ring.items.len(), RING);
        assert_eq!(ring.items[0].0["seq"], 5);
        assert_eq!(ring.evicted, 5);
        drop(ring);
        let big = "x".repeat(RING_BYTES / 3);
        for _ in 0..4 {
            rx.keep(json!({ "b": big }));
        }
        let ring = rx.ring.lock().unwrap();
        assert!(ring.bytes <= RING_BYTES, "{}", ring.bytes);
        assert_eq!(ring.items.len(), 2);
    }

    #[test]
    fn check_accepts_the_channels_signature_only() {
        let body = br#"{"kind":"test"}"#;
        let sig = sentinel_notify::channels::sign(b"k", 1000, body);
        let mut h = HeaderMap::new();
        h.insert(HEADER_TIMESTAMP, "1000".parse().unwrap());
        h.insert(HEADER_SIGNATURE, sig.parse().unwrap());
        assert_eq!(check(b"k", &h, body, 1010), Ok(()));
        assert_eq!(
            check(b"k", &h, br#"{"kind":"tost"}"#, 1010),
            Err("signature mismatch".into())
        );
        assert!(check(b"k", &h, body, 5000)
            .unwrap_err()
            .contains("tolerance"));
        assert!(check(b"k", &HeaderMap::new(), body, 1000)
            .unwrap_err()
            .contains("missing"));
    }
}
