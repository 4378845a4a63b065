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
    /// Sessions kept at once; past it the least recently used one is dropped.
    pub max_sessions: usize,
    /// Mark the cookie `Secure` (and name it `__Host-…`): on when the API serves TLS, or by
    /// configuration behind a TLS-terminating proxy.
    pub secure_cookie: bool,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(3600),
            max_sessions: 10_000,
            secure_cookie: false,
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
            let Some(oldest) = t.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) else {
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
