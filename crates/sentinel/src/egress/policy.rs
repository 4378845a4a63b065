//! What the egress proxy lets through: the allowed destinations (exact `host:port` pairs), the client
//! networks, and the address classes a destination must not resolve to unless that address literal is
//! itself allowed. Pure: no I/O, no resolution (that is [`super::resolve`]).

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A destination's host: a DNS name (lower case, no trailing dot) or an address literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name, compared exactly (case-insensitively: it is kept in lower case).
    Name(String),
    /// An address literal (an IPv4-mapped IPv6 address is kept as the IPv4 address).
    Ip(IpAddr),
}

impl Host {
    /// Parses a host name or an address literal (IPv6 without brackets).
    pub fn parse(text: &str) -> Result<Host, String> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Host::Ip(ip.to_canonical()));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!("{text:?} is neither a host name nor an address"));
        }
        // All-numeric dotted names (`127.1`, `0x7f.1`) are addresses to some resolvers: refused.
        if name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "{text:?} looks like an address but is not one (write it in full)"
            ));
        }
        Ok(Host::Name(name))
    }
}

/// A `host:port` a client may ask to be connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The host.
    pub host: Host,
    /// The TCP port (1–65535).
    pub port: u16,
}

impl FromStr for Destination {
    type Err = String;

    /// `host:port`, `a.b.c.d:port` or `[v6]:port`.
    fn from_str(text: &str) -> Result<Destination, String> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (v6, port) = rest
                .split_once("]:")
                .ok_or_else(|| format!("{text:?}: expected [IPv6]:PORT"))?;
            let ip = v6
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("{text:?}: {v6:?} is not an IPv6 address"))?;
            (Host::Ip(IpAddr::V6(ip).to_canonical()), port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| format!("{text:?}: expected HOST:PORT"))?;
            if host.contains(':') {
                return Err(format!("{text:?}: write an IPv6 address as [ADDRESS]:PORT"));
            }
            (
                Host::parse(host).map_err(|e| format!("{text:?}: {e}"))?,
                port,
            )
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(format!("{text:?}: the port must be 1-65535")),
        };
        Ok(Destination { host, port })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(n) => write!(f, "{n}:{}", self.port),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(ip) => write!(f, "{ip}:{}", self.port),
        }
    }
}

/// Whom the proxy serves and where it connects them.
#[derive(Debug, Clone)]
pub struct Policy {
    allow: Vec<Destination>,
    from: Vec<IpNet>,
}

impl Policy {
    /// Destinations `allow` (at least one), for clients in `from` (empty: any client).
    pub fn new(allow: Vec<Destination>, from: Vec<IpNet>) -> Result<Policy, String> {
        if allow.is_empty() {
            return Err("no destination is allowed".into());
        }
        Ok(Policy { allow, from })
    }

    /// The allowed destinations.
    pub fn allowed(&self) -> &[Destination] {
        &self.allow
    }

    /// The client networks (empty: any).
    pub fn clients(&self) -> &[IpNet] {
        &self.from
    }

    /// Whether a client at `ip` is served.
    pub fn client_allowed(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.from.is_empty() || self.from.iter().any(|n| n.contains(&ip))
    }

    /// Whether `d` is on the allow list (names exactly, case-insensitively; literals exactly).
    pub fn destination_allowed(&self, d: &Destination) -> bool {
        self.allow.contains(d)
    }

    /// Whether the proxy may connect to `ip`:`port` (what a name resolved to): any globally
    /// reachable address, and an internal one only when that literal is itself allowed with that port.
    pub fn address_permitted(&self, ip: IpAddr, port: u16) -> bool {
        let ip = ip.to_canonical();
        !is_internal(ip)
            || self
                .allow
                .iter()
                .any(|d| d.port == port && d.host == Host::Ip(ip))
    }
}

/// Whether `ip` is an address no name of the outside world should lead to: unspecified, loopback,
/// private (RFC 1918, unique local), shared (RFC 6598), link-local, documentation, benchmarking,
/// multicast, broadcast or reserved; IPv4 inside IPv4-mapped and NAT64 (`64:ff9b::/96`) addresses
/// is judged as IPv4.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_documentation()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return internal_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || s[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated) and the like
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Destination {
        s.parse().unwrap()
    }

    #[test]
    fn destinations_parse_and_show() {
        assert_eq!(
            d("API.AbuseIPDB.com.:443"),
            Destination {
                host: Host::Name("api.abuseipdb.com".into()),
                port: 443
            }
        );
        assert_eq!(d("127.0.0.1:8443").to_string(), "127.0.0.1:8443");
        assert_eq!(d("[2001:db8::1]:443").to_string(), "[2001:db8::1]:443");
        assert_eq!(d("[::ffff:192.0.2.1]:443").to_string(), "192.0.2.1:443");
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:65536",
            "host:+443",
            ":443",
            "2001:db8::1:443",
            "[2001:db8::1]443",
            "[nope]:443",
            "bad host:443",
            "-x.example:443",
            "a..b:443",
            "127.1:443",
            "0x7f.1:443",
            "host:443/path",
        ] {
            assert!(bad.parse::<Destination>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn names_match_exactly_and_case_insensitively() {
        let p = Policy::new(vec![d("api.example.com:443")], vec![]).unwrap();
        assert!(p.destination_allowed(&d("API.EXAMPLE.COM:443")));
        assert!(p.destination_allowed(&d("api.example.com.:443")));
        assert!(!p.destination_allowed(&d("api.example.com:80")));
        assert!(!p.destination_allowed(&d("x.api.example.com:443")));
        assert!(!p.destination_allowed(&d("example.com:443")));
        // An address the name resolves to is not the name.
        assert!(!p.destination_allowed(&d("192.0.2.10:443")));
        assert!(Policy::new(vec![], vec![]).is_err());
    }

    #[test]
    fn internal_addresses_need_their_literal_allowed() {
        let p = Policy::new(vec![d("localhost:8443"), d("127.0.0.1:8443")], vec![]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.address_permitted(ip("127.0.0.1"), 8443));
        assert!(p.address_permitted(ip("::ffff:127.0.0.1"), 8443));
        assert!(!p.address_permitted(ip("127.0.0.1"), 8444));
        assert!(!p.address_permitted(ip("::1"), 8443));
        assert!(!p.address_permitted(ip("10.1.2.3"), 8443));
        assert!(p.address_permitted(ip("8.8.8.8"), 8443));
        for internal in [
            "0.0.0.0",
            "127.0.0.53",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.2.7",
            "198.51.100.7",
            "203.0.113.7",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "2001:db8::7",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "ff02::1",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for outside in [
            "1.1.1.1",
            "104.16.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(!is_internal(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn clients_by_network() {
        let any = Policy::new(vec![d("a.example:443")], vec![]).unwrap();
        assert!(any.client_allowed("127.0.0.1".parse().unwrap()));
        let p = Policy::new(
            vec![d("a.example:443")],
            vec!["192.0.2.0/24".parse().unwrap()],
        )
        .unwrap();
        assert!(p.client_allowed("192.0.2.9".parse().unwrap()));
        assert!(p.client_allowed("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!p.client_allowed("127.0.0.1".parse().unwrap()));
        assert!(!p.client_allowed("198.51.100.1".parse().unwrap()));
    }
}
