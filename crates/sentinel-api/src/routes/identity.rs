//! `POST /v1/identity`: the daemon proves it is this install's daemon, without a key.
//!
//! Why: the CLI finds the daemon through `<data_dir>/api.addr` or `api.listen`, and after a crash (a
//! stale `api.addr`) or with the daemon down, whoever holds that port would receive the admin key
//! with the first request. Before sending a key over TCP the CLI sends a fresh random nonce; the
//! daemon answers `HMAC-SHA256(server.id, nonce ‖ "sentinel-identity")` keyed with the per-install
//! secret in `<data_dir>/server.id` (0600, readable by whoever may read `admin.key`). Only the daemon
//! that holds the secret can answer; the answer reveals nothing of the secret, and a recorded answer
//! is useless for another nonce. The route needs no key (it runs before anyone may present one) and
//! exists only when the daemon has an identity (`ApiSettings::server_id`).
//!
//! The proof is bound to the address the connection reached, as the daemon's kernel saw it (its
//! local address, [`crate::serve::LocalAddr`]): the route answers anyone, so without the binding a
//! program on another port could pass the challenge by relaying it to the daemon and its answer back,
//! and then receive the key. A relay's client reached the relay's address, not the daemon's, and the
//! CLI checks the proof for the address it connected to. (The flip side: a daemon reached through a
//! port forward or proxy cannot prove itself either; there `--url` with `--api-key` is the way.)

use crate::error::ApiError;
use crate::extract::{parse_json_value, read_limited, require_content_type, typed};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::Arc;

/// Appended to the nonce before it is signed, so the proof can never be mistaken for (or replayed
/// as) an HMAC made with the same secret for another purpose.
pub const IDENTITY_CONTEXT: &[u8] = b"sentinel-identity";
/// Shortest nonce accepted, in bytes (hex in the body: twice as many characters).
pub const MIN_NONCE_BYTES: usize = 16;
/// Longest nonce accepted, in bytes.
pub const MAX_NONCE_BYTES: usize = 64;
/// Largest body read for a challenge.
const MAX_BODY: usize = 1024;

/// The per-install identity secret (`<data_dir>/server.id`). Never shown: `Debug` prints `***`.
#[derive(Clone)]
pub struct ServerId(Arc<[u8; 32]>);

impl std::fmt::Debug for ServerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerId(***)")
    }
}

impl ServerId {
    /// The secret's bytes.
    pub fn new(secret: [u8; 32]) -> Self {
        Self(Arc::new(secret))
    }

    /// Parses the file's text (64 hex characters, surrounding white space ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(Self::new(bytes.try_into().ok()?))
    }

    /// The file's text for a new random secret.
    pub fn generate_text() -> String {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        format!("{}\n", hex::encode(secret))
    }

    fn mac(&self, nonce: &[u8], at: Option<SocketAddr>) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(nonce);
        mac.update(IDENTITY_CONTEXT);
        mac.update(b"\n");
        mac.update(bound_to(at).as_bytes());
        mac
    }

    /// The proof for `nonce` on a connection that reached `at` (`None`: not a TCP connection):
    /// `HMAC-SHA256(secret, nonce ‖ "sentinel-identity" ‖ "\n" ‖ at)`, hex, with `at` written as
    /// `ip:port` (an IPv4-mapped IPv6 address as IPv4) or `-`.
    pub fn proof(&self, nonce: &[u8], at: Option<SocketAddr>) -> String {
        hex::encode(self.mac(nonce, at).finalize().into_bytes())
    }

    /// Whether `proof` (hex) is the proof for `nonce` given on a connection to `at`, compared in
    /// constant time.
    pub fn verify(&self, nonce: &[u8], at: Option<SocketAddr>, proof: &str) -> bool {
        match hex::decode(proof.trim()) {
            Ok(p) => self.mac(nonce, at).verify_slice(&p).is_ok(),
            Err(_) => false,
        }
    }
}

/// The address a proof is bound to, in one spelling for both ends (the daemon listening on `[::]`
/// sees an IPv4 client's connection at an IPv4-mapped address; a scope id is not part of it).
fn bound_to(at: Option<SocketAddr>) -> String {
    match at {
        Some(a) => SocketAddr::new(a.ip().to_canonical(), a.port()).to_string(),
        None => "-".into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Challenge {
    nonce: String,
}

/// `POST /v1/identity {"nonce": "<hex>"}` → `{"proof": "<hex>"}`.
#[utoipa::path(post, path = "/v1/identity", tag = "system",
    request_body(content = super::openapi::IdentityChallenge, content_type = "application/json"),
    responses(
        (status = 200, description = "The proof: `HMAC-SHA256(server.id, nonce ‖ \"sentinel-identity\")` in hex. No key needed.", body = super::openapi::IdentityProof),
        (status = 404, description = "This daemon has no identity (`server.id`): the route does not exist.", body = super::openapi::Error),
    ))]
pub(crate) async fn challenge(
    State(state): State<AppState>,
    local: Option<Extension<crate::serve::LocalAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Some(id) = state.settings.server_id.as_ref() else {
        return Err(ApiError::NotFound);
    };
    require_content_type(&headers, &["application/json"], "application/json")?;
    let bytes = read_limited(&headers, body, MAX_BODY).await?;
    let c: Challenge = typed(parse_json_value(&bytes).map_err(ApiError::BadRequest)?)
        .map_err(ApiError::BadRequest)?;
    let nonce = hex::decode(&c.nonce)
        .ok()
        .filter(|n| (MIN_NONCE_BYTES..=MAX_NONCE_BYTES).contains(&n.len()))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`nonce`: {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES} random bytes in hex"
            ))
        })?;
    let at = local.map(|Extension(crate::serve::LocalAddr(a))| a);
    Ok(Json(json!({ "proof": id.proof(&nonce, at) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_for_its_nonce_and_secret_only() {
        let a = ServerId::parse(&ServerId::generate_text()).unwrap();
        let b = ServerId::parse(&ServerId::generate_text()).unwrap();
        let at: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let p = a.proof(b"0123456789abcdef", Some(at));
        assert!(a.verify(b"0123456789abcdef", Some(at), &p));
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:8000".parse().unwrap();
        assert!(a.verify(b"0123456789abcdef", Some(mapped), &p));
        assert!(!a.verify(
            b"0123456789abcdef",
            Some("127.0.0.1:8001".parse().unwrap()),
            &p
        ));
        assert!(!a.verify(b"0123456789abcdef", None, &p));
        assert!(!a.verify(b"0123456789abcdeF", Some(at), &p));
        assert!(!b.verify(b"0123456789abcdef", Some(at), &p));
        assert!(!a.verify(b"0123456789abcdef", Some(at), "zz"));
        assert_eq!(format!("{a:?}"), "ServerId(***)");
        assert!(ServerId::parse("abcd").is_none());
    }
}
