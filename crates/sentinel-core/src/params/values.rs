//! The value types action parameters are parsed into: address ranges, ports, Docker names, file
//! paths, honeypot addresses and rule tags. Each `FromStr` refuses with a reason that never quotes the
//! input; each renders itself only from its parsed form.

use super::type_name;
use ipnet::IpNet;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// The narrowest IPv4 prefix length a range may have (a /8 at most).
pub const MIN_PREFIX_V4: u8 = 8;
/// The narrowest IPv6 prefix length a range may have (a /16 at most).
pub const MIN_PREFIX_V6: u8 = 16;
/// Most port entries one redirect may list.
pub const MAX_PORTS: usize = 64;
/// Longest container or network name accepted.
pub const MAX_NAME_LEN: usize = 128;
/// The longest TTL any action may have, whatever `policy.max_ttl` says: 1000 days (nftables refuses a
/// set element timeout of 10^8 s or more).
pub const MAX_TTL_SECS: u64 = 1000 * 86_400;
/// Longest file path accepted.
pub const MAX_PATH_LEN: usize = 4096;

/// A range of addresses to block: no whitespace, at most a /8 (IPv4) or /16 (IPv6), host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(IpNet);

impl Cidr {
    /// The range.
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// Whether it holds `ip`.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(ip)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be an address range like 203.0.113.0/24, with no spaces".into());
        }
        let net: IpNet = s.parse().map_err(|_| {
            "not an address range (e.g. 203.0.113.0/24 or 2001:db8::/48)".to_string()
        })?;
        let min = if net.addr().is_ipv4() {
            MIN_PREFIX_V4
        } else {
            MIN_PREFIX_V6
        };
        if let IpNet::V6(v6) = net {
            if v6.prefix_len() >= 96 && v6.network().to_ipv4_mapped().is_some() {
                return Err("an IPv4-mapped IPv6 range; give the IPv4 range instead".into());
            }
        }
        if net.prefix_len() < min {
            return Err(format!(
                "range /{} is too wide (at most /{min} for IPv{})",
                net.prefix_len(),
                if net.addr().is_ipv4() { 4 } else { 6 }
            ));
        }
        Ok(Cidr(net.trunc()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One port or an inclusive range of ports, each 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// One port.
    One(NonZeroU16),
    /// `lo-hi`, with `lo < hi`.
    Range(NonZeroU16, NonZeroU16),
}

impl PortSpec {
    fn parse(v: &Value) -> Result<PortSpec, String> {
        const WANT: &str = "ports must be numbers 1-65535 or ranges like \"8000-8010\"";
        let port = |n: u64| {
            u16::try_from(n)
                .ok()
                .and_then(NonZeroU16::new)
                .ok_or_else(|| WANT.to_string())
        };
        match v {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| WANT.to_string())
                .and_then(port)
                .map(PortSpec::One),
            Value::String(s) if s.len() <= 11 => {
                let (lo, hi) = s.split_once('-').ok_or_else(|| WANT.to_string())?;
                let num = |t: &str| {
                    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(WANT.to_string());
                    }
                    t.parse::<u64>()
                        .map_err(|_| WANT.to_string())
                        .and_then(port)
                };
                let (lo, hi) = (num(lo)?, num(hi)?);
                if lo >= hi {
                    return Err(format!("port range {lo}-{hi} must go from low to high"));
                }
                Ok(PortSpec::Range(lo, hi))
            }
            _ => Err(WANT.into()),
        }
    }

    fn to_json(self) -> Value {
        match self {
            PortSpec::One(p) => Value::from(p.get()),
            PortSpec::Range(lo, hi) => Value::from(format!("{lo}-{hi}")),
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::One(p) => write!(f, "{p}"),
            PortSpec::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

/// A non-empty list of at most [`MAX_PORTS`] ports or port ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortList(Vec<PortSpec>);

impl PortList {
    /// The entries, in the order given.
    pub fn entries(&self) -> &[PortSpec] {
        &self.0
    }

    pub(crate) fn parse(v: &Value) -> Result<PortList, String> {
        let Value::Array(items) = v else {
            return Err(format!("must be a list of ports, not {}", type_name(v)));
        };
        if items.is_empty() || items.len() > MAX_PORTS {
            return Err(format!("a redirect needs 1 to {MAX_PORTS} ports"));
        }
        let list: Vec<PortSpec> = items
            .iter()
            .map(PortSpec::parse)
            .collect::<Result<_, _>>()?;
        // nftables merges repeated and overlapping ports silently, so the rule it holds would not be
        // the one the dry run showed: refuse them instead.
        let bounds = |p: &PortSpec| match *p {
            PortSpec::One(n) => (n.get(), n.get()),
            PortSpec::Range(lo, hi) => (lo.get(), hi.get()),
        };
        let mut spans: Vec<(u16, u16)> = list.iter().map(bounds).collect();
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[1].0 <= w[0].1) {
            return Err("ports must not repeat or overlap".into());
        }
        Ok(PortList(list))
    }
}

impl Serialize for PortList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Value::Array(self.0.iter().map(|p| p.to_json()).collect()).serialize(s)
    }
}

/// Docker's grammar for container and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (a hex id fits it
/// too), with no `..`, at most [`MAX_NAME_LEN`] characters. Such a name is a safe URL path segment.
fn docker_name(s: &str) -> Result<(), String> {
    let mut bytes = s.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !first_ok || !rest_ok || s.len() > MAX_NAME_LEN || s.contains("..") {
        return Err(format!(
            "must be a Docker name or id: a letter or digit, then letters, digits, `_`, `.` or `-` \
             (no `..`, at most {MAX_NAME_LEN} characters)"
        ));
    }
    Ok(())
}

/// A container, by name or id, in Docker's grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerName(String);

impl ContainerName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        docker_name(s).map(|()| ContainerName(s.to_owned()))
    }
}

impl fmt::Display for ContainerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Docker network name, in Docker's grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkName(String);

impl NetworkName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NetworkName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        docker_name(s).map(|()| NetworkName(s.to_owned()))
    }
}

impl fmt::Display for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for NetworkName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A file to quarantine: absolute, UTF-8, normalised (no `.` or `..` components, no empty ones, no
/// trailing `/`), no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuarantinePath(PathBuf);

impl QuarantinePath {
    /// The path.
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// Whether it lies inside one of `roots` (compared component by component, lexically; the actuator
    /// resolves links on top of this).
    pub fn inside_any(&self, roots: &[PathBuf]) -> bool {
        roots.iter().any(|r| self.0.starts_with(r) && self.0 != *r)
    }
}

impl FromStr for QuarantinePath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() > MAX_PATH_LEN || s.chars().any(char::is_control) {
            return Err(format!(
                "must be a path of at most {MAX_PATH_LEN} printable characters"
            ));
        }
        if !s.starts_with('/') {
            return Err("must be an absolute path".into());
        }
        let normal = s == "/"
            || (!s.ends_with('/')
                && !s.contains("//")
                && Path::new(s)
                    .components()
                    .skip(1)
                    .all(|c| matches!(c, Component::Normal(_)))
                && !s.split('/').any(|part| part == "." || part == ".."));
        if !normal {
            return Err(
                "must be a normalised absolute path to a file (no `.`, `..`, `//` or trailing `/`)"
                    .into(),
            );
        }
        Ok(QuarantinePath(PathBuf::from(s)))
    }
}

impl fmt::Display for QuarantinePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

/// Where a honeypot listens: an address and a port above 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Honeypot(SocketAddr);

impl Honeypot {
    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.0
    }
}

impl FromStr for Honeypot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let want = "must be an address and port like 192.0.2.30:2222 or [2001:db8::30]:2222";
        if s.len() > 64 {
            return Err(want.into());
        }
        let a: SocketAddr = s.parse().map_err(|_| want.to_string())?;
        if a.port() == 0 {
            return Err("the port must be 1-65535".into());
        }
        if let SocketAddr::V6(v6) = a {
            // nftables cannot write `[fe80::1%2]:22`; a zone or flow label would make enforce fail
            // where the dry run succeeded.
            if v6.scope_id() != 0 || v6.flowinfo() != 0 {
                return Err(
                    "an IPv6 zone id (`%…`) is not accepted; give a routable address".into(),
                );
            }
            if v6.ip().to_ipv4_mapped().is_some() {
                return Err("an IPv4-mapped IPv6 address; give the IPv4 address instead".into());
            }
        }
        let ip = a.ip();
        let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_unspecified() || ip.is_multicast() || broadcast {
            return Err("must be a unicast address a connection can be redirected to".into());
        }
        Ok(Honeypot(a))
    }
}

impl fmt::Display for Honeypot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Honeypot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A tag naming the nftables rule an action adds: 1–64 letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleTag(String);

impl RuleTag {
    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RuleTag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(RuleTag(s.to_owned()))
        } else {
            Err("must be 1-64 letters, digits, `-` or `_`".into())
        }
    }
}

impl Serialize for RuleTag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
