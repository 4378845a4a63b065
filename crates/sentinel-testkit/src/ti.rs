//! Fake threat-intelligence providers: real HTTP servers on `127.0.0.1:0` speaking the wire format of
//! AbuseIPDB v2, VirusTotal v3 and AlienVault OTX as their publishers document it (paths, key headers,
//! status codes, quota headers, success and error bodies), scripted per looked-up address, and
//! recording every request so that a test can count hits and check what the client sent.
//!
//! A server runs inside the test's tokio runtime ([`FakeProvider::start`]) and stops when dropped. It
//! checks the key header like the real service (a missing or wrong key gets the provider's own 401/403
//! body) and validates the address in the request; only what happens after that is scripted
//! ([`Behaviour`]). Nothing here contacts a real provider.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// The daily quota the fake AbuseIPDB announces in `X-RateLimit-Limit` (the free plan's).
pub const ABUSEIPDB_DAILY_LIMIT: u64 = 1000;

/// Which provider a [`FakeProvider`] imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TiKind {
    /// AbuseIPDB v2: `GET /api/v2/check?ipAddress=…`, header `Key`.
    AbuseIpDb,
    /// VirusTotal v3: `GET /api/v3/ip_addresses/{ip}`, header `x-apikey`.
    VirusTotal,
    /// AlienVault OTX: `GET /api/v1/indicators/{IPv4|IPv6}/{ip}/general`, header `X-OTX-API-KEY`.
    Otx,
}

impl TiKind {
    fn key_header(self) -> &'static str {
        match self {
            TiKind::AbuseIpDb => "key",
            TiKind::VirusTotal => "x-apikey",
            TiKind::Otx => "x-otx-api-key",
        }
    }

    fn name(self) -> &'static str {
        match self {
            TiKind::AbuseIpDb => "abuseipdb",
            TiKind::VirusTotal => "virustotal",
            TiKind::Otx => "otx",
        }
    }
}

/// How `Retry-After` is written in a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delay-seconds: `Retry-After: 30`.
    Seconds(u64),
    /// An HTTP-date this many seconds from now: `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`.
    HttpDate(u64),
}

impl RetryAfter {
    fn secs(self) -> u64 {
        match self {
            RetryAfter::Seconds(s) | RetryAfter::HttpDate(s) => s,
        }
    }

    fn header(self) -> String {
        match self {
            RetryAfter::Seconds(s) => s.to_string(),
            RetryAfter::HttpDate(s) => {
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(s))
            }
        }
    }
}

/// What the fake answers to an authenticated, well-formed request. The bodies are each provider's
/// documented shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// A listed address. AbuseIPDB: `abuseConfidenceScore` = `score`, `totalReports` = `reports`.
    /// VirusTotal: `reports` engines say malicious, none suspicious, `reputation` = −`score`. OTX:
    /// `pulse_info.count` = `reports`, the pulses carrying `tags`.
    Listed {
        /// The provider's score (AbuseIPDB) or negated reputation (VirusTotal).
        score: u8,
        /// Reports (AbuseIPDB), engines flagging (VirusTotal) or pulses (OTX).
        reports: u32,
        /// Pulse tags (OTX only).
        tags: Vec<String>,
    },
    /// Nothing known. AbuseIPDB: score 0, no reports. VirusTotal: 404 `NotFoundError`. OTX: no pulses.
    Unknown,
    /// Known good. AbuseIPDB: `isWhitelisted`. VirusTotal: harmless to most engines, positive
    /// reputation. OTX: no pulses and a whitelist `validation` entry.
    Harmless,
    /// 200 with exactly this JSON body.
    Json(Value),
    /// This status with the provider's own error body for it (401/403 as for a bad key).
    Status(u16),
    /// 429 with the provider's own body; AbuseIPDB adds `X-RateLimit-Limit`, `X-RateLimit-Remaining:
    /// 0` and `X-RateLimit-Reset` (epoch seconds); `Retry-After` when given.
    RateLimited {
        /// The `Retry-After` header, if any.
        retry_after: Option<RetryAfter>,
    },
    /// Waits this long (tokio time), then behaves as the inner behaviour.
    Slow(Duration, Box<Behaviour>),
    /// Accepts the request and never answers.
    Hang,
    /// Sends 200 and the headers and the first bytes of the body, then nothing more.
    StallBody,
    /// 200 `application/json` with this text as the body (broken JSON, or JSON of the wrong shape).
    Malformed(String),
    /// Exactly this status, these headers and this body (for answers no other behaviour gives).
    Raw {
        /// The status.
        status: u16,
        /// Headers added to the response.
        headers: Vec<(String, String)>,
        /// The body, as is.
        body: String,
    },
    /// Each authenticated, well-formed request for the address (or for the default) takes the next
    /// behaviour; the last one repeats.
    /// The items should not be sequences themselves.
    Sequence(Vec<Behaviour>),
}

impl Behaviour {
    /// [`Behaviour::Listed`] without tags.
    pub fn listed(score: u8, reports: u32) -> Self {
        Behaviour::Listed {
            score,
            reports,
            tags: Vec::new(),
        }
    }
}

/// One request the fake received, before any check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, …
    pub method: String,
    /// The path, percent-decoded.
    pub path: String,
    /// The query pairs, decoded, in order (a key-only flag such as `verbose` has an empty value).
    pub query: Vec<(String, String)>,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The address looked up, when the request named a valid one.
    pub ip: Option<IpAddr>,
}

impl RecordedRequest {
    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Script {
    behaviour: Behaviour,
    hits: usize,
}

impl Script {
    fn new(behaviour: Behaviour) -> Self {
        Script { behaviour, hits: 0 }
    }

    fn next(&mut self) -> Behaviour {
        let chosen = match &self.behaviour {
            Behaviour::Sequence(items) => match items.get(self.hits).or(items.last()) {
                Some(b) => b.clone(),
                None => Behaviour::Unknown,
            },
            other => other.clone(),
        };
        self.hits += 1;
        chosen
    }
}

struct Scripts {
    default: Script,
    per_ip: HashMap<IpAddr, Script>,
    requests: Vec<RecordedRequest>,
    /// Authenticated requests served, for `X-RateLimit-Remaining`.
    served: u64,
}

struct Shared {
    kind: TiKind,
    key: String,
    echo_key: AtomicBool,
    scripts: Mutex<Scripts>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Scripts> {
        // A panicking test thread must not hide the requests from the others.
        self.scripts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fake provider server. Dropping it stops the server.
pub struct FakeProvider {
    kind: TiKind,
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeProvider {
    /// Starts a fake `kind` on a free loopback port, answering [`Behaviour::Unknown`] until told
    /// otherwise. Must be called inside a tokio runtime. Panics (with the reason) only if it cannot
    /// bind a loopback port.
    pub async fn start(kind: TiKind) -> FakeProvider {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("fake {}: cannot bind 127.0.0.1:0: {e}", kind.name()),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("fake {}: no local address: {e}", kind.name()),
        };
        let shared = Arc::new(Shared {
            kind,
            key: format!("{}-fake-key-0b7d4e9a1c", kind.name()),
            echo_key: AtomicBool::new(false),
            scripts: Mutex::new(Scripts {
                default: Script::new(Behaviour::Unknown),
                per_ip: HashMap::new(),
                requests: Vec::new(),
                served: 0,
            }),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeProvider {
            kind,
            addr,
            shared,
            task,
        }
    }

    /// Which provider this imitates.
    pub fn kind(&self) -> TiKind {
        self.kind
    }

    /// `http://127.0.0.1:<port>`, for `ProviderSettings.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The only API key the server accepts.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// Makes every error body repeat the key the client presented (real providers do not; this
    /// proves a client scrubs what servers send back).
    pub fn echo_key_in_errors(&self, on: bool) {
        self.shared.echo_key.store(on, Ordering::SeqCst);
    }

    /// How the server answers lookups of `ip` (resets its sequence).
    pub fn set(&self, ip: IpAddr, behaviour: Behaviour) {
        self.shared.lock().per_ip.insert(ip, Script::new(behaviour));
    }

    /// How the server answers addresses not [`set`](Self::set) (resets its sequence).
    pub fn set_default(&self, behaviour: Behaviour) {
        self.shared.lock().default = Script::new(behaviour);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Requests received that looked `ip` up.
    pub fn hits(&self, ip: IpAddr) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.ip == Some(ip))
            .count()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let kind = shared.kind;
    let path = percent_decode(request.uri().path());
    let query = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let target = route(kind, &path, &query);
    let recorded = RecordedRequest {
        method: request.method().as_str().to_owned(),
        path,
        query,
        headers,
        ip: match &target {
            Target::Ip(ip) => Some(*ip),
            _ => None,
        },
    };
    let presented = recorded.header(kind.key_header()).map(str::to_owned);
    shared.lock().requests.push(recorded);
    let echo = shared
        .echo_key
        .load(Ordering::SeqCst)
        .then(|| presented.clone().unwrap_or_default());
    let body = Bodies {
        kind,
        echo: echo.as_deref(),
    };

    if request.method() != axum::http::Method::GET {
        return body.error(405, None);
    }
    let ip = match target {
        // What a front end answers for a path no API serves: not the provider's JSON.
        Target::NoRoute => {
            let mut r = Response::new(Body::from("404 page not found"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
        Target::BadIp(why) => return body.bad_request(&why),
        Target::Ip(ip) => ip,
    };
    match presented.as_deref() {
        None => return body.unauthorized(false),
        Some(k) if k != shared.key => return body.unauthorized(true),
        Some(_) => {}
    }
    let (mut behaviour, served) = {
        let mut scripts = shared.lock();
        scripts.served += 1;
        let served = scripts.served;
        let behaviour = match scripts.per_ip.get_mut(&ip) {
            Some(script) => script.next(),
            None => scripts.default.next(),
        };
        (behaviour, served)
    };
    while let Behaviour::Slow(delay, inner) = behaviour {
        tokio::time::sleep(delay).await;
        behaviour = *inner;
    }
    let mut response = body.answer(ip, behaviour).await;
    if kind == TiKind::AbuseIpDb && response.status() != StatusCode::TOO_MANY_REQUESTS {
        let h = response.headers_mut();
        h.insert(
            "x-ratelimit-limit",
            HeaderValue::from(ABUSEIPDB_DAILY_LIMIT),
        );
        h.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(ABUSEIPDB_DAILY_LIMIT.saturating_sub(served)),
        );
    }
    response
}

enum Target {
    Ip(IpAddr),
    BadIp(String),
    NoRoute,
}

fn route(kind: TiKind, path: &str, query: &[(String, String)]) -> Target {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let parse = |text: &str| match text.parse::<IpAddr>() {
        Ok(ip) => Target::Ip(ip),
        Err(_) => Target::BadIp(text.to_owned()),
    };
    match (kind, segments.as_slice()) {
        (TiKind::AbuseIpDb, ["api", "v2", "check"]) => {
            match query.iter().find(|(k, _)| k == "ipAddress") {
                None => Target::BadIp(String::new()),
                Some((_, v)) => {
                    let days = query.iter().find(|(k, _)| k == "maxAgeInDays");
                    match days.map(|(_, d)| d.parse::<u32>()) {
                        Some(Ok(1..=365)) | None => parse(v),
                        Some(_) => Target::BadIp("maxAgeInDays".to_owned()),
                    }
                }
            }
        }
        (TiKind::VirusTotal, ["api", "v3", "ip_addresses", ip]) => parse(ip),
        (TiKind::Otx, ["api", "v1", "indicators", family, ip, "general"]) => {
            match (*family, ip.parse::<IpAddr>()) {
                ("IPv4", Ok(ip @ IpAddr::V4(_))) | ("IPv6", Ok(ip @ IpAddr::V6(_))) => {
                    Target::Ip(ip)
                }
                ("IPv4" | "IPv6", _) => Target::BadIp((*ip).to_owned()),
                _ => Target::NoRoute,
            }
        }
        _ => Target::NoRoute,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The provider's bodies for one request.
struct Bodies<'a> {
    kind: TiKind,
    /// The key the client presented, to repeat in error bodies.
    echo: Option<&'a str>,
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Bodies<'_> {
    fn with_echo(&self, message: &str) -> String {
        match self.echo {
            Some(key) => format!("{message} (key: {key})"),
            None => message.to_owned(),
        }
    }

    /// The provider's error body for `status`.
    fn error(&self, status: u16, retry_after: Option<RetryAfter>) -> Response {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let mut response = match self.kind {
            TiKind::AbuseIpDb => {
                let detail = match status {
                    401 => "Authentication failed. Your API key is either missing, incorrect, or revoked. Note: The APIv2 key differs from the APIv1 key.".to_owned(),
                    429 => format!("Daily rate limit of {ABUSEIPDB_DAILY_LIMIT} requests exceeded for this endpoint. See headers for additional details."),
                    404 => "The requested resource could not be found.".to_owned(),
                    s if s >= 500 => "The server encountered an unexpected condition. Please try again later.".to_owned(),
                    _ => reason.to_owned(),
                };
                json_response(
                    status,
                    &json!({"errors": [{"detail": self.with_echo(&detail), "status": status}]}),
                )
            }
            TiKind::VirusTotal => {
                let (code, message) = match status {
                    400 => ("InvalidArgumentError", "Invalid argument"),
                    401 => ("WrongCredentialsError", "Wrong API key"),
                    403 => (
                        "ForbiddenError",
                        "You are not allowed to perform the requested operation",
                    ),
                    404 => ("NotFoundError", "Resource not found."),
                    429 => ("QuotaExceededError", "Quota exceeded"),
                    504 => (
                        "DeadlineExceededError",
                        "The operation took too long to complete",
                    ),
                    s if s >= 500 => ("TransientError", "Transient error, please retry later"),
                    _ => ("BadRequestError", reason),
                };
                json_response(
                    status,
                    &json!({"error": {"code": code, "message": self.with_echo(message)}}),
                )
            }
            TiKind::Otx if status >= 500 => {
                // OTX's front end answers server errors with an nginx page, not JSON.
                let mut r = Response::new(Body::from(format!(
                    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n{}</body>\r\n</html>\r\n",
                    self.echo.map(|k| format!("<!-- {k} -->\r\n")).unwrap_or_default()
                )));
                *r.status_mut() =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                r.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html"),
                );
                r
            }
            TiKind::Otx => {
                let detail = match status {
                    401 | 403 => "Authentication credentials were not provided.".to_owned(),
                    429 => format!(
                        "Request was throttled. Expected available in {} seconds.",
                        retry_after.map(RetryAfter::secs).unwrap_or(60)
                    ),
                    404 => "Not found.".to_owned(),
                    _ => reason.to_owned(),
                };
                json_response(status, &json!({"detail": self.with_echo(&detail)}))
            }
        };
        if status == 429 {
            let h = response.headers_mut();
            if self.kind == TiKind::AbuseIpDb {
                let wait = retry_after.map(RetryAfter::secs).unwrap_or(3600);
                h.insert(
                    "x-ratelimit-limit",
                    HeaderValue::from(ABUSEIPDB_DAILY_LIMIT),
                );
                h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
                h.insert("x-ratelimit-reset", HeaderValue::from(epoch_secs() + wait));
            }
            if let Some(after) = retry_after {
                if let Ok(v) = HeaderValue::from_str(&after.header()) {
                    h.insert(axum::http::header::RETRY_AFTER, v);
                }
            }
        }
        response
    }

    /// A missing key, or a wrong one: what each provider answers.
    fn unauthorized(&self, wrong: bool) -> Response {
        match self.kind {
            TiKind::AbuseIpDb => self.error(401, None),
            TiKind::VirusTotal if !wrong => json_response(
                401,
                &json!({"error": {"code": "AuthenticationRequiredError", "message": self.with_echo("X-Apikey header is missing")}}),
            ),
            TiKind::VirusTotal => self.error(401, None),
            TiKind::Otx if wrong => {
                json_response(403, &json!({"detail": self.with_echo("Invalid API key.")}))
            }
            TiKind::Otx => self.error(403, None),
        }
    }

    /// An address (or parameter) the provider does not accept.
    fn bad_request(&self, what: &str) -> Response {
        match self.kind {
            TiKind::AbuseIpDb => json_response(
                422,
                &json!({"errors": [{
                    "detail": if what == "maxAgeInDays" {
                        "The max age in days must be between 1 and 365.".to_owned()
                    } else if what.is_empty() {
                        "The ip address field is required.".to_owned()
                    } else {
                        format!("The ip address must be a valid IPv4 or IPv6 address (e.g. 8.8.8.8 or 2001:4860:4860::8888). {what} given.")
                    },
                    "status": 422,
                    "source": {"parameter": if what == "maxAgeInDays" { "maxAgeInDays" } else { "ipAddress" }}
                }]}),
            ),
            TiKind::VirusTotal => json_response(
                400,
                &json!({"error": {"code": "InvalidArgumentError", "message": format!("\"{what}\" is not a valid IP address")}}),
            ),
            TiKind::Otx => json_response(400, &json!({"detail": format!("Invalid IP: {what}")})),
        }
    }

    async fn answer(&self, ip: IpAddr, behaviour: Behaviour) -> Response {
        match behaviour {
            Behaviour::Listed {
                score,
                reports,
                tags,
            } => json_response(200, &self.listed(ip, score, reports, &tags)),
            Behaviour::Unknown => match self.kind {
                TiKind::VirusTotal => self.error(404, None),
                _ => json_response(200, &self.listed(ip, 0, 0, &[])),
            },
            Behaviour::Harmless => json_response(200, &self.harmless(ip)),
            Behaviour::Json(v) => json_response(200, &v),
            Behaviour::Status(s) if s == 401 || s == 403 => self.unauthorized(true),
            Behaviour::Status(s) => self.error(s, None),
            Behaviour::RateLimited { retry_after } => self.error(429, retry_after),
            Behaviour::Slow(_, inner) => Box::pin(self.answer(ip, *inner)).await,
            Behaviour::Hang => std::future::pending().await,
            Behaviour::StallBody => {
                let start = futures::stream::iter([Ok::<_, std::io::Error>("{\"data\": {")]);
                let body =
                    Body::from_stream(futures::StreamExt::chain(start, futures::stream::pending()));
                let mut r = Response::new(body);
                r.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            Behaviour::Malformed(text) => {
                let mut r = Response::new(Body::from(text));
                r.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            Behaviour::Raw {
                status,
                headers,
                body,
            } => {
                let mut r = Response::new(Body::from(body));
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                for (name, value) in headers {
                    if let (Ok(n), Ok(v)) = (
                        axum::http::HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        r.headers_mut().append(n, v);
                    }
                }
                r
            }
            Behaviour::Sequence(items) => match items.into_iter().next() {
                Some(first) => Box::pin(self.answer(ip, first)).await,
                None => self.error(500, None),
            },
        }
    }

    fn listed(&self, ip: IpAddr, score: u8, reports: u32, tags: &[String]) -> Value {
        let version = if ip.is_ipv4() { 4 } else { 6 };
        match self.kind {
            TiKind::AbuseIpDb => {
                let sample: Vec<Value> = (0..reports.min(3))
                    .map(|i| {
                        json!({
                            "reportedAt": format!("2026-11-29T1{i}:04:11+00:00"),
                            "comment": "SSH brute force (sshd: Failed password for root)",
                            "categories": [18, 22],
                            "reporterId": 1000 + i,
                            "reporterCountryCode": "DE",
                            "reporterCountryName": "Germany"
                        })
                    })
                    .collect();
                json!({"data": {
                    "ipAddress": ip.to_string(),
                    "isPublic": true,
                    "ipVersion": version,
                    "isWhitelisted": false,
                    "abuseConfidenceScore": score,
                    "countryCode": if reports > 0 { Value::from("NL") } else { Value::Null },
                    "countryName": if reports > 0 { Value::from("Netherlands") } else { Value::Null },
                    "usageType": "Data Center/Web Hosting/Transit",
                    "isp": "Example Hosting B.V.",
                    "domain": "example.net",
                    "hostnames": [],
                    "isTor": false,
                    "totalReports": reports,
                    "numDistinctUsers": reports.div_ceil(2),
                    "lastReportedAt": if reports > 0 { Value::from("2026-11-29T18:04:11+00:00") } else { Value::Null },
                    "reports": sample
                }})
            }
            TiKind::VirusTotal => self.vt_object(
                ip,
                json!({"harmless": 58, "malicious": reports, "suspicious": 0, "undetected": 30, "timeout": 0}),
                -i64::from(score),
            ),
            TiKind::Otx => {
                let pulses: Vec<Value> = (0..reports.min(10))
                    .map(|i| {
                        json!({
                            "id": format!("65a1f0c2d3e4f5a6b7c8d9{i:02}"),
                            "name": format!("SSH brute-force sources {i}"),
                            "description": "",
                            "modified": "2026-11-28T09:12:44.123000",
                            "created": "2026-11-01T10:00:00.000000",
                            "tags": tags,
                            "references": [],
                            "public": 1,
                            "adversary": "",
                            "targeted_countries": [],
                            "malware_families": [],
                            "attack_ids": [],
                            "industries": [],
                            "TLP": "white",
                            "author": {"username": "example-analyst", "id": "1234", "is_subscribed": false, "is_following": false},
                            "indicator_count": 1500,
                            "indicator_type_counts": {"IPv4": 1500},
                            "is_subscribing": null,
                            "subscriber_count": 12
                        })
                    })
                    .collect();
                self.otx_general(ip, reports, pulses, json!([]))
            }
        }
    }

    fn harmless(&self, ip: IpAddr) -> Value {
        match self.kind {
            TiKind::AbuseIpDb => json!({"data": {
                "ipAddress": ip.to_string(),
                "isPublic": true,
                "ipVersion": if ip.is_ipv4() { 4 } else { 6 },
                "isWhitelisted": true,
                "abuseConfidenceScore": 0,
                "countryCode": "US",
                "usageType": "Content Delivery Network",
                "isp": "Example Resolver Inc.",
                "domain": "example.com",
                "hostnames": ["resolver.example.com"],
                "isTor": false,
                "totalReports": 4,
                "numDistinctUsers": 2,
                "lastReportedAt": "2026-10-02T08:00:00+00:00"
            }}),
            TiKind::VirusTotal => self.vt_object(
                ip,
                json!({"harmless": 62, "malicious": 0, "suspicious": 0, "undetected": 28, "timeout": 0}),
                12,
            ),
            TiKind::Otx => self.otx_general(
                ip,
                0,
                Vec::new(),
                json!([{"source": "whitelist", "message": "Whitelisted IP", "name": "Whitelisted IP"}]),
            ),
        }
    }

    fn vt_object(&self, ip: IpAddr, stats: Value, reputation: i64) -> Value {
        json!({"data": {
            "id": ip.to_string(),
            "type": "ip_address",
            "links": {"self": format!("https://www.virustotal.com/api/v3/ip_addresses/{ip}")},
            "attributes": {
                "as_owner": "Example Hosting B.V.",
                "asn": 64500,
                "continent": "EU",
                "country": "NL",
                "network": if ip.is_ipv4() { "203.0.113.0/24" } else { "2001:db8::/32" },
                "regional_internet_registry": "RIPE NCC",
                "last_analysis_date": 1_764_400_000,
                "last_analysis_stats": stats,
                "last_analysis_results": {
                    "ExampleAV": {"category": "harmless", "result": "clean", "method": "blacklist", "engine_name": "ExampleAV"}
                },
                "reputation": reputation,
                "tags": [],
                "total_votes": {"harmless": 0, "malicious": 0},
                "whois": "NetRange: documentation\n"
            }
        }})
    }

    fn otx_general(&self, ip: IpAddr, count: u32, pulses: Vec<Value>, validation: Value) -> Value {
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        json!({
            "whois": format!("http://whois.domaintools.com/{ip}"),
            "reputation": 0,
            "indicator": ip.to_string(),
            "type": family,
            "type_title": family,
            "base_indicator": {},
            "pulse_info": {
                "count": count,
                "pulses": pulses,
                "references": [],
                "related": {"alienvault": {"adversary": [], "malware_families": [], "industries": []},
                            "other": {"adversary": [], "malware_families": [], "industries": []}}
            },
            "false_positive": [],
            "validation": validation,
            "asn": "AS64500 example hosting b.v.",
            "city_data": true,
            "city": null,
            "region": null,
            "continent_code": "EU",
            "country_code3": "NLD",
            "country_code2": "NL",
            "subdivision": null,
            "latitude": 52.3824,
            "postal_code": null,
            "longitude": 4.8995,
            "accuracy_radius": 100,
            "country_code": "NL",
            "country_name": "Netherlands",
            "dma_code": 0,
            "charset": 0,
            "area_code": 0,
            "flag_url": "/assets/images/flags/nl.png",
            "flag_title": "Netherlands",
            "sections": ["general", "geo", "reputation", "url_list", "passive_dns", "malware", "nids_list", "http_scans"]
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%3Ab/%2"), "/a:b/%2");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn routes_follow_each_api() {
        let q = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        assert!(
            matches!(route(TiKind::AbuseIpDb, "/api/v2/check", &q(&[("ipAddress", "203.0.113.7"), ("maxAgeInDays", "90")])), Target::Ip(i) if i == ip)
        );
        assert!(matches!(
            route(
                TiKind::AbuseIpDb,
                "/api/v2/check",
                &q(&[("ipAddress", "203.0.113.7"), ("maxAgeInDays", "900")])
            ),
            Target::BadIp(_)
        ));
        assert!(matches!(
            route(TiKind::AbuseIpDb, "/api/v2/check", &[]),
            Target::BadIp(_)
        ));
        assert!(
            matches!(route(TiKind::VirusTotal, "/api/v3/ip_addresses/203.0.113.7", &[]), Target::Ip(i) if i == ip)
        );
        assert!(matches!(
            route(
                TiKind::Otx,
                "/api/v1/indicators/IPv6/203.0.113.7/general",
                &[]
            ),
            Target::BadIp(_)
        ));
        assert!(matches!(
            route(
                TiKind::Otx,
                "/api/v1/indicators/IPv6/2001:db8::7/general",
                &[]
            ),
            Target::Ip(IpAddr::V6(_))
        ));
        assert!(matches!(
            route(TiKind::Otx, "/api/v1/indicators/url/x/general", &[]),
            Target::NoRoute
        ));
    }

    /// One HTTP/1.1 GET over a plain socket (the testkit has no HTTP client): status line, headers
    /// and body as text.
    async fn get(
        fake: &FakeProvider,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(fake.addr).await.unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            fake.addr
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    #[tokio::test]
    async fn checks_the_key_then_follows_the_script_and_records_everything() {
        let fake = FakeProvider::start(TiKind::AbuseIpDb).await;
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        fake.set(
            ip,
            Behaviour::Sequence(vec![
                Behaviour::RateLimited {
                    retry_after: Some(RetryAfter::Seconds(7)),
                },
                Behaviour::listed(100, 2),
            ]),
        );
        let path = "/api/v2/check?ipAddress=203.0.113.7&maxAgeInDays=90&verbose";
        let (status, _, body) = get(&fake, path, &[]).await;
        assert_eq!(status, 401);
        assert!(body.contains("Authentication failed"), "{body}");
        let key = fake.key().to_owned();
        let (status, head, body) = get(&fake, path, &[("Key", &key)]).await;
        assert_eq!(status, 429);
        assert!(head.contains("retry-after: 7"), "{head}");
        assert!(head.contains("x-ratelimit-remaining: 0"), "{head}");
        assert!(body.contains("Daily rate limit"), "{body}");
        for _ in 0..2 {
            let (status, head, body) = get(&fake, path, &[("Key", &key)]).await;
            assert_eq!(status, 200);
            assert!(head.contains("x-ratelimit-limit: 1000"), "{head}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["data"]["abuseConfidenceScore"], json!(100));
        }
        let (status, _, body) = get(&fake, "/api/v2/check?ipAddress=nope", &[("Key", &key)]).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(fake.hits(ip), 4, "the unauthenticated request counts too");
        let requests = fake.requests();
        assert_eq!(requests.len(), 5);
        assert_eq!(requests[0].query("verbose"), Some(""));
        assert_eq!(requests[1].header("key"), Some(key.as_str()));
        assert_eq!(requests[4].ip, None);
    }

    #[tokio::test]
    async fn each_kind_answers_unknown_in_its_own_way() {
        let vt = FakeProvider::start(TiKind::VirusTotal).await;
        let (status, _, body) = get(
            &vt,
            "/api/v3/ip_addresses/2001:db8::1",
            &[("x-apikey", vt.key())],
        )
        .await;
        assert_eq!(status, 404);
        assert!(body.contains("NotFoundError"), "{body}");
        let (status, _, body) = get(&vt, "/api/v3/ip_addresses/2001:db8::1", &[]).await;
        assert_eq!(status, 401);
        assert!(body.contains("AuthenticationRequiredError"), "{body}");
        let otx = FakeProvider::start(TiKind::Otx).await;
        let (status, _, body) = get(
            &otx,
            "/api/v1/indicators/IPv6/2001:db8::1/general",
            &[("X-OTX-API-KEY", otx.key())],
        )
        .await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["pulse_info"]["count"], json!(0));
        assert_eq!(v["type"], json!("IPv6"));
        let (status, _, _) = get(
            &otx,
            "/api/v1/indicators/IPv4/2001:db8::1/general",
            &[("X-OTX-API-KEY", otx.key())],
        )
        .await;
        assert_eq!(status, 400);
    }

    #[test]
    fn sequences_advance_then_repeat_the_last() {
        let mut s = Script::new(Behaviour::Sequence(vec![
            Behaviour::Status(503),
            Behaviour::Unknown,
        ]));
        assert_eq!(s.next(), Behaviour::Status(503));
        assert_eq!(s.next(), Behaviour::Unknown);
        assert_eq!(s.next(), Behaviour::Unknown);
    }
}
