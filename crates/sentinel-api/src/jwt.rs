//! JWT bearer tokens: HS256 under a shared secret, EdDSA (Ed25519) under keys from a JWKS file.
//!
//! A token must carry `exp`, `nbf`, `iss` and `aud`; the issuer and audience must be the configured
//! ones, and time is checked with a bounded leeway (clock skew between the issuer and this host). The
//! role comes from one claim (`sentinel_role` by default): `viewer`, `operator` or `admin`; a token
//! without a role that names one of these is refused, never given a default.
//!
//! EdDSA tokens name their key by `kid`. The JWKS file is looked at (one `stat`) on each such token
//! and read again when it changed (mtime, size or inode), so keys rotate without a restart: publish the
//! new key next to the old, switch the issuer, then drop the old key. A file that no longer parses keeps
//! the keys last read (logged `evt=jwks_reload_failed`, counted): a half-written file must not lock
//! everyone out. A `kid` not in the file is refused.

use crate::auth::{Principal, Refusal, Role};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The longest clock skew a configuration may allow.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// How tokens are checked.
#[derive(Clone)]
pub struct JwtSettings {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry (one of its audiences).
    pub audience: String,
    /// The HS256 secret (`None`: HS256 tokens are refused).
    pub hs256_secret: Option<Vec<u8>>,
    /// The JWKS file of EdDSA keys (`None`: EdDSA tokens are refused).
    pub jwks_file: Option<PathBuf>,
    /// The claim naming the role.
    pub role_claim: String,
    /// Allowed clock skew for `exp` and `nbf` (at most [`MAX_LEEWAY`]).
    pub leeway: Duration,
}

impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSettings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "***"))
            .field("jwks_file", &self.jwks_file)
            .field("role_claim", &self.role_claim)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// What identifies one version of the JWKS file.
type Stamp = (Option<SystemTime>, u64, u64);

struct Jwks {
    stamp: Option<Stamp>,
    keys: HashMap<String, DecodingKey>,
}

/// The token checker.
pub struct Jwt {
    settings: JwtSettings,
    hs256: Option<DecodingKey>,
    jwks: Mutex<Jwks>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn stamp(path: &std::path::Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.modified().ok(), m.len(), m.ino()))
}

/// Reads a JWKS file: the Ed25519 (OKP) keys that carry a `kid`. Other keys are skipped.
fn read_jwks(path: &std::path::Path) -> Result<HashMap<String, DecodingKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a JWKS: {e}", path.display()))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let (Some(kid), AlgorithmParameters::OctetKeyPair(_)) =
            (&jwk.common.key_id, &jwk.algorithm)
        else {
            continue;
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| format!("{}: key {kid:?}: {e}", path.display()))?;
        keys.insert(kid.clone(), key);
    }
    Ok(keys)
}

impl Jwt {
    /// A checker; reads the JWKS file now (a missing or broken file at start is an error).
    pub fn new(settings: JwtSettings) -> Result<Self, String> {
        if settings.leeway > MAX_LEEWAY {
            return Err(format!("api.jwt.leeway: at most {}s", MAX_LEEWAY.as_secs()));
        }
        let mut jwks = Jwks {
            stamp: None,
            keys: HashMap::new(),
        };
        if let Some(path) = &settings.jwks_file {
            jwks.stamp = Some(stamp(path).map_err(|e| format!("{}: {e}", path.display()))?);
            jwks.keys = read_jwks(path)?;
        }
        Ok(Self {
            hs256: settings
                .hs256_secret
                .as_deref()
                .map(DecodingKey::from_secret),
            settings,
            jwks: Mutex::new(jwks),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// Times the JWKS file was read again after a change, and times that failed.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed),
        )
    }

    /// The key named `kid`, after reading the JWKS file again if it changed.
    fn eddsa_key(&self, kid: &str) -> Option<DecodingKey> {
        let path = self.settings.jwks_file.as_ref()?;
        let mut jwks = self.jwks.lock().ok()?;
        let now = stamp(path).ok();
        if now.is_some() && now != jwks.stamp {
            match read_jwks(path) {
                Ok(keys) => {
                    self.reloads.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(evt = "jwks_reloaded", file = %path.display(), keys = keys.len());
                    jwks.keys = keys;
                    jwks.stamp = now;
                }
                Err(e) => {
                    // Keep the keys last read; try again when the file changes once more.
                    self.reload_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(evt = "jwks_reload_failed", error = %e);
                    jwks.stamp = now;
                }
            }
        }
        jwks.keys.get(kid).cloned()
    }

    /// Checks a token and names its principal, or says why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        self.verify_until(token).map(|(p, _)| p)
    }

    /// [`Jwt::verify`], also giving the token's `exp` (seconds since the epoch): a dashboard
    /// session opened with a token ends no later than the token.
    pub fn verify_until(&self, token: &str) -> Result<(Principal, u64), Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::JwtMalformed)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or(Refusal::JwtBadAlgorithm)?,
            Algorithm::EdDSA => {
                let kid = header.kid.as_deref().ok_or(Refusal::JwtUnknownKid)?;
                self.eddsa_key(kid).ok_or(Refusal::JwtUnknownKid)?
            }
            _ => return Err(Refusal::JwtBadAlgorithm),
        };
        let mut v = Validation::new(header.alg);
        v.leeway = self.settings.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_issuer(&[&self.settings.issuer]);
        v.set_audience(&[&self.settings.audience]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
                .map_err(|e| {
                    use jsonwebtoken::errors::ErrorKind as K;
                    match e.kind() {
                        K::InvalidSignature => Refusal::JwtBadSignature,
                        K::ExpiredSignature => Refusal::JwtExpired,
                        K::ImmatureSignature => Refusal::JwtNotYetValid,
                        K::InvalidIssuer | K::InvalidAudience | K::MissingRequiredClaim(_) => {
                            Refusal::JwtClaims
                        }
                        K::InvalidAlgorithm | K::InvalidAlgorithmName => Refusal::JwtBadAlgorithm,
                        _ => Refusal::JwtMalformed,
                    }
                })?;
        let claims = data.claims;
        // Required and validated above, so present; a non-integer `exp` fails validation first.
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)))
            .ok_or(Refusal::JwtClaims)?;
        let role = claims
            .get(&self.settings.role_claim)
            .and_then(|r| r.as_str())
            .and_then(|r| r.parse::<Role>().ok())
            .ok_or(Refusal::JwtNoRole)?;
        let sub = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .unwrap_or("-")
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect::<String>();
        Ok((
            Principal {
                // `jwt/`, not `jwt:`: the redactor reads `jwt:<value>` as a token and masked the
                // subject in the audit trail and the logs ("admin GET /v1/keys (key jwt:***").
                key_id: format!("jwt/{sub}"),
                name: sub,
                role,
            },
            exp,
        ))
    }
}

/// Whether a presented credential has the shape of a JWT (three base64url parts), not of a key.
pub fn looks_like_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The shortest HS256 secret accepted (as many bytes as the hash's output: shorter ones can be guessed).
pub const MIN_HS256_SECRET: usize = 32;

/// Reads an HS256 secret file: its bytes without a trailing newline, at least [`MIN_HS256_SECRET`].
pub fn read_hs256_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < MIN_HS256_SECRET {
        return Err(format!(
            "{}: an HS256 secret needs at least {MIN_HS256_SECRET} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}
