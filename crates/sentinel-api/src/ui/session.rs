//! Dashboard sessions: an API key (or JWT) presented once at `/ui/login` becomes a random session
//! token in an HttpOnly, SameSite=Strict cookie. The server keeps the session (its principal, its CSRF
//! token, its absolute and idle expiry); the cookie holds only the token, and only its SHA-256 is kept
//! here, so a memory dump does not hand out live cookies. Logout deletes the session; a session whose
//! key is revoked or expired dies with the key ([`crate::auth::Auth::still_valid`]).

use crate::auth::Principal;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The dashboard's settings (`api.ui`).
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// Whether `/ui/` is served at all.
    pub enabled: bool,
    /// A session's absolute lifetime.
    pub session_ttl: Duration,
    /// A session unused this long expires.
    pub idle_timeout: Duration,
    /// Sessions kept at once; past it the least recently used one of the key logging in is dropped
    /// (the least recently used of all when that key has none).
    pub max_sessions: usize,
    /// Mark the cookie `Secure` (and name it `__Host-…`): on when the API serves TLS, or by
    /// configuration behind a TLS-terminating proxy.
    pub secure_cookie: bool,
    /// Origins (`https://host[:port]`, lower case) the dashboard is also reached at, besides the
    /// `Host` a request names: behind a proxy that rewrites `Host`, the browser's `Origin` names the
    /// proxy's address, and a form post or the live stream from it is ours (`api.ui.public_origins`).
    pub public_origins: Vec<String>,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(3600),
            max_sessions: 10_000,
            secure_cookie: false,
            public_origins: Vec::new(),
        }
    }
}

impl UiSettings {
    /// The session cookie's name: `__Host-` prefixed when `Secure` (the browser then refuses it
    /// without `Secure`, `Path=/` and a domain).
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookie {
            "__Host-sentinel_session"
        } else {
            "sentinel_session"
        }
    }
}

/// One live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who logged in.
    pub principal: Principal,
    /// The token every form of this session must carry.
    pub csrf: String,
    /// When it was made.
    pub created: Instant,
    /// When it was last used.
    pub last_seen: Instant,
    /// When it ends whatever happens (the session's TTL, or earlier: a JWT's `exp`).
    pub expires: Instant,
}

/// The server-side session table, shared by every router built over one [`crate::AppState`].
#[derive(Debug)]
pub struct Sessions {
    settings: UiSettings,
    table: Mutex<HashMap<[u8; 32], Session>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(UiSettings::default())
    }
}

/// A fresh random token: 32 bytes, URL-safe base64 without padding.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// An empty table with these settings.
    pub fn new(settings: UiSettings) -> Self {
        Self {
            settings,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &UiSettings {
        &self.settings
    }

    /// Opens a session for `principal`, ending no later than `not_after` (a JWT's expiry); returns
    /// the cookie token and the session.
    pub fn open(&self, principal: Principal, not_after: Option<Instant>) -> (String, Session) {
        let now = Instant::now();
        let mut expires = now + self.settings.session_ttl;
        if let Some(t) = not_after {
            expires = expires.min(t);
        }
        let token = random_token();
        let s = Session {
            principal,
            csrf: random_token(),
            created: now,
            last_seen: now,
            expires,
        };
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|_, s| {
            s.expires > now && now.duration_since(s.last_seen) < self.settings.idle_timeout
        });
        while t.len() >= self.settings.max_sessions.max(1) {
            // The key logging in gives up its own least recently used session first: logging in
            // again and again with one (even a viewer's) key never pushes out other keys' sessions.
            let lru = |own: bool| {
                t.iter()
                    .filter(|(_, o)| !own || o.principal.key_id == s.principal.key_id)
                    .min_by_key(|(_, o)| o.last_seen)
                    .map(|(k, _)| *k)
            };
            let Some(oldest) = lru(true).or_else(|| lru(false)) else {
                break;
            };
            t.remove(&oldest);
        }
        t.insert(digest(&token), s.clone());
        (token, s)
    }

    /// The live session a cookie token names, touched (its idle clock restarts); an expired one is
    /// removed and `None` returned.
    pub fn get(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let d = digest(token);
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let live = match t.get(&d) {
            Some(s) => {
                s.expires > now && now.duration_since(s.last_seen) < self.settings.idle_timeout
            }
            None => return None,
        };
        if !live {
            t.remove(&d);
            return None;
        }
        let s = t.get_mut(&d)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends the session a token names; whether there was one.
    pub fn close(&self, token: &str) -> bool {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.remove(&digest(token)).is_some()
    }

    /// Ends every session of a key (its revocation).
    pub fn close_key(&self, key_id: &str) -> usize {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let before = t.len();
        t.retain(|_, s| s.principal.key_id != key_id);
        before - t.len()
    }

    /// Sessions held now (live or not yet swept).
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a login or a form post ended as it did, for `sentinel_ui_logins_total{result}` and
/// `sentinel_ui_forms_refused_total{reason}`.
#[derive(Debug, Default)]
pub struct UiCounters {
    logins_ok: std::sync::atomic::AtomicU64,
    logins_refused: std::sync::atomic::AtomicU64,
    logins_throttled: std::sync::atomic::AtomicU64,
    logins_forged: std::sync::atomic::AtomicU64,
    forms_origin: std::sync::atomic::AtomicU64,
    forms_token: std::sync::atomic::AtomicU64,
    forms_role: std::sync::atomic::AtomicU64,
    registered: std::sync::atomic::AtomicBool,
}

/// How a login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// A session was opened.
    Ok,
    /// The key or token was refused.
    Refused,
    /// Too many failures from the client's address: not even checked.
    Throttled,
    /// The form's own token or origin was wrong (a cross-site login attempt).
    Forged,
}

impl LoginResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::Refused => "refused",
            LoginResult::Throttled => "throttled",
            LoginResult::Forged => "forged",
        }
    }
}

/// Why a form post was refused (the `reason` label of `sentinel_ui_forms_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormRefusal {
    /// Posted from another origin (cross-site).
    Origin,
    /// The CSRF token was missing or stale.
    Token,
    /// A valid post by a session whose role may not do it (a viewer reverting a decision or adding
    /// a manual one).
    Role,
}

impl FormRefusal {
    /// Every reason, in label order.
    pub const ALL: [FormRefusal; 3] = [FormRefusal::Origin, FormRefusal::Token, FormRefusal::Role];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FormRefusal::Origin => "origin",
            FormRefusal::Token => "token",
            FormRefusal::Role => "role",
        }
    }
}

impl UiCounters {
    fn login_cell(&self, r: LoginResult) -> &std::sync::atomic::AtomicU64 {
        match r {
            LoginResult::Ok => &self.logins_ok,
            LoginResult::Refused => &self.logins_refused,
            LoginResult::Throttled => &self.logins_throttled,
            LoginResult::Forged => &self.logins_forged,
        }
    }

    /// Counts a login attempt.
    pub fn login(&self, r: LoginResult) {
        self.login_cell(r)
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Login attempts that ended with `r`.
    pub fn logins(&self, r: LoginResult) -> u64 {
        self.login_cell(r)
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn form_cell(&self, why: FormRefusal) -> &std::sync::atomic::AtomicU64 {
        match why {
            FormRefusal::Origin => &self.forms_origin,
            FormRefusal::Token => &self.forms_token,
            FormRefusal::Role => &self.forms_role,
        }
    }

    /// Counts a form post refused for `why`.
    pub fn form_refused(&self, why: FormRefusal) {
        self.form_cell(why)
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Form posts refused for `why`.
    pub fn forms_refused(&self, why: FormRefusal) -> u64 {
        self.form_cell(why)
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Registers the counters on `metrics` once (however many routers are built over them).
    pub fn register(
        self: &std::sync::Arc<Self>,
        metrics: &sentinel_pipeline::metrics::Metrics,
        sessions: &std::sync::Arc<Sessions>,
    ) {
        if self
            .registered
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let me = Collector(self.clone(), sessions.clone());
        metrics.register(|r| r.register_collector(Box::new(me)));
    }
}

#[derive(Debug)]
struct Collector(std::sync::Arc<UiCounters>, std::sync::Arc<Sessions>);

impl prometheus_client::collector::Collector for Collector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::MetricType;
        let mut family = encoder.encode_descriptor(
            "sentinel_ui_logins",
            "Dashboard login attempts, by result (ok, refused, throttled, forged).",
            None,
            MetricType::Counter,
        )?;
        for r in [
            LoginResult::Ok,
            LoginResult::Refused,
            LoginResult::Throttled,
            LoginResult::Forged,
        ] {
            ConstCounter::new(self.0.logins(r))
                .encode(family.encode_family(&[("result", r.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "sentinel_ui_forms_refused",
            "Dashboard form posts refused, by reason (origin: cross-site; token: missing or stale CSRF token; role: a viewer's post of an operator's action).",
            None,
            MetricType::Counter,
        )?;
        for why in FormRefusal::ALL {
            ConstCounter::new(self.0.forms_refused(why))
                .encode(family.encode_family(&[("reason", why.as_str())])?)?;
        }
        let c = ConstCounter::new(super::bad_requests());
        c.encode(encoder.encode_descriptor(
            "sentinel_ui_bad_requests",
            "Dashboard requests answered with the 400 page (a malformed filter, cursor, form or query).",
            None,
            c.metric_type(),
        )?)?;
        let g = prometheus_client::metrics::gauge::ConstGauge::new(self.1.len() as i64);
        g.encode(encoder.encode_descriptor(
            "sentinel_ui_sessions",
            "Dashboard sessions held (live or not yet swept).",
            None,
            g.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Consecutive failed logins from one address before it must wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait a failing address is given.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Addresses tracked at once by the login backoff.
const MAX_TRACKED: usize = 10_000;

/// A per-address backoff on failed logins (IPv6 per /64, what one host is usually given, as the API's
/// rate limit counts it; an IPv4-mapped address as its IPv4 address): after [`FREE_FAILURES`] consecutive failures an address
/// waits 1 s, then 2 s, 4 s, … up to [`MAX_BACKOFF`] before its next attempt is even checked; a
/// success clears it. On top of the per-address rate limit of the whole API (`api.rate_limit`), it
/// makes guessing at the form slow. The table is bounded: when full, the entry seen longest ago goes.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    table: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    /// How long `ip` must still wait before an attempt is checked (`None`: it may try now).
    pub fn wait(&self, ip: std::net::IpAddr) -> Option<Duration> {
        let ip = crate::ratelimit::ip_key(ip);
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (_, until) = t.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    /// Notes a failed attempt from `ip`.
    pub fn failed(&self, ip: std::net::IpAddr) {
        let ip = crate::ratelimit::ip_key(ip);
        let now = Instant::now();
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !t.contains_key(&ip) && t.len() >= MAX_TRACKED {
            // Forget addresses whose wait is over first, then the one that failed longest ago.
            t.retain(|_, (_, until)| *until > now);
            if t.len() >= MAX_TRACKED {
                if let Some(k) = t.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| *k) {
                    t.remove(&k);
                }
            }
        }
        let e = t.entry(ip).or_insert((0, now));
        if now.checked_duration_since(e.1).unwrap_or_default() > 3 * MAX_BACKOFF {
            // Quiet for long enough: the slate is clean again.
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
        if e.0 >= FREE_FAILURES {
            let shift = (e.0 - FREE_FAILURES).min(16);
            let wait = Duration::from_secs(1u64 << shift).min(MAX_BACKOFF);
            e.1 = now + wait;
        }
    }

    /// Clears `ip` after a success.
    pub fn succeeded(&self, ip: std::net::IpAddr) {
        let ip = crate::ratelimit::ip_key(ip);
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.remove(&ip);
    }
}
