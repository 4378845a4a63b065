//! The allowlist: addresses no action may ever touch. Loopback is always on it.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Networks that are never acted on.
#[derive(Debug, Clone)]
pub struct Allowlist {
    nets: Vec<IpNet>,
}

impl Allowlist {
    /// Loopback plus `nets`.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut all: Vec<IpNet> = vec![
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
            IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
        ];
        all.extend(nets);
        Self { nets: all }
    }

    /// Adds a network (for example an address Sentinel itself is reached on).
    pub fn add(&mut self, net: IpNet) {
        self.nets.push(net);
    }

    /// The network that covers `ip`, if any.
    pub fn covering(&self, ip: IpAddr) -> Option<&IpNet> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.nets.iter().find(|n| n.contains(&ip))
    }

    /// The configured networks, loopback included.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_configured_nets() {
        let a = Allowlist::new(["198.51.100.0/24".parse().unwrap()]);
        assert!(a.covering("127.0.0.5".parse().unwrap()).is_some());
        assert!(a.covering("::1".parse().unwrap()).is_some());
        assert!(a.covering("::ffff:127.0.0.1".parse().unwrap()).is_some());
        assert!(a.covering("198.51.100.200".parse().unwrap()).is_some());
        assert!(a.covering("203.0.113.7".parse().unwrap()).is_none());
    }
}
