//! Fail-closed API-key authentication.
//!
//! Keys are 256 random bits (`snl_` + base64url). Only a keyed hash (HMAC-SHA256 under a per-install
//! secret kept in the data directory) is stored; a request's key is hashed the same way and compared in
//! constant time. A fast keyed hash suits random keys: there is nothing to brute-force, and a slow
//! password hash on every request would cap throughput. A missing key and a wrong key get the same 401.
//!
//! Keys may expire (checked at each request) and be revoked (the registry keeps the revoked key, marked,
//! so it stops working the moment it is revoked and its refusal is counted as such). JWT bearer tokens
//! ([`crate::jwt`]) are told from keys by their shape. Every refusal has an internal reason, counted in
//! `sentinel_api_auth_failures_total{reason}` and logged (`evt=auth_refused`), but the client always
//! gets the one same 401: the reason would tell an attacker which keys exist or were revoked.

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

/// Why a credential was refused (internal: the client always gets the same 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No `Authorization: Bearer` nor `X-API-Key` header.
    Missing,
    /// Neither a key nor a token by its shape.
    Malformed,
    /// A key this install never made.
    UnknownKey,
    /// A key past its expiry.
    ExpiredKey,
    /// A revoked key.
    RevokedKey,
    /// A token, but no JWT issuer is configured.
    JwtDisabled,
    /// A token that does not parse.
    JwtMalformed,
    /// A token whose signature does not verify.
    JwtBadSignature,
    /// A token past `exp` (beyond the leeway).
    JwtExpired,
    /// A token before `nbf` (beyond the leeway).
    JwtNotYetValid,
    /// Wrong or missing `iss`, `aud`, `exp` or `nbf`.
    JwtClaims,
    /// A `kid` not in the JWKS file (or none given for EdDSA).
    JwtUnknownKid,
    /// An algorithm not accepted (or one with no key configured).
    JwtBadAlgorithm,
    /// No role claim naming a known role.
    JwtNoRole,
}

impl Refusal {
    /// Every reason, in declaration order.
    pub const ALL: [Refusal; 14] = [
        Refusal::Missing,
        Refusal::Malformed,
        Refusal::UnknownKey,
        Refusal::ExpiredKey,
        Refusal::RevokedKey,
        Refusal::JwtDisabled,
        Refusal::JwtMalformed,
        Refusal::JwtBadSignature,
        Refusal::JwtExpired,
        Refusal::JwtNotYetValid,
        Refusal::JwtClaims,
        Refusal::JwtUnknownKid,
        Refusal::JwtBadAlgorithm,
        Refusal::JwtNoRole,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::UnknownKey => "unknown_key",
            Refusal::ExpiredKey => "expired_key",
            Refusal::RevokedKey => "revoked_key",
            Refusal::JwtDisabled => "jwt_disabled",
            Refusal::JwtMalformed => "jwt_malformed",
            Refusal::JwtBadSignature => "jwt_bad_signature",
            Refusal::JwtExpired => "jwt_expired",
            Refusal::JwtNotYetValid => "jwt_not_yet_valid",
            Refusal::JwtClaims => "jwt_claims",
            Refusal::JwtUnknownKid => "jwt_unknown_kid",
            Refusal::JwtBadAlgorithm => "jwt_bad_algorithm",
            Refusal::JwtNoRole => "jwt_no_role",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// One registered key.
#[derive(Debug, Clone)]
struct Entry {
    principal: Principal,
    /// Milliseconds since the epoch after which the key no longer works.
    expires: Option<i64>,
    revoked: bool,
}

/// The key registry.
pub struct Auth {
    secret: [u8; 32],
    keys: RwLock<HashMap<[u8; 32], Entry>>,
    bypass: bool,
    jwt: Option<crate::jwt::Jwt>,
    checks: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
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
            jwt: None,
            checks: AtomicU64::new(0),
            refused: Default::default(),
            metrics_registered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The same registry also accepting JWT bearer tokens checked by `jwt`.
    pub fn with_jwt(mut self, jwt: crate::jwt::Jwt) -> Self {
        self.jwt = Some(jwt);
        self
    }

    /// The JWT checker, if tokens are accepted.
    pub fn jwt(&self) -> Option<&crate::jwt::Jwt> {
        self.jwt.as_ref()
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

    /// Registers a key that never expires by its stored hash. Hashes that are not 64 hex digits are
    /// ignored (and reported).
    pub fn insert(&self, hash_hex: &str, p: Principal) -> bool {
        self.insert_key(hash_hex, p, None, false)
    }

    /// Registers a key by its stored hash with its expiry; a `revoked` key is kept (so its use is
    /// counted as such) but never lets anyone in.
    pub fn insert_key(
        &self,
        hash_hex: &str,
        p: Principal,
        expires: Option<sentinel_core::Timestamp>,
        revoked: bool,
    ) -> bool {
        let mut h = [0u8; 32];
        if hex::decode_to_slice(hash_hex, &mut h).is_err() {
            return false;
        }
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(
                h,
                Entry {
                    principal: p,
                    expires: expires.map(|t| t.as_millis()),
                    revoked,
                },
            );
            return true;
        }
        false
    }

    /// Revokes the key with id `key_id` at once; `false` if none is registered.
    pub fn revoke(&self, key_id: &str) -> bool {
        let Ok(mut keys) = self.keys.write() else {
            return false;
        };
        let mut found = false;
        for e in keys.values_mut().filter(|e| e.principal.key_id == key_id) {
            e.revoked = true;
            found = true;
        }
        found
    }

    /// Whether the key behind `p` still lets its holder in now (registered, not revoked, not
    /// expired): a dashboard session checks it on every request, so it dies with its key. A JWT
    /// principal (no key behind it) is valid here; its session ends at the token's `exp`. With the
    /// insecure bypass every principal is valid.
    pub fn still_valid(&self, p: &Principal) -> bool {
        if self.bypass || p.key_id.starts_with("jwt/") {
            return true;
        }
        let Ok(keys) = self.keys.read() else {
            return false;
        };
        let now = sentinel_core::Timestamp::now().as_millis();
        keys.values().any(|e| {
            e.principal.key_id == p.key_id && !e.revoked && e.expires.is_none_or(|t| now < t)
        })
    }

    /// How many keys are registered and not revoked.
    pub fn len(&self) -> usize {
        self.keys
            .read()
            .map(|k| k.values().filter(|e| !e.revoked).count())
            .unwrap_or(0)
    }

    /// Whether no key is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The principal a presented key belongs to (if it is valid now).
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        self.identify(presented).ok()
    }

    /// The principal a presented key or token belongs to, or why it is refused (not counted).
    pub fn identify(&self, presented: &str) -> Result<Principal, Refusal> {
        if crate::jwt::looks_like_jwt(presented) {
            return match &self.jwt {
                Some(jwt) => jwt.verify(presented),
                None => Err(Refusal::JwtDisabled),
            };
        }
        if !presented.starts_with("snl_") {
            return Err(Refusal::Malformed);
        }
        let d = self.digest(presented);
        let keys = self.keys.read().map_err(|_| Refusal::UnknownKey)?;
        let (stored, e) = keys.get_key_value(&d).ok_or(Refusal::UnknownKey)?;
        if !bool::from(stored.ct_eq(&d)) {
            return Err(Refusal::UnknownKey);
        }
        if e.revoked {
            return Err(Refusal::RevokedKey);
        }
        if e.expires
            .is_some_and(|t| sentinel_core::Timestamp::now().as_millis() >= t)
        {
            return Err(Refusal::ExpiredKey);
        }
        Ok(e.principal.clone())
    }

    /// [`Auth::identify`], also giving when the credential stops working by itself (a JWT's `exp`;
    /// `None` for a key: its expiry and revocation are checked on every use instead).
    pub fn identify_until(
        &self,
        presented: &str,
    ) -> Result<(Principal, Option<std::time::SystemTime>), Refusal> {
        if crate::jwt::looks_like_jwt(presented) {
            return match &self.jwt {
                Some(jwt) => jwt.verify_until(presented).map(|(p, exp)| {
                    (
                        p,
                        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp)),
                    )
                }),
                None => Err(Refusal::JwtDisabled),
            };
        }
        self.identify(presented).map(|p| (p, None))
    }

    /// Counts and logs a refusal found outside [`Auth::check`] (the dashboard's login form), so
    /// `sentinel_api_auth_failures_total{reason}` sees every refused credential.
    pub fn count_refusal(&self, reason: Refusal) {
        self.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            evt = "auth_refused",
            reason = reason.as_str(),
            via = "ui_login"
        );
    }

    /// How many requests were refused for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason.index()].load(Ordering::Relaxed)
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

    /// Authenticates a request's headers (`Authorization: Bearer …` or `X-API-Key`); a refusal is
    /// counted by reason and logged, and is always the same [`ApiError::Unauthorized`].
    pub fn check(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        self.check_reason(headers).map_err(|reason| {
            self.refused[reason.index()].fetch_add(1, Ordering::Relaxed);
            tracing::info!(evt = "auth_refused", reason = reason.as_str());
            ApiError::Unauthorized
        })
    }

    /// [`Auth::check`] with the reason of a refusal (counted only by `check`).
    pub fn check_reason(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if self.bypass {
            return Ok(Principal {
                key_id: "-".into(),
                name: "insecure-no-auth".into(),
                role: Role::Admin,
            });
        }
        let presented = presented(headers).ok_or(Refusal::Missing)?;
        self.identify(presented)
    }
}

/// The key or token a request presents (`X-API-Key`, else `Authorization: Bearer …`), if any.
pub(crate) fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
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
        Err(e) => match stream_session(&state, &req) {
            Some(Ok((p, token))) => {
                // The stream checks the session again at each wake-up: a logout ends it.
                req.extensions_mut()
                    .insert(crate::stream::SessionToken(token));
                p
            }
            Some(Err(refused)) => {
                state.metrics.auth_failures.inc();
                return Err(refused);
            }
            None => {
                state.metrics.auth_failures.inc();
                return Err(e);
            }
        },
    };
    req.extensions_mut().insert(p);
    Ok(next.run(req).await)
}

/// The one route a browser reaches with its dashboard session instead of a key: the live stream
/// (`/v1/stream`, seen here without its `/v1` nest), since a browser cannot set headers on a
/// WebSocket. Only a request with no key or token at all and a live session cookie qualifies
/// (`None` otherwise: the usual 401); then it must come from our own origin
/// ([`crate::stream::cookie_origin_ok`]), or it is refused with a 403 (cross-site WebSocket hijacking).
fn stream_session(
    state: &AppState,
    req: &Request,
) -> Option<Result<(Principal, String), ApiError>> {
    let headers = req.headers();
    if req.uri().path() != "/stream"
        || headers.contains_key(axum::http::header::AUTHORIZATION)
        || headers.contains_key("x-api-key")
    {
        return None;
    }
    let viewer = crate::ui::session_of(state, headers)?;
    if !crate::stream::cookie_origin_ok(headers, &state.ui.sessions.settings().public_origins) {
        tracing::warn!(
            evt = "stream_cross_origin_refused",
            key_id = %viewer.principal.key_id,
            "a live stream with a session cookie from another origin"
        );
        return Some(Err(ApiError::Forbidden));
    }
    Some(Ok((viewer.principal, viewer.token)))
}

/// Middleware behind [`require`]`(Admin)`: notes every admin action (method, path, answer, who) in
/// the audit trail once it is answered, as an `operator` record; when it cannot be noted the failure is
/// logged and counted by the recorder (the action already happened; it is not undone).
pub async fn audit_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let who = req.extensions().get::<Principal>().cloned();
    let trace = req
        .extensions()
        .get::<sentinel_core::TraceId>()
        .cloned()
        .unwrap_or_default();
    // Admin routes live under `/v1`, which nesting strips from the URI seen here.
    let what = format!("{} /v1{}", req.method(), req.uri().path());
    let resp = next.run(req).await;
    let Some(who) = who else {
        return Ok(resp);
    };
    let summary = format!(
        "admin {what} -> {} (key {} {:?})",
        resp.status().as_u16(),
        who.key_id,
        who.name
    );
    tracing::info!(evt = "admin_action", trace = %trace, key_id = %who.key_id, summary = %summary);
    if let Some(rec) = &state.operator_audit {
        let _ = rec
            .note(
                sentinel_core::AuditKind::Operator,
                &who.key_id,
                &trace,
                summary,
                None,
            )
            .await;
    }
    Ok(resp)
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
        )?)?;
        let mut family = encoder.encode_descriptor(
            "sentinel_api_auth_failures",
            "Requests refused at authentication, by internal reason (the client sees one 401).",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for r in Refusal::ALL {
            let c = prometheus_client::metrics::counter::ConstCounter::new(self.0.refused(r));
            c.encode(family.encode_family(&[("reason", r.as_str())])?)?;
        }
        if let Some(jwt) = self.0.jwt() {
            let (ok, failed) = jwt.reloads();
            let mut family = encoder.encode_descriptor(
                "sentinel_api_jwks_reloads",
                "Times the JWKS file was read again after it changed, by result.",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (result, n) in [("ok", ok), ("failed", failed)] {
                let c = prometheus_client::metrics::counter::ConstCounter::new(n);
                c.encode(family.encode_family(&[("result", result)])?)?;
            }
        }
        Ok(())
    }
}
