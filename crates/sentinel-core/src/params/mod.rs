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
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[cfg(test)]
mod tests;
mod values;

pub use values::*;

/// Which part of an action a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
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

    /// What is wrong, without the field (for callers that name the field their own way).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A short, safe rendering of a JSON value's type, for errors that must not echo input.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
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
    /// Parameters read back from a stored record that no longer parse (a record written before
    /// parameters were typed, e.g. `{"anything": 1}`): kept as they were so the record stays readable
    /// and is written back unchanged, but never applied ([`check_fit`] refuses them).
    Stored(StoredParams),
}

/// Stored parameters that do not parse for their kind any more.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredParams {
    /// The kind of the record they were read with.
    pub kind: ActionKind,
    /// The JSON exactly as it was stored.
    pub raw: Value,
    /// Why they do not parse (naming the field).
    pub problem: SpecError,
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
            ActionParams::Stored(p) => p.kind,
        }
    }

    /// Reads parameters back from a stored record: parsed as [`ActionParams::parse`] does, or, when
    /// they no longer parse, kept as [`ActionParams::Stored`] (readable, never applied).
    pub fn from_stored(kind: ActionKind, v: &Value) -> Self {
        ActionParams::parse(kind, v).unwrap_or_else(|problem| {
            ActionParams::Stored(StoredParams {
                kind,
                raw: v.clone(),
                problem,
            })
        })
    }

    /// The JSON form (an object of the keys given; null when none is).
    pub fn to_json(&self) -> Value {
        let v = match self {
            ActionParams::BlockIp(p) => serde_json::to_value(p),
            ActionParams::RateLimit(p) => serde_json::to_value(p),
            ActionParams::RedirectToHoneypot(p) => serde_json::to_value(p),
            ActionParams::IsolateContainer(p) => serde_json::to_value(p),
            ActionParams::QuarantineFile => Ok(Value::Null),
            ActionParams::Stored(p) => Ok(p.raw.clone()),
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
            Subject::Ip(ip),
        ) => match ip {
            // nftables matches IPv4 traffic with `ip saddr`, never with its IPv4-mapped IPv6 form: an
            // action on `::ffff:a.b.c.d` would be recorded as live and change nothing.
            std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                bad("an IPv4-mapped IPv6 address; give the IPv4 address instead".into())
            }
            // No attack comes from these, and dropping them breaks DHCP and IPv6 address set-up.
            ip if ip.is_unspecified()
                || ip.is_multicast()
                || matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast()) =>
            {
                bad("must be a unicast address (not unspecified, multicast or broadcast)".into())
            }
            _ => Ok(()),
        },
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
    if let ActionParams::Stored(p) = params {
        return Err(SpecError::new(
            p.problem.field,
            format!(
                "{} (stored before parameters were typed; the record is kept but cannot be applied)",
                p.problem.reason
            ),
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
            _ if ttl_secs > MAX_TTL_SECS => Err(SpecError::new(
                SpecField::Ttl,
                format!("{ttl_secs}s is longer than any action may last ({MAX_TTL_SECS}s)"),
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
