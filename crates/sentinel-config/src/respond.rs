//! `respond`: the actuators' settings, each actuator's own mode and cap, and TTL escalation.

use crate::reader::{Node, Reader};
use sentinel_core::params::{NetworkName, QuarantinePath};
use sentinel_core::{ActionKind, Mode};
use sentinel_respond::actuators::nft::FilterHook;
use sentinel_respond::config::{DockerSettings, NftSettings, QuarantineSettings};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `respond.actuators.<kind>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActuatorConfig {
    /// `observe` or `enforce`; `None` follows `policy.mode`.
    pub mode: Option<Mode>,
    /// Live actions of this kind allowed at once (blast radius).
    pub max_live: usize,
}

/// `respond`: how actions are carried out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RespondConfig {
    /// `nft_table` (family inet, owned entirely by Sentinel) and `nft_hooks`, the hooks the block chains
    /// attach to; a prerouting chain also catches traffic DNAT'd to Docker-published ports.
    #[serde(flatten)]
    pub nft: NftSettings,
    /// Where quarantined files go (`None`, written `null`: `<data_dir>/quarantine`).
    pub quarantine_dir: Option<PathBuf>,
    /// Files outside these directories are never quarantined.
    pub quarantine_roots: Vec<PathBuf>,
    /// A network isolated containers are attached to (`None`, written `null`: fully disconnected).
    pub docker_quarantine_network: Option<NetworkName>,
    /// Containers (names or ids) never isolated.
    pub docker_protect: Vec<String>,
    /// TTL multiplier per earlier action on the same subject within `escalation_window` (1: off).
    pub escalation_factor: u32,
    /// How far back earlier actions count.
    #[serde(with = "humantime_serde")]
    pub escalation_window: Duration,
    /// The longest TTL escalation may reach.
    #[serde(with = "humantime_serde")]
    pub escalation_max_ttl: Duration,
    /// Per actuator: mode and cap.
    pub actuators: BTreeMap<String, ActuatorConfig>,
}

impl RespondConfig {
    /// The settings of one kind's actuator.
    pub fn actuator(&self, kind: ActionKind) -> Option<&ActuatorConfig> {
        self.actuators.get(kind.as_str())
    }

    /// The container isolation actuator's settings.
    pub fn docker(&self) -> DockerSettings {
        DockerSettings {
            quarantine_network: self.docker_quarantine_network.clone(),
            protect: self.docker_protect.clone(),
        }
    }

    /// The file quarantine actuator's settings.
    pub fn quarantine(&self) -> QuarantineSettings {
        QuarantineSettings {
            dir: self.quarantine_dir.clone(),
            roots: self.quarantine_roots.clone(),
        }
    }
}

pub(crate) fn respond(r: &mut Reader, s: Option<&Node<'_>>) -> Option<RespondConfig> {
    let nft_table = r.get(s, "nft_table").and_then(|n| {
        let t = r.string(&n)?;
        match NftSettings::check_name(t) {
            Ok(()) => Some((t.to_owned(), n.path)),
            Err(e) => {
                r.fail(&n.path, e);
                None
            }
        }
    });
    let nft_hooks = r.get(s, "nft_hooks").and_then(|n| {
        let hooks = r.each(&n, |r, h| r.named::<FilterHook>(h))?;
        if hooks.is_empty() {
            r.fail(&n.path, "needs at least one hook (input, forward)");
            return None;
        }
        Some(hooks)
    });
    let nft = match (nft_table, nft_hooks) {
        (Some((name, path)), Some(hooks)) => match NftSettings::new(&name, &hooks) {
            Ok(n) => Some(n),
            Err(e) => {
                r.fail(&path, e);
                None
            }
        },
        _ => None,
    };
    let quarantine_dir = r.get(s, "quarantine_dir").and_then(|n| r.optional_path(&n));
    let quarantine_roots = r.get(s, "quarantine_roots").and_then(|n| {
        r.each(&n, |r, p| {
            let v = r.string(p)?;
            if v == "/" || v.parse::<QuarantinePath>().is_err() {
                r.fail(
                    &p.path,
                    "must be a normalised absolute directory other than `/` (no `.`, `..`, `//` or trailing `/`)",
                );
                return None;
            }
            Some(PathBuf::from(v))
        })
    });
    let docker_quarantine_network =
        r.get(s, "docker_quarantine_network")
            .and_then(|n| match r.optional_string(&n)? {
                None => Some(None),
                Some(v) => match v.parse::<NetworkName>() {
                    Ok(name) => Some(Some(name)),
                    Err(e) => {
                        r.fail(&n.path, e);
                        None
                    }
                },
            });
    let docker_protect = r
        .get(s, "docker_protect")
        .and_then(|n| r.each(&n, |r, p| r.string(p).map(str::to_owned)));
    let escalation_factor = r
        .get(s, "escalation_factor")
        .and_then(|n| r.int(&n, 1, 100));
    let escalation_window = r.get(s, "escalation_window").and_then(|n| r.duration(&n));
    let escalation_max_ttl = r.get(s, "escalation_max_ttl").and_then(|n| r.duration(&n));
    let acts = r.get(s, "actuators");
    let mut actuators = BTreeMap::new();
    let mut ok = true;
    for kind in ActionKind::ALL {
        let a = r.get(acts.as_ref(), kind.as_str());
        let mode = r
            .get(a.as_ref(), "mode")
            .and_then(|n| match r.optional_string(&n)? {
                None => Some(None),
                Some("observe") => Some(Some(Mode::Observe)),
                Some("enforce") => Some(Some(Mode::Enforce)),
                Some(other) => {
                    r.fail(
                        &n.path,
                        format!(
                            "unknown mode `{other}` (observe, enforce, or null for policy.mode)"
                        ),
                    );
                    None
                }
            });
        let max_live = r
            .get(a.as_ref(), "max_live")
            .and_then(|n| r.int(&n, 1, 10_000_000));
        match (mode, max_live) {
            (Some(mode), Some(max_live)) => {
                actuators.insert(kind.as_str().to_owned(), ActuatorConfig { mode, max_live });
            }
            _ => ok = false,
        }
    }
    Some(RespondConfig {
        nft: nft?,
        quarantine_dir: quarantine_dir?,
        quarantine_roots: quarantine_roots?,
        docker_quarantine_network: docker_quarantine_network?,
        docker_protect: docker_protect?,
        escalation_factor: escalation_factor?,
        escalation_window: escalation_window?,
        escalation_max_ttl: escalation_max_ttl?,
        actuators: ok.then_some(actuators)?,
    })
}
