//! The one actuator of each kind, kept in one `match` so every kind is handled. Every kind always has
//! its real actuator, built from the configuration (defaults included), so observe mode records the
//! actuator's own `plan()`. A kind that does not enforce gets it behind `PlanOnly`: planning needs no
//! privilege and changes nothing, applying is refused loudly. Only the enforcing kinds reach for the
//! backend at start-up (Docker version negotiation, the quarantine directory).

use anyhow::Context;
use sentinel_config::ValidatedConfig;
use sentinel_core::{ActionKind, Actuator};
use sentinel_respond::actuators::docker::{DockerConfig, IsolateContainer};
use sentinel_respond::actuators::nft::{
    FilterHook, NftBlockIp, NftHoneypotRedirect, NftRateLimit, NftTable,
};
use sentinel_respond::actuators::quarantine::{QuarantineConfig, QuarantineFile};
use sentinel_respond::{PlanOnly, Responder};

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

fn docker_config(cfg: &ValidatedConfig) -> DockerConfig {
    DockerConfig {
        protect: cfg.respond.docker_protect.clone(),
        quarantine_network: (!cfg.respond.docker_quarantine_network.is_empty())
            .then(|| cfg.respond.docker_quarantine_network.clone()),
        ..DockerConfig::default()
    }
}

fn quarantine_config(cfg: &ValidatedConfig) -> QuarantineConfig {
    let dir = if cfg.respond.quarantine_dir.is_empty() {
        // The default lives in the data directory, which is relative by default (`./data`): made
        // absolute against the working directory, as every other file in it is reached.
        let d = cfg.data_dir.join("quarantine");
        std::path::absolute(&d).unwrap_or(d)
    } else {
        cfg.respond.quarantine_dir.clone().into()
    };
    QuarantineConfig {
        dir,
        roots: cfg.respond.quarantine_roots.clone(),
    }
}

/// The real actuator of `kind`, ready to enforce (`enforce`) or only to plan.
async fn build(
    kind: ActionKind,
    cfg: &ValidatedConfig,
    enforce: bool,
) -> anyhow::Result<Box<dyn Actuator>> {
    let real: Box<dyn Actuator> = match kind {
        ActionKind::BlockIp => Box::new(NftBlockIp::new(nft_table(cfg)?)),
        ActionKind::RateLimit => Box::new(NftRateLimit::new(nft_table(cfg)?)),
        ActionKind::RedirectToHoneypot => Box::new(NftHoneypotRedirect::new(nft_table(cfg)?)),
        ActionKind::IsolateContainer if enforce => Box::new(
            IsolateContainer::connect(docker_config(cfg))
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "isolate_container enforces but the Docker Engine is unreachable: {e}"
                    )
                })?,
        ),
        ActionKind::IsolateContainer => Box::new(
            IsolateContainer::offline(docker_config(cfg))
                .map_err(|e| anyhow::anyhow!("isolate_container: {e}"))?,
        ),
        ActionKind::QuarantineFile if enforce => {
            let qc = quarantine_config(cfg);
            if let Err(problems) = qc.validate() {
                anyhow::bail!("respond.quarantine: {}", problems.join("; "));
            }
            Box::new(
                QuarantineFile::new(qc)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("quarantine_file")?,
            )
        }
        ActionKind::QuarantineFile => Box::new(QuarantineFile::planner(quarantine_config(cfg))),
    };
    Ok(if enforce {
        real
    } else {
        Box::new(PlanOnly::new(real))
    })
}

/// Installs the actuator of every kind: enforcing for the `enforced` kinds, plan-only for the rest.
pub async fn install(
    mut r: Responder,
    cfg: &ValidatedConfig,
    enforced: &[ActionKind],
) -> anyhow::Result<Responder> {
    for kind in ActionKind::ALL {
        r = r.with_actuator(build(kind, cfg, enforced.contains(&kind)).await?);
    }
    Ok(r)
}
