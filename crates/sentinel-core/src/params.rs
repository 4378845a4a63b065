//! Typed action parameters: every value an action carries is parsed into a type here, before the
//! allowlist, the ledger or any actuator sees it.
//!
//! Each kind has its own closed set of parameters ([`ActionParams`]); an unknown key is an error, and
//! every value is checked against its type's rules (CIDR prefix bounds per family, ports 1–65535,
//! Docker's name grammar, rates above zero, a socket address for the honeypot, absolute normalised
//! paths). Errors name the field (`params.cidr: …`) and never echo the raw input, which may be long or
//! hostile; at most a short, already validated part is quoted. The JSON shape is the one configs and
//! stored records have always used (`{"cidr": "203.0.113.0/24"}`, `{"rate_per_sec": 10}`). This module
//! only parses and formats: it does no I/O.

use crate::action::ActionKind;
use crate::alert::Subject;
use ipnet::IpNet;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU16, NonZeroU32};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The narrowest IPv4 prefix length a range may have (a /8 at most).
pub const MIN_PREFIX_V4: u8 = 8;
/// The narrowest IPv6 prefix length a range may have (a /16 at most).
pub const MIN_PREFIX_V6: u8 = 16;
/// Most port entries one redirect may list.
pub const MAX_PORTS: usize = 64;
/// Longest container or network name accepted.
pub const MAX_NAME_LEN: usize = 128;
/// Longest file path accepted.
pub const MAX_PATH_LEN: usize = 4096;

/// Which part of an action a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecField {
    /// The action's subject (address, container, file).
    Subject,
    /// How long it lasts.
    Ttl,
    /// The parameters as a whole.
    Params,
    /// One parameter.
    Param(&'static str),
}

impl fmt::Display for SpecField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecField::Subject => f.write_str("subject"),
            SpecField::Ttl => f.write_str("ttl"),
            SpecField::Params => f.write_str("params"),
            SpecField::Param(p) => write!(f, "params.{p}"),
        }
    }
}

/// An action that is not acceptable, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// Where the problem is.
    pub field: SpecField,
    /// What is wrong; never the raw input.
    pub reason: String,
}

impl SpecError {
    fn new(field: SpecField, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::new(SpecField::Param(name), reason)
    }

    /// The same problem, reported under another field name (`container`, `file`, …).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A short, safe rendering of a JSON value's type, for errors that must not echo input.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

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

    fn parse(v: &Value) -> Result<PortList, String> {
        let Value::Array(items) = v else {
            return Err(format!("must be a list of ports, not {}", type_name(v)));
        };
        if items.is_empty() || items.len() > MAX_PORTS {
            return Err(format!("a redirect needs 1 to {MAX_PORTS} ports"));
        }
        items
            .iter()
            .map(PortSpec::parse)
            .collect::<Result<_, _>>()
            .map(PortList)
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

/// `block_ip`: the subject's address, or a range containing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct BlockParams {
    /// Block this whole range instead of the single address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr: Option<Cidr>,
}

/// `rate_limit`: packets per second (default 10, burst 5), or bytes per second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct RateParams {
    /// Packets per second above which traffic is dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<NonZeroU32>,
    /// Packets allowed over the rate in a burst.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<NonZeroU32>,
    /// Bytes per second above which traffic is dropped (instead of packets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_bytes_per_sec: Option<NonZeroU32>,
    /// Bytes allowed over the rate in a burst.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_bytes: Option<NonZeroU32>,
    /// The tag of the rule (generated from the action when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_id: Option<RuleTag>,
}

/// The packet rate a rate limit uses when none is given.
pub const DEFAULT_RATE_PER_SEC: u32 = 10;
/// The packet burst a rate limit uses when none is given.
pub const DEFAULT_BURST: u32 = 5;

/// `redirect_to_honeypot`: where to, and which destination ports (default 22).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct RedirectParams {
    /// The honeypot (required to apply; same family as the attacker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub honeypot: Option<Honeypot>,
    /// Destination ports to redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortList>,
    /// The tag of the rule (generated from the action when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_id: Option<RuleTag>,
}

/// `isolate_container`: an optional quarantine network to attach the container to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct IsolateParams {
    /// The network (else the configured one, else none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_network: Option<NetworkName>,
}

/// The parameters of one action, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActionParams {
    /// `block_ip`.
    BlockIp(BlockParams),
    /// `rate_limit`.
    RateLimit(RateParams),
    /// `redirect_to_honeypot`.
    RedirectToHoneypot(RedirectParams),
    /// `isolate_container`.
    IsolateContainer(IsolateParams),
    /// `quarantine_file` (takes none).
    QuarantineFile,
}

/// The keys each kind accepts.
fn known_keys(kind: ActionKind) -> &'static [&'static str] {
    match kind {
        ActionKind::BlockIp => &["cidr"],
        ActionKind::RateLimit => &[
            "rate_per_sec",
            "burst",
            "rate_bytes_per_sec",
            "burst_bytes",
            "action_id",
        ],
        ActionKind::RedirectToHoneypot => &["honeypot", "ports", "action_id"],
        ActionKind::IsolateContainer => &["quarantine_network"],
        ActionKind::QuarantineFile => &[],
    }
}

/// A string parameter parsed with `T::from_str`.
fn text<T: FromStr<Err = String>>(
    m: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<T>, SpecError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|e| SpecError::param(key, e)),
        Some(v) => Err(SpecError::param(
            key,
            format!("must be a string, not {}", type_name(v)),
        )),
    }
}

/// A whole number from 1 to `u32::MAX`.
fn positive(m: &Map<String, Value>, key: &'static str) -> Result<Option<NonZeroU32>, SpecError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new)
            .map(Some)
            .ok_or_else(|| {
                SpecError::param(
                    key,
                    format!("must be a whole number from 1 to {}", u32::MAX),
                )
            }),
    }
}

impl ActionParams {
    /// No parameters for `kind` (all defaults).
    pub fn none(kind: ActionKind) -> Self {
        match kind {
            ActionKind::BlockIp => ActionParams::BlockIp(BlockParams::default()),
            ActionKind::RateLimit => ActionParams::RateLimit(RateParams::default()),
            ActionKind::RedirectToHoneypot => {
                ActionParams::RedirectToHoneypot(RedirectParams::default())
            }
            ActionKind::IsolateContainer => {
                ActionParams::IsolateContainer(IsolateParams::default())
            }
            ActionKind::QuarantineFile => ActionParams::QuarantineFile,
        }
    }

    /// Parses `v` (an object, or null for none) as `kind`'s parameters. Unknown keys are errors.
    pub fn parse(kind: ActionKind, v: &Value) -> Result<Self, SpecError> {
        let empty = Map::new();
        let m = match v {
            Value::Null => &empty,
            Value::Object(m) => m,
            other => {
                return Err(SpecError::new(
                    SpecField::Params,
                    format!("must be an object, not {}", type_name(other)),
                ))
            }
        };
        let known = known_keys(kind);
        if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
            let shown = if k.len() <= 32
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                format!("`{k}` is not")
            } else {
                "a key is not".to_string()
            };
            let list = if known.is_empty() {
                "it takes none".to_string()
            } else {
                known.join(", ")
            };
            return Err(SpecError::new(
                SpecField::Params,
                format!("{shown} a parameter of {kind} ({list})"),
            ));
        }
        Ok(match kind {
            ActionKind::BlockIp => ActionParams::BlockIp(BlockParams {
                cidr: text(m, "cidr")?,
            }),
            ActionKind::RateLimit => {
                let p = RateParams {
                    rate_per_sec: positive(m, "rate_per_sec")?,
                    burst: positive(m, "burst")?,
                    rate_bytes_per_sec: positive(m, "rate_bytes_per_sec")?,
                    burst_bytes: positive(m, "burst_bytes")?,
                    action_id: text(m, "action_id")?,
                };
                if p.rate_bytes_per_sec.is_some() && (p.rate_per_sec.is_some() || p.burst.is_some())
                {
                    return Err(SpecError::param(
                        "rate_bytes_per_sec",
                        "give a packet rate (rate_per_sec, burst) or a byte rate (rate_bytes_per_sec, burst_bytes), not both",
                    ));
                }
                if p.burst_bytes.is_some() && p.rate_bytes_per_sec.is_none() {
                    return Err(SpecError::param("burst_bytes", "needs rate_bytes_per_sec"));
                }
                ActionParams::RateLimit(p)
            }
            ActionKind::RedirectToHoneypot => ActionParams::RedirectToHoneypot(RedirectParams {
                honeypot: text(m, "honeypot")?,
                ports: match m.get("ports") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(PortList::parse(v).map_err(|e| SpecError::param("ports", e))?),
                },
                action_id: text(m, "action_id")?,
            }),
            ActionKind::IsolateContainer => ActionParams::IsolateContainer(IsolateParams {
                quarantine_network: text(m, "quarantine_network")?,
            }),
            ActionKind::QuarantineFile => ActionParams::QuarantineFile,
        })
    }

    /// The kind these parameters belong to.
    pub fn kind(&self) -> ActionKind {
        match self {
            ActionParams::BlockIp(_) => ActionKind::BlockIp,
            ActionParams::RateLimit(_) => ActionKind::RateLimit,
            ActionParams::RedirectToHoneypot(_) => ActionKind::RedirectToHoneypot,
            ActionParams::IsolateContainer(_) => ActionKind::IsolateContainer,
            ActionParams::QuarantineFile => ActionKind::QuarantineFile,
        }
    }

    /// The JSON form (an object of the keys given; null when none is).
    pub fn to_json(&self) -> Value {
        let v = match self {
            ActionParams::BlockIp(p) => serde_json::to_value(p),
            ActionParams::RateLimit(p) => serde_json::to_value(p),
            ActionParams::RedirectToHoneypot(p) => serde_json::to_value(p),
            ActionParams::IsolateContainer(p) => serde_json::to_value(p),
            ActionParams::QuarantineFile => Ok(Value::Null),
        };
        match v {
            Ok(Value::Object(m)) if m.is_empty() => Value::Null,
            Ok(v) => v,
            // Every field serialises to a string, a number or a list of them; this cannot fail.
            Err(_) => Value::Null,
        }
    }

    /// Whether no parameter is given (the JSON form is null).
    pub fn is_empty(&self) -> bool {
        self.to_json().is_null()
    }

    /// The range to block, if one is given.
    pub fn cidr(&self) -> Option<Cidr> {
        match self {
            ActionParams::BlockIp(p) => p.cidr,
            _ => None,
        }
    }
}

impl Serialize for ActionParams {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Checks that a subject fits a kind and is well formed: an address for the network kinds, a container
/// name in Docker's grammar, a normalised absolute path.
pub fn check_subject(kind: ActionKind, subject: &Subject) -> Result<(), SpecError> {
    let bad = |reason: String| Err(SpecError::new(SpecField::Subject, reason));
    match (kind, subject) {
        (
            ActionKind::BlockIp | ActionKind::RateLimit | ActionKind::RedirectToHoneypot,
            Subject::Ip(_),
        ) => Ok(()),
        (ActionKind::IsolateContainer, Subject::Container(c)) => {
            c.parse::<ContainerName>().map(|_| ()).or_else(bad)
        }
        (ActionKind::QuarantineFile, Subject::File(p)) => {
            p.parse::<QuarantinePath>().map(|_| ()).or_else(bad)
        }
        (kind, _) => bad(format!("{kind} does not apply to this kind of subject")),
    }
}

/// Checks that parameters fit the subject: their kind, a range containing the address, a honeypot of
/// the attacker's family.
pub fn check_fit(
    kind: ActionKind,
    subject: &Subject,
    params: &ActionParams,
) -> Result<(), SpecError> {
    if params.kind() != kind {
        return Err(SpecError::new(
            SpecField::Params,
            format!("parameters of {} given to {kind}", params.kind()),
        ));
    }
    let ip = subject.ip();
    match (params, ip) {
        (ActionParams::BlockIp(BlockParams { cidr: Some(c) }), Some(ip)) if !c.contains(&ip) => {
            Err(SpecError::param(
                "cidr",
                format!("range {c} does not contain the subject's address"),
            ))
        }
        (
            ActionParams::RedirectToHoneypot(RedirectParams {
                honeypot: Some(h), ..
            }),
            Some(ip),
        ) if h.addr().is_ipv4() != ip.is_ipv4() => Err(SpecError::param(
            "honeypot",
            "must be of the attacker's address family",
        )),
        _ => Ok(()),
    }
}

/// What an action may do at most, from the configuration: the longest TTL and the trees files may be
/// quarantined from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionLimits {
    /// `policy.max_ttl`; `None` is unlimited.
    pub max_ttl: Option<Duration>,
    /// `respond.quarantine_roots`; empty refuses every file.
    pub quarantine_roots: Vec<PathBuf>,
}

impl ActionLimits {
    /// Checks a TTL against `max_ttl`.
    pub fn check_ttl(&self, ttl_secs: u64) -> Result<(), SpecError> {
        if ttl_secs == 0 {
            return Err(SpecError::new(SpecField::Ttl, "must be at least 1s"));
        }
        match self.max_ttl {
            Some(m) if ttl_secs > m.as_secs() => Err(SpecError::new(
                SpecField::Ttl,
                format!(
                    "{}s is longer than policy.max_ttl ({}s)",
                    ttl_secs,
                    m.as_secs()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks that a file subject lies inside a configured quarantine root.
    pub fn check_subject(&self, subject: &Subject) -> Result<(), SpecError> {
        let Subject::File(p) = subject else {
            return Ok(());
        };
        let path: QuarantinePath = p
            .parse()
            .map_err(|e: String| SpecError::new(SpecField::Subject, e))?;
        if self.quarantine_roots.is_empty() {
            return Err(SpecError::new(
                SpecField::Subject,
                "no quarantine roots are configured (respond.quarantine_roots); no file may be quarantined",
            ));
        }
        if !path.inside_any(&self.quarantine_roots) {
            return Err(SpecError::new(
                SpecField::Subject,
                "is not inside any of respond.quarantine_roots",
            ));
        }
        Ok(())
    }

    /// Caps a TTL at `max_ttl`.
    pub fn cap(&self, ttl_secs: u64) -> u64 {
        match self.max_ttl {
            Some(m) => ttl_secs.min(m.as_secs().max(1)),
            None => ttl_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn err(kind: ActionKind, v: Value) -> String {
        ActionParams::parse(kind, &v).unwrap_err().to_string()
    }

    #[test]
    fn cidrs_are_bounded_and_strict() {
        assert_eq!(
            "203.0.113.7/24".parse::<Cidr>().unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert!("10.0.0.0/8".parse::<Cidr>().is_ok());
        assert!("2001:db8::/16".parse::<Cidr>().is_ok());
        for bad in [
            "127.0.0.0/8 ",
            " 127.0.0.0/8",
            "128.0.0.0/1",
            "0.0.0.0/0",
            "2001:db8::/15",
            "203.0.113.0/24; flush ruleset",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        let e = err(
            ActionKind::BlockIp,
            json!({"cidr": "203.0.113.0/24; flush ruleset"}),
        );
        assert!(e.starts_with("params.cidr: "), "{e}");
        assert!(!e.contains("flush"), "no echo: {e}");
    }

    #[test]
    fn every_kind_parses_its_own_keys_only() {
        let p = ActionParams::parse(ActionKind::RateLimit, &json!({"rate_per_sec": 100})).unwrap();
        assert_eq!(p.to_json(), json!({"rate_per_sec": 100}));
        for bad in [
            json!(-1),
            json!(0),
            json!("10"),
            json!(1.5),
            json!(5_000_000_000u64),
        ] {
            let e = err(ActionKind::RateLimit, json!({ "rate_per_sec": bad }));
            assert!(e.starts_with("params.rate_per_sec: "), "{e}");
        }
        assert!(err(ActionKind::BlockIp, json!({"password": "hunter2"})).contains("`password`"));
        let long = "k".repeat(200);
        let e = err(ActionKind::BlockIp, json!({ long.clone(): 1 }));
        assert!(!e.contains(&long), "{e}");
        assert!(err(ActionKind::QuarantineFile, json!({"x": 1})).contains("takes none"));
        let p = ActionParams::parse(
            ActionKind::RedirectToHoneypot,
            &json!({"honeypot": "[2001:db8::30]:2222", "ports": [22, "8000-8010"]}),
        )
        .unwrap();
        assert_eq!(
            p.to_json(),
            json!({"honeypot": "[2001:db8::30]:2222", "ports": [22, "8000-8010"]})
        );
        for bad in [
            json!({"honeypot": "192.0.2.30:2222; flush ruleset"}),
            json!({"honeypot": "192.0.2.30"}),
            json!({"honeypot": "192.0.2.30:0"}),
        ] {
            let e = err(ActionKind::RedirectToHoneypot, bad);
            assert!(
                e.starts_with("params.honeypot: ") && !e.contains("flush"),
                "{e}"
            );
        }
        for bad in [
            json!([0]),
            json!([65536]),
            json!(["22 } flush"]),
            json!([]),
            json!(["9-3"]),
        ] {
            let e = err(ActionKind::RedirectToHoneypot, json!({ "ports": bad }));
            assert!(e.starts_with("params.ports: "), "{e}");
        }
        assert_eq!(
            ActionParams::parse(ActionKind::BlockIp, &Value::Null)
                .unwrap()
                .to_json(),
            Value::Null
        );
    }

    #[test]
    fn names_and_paths_follow_their_grammar() {
        for ok in ["web", "a1b2c3d4e5f6", "my_app.v2-1"] {
            assert!(ok.parse::<ContainerName>().is_ok(), "{ok}");
        }
        for bad in [
            "x/../../images/y?force=1",
            "..",
            "a..b",
            "-x",
            "",
            "a b",
            "a/b",
            "a?b",
        ] {
            assert!(bad.parse::<ContainerName>().is_err(), "{bad:?}");
            assert!(bad.parse::<NetworkName>().is_err(), "{bad:?}");
        }
        assert!("/srv/uploads/x.php".parse::<QuarantinePath>().is_ok());
        for bad in [
            "srv/x",
            "/srv/../etc/passwd",
            "/srv/./x",
            "/srv//x",
            "/srv/x/",
            "/a\nb",
        ] {
            assert!(bad.parse::<QuarantinePath>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_cap_ttls_and_keep_files_inside_roots() {
        let none = ActionLimits::default();
        let f = Subject::File("/root/.bashrc".into());
        assert!(none
            .check_subject(&f)
            .unwrap_err()
            .to_string()
            .contains("no quarantine roots"));
        let l = ActionLimits {
            max_ttl: Some(Duration::from_secs(3600)),
            quarantine_roots: vec![PathBuf::from("/srv/uploads")],
        };
        assert!(l.check_subject(&f).is_err());
        assert!(l
            .check_subject(&Subject::File("/srv/uploads/a.php".into()))
            .is_ok());
        assert!(l
            .check_subject(&Subject::File("/srv/uploadsX/a.php".into()))
            .is_err());
        assert!(l.check_ttl(3600).is_ok());
        assert!(l
            .check_ttl(3601)
            .unwrap_err()
            .to_string()
            .starts_with("ttl: "));
        assert_eq!(l.cap(1_000_000), 3600);
    }

    #[test]
    fn fit_checks_ranges_and_families() {
        let s = Subject::Ip("203.0.113.7".parse().unwrap());
        let p =
            ActionParams::parse(ActionKind::BlockIp, &json!({"cidr": "198.51.100.0/24"})).unwrap();
        assert!(check_fit(ActionKind::BlockIp, &s, &p).is_err());
        let p = ActionParams::parse(
            ActionKind::RedirectToHoneypot,
            &json!({"honeypot": "[2001:db8::1]:22"}),
        )
        .unwrap();
        assert!(check_fit(ActionKind::RedirectToHoneypot, &s, &p).is_err());
        assert!(check_fit(ActionKind::BlockIp, &s, &p).is_err());
        assert!(check_subject(
            ActionKind::IsolateContainer,
            &Subject::Container("x/../y".into())
        )
        .is_err());
    }
}
