//! The one actuator of each kind, kept in one `match` so every kind is handled. Every kind always has
//! its real actuator, built from the configuration (defaults included), so observe mode records the
//! actuator's own `plan()`. A kind that does not enforce gets it behind `PlanOnly`: planning needs no
//! privilege and changes nothing, applying is refused loudly. Only the enforcing kinds reach for the
//! backend at start-up (Docker version negotiation, the quarantine directory).

use anyhow::Context;
use sentinel_config::ValidatedConfig;
use sentinel_core::{ActionKind, Actuator};
use sentinel_respond::actuators::docker::IsolateContainer;
use sentinel_respond::actuators::nft::{NftBlockIp, NftHoneypotRedirect, NftRateLimit, NftTable};
use sentinel_respond::actuators::quarantine::QuarantineFile;
use sentinel_respond::{PlanOnly, Responder};

fn nft_table(cfg: &ValidatedConfig) -> anyhow::Result<NftTable> {
    cfg.respond
        .nft
        .build()
        .map_err(|e| anyhow::anyhow!("respond.nft_table: {e}"))
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
            IsolateContainer::connect(cfg.respond.docker().build())
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "isolate_container enforces but the Docker Engine is unreachable: {e}"
                    )
                })?,
        ),
        ActionKind::IsolateContainer => Box::new(
            IsolateContainer::offline(cfg.respond.docker().build())
                .map_err(|e| anyhow::anyhow!("isolate_container: {e}"))?,
        ),
        ActionKind::QuarantineFile if enforce => {
            let qc = cfg.respond.quarantine().build(&cfg.data_dir);
            if let Err(problems) = qc.validate() {
                anyhow::bail!("respond.quarantine: {}", problems.join("; "));
            }
            Box::new(
                QuarantineFile::new(qc)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("quarantine_file")?,
            )
        }
        ActionKind::QuarantineFile => Box::new(QuarantineFile::planner(
            cfg.respond.quarantine().build(&cfg.data_dir),
        )),
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

/// What `config check` verifies of the actuators beyond the pure validation, without changing anything:
/// each kind's actuator builds from the configuration, and a quarantine set to enforce
/// (`respond.actuators.quarantine_file.mode: enforce`) has roots that exist (the daemon canonicalises
/// them when it starts). A quarantine that enforces only through `policy.mode` is not checked: `config
/// check` has always accepted `policy.mode: enforce` alone, though the daemon then needs
/// `quarantine_roots` (an open question, not settled here).
pub fn preflight(cfg: &ValidatedConfig) -> Vec<String> {
    let explicit = |k: ActionKind| {
        cfg.respond.actuator(k).and_then(|a| a.mode) == Some(sentinel_core::Mode::Enforce)
    };
    let mut errors = Vec::new();
    for kind in ActionKind::ALL {
        match kind {
            ActionKind::BlockIp | ActionKind::RateLimit | ActionKind::RedirectToHoneypot => {
                if let Err(e) = nft_table(cfg) {
                    errors.push(format!("{}: {e:#}", kind.as_str()));
                }
            }
            ActionKind::IsolateContainer => {
                if let Err(e) = IsolateContainer::offline(cfg.respond.docker().build()) {
                    errors.push(format!("isolate_container: {e}"));
                }
            }
            ActionKind::QuarantineFile if explicit(kind) => {
                let qc = cfg.respond.quarantine().build(&cfg.data_dir);
                if let Err(problems) = qc.validate() {
                    errors.push(format!("respond.quarantine: {}", problems.join("; ")));
                }
                errors.extend(crate::sources::dir_problem(
                    "respond.quarantine_dir",
                    &qc.dir,
                ));
                for root in &qc.roots {
                    if let Err(e) = std::fs::canonicalize(root) {
                        errors.push(format!(
                            "respond.quarantine_roots: `{}`: {e}",
                            root.display()
                        ));
                    }
                }
            }
            ActionKind::QuarantineFile => {}
        }
    }
    errors
}
