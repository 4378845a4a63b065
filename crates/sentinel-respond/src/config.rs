//! The actuators' own configuration values, already checked, and the `build` that turns each into what
//! the actuator runs with: the nftables table and its hooks ([`NftSettings`]), the Docker isolation
//! settings ([`DockerSettings`]), the quarantine's directory and roots ([`QuarantineSettings`]), and the
//! names of [`Band`] and [`FilterHook`] as written in the configuration. The configuration crate reads and
//! validates these and composes them; this module never reads configuration text and touches no
//! backend (building an actuator that needs one is the actuator's own `connect`/`new`).

use crate::actuators::docker::DockerConfig;
use crate::actuators::nft::{FilterHook, NftError, NftTable};
use crate::actuators::quarantine::QuarantineConfig;
use crate::Band;
use sentinel_core::params::NetworkName;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

impl Band {
    /// All bands, lowest first.
    pub const ALL: [Band; 3] = [Band::Low, Band::Medium, Band::High];
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Band {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Band::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown band `{s}` (low, medium, high)"))
    }
}

impl Serialize for Band {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FilterHook {
    /// Both hooks.
    pub const ALL: [FilterHook; 2] = [FilterHook::Input, FilterHook::Forward];
}

impl fmt::Display for FilterHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FilterHook {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FilterHook::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| format!("unknown hook `{s}` (input, forward)"))
    }
}

impl Serialize for FilterHook {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Sentinel's nftables table (`inet <name>`) and the hooks its blocking chains attach to, checked by the
/// same rules [`NftTable`] applies, so a value of this type always builds.
///
/// Serialises flat, as written: `nft_table` and `nft_hooks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSettings {
    name: String,
    hooks: Vec<FilterHook>,
}

impl NftSettings {
    /// Checks a table name alone (for an error at its own key).
    pub fn check_name(name: &str) -> Result<(), String> {
        NftTable::new(name).map(|_| ()).map_err(|e| match e {
            NftError::Config(m) => m,
            other => other.to_string(),
        })
    }

    /// The settings, when the name and the hooks are acceptable.
    pub fn new(name: &str, hooks: &[FilterHook]) -> Result<Self, String> {
        Self::check_name(name)?;
        if hooks.is_empty() {
            return Err("at least one hook is needed (input, forward)".into());
        }
        let mut hooks = hooks.to_vec();
        hooks.dedup();
        Ok(Self {
            name: name.to_owned(),
            hooks,
        })
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hooks, in order, without repeats next to each other.
    pub fn hooks(&self) -> &[FilterHook] {
        &self.hooks
    }

    /// A fresh handle on the table (each actuator gets its own, as each keeps its own `ensure` state).
    /// The name and hooks were checked by [`NftSettings::new`] with the same rules, so this fails only if
    /// those rules changed in between.
    pub fn build(&self) -> Result<NftTable, NftError> {
        NftTable::new(&self.name)?.with_hooks(&self.hooks)
    }
}

impl Serialize for NftSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("nft_table", &self.name)?;
        m.serialize_entry("nft_hooks", &self.hooks)?;
        m.end()
    }
}

/// How containers are isolated: a network to attach them to (`None`: fully disconnected) and the
/// containers never isolated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerSettings {
    /// The quarantine network.
    pub quarantine_network: Option<NetworkName>,
    /// Container names or ids never isolated.
    pub protect: Vec<String>,
}

impl DockerSettings {
    /// The isolation actuator's configuration (the Engine socket and self-protection as by default).
    pub fn build(&self) -> DockerConfig {
        DockerConfig {
            protect: self.protect.clone(),
            quarantine_network: self
                .quarantine_network
                .as_ref()
                .map(|n| n.as_str().to_owned()),
            ..DockerConfig::default()
        }
    }
}

/// Where quarantined files go (`None`: `<data_dir>/quarantine`) and the directories files may be taken
/// from (each a normalised absolute path other than `/`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuarantineSettings {
    /// The quarantine directory.
    pub dir: Option<PathBuf>,
    /// Files outside these directories are never quarantined.
    pub roots: Vec<PathBuf>,
}

impl QuarantineSettings {
    /// The quarantine actuator's configuration. The default directory lives in the data directory,
    /// which is relative by default (`./data`): it is made absolute against the working directory, as
    /// every other file in it is reached.
    pub fn build(&self, data_dir: &Path) -> QuarantineConfig {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => {
                let d = data_dir.join("quarantine");
                std::path::absolute(&d).unwrap_or(d)
            }
        };
        QuarantineConfig {
            dir,
            roots: self.roots.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_settings_refuse_what_the_table_refuses() {
        assert!(NftSettings::new("sentinel", &[FilterHook::Input]).is_ok());
        // 1-32 characters starting with a letter: what nftables and `NftTable::new` accept.
        for bad in ["9table", "", "a-b", &"x".repeat(33)] {
            assert!(
                NftSettings::new(bad, &[FilterHook::Input]).is_err(),
                "{bad}"
            );
        }
        assert!(NftSettings::new("sentinel", &[]).is_err());
        let s = NftSettings::new("t1", &[FilterHook::Forward, FilterHook::Forward]).unwrap();
        assert_eq!(s.hooks(), [FilterHook::Forward]);
        assert_eq!(s.build().unwrap().name(), "t1");
    }

    #[test]
    fn band_and_hook_names_round_trip() {
        for b in Band::ALL {
            assert_eq!(b.to_string().parse::<Band>(), Ok(b));
        }
        for h in FilterHook::ALL {
            assert_eq!(h.to_string().parse::<FilterHook>(), Ok(h));
        }
        assert_eq!(
            "output".parse::<FilterHook>().unwrap_err(),
            "unknown hook `output` (input, forward)"
        );
    }
}
