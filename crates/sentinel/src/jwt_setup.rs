//! `api.jwt` → the API's JWT checker: reads the HS256 secret file and the JWKS file at start (a
//! missing or broken one stops the start with its path named, rather than refusing every token later).

use anyhow::Context;
use sentinel_api::jwt::{read_hs256_secret, Jwt, JwtSettings};
use sentinel_config::JwtConfig;

/// The checker for `cfg`.
pub(crate) fn jwt(cfg: &JwtConfig) -> anyhow::Result<Jwt> {
    let hs256_secret = cfg
        .hs256_secret_file
        .as_deref()
        .map(read_hs256_secret)
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("api.jwt.hs256_secret_file")?;
    let jwt = Jwt::new(JwtSettings {
        issuer: cfg.issuer.clone(),
        audience: cfg.audience.clone(),
        hs256_secret,
        jwks_file: cfg.jwks_file.clone(),
        role_claim: cfg.role_claim.clone(),
        leeway: cfg.leeway,
    })
    .map_err(anyhow::Error::msg)
    .context("api.jwt")?;
    tracing::info!(
        evt = "jwt_enabled",
        issuer = %cfg.issuer,
        audience = %cfg.audience,
        hs256 = cfg.hs256_secret_file.is_some(),
        jwks = ?cfg.jwks_file,
        leeway_s = cfg.leeway.as_secs(),
    );
    Ok(jwt)
}

/// What `sentinel config check` reports for `api.jwt`: the daemon refuses to start when the HS256
/// secret file or the JWKS file does not load, so the check loads them the same way (`None`: fine
/// or off). The file's path is named, never its content (so the message needs no redaction, which
/// would mask it whole: the key's name holds the word `secret`).
pub fn jwt_problem(cfg: &sentinel_config::ValidatedConfig) -> Option<String> {
    let j = cfg.api.jwt.as_ref()?;
    let e = jwt(j).err()?;
    // `api.jwt.hs256_secret_file` then the path and what is wrong, like every other config error.
    let mut chain = e.chain().map(ToString::to_string);
    let key = chain.next().unwrap_or_default();
    let why: Vec<String> = chain.collect();
    Some(format!("`{key}`: {}", why.join(": ")))
}
