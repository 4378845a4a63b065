//! Fake notification receivers for tests: real HTTP servers on `127.0.0.1:0` that take what
//! Sentinel's notification channels send and record it.
//!
//! - [`WebhookReceiver`]: checks the `X-Sentinel-Signature` HMAC-SHA256 over `<timestamp>.<body>`
//!   with its own secret (implemented here from the documented scheme, independently of the sender)
//!   and a replay window, refuses bad signatures with 401, and de-duplicates on
//!   `X-Sentinel-Delivery`, as a careful receiver does.
//! - [`MatrixFake`]: the client-server API's `PUT …/rooms/{room}/send/{type}/{txn}`: checks the bearer
//!   token (401 `M_UNKNOWN_TOKEN`) and the room (403 `M_FORBIDDEN`), and de-duplicates on the
//!   transaction id, answering a repeat with the first event's id, as a homeserver does.
//! - [`SlackFake`]: a Slack incoming webhook at a secret path, taking `{"text": …}`.
//!
//! Each records every request ([`HttpAttempt`], with the status it answered), can be set down
//! (503) or rate limited (429 with `Retry-After`, or Matrix's `retry_after_ms`), and stops when
//! dropped.

use crate::ti::RetryAfter;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The replay window of [`WebhookReceiver`]: timestamps further than this from now are refused.
pub const WEBHOOK_TOLERANCE_SECS: u64 = 300;

/// The largest request body read.
const BODY_LIMIT: usize = 1024 * 1024;

/// One request a fake received, with what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAttempt {
    /// `POST`, `PUT`, …
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
    /// The body answered.
    pub response: String,
}

impl HttpAttempt {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The answered body as JSON, if it is JSON.
    pub fn response_json(&self) -> Option<Value> {
        serde_json::from_str(&self.response).ok()
    }
}

/// What every fake shares: down and rate-limit switches, the request log and the rejects.
#[derive(Default)]
struct Common {
    down: AtomicBool,
    rate_limited: Mutex<Option<RetryAfter>>,
    attempts: Mutex<Vec<HttpAttempt>>,
    rejected: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide what was recorded from the others.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request taken apart.
struct Incoming {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Incoming {
    async fn read(req: Request) -> Incoming {
        let (parts, body) = req.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        Incoming {
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer being built.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Answer {
    fn new(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn json(status: u16, v: Value) -> Answer {
        Answer::new(status, v.to_string()).with("content-type", "application/json")
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

impl Common {
    /// Records the request and its answer, and turns the answer into a response.
    fn finish(&self, inc: Incoming, ans: Answer) -> Response {
        lock(&self.attempts).push(HttpAttempt {
            method: inc.method,
            path: inc.path,
            headers: inc.headers,
            body: inc.body,
            status: ans.status,
            response: ans.body.clone(),
        });
        let mut resp = Response::new(Body::from(ans.body));
        *resp.status_mut() =
            StatusCode::from_u16(ans.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (k, v) in ans.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }

    fn reject(&self, why: String) {
        lock(&self.rejected).push(why);
    }

    fn rate_limit(&self) -> Option<RetryAfter> {
        *lock(&self.rate_limited)
    }
}

fn retry_after_header(r: RetryAfter) -> String {
    match r {
        RetryAfter::Seconds(s) => s.to_string(),
        RetryAfter::HttpDate(s) => {
            httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(s))
        }
    }
}

fn retry_after_secs(r: RetryAfter) -> u64 {
    match r {
        RetryAfter::Seconds(s) | RetryAfter::HttpDate(s) => s,
    }
}

async fn serve(what: &str, app: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("{what}: cannot bind 127.0.0.1:0: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("{what}: no local address: {e}"),
    };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// One delivery a [`WebhookReceiver`] accepted (the first of its delivery id).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// `X-Sentinel-Delivery`.
    pub delivery_id: String,
    /// `X-Sentinel-Timestamp`.
    pub timestamp: u64,
    /// `X-Sentinel-Signature`.
    pub signature: String,
    /// The headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body bytes as received.
    pub raw: Vec<u8>,
    /// The body as JSON.
    pub json: Value,
}

impl WebhookDelivery {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct WebhookShared {
    secret: Vec<u8>,
    common: Common,
    received: Mutex<Vec<WebhookDelivery>>,
}

/// A webhook receiver verifying Sentinel's signature. It serves `POST /hook`; other paths are 404.
pub struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<WebhookShared>,
    task: JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks `sha256=<hex>` against HMAC-SHA256(secret, "<ts>.<body>") in constant time, and the
/// timestamp against the replay window. Written from the documented scheme, not the sender's code.
fn check_signature(
    secret: &[u8],
    inc: &Incoming,
    now: u64,
) -> Result<(String, u64, String), String> {
    let delivery = inc
        .header("x-sentinel-delivery")
        .filter(|d| !d.is_empty())
        .ok_or("missing X-Sentinel-Delivery")?
        .to_string();
    let ts_text = inc
        .header("x-sentinel-timestamp")
        .ok_or("missing X-Sentinel-Timestamp")?;
    let ts: u64 = ts_text
        .parse()
        .map_err(|_| format!("bad timestamp {ts_text:?}"))?;
    if ts.abs_diff(now) > WEBHOOK_TOLERANCE_SECS {
        return Err(format!(
            "timestamp {ts} outside the replay window (now {now})"
        ));
    }
    let sig = inc
        .header("x-sentinel-signature")
        .ok_or("missing X-Sentinel-Signature")?
        .to_string();
    let hex_part = sig
        .strip_prefix("sha256=")
        .ok_or("signature without sha256= prefix")?;
    let given = hex::decode(hex_part).map_err(|_| "signature is not hex".to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&inc.body);
    mac.verify_slice(&given)
        .map_err(|_| "signature mismatch".to_string())?;
    Ok((delivery, ts, sig))
}

async fn webhook_handle(State(s): State<Arc<WebhookShared>>, req: Request) -> Response {
    let inc = Incoming::read(req).await;
    let ans = webhook_answer(&s, &inc);
    s.common.finish(inc, ans)
}

fn webhook_answer(s: &WebhookShared, inc: &Incoming) -> Answer {
    if s.common.down.load(Ordering::SeqCst) {
        return Answer::new(503, "down for maintenance");
    }
    if let Some(r) = s.common.rate_limit() {
        return Answer::new(429, "slow down").with("retry-after", retry_after_header(r));
    }
    if inc.path != "/hook" {
        return Answer::new(404, "no such hook");
    }
    if inc.method != "POST" {
        return Answer::new(405, "POST only");
    }
    let (delivery_id, timestamp, signature) = match check_signature(&s.secret, inc, now_unix()) {
        Ok(x) => x,
        Err(why) => {
            s.common.reject(why.clone());
            return Answer::new(401, format!("rejected: {why}"));
        }
    };
    let json: Value = match serde_json::from_slice(&inc.body) {
        Ok(v) => v,
        Err(e) => return Answer::new(400, format!("not JSON: {e}")),
    };
    let mut received = lock(&s.received);
    if received.iter().any(|d| d.delivery_id == delivery_id) {
        return Answer::json(200, json!({"ok": true, "duplicate": true}));
    }
    received.push(WebhookDelivery {
        delivery_id,
        timestamp,
        signature,
        headers: inc.headers.clone(),
        raw: inc.body.clone(),
        json,
    });
    Answer::json(200, json!({"ok": true}))
}

impl WebhookReceiver {
    /// Starts a receiver verifying with `secret`. Must be called inside a tokio runtime.
    pub async fn start(secret: &str) -> WebhookReceiver {
        let shared = Arc::new(WebhookShared {
            secret: secret.as_bytes().to_vec(),
            common: Common::default(),
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(webhook_handle)
            .with_state(shared.clone());
        let (addr, task) = serve("webhook receiver", app).await;
        WebhookReceiver { addr, shared, task }
    }

    /// The hook's URL (`http://127.0.0.1:<port>/hook`).
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepted deliveries, one per delivery id, in order.
    pub fn received(&self) -> Vec<WebhookDelivery> {
        lock(&self.shared.received).clone()
    }

    /// Every request, in order.
    pub fn attempts(&self) -> Vec<HttpAttempt> {
        lock(&self.shared.common.attempts).clone()
    }

    /// Why requests were refused (bad signature, stale timestamp, missing header).
    pub fn rejected(&self) -> Vec<String> {
        lock(&self.shared.common.rejected).clone()
    }

    /// Down: every request gets 503.
    pub fn set_down(&self, down: bool) {
        self.shared.common.down.store(down, Ordering::SeqCst);
    }

    /// Rate limited: every request gets 429 with this `Retry-After` (`None` ends it).
    pub fn set_rate_limited(&self, retry_after: Option<RetryAfter>) {
        *lock(&self.shared.common.rate_limited) = retry_after;
    }
}

// ---------------------------------------------------------------------------------------------
// Matrix

/// One event a [`MatrixFake`] stored (the first of its transaction id).
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixEvent {
    /// The transaction id from the path.
    pub txn_id: String,
    /// The event id the fake assigned.
    pub event_id: String,
    /// The room id from the path, decoded.
    pub room_id: String,
    /// The event type from the path (`m.room.message`).
    pub event_type: String,
    /// The event content.
    pub content: Value,
}

struct MatrixShared {
    room: String,
    token: String,
    common: Common,
    events: Mutex<Vec<MatrixEvent>>,
}

/// A Matrix homeserver's send endpoint.
pub struct MatrixFake {
    addr: SocketAddr,
    shared: Arc<MatrixShared>,
    task: JoinHandle<()>,
}

impl Drop for MatrixFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

async fn matrix_handle(State(s): State<Arc<MatrixShared>>, req: Request) -> Response {
    let inc = Incoming::read(req).await;
    let ans = matrix_answer(&s, &inc);
    s.common.finish(inc, ans)
}

fn matrix_error(status: u16, code: &str, msg: &str) -> Answer {
    Answer::json(status, json!({"errcode": code, "error": msg}))
}

fn matrix_answer(s: &MatrixShared, inc: &Incoming) -> Answer {
    if s.common.down.load(Ordering::SeqCst) {
        return matrix_error(503, "M_UNKNOWN", "homeserver unavailable");
    }
    let segs: Vec<&str> = inc.path.trim_start_matches('/').split('/').collect();
    let (room, event_type, txn) = match segs.as_slice() {
        ["_matrix", "client", "v3", "rooms", room, "send", ty, txn] => {
            (decode(room), decode(ty), decode(txn))
        }
        _ => return matrix_error(404, "M_UNRECOGNIZED", "Unrecognized request"),
    };
    if inc.method != "PUT" {
        return matrix_error(405, "M_UNRECOGNIZED", "Unrecognized request");
    }
    match inc
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
    {
        None => {
            s.common.reject("missing access token".into());
            return matrix_error(401, "M_MISSING_TOKEN", "Missing access token");
        }
        Some(t) if t != s.token => {
            s.common.reject("unknown access token".into());
            return Answer::json(
                401,
                json!({"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid access token passed.", "soft_logout": false}),
            );
        }
        Some(_) => {}
    }
    if let Some(r) = s.common.rate_limit() {
        let ms = retry_after_secs(r) * 1000;
        return Answer::json(
            429,
            json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": ms}),
        );
    }
    if room != s.room {
        s.common.reject(format!("not in room {room}"));
        return matrix_error(
            403,
            "M_FORBIDDEN",
            "User is not in the room or does not have permission",
        );
    }
    let content: Value = match serde_json::from_slice(&inc.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return matrix_error(400, "M_NOT_JSON", "Content not JSON."),
    };
    let mut events = lock(&s.events);
    if let Some(e) = events.iter().find(|e| e.txn_id == txn) {
        return Answer::json(200, json!({"event_id": e.event_id}));
    }
    let event_id = format!("$fake{}:{}", events.len() + 1, "fake.local");
    events.push(MatrixEvent {
        txn_id: txn,
        event_id: event_id.clone(),
        room_id: room,
        event_type,
        content,
    });
    Answer::json(200, json!({"event_id": event_id}))
}

impl MatrixFake {
    /// Starts a homeserver where the bot with `token` has joined `room`.
    pub async fn start(room: &str, token: &str) -> MatrixFake {
        let shared = Arc::new(MatrixShared {
            room: room.to_string(),
            token: token.to_string(),
            common: Common::default(),
            events: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(matrix_handle)
            .with_state(shared.clone());
        let (addr, task) = serve("matrix fake", app).await;
        MatrixFake { addr, shared, task }
    }

    /// The homeserver's base URL (`http://127.0.0.1:<port>`).
    pub fn homeserver(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stored events, one per transaction id, in order.
    pub fn received(&self) -> Vec<MatrixEvent> {
        lock(&self.shared.events).clone()
    }

    /// Every request, in order.
    pub fn attempts(&self) -> Vec<HttpAttempt> {
        lock(&self.shared.common.attempts).clone()
    }

    /// Why requests were refused (token, room).
    pub fn rejected(&self) -> Vec<String> {
        lock(&self.shared.common.rejected).clone()
    }

    /// Down: every request gets 503 `M_UNKNOWN`.
    pub fn set_down(&self, down: bool) {
        self.shared.common.down.store(down, Ordering::SeqCst);
    }

    /// Rate limited: authenticated requests get 429 `M_LIMIT_EXCEEDED` with `retry_after_ms` of
    /// this many seconds (`None` ends it).
    pub fn set_rate_limited(&self, retry_after: Option<RetryAfter>) {
        *lock(&self.shared.common.rate_limited) = retry_after;
    }
}

// ---------------------------------------------------------------------------------------------
// Slack

/// One post a [`SlackFake`] accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackPost {
    /// The `text` field.
    pub text: String,
    /// The whole payload.
    pub payload: Value,
}

struct SlackShared {
    path: String,
    common: Common,
    posts: Mutex<Vec<SlackPost>>,
}

/// A Slack incoming webhook at a secret path.
pub struct SlackFake {
    addr: SocketAddr,
    shared: Arc<SlackShared>,
    task: JoinHandle<()>,
}

impl Drop for SlackFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn slack_handle(State(s): State<Arc<SlackShared>>, req: Request) -> Response {
    let inc = Incoming::read(req).await;
    let ans = slack_answer(&s, &inc);
    s.common.finish(inc, ans)
}

fn slack_answer(s: &SlackShared, inc: &Incoming) -> Answer {
    if s.common.down.load(Ordering::SeqCst) {
        return Answer::new(503, "service_unavailable");
    }
    if let Some(r) = s.common.rate_limit() {
        return Answer::new(429, "rate_limited").with("retry-after", retry_after_header(r));
    }
    if inc.path != s.path {
        s.common.reject("unknown webhook path".into());
        return Answer::new(404, "no_service");
    }
    if inc.method != "POST" {
        return Answer::new(405, "invalid_method");
    }
    let payload: Value = match serde_json::from_slice(&inc.body) {
        Ok(v) => v,
        Err(_) => return Answer::new(400, "invalid_payload"),
    };
    let Some(text) = payload
        .get("text")
        .and_then(|t| t.as_str())
        .map(str::to_string)
    else {
        return Answer::new(400, "no_text");
    };
    lock(&s.posts).push(SlackPost { text, payload });
    Answer::new(200, "ok")
}

impl SlackFake {
    /// Starts a fake incoming webhook with a fresh secret path.
    pub async fn start() -> SlackFake {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now_unix());
        let token = format!("{:016x}", h.finish());
        let shared = Arc::new(SlackShared {
            path: format!("/services/TFAKE0000/BFAKE0000/{token}"),
            common: Common::default(),
            posts: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(slack_handle)
            .with_state(shared.clone());
        let (addr, task) = serve("slack fake", app).await;
        SlackFake { addr, shared, task }
    }

    /// The webhook URL (a credential: the path is the secret).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.path)
    }

    /// The secret part of the URL (its last path segment).
    pub fn token(&self) -> String {
        self.shared
            .path
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accepted posts, in order.
    pub fn received(&self) -> Vec<SlackPost> {
        lock(&self.shared.posts).clone()
    }

    /// Every request, in order.
    pub fn attempts(&self) -> Vec<HttpAttempt> {
        lock(&self.shared.common.attempts).clone()
    }

    /// Requests to a wrong path.
    pub fn rejected(&self) -> Vec<String> {
        lock(&self.shared.common.rejected).clone()
    }

    /// Down: every request gets 503.
    pub fn set_down(&self, down: bool) {
        self.shared.common.down.store(down, Ordering::SeqCst);
    }

    /// Rate limited: every request gets 429 with this `Retry-After` (`None` ends it).
    pub fn set_rate_limited(&self, retry_after: Option<RetryAfter>) {
        *lock(&self.shared.common.rate_limited) = retry_after;
    }
}
