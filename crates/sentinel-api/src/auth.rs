//! Fail-closed API-key authentication.
//!
//! Keys are 256 random bits (`snl_` + base64url). Only a keyed hash (HMAC-SHA256 under a per-install
//! secret kept in the data directory) is stored; a request's key is hashed the same way and compared in
//! constant time. A fast keyed hash suits random keys: there is nothing to brute-force, and a slow
//! password hash on every request would cap throughput. A missing key and a wrong key get the same 401.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use subtle::ConstantTimeEq;

/// What a key may do. Each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read alerts, actions, events.
    Viewer,
    /// Also post telemetry and make decisions.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}` (viewer, operator, admin)")),
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id.
    pub key_id: String,
    /// The key's name.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// Errors loading the hashing secret.
#[derive(Debug, thiserror::Error)]
#[error("auth secret {path}: {source}")]
pub struct SecretError {
    path: String,
    source: std::io::Error,
}

/// The key registry.
pub struct Auth {
    secret: [u8; 32],
    keys: RwLock<HashMap<[u8; 32], Principal>>,
    bypass: bool,
    checks: AtomicU64,
    metrics_registered: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("bypass", &self.bypass)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Auth {
    /// A registry hashing under `secret`; `bypass` lets every request in as admin (insecure).
    pub fn new(secret: [u8; 32], bypass: bool) -> Self {
        Self {
            secret,
            keys: RwLock::new(HashMap::new()),
            bypass,
            checks: AtomicU64::new(0),
            metrics_registered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the insecure bypass is on.
    pub fn bypass(&self) -> bool {
        self.bypass
    }

    /// A new random key (256 bits).
    pub fn generate_key() -> String {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        format!(
            "snl_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        )
    }

    fn digest(&self, key: &str) -> [u8; 32] {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return [0u8; 32],
        };
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The stored form of a key (hex of its keyed hash).
    pub fn hash(&self, key: &str) -> String {
        hex::encode(self.digest(key))
    }

    /// Registers a key by its stored hash. Hashes that are not 64 hex digits are ignored (and reported).
    pub fn insert(&self, hash_hex: &str, p: Principal) -> bool {
        let mut h = [0u8; 32];
        if hex::decode_to_slice(hash_hex, &mut h).is_err() {
            return false;
        }
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(h, p);
            return true;
        }
        false
    }

    /// How many keys are registered.
    pub fn len(&self) -> usize {
        self.keys.read().map(|k| k.len()).unwrap_or(0)
    }

    /// Whether no key is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The principal a presented key belongs to.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let d = self.digest(presented);
        let keys = self.keys.read().ok()?;
        let (stored, p) = keys.get_key_value(&d)?;
        bool::from(stored.ct_eq(&d)).then(|| p.clone())
    }

    /// How many times [`Auth::check`] ran (one per authenticated request; shown at `/metrics`).
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Registers `sentinel_auth_checks_total` (read from [`Auth::checks`] at each scrape) once, however
    /// many routers are built over this `Auth`.
    pub fn register_metrics(
        self: &std::sync::Arc<Self>,
        metrics: &sentinel_pipeline::metrics::Metrics,
    ) {
        if self.metrics_registered.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = AuthChecks(self.clone());
        metrics.register(|r| r.register_collector(Box::new(me)));
    }

    /// Authenticates a request's headers (`Authorization: Bearer …` or `X-API-Key`).
    pub fn check(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if self.bypass {
            return Ok(Principal {
                key_id: "-".into(),
                name: "insecure-no-auth".into(),
                role: Role::Admin,
            });
        }
        let presented = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .or_else(|| {
                headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .map(str::trim)
            })
            .ok_or(ApiError::Unauthorized)?;
        self.authenticate(presented).ok_or(ApiError::Unauthorized)
    }
}

/// Reads the hashing secret from `path`, creating it (mode 0600) on first use.
pub fn load_or_create_secret(path: &Path) -> Result<[u8; 32], SecretError> {
    let err = |source| SecretError {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut s = [0u8; 32];
            s.copy_from_slice(&bytes);
            Ok(s)
        }
        Ok(_) => Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "expected exactly 32 bytes",
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut s = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut s);
            write_private(path, &s).map_err(err)?;
            Ok(s)
        }
        Err(e) => Err(err(e)),
    }
}

/// Writes a file readable only by its owner (0600), creating it; fails if it exists.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Middleware: authenticates the request once and hands its [`Principal`] on (every role may read).
/// Routes that need more add [`require`] after it, which checks the role without authenticating again.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let p = match state.auth.check(req.headers()) {
        Ok(p) => p,
        Err(e) => {
            state.metrics.auth_failures.inc();
            return Err(e);
        }
    };
    req.extensions_mut().insert(p);
    Ok(next.run(req).await)
}

/// Middleware behind [`authenticate`]: lets the request through only if its principal has at least the
/// `min` role. A request that was never authenticated is refused (fail closed).
pub async fn require(
    State(min): State<Role>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match req.extensions().get::<Principal>() {
        Some(p) if p.role >= min => Ok(next.run(req).await),
        Some(_) => Err(ApiError::Forbidden),
        None => Err(ApiError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_wrong_keys_fail() {
        let auth = Auth::new([7u8; 32], false);
        let key = Auth::generate_key();
        assert!(key.len() >= 4 + 43, "256 bits of base64: {key}");
        let p = Principal {
            key_id: "k1".into(),
            name: "admin".into(),
            role: Role::Admin,
        };
        assert!(auth.insert(&auth.hash(&key), p.clone()));
        assert_eq!(auth.authenticate(&key), Some(p));
        assert_eq!(auth.authenticate("snl_wrong"), None);
        let other = Auth::new([8u8; 32], false);
        assert_ne!(other.hash(&key), auth.hash(&key), "the hash is keyed");
        assert_ne!(Auth::generate_key(), key);
    }

    #[test]
    fn headers_are_read_both_ways() {
        let auth = Auth::new([1u8; 32], false);
        let key = Auth::generate_key();
        auth.insert(
            &auth.hash(&key),
            Principal {
                key_id: "a".into(),
                name: "n".into(),
                role: Role::Viewer,
            },
        );
        let mut h = HeaderMap::new();
        assert!(auth.check(&h).is_err());
        h.insert("authorization", format!("Bearer {key}").parse().unwrap());
        assert!(auth.check(&h).is_ok());
        let mut h = HeaderMap::new();
        h.insert("x-api-key", key.parse().unwrap());
        assert!(auth.check(&h).is_ok());
    }

    #[test]
    fn secret_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("auth.secret");
        let a = load_or_create_secret(&p).unwrap();
        let b = load_or_create_secret(&p).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

/// `sentinel_auth_checks_total`, read from the [`Auth`] at each scrape.
#[derive(Debug)]
struct AuthChecks(std::sync::Arc<Auth>);

impl prometheus_client::collector::Collector for AuthChecks {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let c = prometheus_client::metrics::counter::ConstCounter::new(self.0.checks());
        c.encode(encoder.encode_descriptor(
            "sentinel_auth_checks",
            "API keys checked (one per authenticated request).",
            None,
            c.metric_type(),
        )?)
    }
}
