//! `api.jwt`: JWT bearer tokens accepted besides API keys (off when null).
//!
//! Every token must carry `iss`, `aud`, `exp` and `nbf`; the issuer and audience named here are the
//! only ones accepted. HS256 tokens need `hs256_secret_file`, EdDSA tokens need `jwks_file` (re-read
//! when it changes, so keys rotate without a restart); at least one of the two is required. The role
//! comes from the claim `role_claim`. `leeway` bounds the clock skew allowed (at most 5 minutes: a
//! larger one would keep expired tokens alive). Files are read by the daemon at start, not here.

use crate::reader::{Node, Reader};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// The default `api.jwt.role_claim`.
pub const DEFAULT_ROLE_CLAIM: &str = "sentinel_role";
/// The default `api.jwt.leeway`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest `api.jwt.leeway`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// `api.jwt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JwtConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry.
    pub audience: String,
    /// A file holding the HS256 secret (at least 32 bytes; `None`: HS256 refused).
    pub hs256_secret_file: Option<PathBuf>,
    /// A JWKS file of Ed25519 keys, each with a `kid` (`None`: EdDSA refused).
    pub jwks_file: Option<PathBuf>,
    /// The claim naming the role (viewer, operator, admin).
    pub role_claim: String,
    /// Clock skew allowed for `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

const KEYS: &[&str] = &[
    "issuer",
    "audience",
    "hs256_secret_file",
    "jwks_file",
    "role_claim",
    "leeway",
];

/// Reads `api.jwt` (`Some(None)`: absent or null, tokens refused).
pub(crate) fn read(r: &mut Reader, api: Option<&Node<'_>>) -> Option<Option<JwtConfig>> {
    let api = api?;
    let Some(n) = r.optional(api, "jwt") else {
        return Some(None);
    };
    if !r.known_keys(&n, KEYS) {
        return None;
    }
    let nonempty = |r: &mut Reader, key: &str| -> Option<String> {
        let v = r.get(Some(&n), key)?;
        let s = r.string(&v)?;
        if s.trim().is_empty() || s.chars().any(char::is_control) {
            r.fail(&v.path, "must be a non-empty single-line string");
            return None;
        }
        Some(s.to_owned())
    };
    let issuer = nonempty(r, "issuer");
    let audience = nonempty(r, "audience");
    let hs256_secret_file = match r.optional(&n, "hs256_secret_file") {
        Some(v) => r.optional_path(&v),
        None => Some(None),
    };
    let jwks_file = match r.optional(&n, "jwks_file") {
        Some(v) => r.optional_path(&v),
        None => Some(None),
    };
    let role_claim = match r.optional(&n, "role_claim") {
        Some(v) => r.string(&v).and_then(|s| {
            if s.is_empty() || s.chars().any(char::is_control) {
                r.fail(&v.path, "must be a non-empty single-line string");
                None
            } else {
                Some(s.to_owned())
            }
        }),
        None => Some(DEFAULT_ROLE_CLAIM.to_owned()),
    };
    let leeway = match r.optional(&n, "leeway") {
        Some(v) => r.duration(&v).and_then(|d| {
            if d > MAX_LEEWAY {
                r.fail(
                    &v.path,
                    "at most 5m (a larger skew keeps expired tokens alive)",
                );
                None
            } else {
                Some(d)
            }
        }),
        None => Some(DEFAULT_LEEWAY),
    };
    let (hs, jwks) = (hs256_secret_file?, jwks_file?);
    if hs.is_none() && jwks.is_none() {
        r.fail(
            &n.path,
            "needs hs256_secret_file or jwks_file (or both); null turns JWT off",
        );
        return None;
    }
    Some(Some(JwtConfig {
        issuer: issuer?,
        audience: audience?,
        hs256_secret_file: hs,
        jwks_file: jwks,
        role_claim: role_claim?,
        leeway: leeway?,
    }))
}

#[cfg(test)]
mod render_tests {
    /// `config check` shows what `api.jwt` is (the built-in secret word `jwt` used to mask the whole
    /// section as `***`), and still masks what a user marks secret with `logging.redact_keys`.
    #[test]
    fn the_effective_configuration_shows_api_jwt() {
        let c = crate::load_str(
            "api: { jwt: { issuer: https://idp.example, audience: sentinel, hs256_secret_file: /etc/sentinel/jwt.secret, jwks_file: /etc/sentinel/jwks.json } }\nlogging: { redact_keys: [audience] }",
            None,
            &[],
        )
        .unwrap();
        let y = c.effective_yaml();
        assert!(y.contains("issuer: https://idp.example"), "{y}");
        assert!(
            y.contains("hs256_secret_file: /etc/sentinel/jwt.secret"),
            "{y}"
        );
        assert!(y.contains("jwks_file: /etc/sentinel/jwks.json"), "{y}");
        assert!(y.contains("role_claim: sentinel_role"), "{y}");
        assert!(y.contains("leeway: 30s"), "{y}");
        assert!(!y.contains("audience: sentinel"), "{y}");
        assert!(y.contains("audience: '***'"), "{y}");
        // Off: shown as null.
        let y = crate::load_str("{}", None, &[]).unwrap().effective_yaml();
        assert!(y.contains("jwt: null"), "{y}");
    }
}
