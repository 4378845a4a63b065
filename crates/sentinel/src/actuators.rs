//! Which real actuator serves each enforced kind, kept in one `match` so every kind is handled.
//! Kinds that only observe keep the record-only dry run, so nothing is required of the host for them.

use anyhow::Context;
use sentinel_config::ValidatedConfig;
use sentinel_core::ActionKind;
use sentinel_respond::actuators::docker::{DockerConfig, IsolateContainer};
use sentinel_respond::actuators::nft::{
    FilterHook, NftBlockIp, NftHoneypotRedirect, NftRateLimit, NftTable,
};
use sentinel_respond::actuators::quarantine::{QuarantineConfig, QuarantineFile};
use sentinel_respond::Responder;

fn nft_table(cfg: &ValidatedConfig) -> anyhow::Result<NftTable> {
    let hooks: Vec<FilterHook> = cfg
        .respond
        .nft_hooks
        .iter()
        .map(|h| {
            if h == "forward" {
                FilterHook::Forward
            } else {
                FilterHook::Input
            }
        })
        .collect();
    NftTable::new(&cfg.respond.nft_table)
        .and_then(|t| t.with_hooks(&hooks))
        .map_err(|e| anyhow::anyhow!("respond.nft_table: {e}"))
}

/// Installs real actuators for the enforced kinds.
pub async fn install(
    mut r: Responder,
    cfg: &ValidatedConfig,
    enforced: &[ActionKind],
) -> anyhow::Result<Responder> {
    for kind in enforced {
        r = match kind {
            ActionKind::BlockIp => r.with_actuator(Box::new(NftBlockIp::new(nft_table(cfg)?))),
            ActionKind::RateLimit => r.with_actuator(Box::new(NftRateLimit::new(nft_table(cfg)?))),
            ActionKind::RedirectToHoneypot => {
                r.with_actuator(Box::new(NftHoneypotRedirect::new(nft_table(cfg)?)))
            }
            ActionKind::IsolateContainer => {
                let dc = DockerConfig {
                    protect: cfg.respond.docker_protect.clone(),
                    quarantine_network: (!cfg.respond.docker_quarantine_network.is_empty())
                        .then(|| cfg.respond.docker_quarantine_network.clone()),
                    ..DockerConfig::default()
                };
                let a = IsolateContainer::connect(dc).await.map_err(|e| {
                    anyhow::anyhow!(
                        "isolate_container enforces but the Docker Engine is unreachable: {e}"
                    )
                })?;
                r.with_actuator(Box::new(a))
            }
            ActionKind::QuarantineFile => {
                let dir = if cfg.respond.quarantine_dir.is_empty() {
                    cfg.data_dir.join("quarantine")
                } else {
                    cfg.respond.quarantine_dir.clone().into()
                };
                let qc = QuarantineConfig {
                    dir,
                    roots: cfg.respond.quarantine_roots.clone(),
                };
                if let Err(problems) = qc.validate() {
                    anyhow::bail!("respond.quarantine: {}", problems.join("; "));
                }
                let q = QuarantineFile::new(qc)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("quarantine_file")?;
                r.with_actuator(Box::new(q))
            }
        };
    }
    Ok(r)
}
