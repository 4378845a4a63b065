//! The container-isolation revert token, and the pure pieces around it.
//!
//! What a container's network attachments were before isolation (aliases, static addresses, links), how to
//! turn one back into a connect request, and how to tell whether a container is protected. No engine
//! calls here: `docker` does those.

use bollard::models::{EndpointIpamConfig, EndpointSettings};
use serde::{Deserialize, Serialize};

/// One network a container was attached to before isolation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// Network name.
    pub network: String,
    /// Network id, when the engine reported it.
    #[serde(default)]
    pub network_id: Option<String>,
    /// Network-scoped aliases as configured (the engine's automatic short-id alias excluded).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Legacy links on this network (`container:alias`).
    #[serde(default)]
    pub links: Vec<String>,
    /// Statically configured IPv4 address (`IPAMConfig.IPv4Address`), if any.
    #[serde(default)]
    pub ipv4_static: Option<String>,
    /// Statically configured IPv6 address (`IPAMConfig.IPv6Address`), if any.
    #[serde(default)]
    pub ipv6_static: Option<String>,
    /// Statically configured link-local addresses.
    #[serde(default)]
    pub link_local_ips: Vec<String>,
    /// The IPv4 address it had (`IPAddress`), static or not; for the record.
    #[serde(default)]
    pub ipv4_address: Option<String>,
    /// The IPv6 address it had (`GlobalIPv6Address`); for the record.
    #[serde(default)]
    pub ipv6_address: Option<String>,
}

/// Everything `revert` needs to undo an isolation; the [`sentinel_core::Applied`] token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationToken {
    /// Full container id.
    pub container_id: String,
    /// Container name, without the leading `/`.
    pub container_name: String,
    /// The networks it was cut off from, in the order they were disconnected.
    pub networks: Vec<NetworkAttachment>,
    /// The quarantine network it was connected to, if any.
    #[serde(default)]
    pub quarantine_network: Option<String>,
    /// True when rebuilt by `observe` from the engine alone (the original networks are unknown); the
    /// ledger's token is the one to revert with.
    #[serde(default)]
    pub partial: bool,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|v| !v.is_empty()).cloned()
}

/// Networks whose endpoints take no aliases, links or static addresses.
pub(crate) fn is_default_network(name: &str) -> bool {
    matches!(name, "bridge" | "host" | "none")
}

impl NetworkAttachment {
    /// Records one attachment from a container inspect.
    pub(crate) fn from_endpoint(network: &str, container_id: &str, ep: &EndpointSettings) -> Self {
        let short = container_id.get(..12).unwrap_or(container_id);
        let ipam = ep.ipam_config.as_ref();
        Self {
            network: network.to_string(),
            network_id: non_empty(&ep.network_id),
            aliases: ep
                .aliases
                .iter()
                .flatten()
                .filter(|a| a.as_str() != short && a.as_str() != container_id)
                .cloned()
                .collect(),
            links: ep.links.clone().unwrap_or_default(),
            ipv4_static: ipam.and_then(|c| non_empty(&c.ipv4_address)),
            ipv6_static: ipam.and_then(|c| non_empty(&c.ipv6_address)),
            link_local_ips: ipam
                .and_then(|c| c.link_local_ips.clone())
                .unwrap_or_default(),
            ipv4_address: non_empty(&ep.ip_address),
            ipv6_address: non_empty(&ep.global_ipv6_address),
        }
    }

    /// The endpoint config to reconnect with; `with_ip` false drops the static addresses (used when the
    /// address is taken or the network no longer has a user-configured subnet).
    pub(crate) fn endpoint(&self, with_ip: bool) -> EndpointSettings {
        if is_default_network(&self.network) {
            return EndpointSettings::default();
        }
        let has_static = self.ipv4_static.is_some()
            || self.ipv6_static.is_some()
            || !self.link_local_ips.is_empty();
        EndpointSettings {
            aliases: (!self.aliases.is_empty()).then(|| self.aliases.clone()),
            links: (!self.links.is_empty()).then(|| self.links.clone()),
            ipam_config: (with_ip && has_static).then(|| EndpointIpamConfig {
                ipv4_address: self.ipv4_static.clone(),
                ipv6_address: self.ipv6_static.clone(),
                link_local_ips: (!self.link_local_ips.is_empty())
                    .then(|| self.link_local_ips.clone()),
            }),
            ..Default::default()
        }
    }

    /// Whether reconnecting asks for a static address.
    pub(crate) fn has_static_ip(&self) -> bool {
        !is_default_network(&self.network)
            && (self.ipv4_static.is_some() || self.ipv6_static.is_some())
    }
}

/// Whether `protect` (names, with or without `/`, or id prefixes of at least 12 characters) covers the
/// container `id` / `name`.
pub(crate) fn is_protected(protect: &[String], id: &str, name: &str) -> Option<String> {
    let name = name.trim_start_matches('/');
    protect
        .iter()
        .find(|p| {
            let p = p.trim_start_matches('/');
            p == name || (p.len() >= 12 && id.starts_with(p))
        })
        .cloned()
}

/// Finds a 64-hex-digit container id in cgroup or mountinfo text.
fn find_container_id(text: &str) -> Option<String> {
    for line in text.lines() {
        for part in line.split(['/', ' ', '-', '.', ':']) {
            if part.len() == 64 && part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(part.to_ascii_lowercase());
            }
        }
    }
    None
}

/// Sentinel's own container id when it runs in a Docker container: from `/proc/self/cgroup` (cgroup v1)
/// or from the engine-managed `/etc/hostname` bind mount in `/proc/self/mountinfo` (cgroup v2).
pub fn own_container_id() -> Option<String> {
    if let Some(id) = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| find_container_id(&t))
    {
        return Some(id);
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let line = mountinfo
        .lines()
        .find(|l| l.contains("/containers/") && l.contains(" /etc/hostname "))?;
    find_container_id(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ids_in_cgroup_v1_and_v2_text() {
        let id = "a".repeat(64);
        let v1 = format!("12:memory:/docker/{id}\n0::/");
        assert_eq!(find_container_id(&v1).as_deref(), Some(id.as_str()));
        let v2 = format!(
            "612 590 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw"
        );
        assert_eq!(find_container_id(&v2).as_deref(), Some(id.as_str()));
        assert_eq!(find_container_id("0::/\n4:memory:/process_api/5f0e"), None);
    }

    #[test]
    fn protect_matches_names_and_long_id_prefixes() {
        let id = format!("0123456789ab{}", "c".repeat(52));
        let p = vec!["/sentinel".to_string(), "0123456789ab".to_string()];
        assert!(is_protected(&p, &id, "/other").is_some());
        assert!(is_protected(&p, "ffff", "sentinel").is_some());
        assert!(is_protected(&["0123".to_string()], &id, "x").is_none());
    }
}
