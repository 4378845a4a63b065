//! `sources` (where log lines come from) and `detect.scenarios` (how they are counted): reading and
//! checking them. Pure: hostnames in the scenario whitelist are kept as text and resolved by the daemon.

use crate::reader::{Node, Reader};
use sentinel_ingest::config::{
    Fail2banFilterConfig, FileSourceConfig, Glob, JournaldSourceConfig, LineFormat, LogFormat,
    SyslogSourceConfig,
};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Line formats the built-in parsers know: the names of [`LogFormat`], one list for the whole workspace.
pub const FORMATS: &[&str] = LogFormat::NAMES;

/// One source of log lines: a closed set of kinds, each holding its component's own checked settings
/// (owned by the ingest crate, which builds the running source from them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Files followed like `tail -F` (globs, rotation, offsets kept across restarts).
    File {
        /// Paths (parsed globs), start position and poll interval.
        #[serde(flatten)]
        file: FileSourceConfig,
        /// How the lines are parsed: `format`, or `fail2ban_filter` with `mode` and `fail2ban_vars`.
        #[serde(flatten)]
        parse: LineFormat,
        /// A fail2ban jail name: parsed lines carry the field `jail=<name>`, which scenarios can select on.
        #[serde(skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    /// A syslog receiver (RFC 3164 and 5424, UDP and TCP).
    Syslog {
        /// Addresses and accepted senders.
        #[serde(flatten)]
        syslog: SyslogSourceConfig,
        /// Line format of the messages.
        format: LogFormat,
    },
    /// The systemd journal, through `journalctl -o json -f`.
    Journald {
        /// The command to run (its output must be `journalctl -o json` lines).
        #[serde(flatten)]
        journald: JournaldSourceConfig,
        /// How the messages are parsed: `format`, or `fail2ban_filter` with `mode` and `fail2ban_vars`.
        #[serde(flatten)]
        parse: LineFormat,
        /// A fail2ban jail name: parsed lines carry the field `jail=<name>`.
        #[serde(skip_serializing_if = "Option::is_none")]
        jail: Option<String>,
    },
    /// Every enabled jail of a fail2ban configuration directory (`jail.conf`, `jail.d/`, `jail.local`), each
    /// turned into a file or journald source, a scenario and a block TTL when Sentinel starts.
    Fail2banJails {
        /// The directory (`/etc/fail2ban`).
        dir: PathBuf,
    },
}

impl SourceConfig {
    /// The jail a file or journald source was made for.
    pub fn jail(&self) -> Option<&str> {
        match self {
            SourceConfig::File { jail, .. } | SourceConfig::Journald { jail, .. } => {
                jail.as_deref()
            }
            _ => None,
        }
    }
}

/// `detect.scenarios`: the scenario engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioConfig {
    /// Whether the built-in scenarios run.
    pub builtin: bool,
    /// A directory (or one file) of more scenario files (`*.yaml`); `null` (or left out) for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Count IPv6 sources per prefix of this length (1..=128); `None` counts each address.
    pub ipv6_prefix: Option<u8>,
    /// Keys kept per scenario before the stalest are evicted.
    pub max_keys: usize,
    /// Sources never counted: CIDRs, addresses, or hostnames (resolved when Sentinel starts).
    pub whitelist: Vec<String>,
    /// Scenarios written inline, in the scenario file format (checked when the scenarios are loaded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub define: Vec<serde_json::Value>,
}

pub(crate) fn scenarios(r: &mut Reader, s: Option<&Node<'_>>) -> Option<ScenarioConfig> {
    let builtin = r.get(s, "builtin").and_then(|n| r.boolean(&n));
    let dir = r.get(s, "dir").and_then(|n| r.optional_path(&n));
    let ipv6_prefix = r.get(s, "ipv6_prefix").and_then(|n| match n.value {
        serde_json::Value::Null => Some(None),
        _ => r.int(&n, 1, 128).map(Some),
    });
    let max_keys = r
        .get(s, "max_keys")
        .and_then(|n| r.int(&n, 100, 100_000_000));
    let whitelist = r.get(s, "whitelist").and_then(|n| {
        r.each(&n, |r, item| {
            let v = r.string(item)?.trim();
            if v.is_empty() {
                r.fail(&item.path, "must not be empty");
                return None;
            }
            let is_net = v.parse::<ipnet::IpNet>().is_ok() || v.parse::<std::net::IpAddr>().is_ok();
            let is_host = v.len() <= 253
                && v.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !is_net && !is_host {
                r.fail(
                    &item.path,
                    format!("not a CIDR, an address or a hostname: {v:?}"),
                );
                return None;
            }
            Some(v.to_owned())
        })
    });
    let define = match r.get(s, "define") {
        None => None,
        Some(n) => match n.value {
            serde_json::Value::Array(items) => Some(items.clone()),
            _ => {
                r.fail(&n.path, "must be a list of scenarios");
                None
            }
        },
    };
    Some(ScenarioConfig {
        define: define?,
        builtin: builtin?,
        dir: dir?,
        ipv6_prefix: ipv6_prefix?,
        max_keys: max_keys?,
        whitelist: whitelist?,
    })
}

fn format(r: &mut Reader, e: &Node<'_>) -> Option<LogFormat> {
    match r.optional(e, "format") {
        None => Some(LogFormat::Auto),
        Some(n) => {
            let f = r.string(&n)?;
            match LogFormat::named(f) {
                Ok(f) => Some(f),
                Err(msg) => {
                    r.fail(&n.path, msg);
                    None
                }
            }
        }
    }
}

fn addr(r: &mut Reader, e: &Node<'_>, key: &str) -> Option<Option<SocketAddr>> {
    match r.optional(e, key) {
        None => Some(None),
        Some(n) => r.parsed::<SocketAddr>(&n, "a socket address").map(Some),
    }
}

/// Keys each source type accepts (the schema knows their union; this names misplaced ones).
const FILE_KEYS: &[&str] = &[
    "type",
    "paths",
    "format",
    "from_beginning",
    "fail2ban_filter",
    "mode",
    "fail2ban_vars",
    "jail",
    "poll_interval",
];
const SYSLOG_KEYS: &[&str] = &["type", "udp", "tcp", "format", "allowed_peers"];
const JOURNALD_KEYS: &[&str] = &[
    "type",
    "command",
    "format",
    "fail2ban_filter",
    "mode",
    "fail2ban_vars",
    "jail",
];
const JAILS_KEYS: &[&str] = &["type", "dir"];

pub(crate) fn source(r: &mut Reader, e: &Node<'_>) -> Option<SourceConfig> {
    let kind = r
        .get(Some(e), "type")
        .and_then(|n| r.string(&n).map(str::to_owned).map(|k| (k, n)))?;
    let allowed = match kind.0.as_str() {
        "file" => FILE_KEYS,
        "syslog" => SYSLOG_KEYS,
        "journald" => JOURNALD_KEYS,
        "fail2ban_jails" => JAILS_KEYS,
        other => {
            r.fail(
                &kind.1.path,
                format!("unknown source type `{other}` (file, syslog, journald, fail2ban_jails)"),
            );
            return None;
        }
    };
    if let serde_json::Value::Object(map) = e.value {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                r.fail(
                    &format!("{}.{k}", e.path),
                    format!("not a key of a `{}` source", kind.0),
                );
            }
        }
    }
    match kind.0.as_str() {
        "file" => {
            let paths = r.get(Some(e), "paths").and_then(|n| {
                let v = r.each(&n, |r, p| r.named::<Glob>(p))?;
                if v.is_empty() {
                    r.fail(&n.path, "needs at least one path or glob");
                    return None;
                }
                Some(v)
            });
            let from_beginning = match r.optional(e, "from_beginning") {
                None => Some(false),
                Some(n) => r.boolean(&n),
            };
            let (parse, jail) = line_format(r, e);
            let poll_interval = match r.optional(e, "poll_interval") {
                None => Some(Duration::from_millis(250)),
                Some(n) => r.duration(&n),
            };
            Some(SourceConfig::File {
                file: FileSourceConfig {
                    paths: paths?,
                    from_beginning: from_beginning?,
                    poll_interval: poll_interval?,
                },
                parse: parse?,
                jail: jail?,
            })
        }
        "syslog" => {
            let udp = addr(r, e, "udp");
            let tcp = addr(r, e, "tcp");
            let format = format(r, e);
            if let (Some(None), Some(None)) = (&udp, &tcp) {
                r.fail(&e.path, "a syslog source needs `udp`, `tcp` or both");
                return None;
            }
            let allowed_peers = match r.optional(e, "allowed_peers") {
                None => Some(vec![
                    ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
                        std::net::Ipv4Addr::new(127, 0, 0, 0),
                        8,
                    )),
                    ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
                        std::net::Ipv6Addr::LOCALHOST,
                        128,
                    )),
                ]),
                Some(n) => r
                    .each(&n, |r, p| {
                        let v = r.string(p)?;
                        let net = v
                            .parse::<ipnet::IpNet>()
                            .or_else(|_| v.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                        match net {
                            Ok(net) => Some(net),
                            Err(_) => {
                                r.fail(&p.path, format!("not a CIDR or an address: {v:?}"));
                                None
                            }
                        }
                    })
                    .and_then(|nets| {
                        // An empty allowlist reads as "nobody", but the receiver would take it as
                        // "everybody": refuse it rather than open the source silently.
                        if nets.is_empty() {
                            r.fail(
                                &n.path,
                                "is empty: list the senders to accept (e.g. [192.0.2.0/24]), leave \
                                 the key out for loopback only, or write [0.0.0.0/0, \"::/0\"] to \
                                 accept every sender",
                            );
                            return None;
                        }
                        Some(nets)
                    }),
            };
            Some(SourceConfig::Syslog {
                syslog: SyslogSourceConfig {
                    udp: udp?,
                    tcp: tcp?,
                    allowed_peers: allowed_peers?,
                },
                format: format?,
            })
        }
        "fail2ban_jails" => {
            let dir = r.get(Some(e), "dir").and_then(|n| {
                let d = r.string(&n)?;
                if d.is_empty() {
                    r.fail(
                        &n.path,
                        "must name the fail2ban directory (e.g. /etc/fail2ban)",
                    );
                    return None;
                }
                Some(PathBuf::from(d))
            });
            Some(SourceConfig::Fail2banJails { dir: dir? })
        }
        _ => {
            let command = match r.optional(e, "command") {
                None => Some(vec![
                    "journalctl".into(),
                    "-o".into(),
                    "json".into(),
                    "-f".into(),
                    "--no-pager".into(),
                ]),
                Some(n) => r
                    .each(&n, |r, p| r.string(p).map(str::to_owned))
                    .and_then(|v| {
                        if v.is_empty() {
                            r.fail(&n.path, "must name a command");
                            None
                        } else {
                            Some(v)
                        }
                    }),
            };
            let (parse, jail) = line_format(r, e);
            Some(SourceConfig::Journald {
                journald: JournaldSourceConfig { command: command? },
                parse: parse?,
                jail: jail?,
            })
        }
    }
}

/// `format`, or `fail2ban_filter` with `mode` and `fail2ban_vars`, of a file or journald source; and `jail`.
/// A filter parses the lines itself, so a `format` other than `auto` beside it, or `mode` or
/// `fail2ban_vars` without it, is an error rather than a setting silently ignored.
fn line_format(r: &mut Reader, e: &Node<'_>) -> (Option<LineFormat>, Option<Option<String>>) {
    let opt_string = |r: &mut Reader, key: &str| match r.optional(e, key) {
        None => Some(None),
        Some(n) => match r.string(&n) {
            Some("") => {
                r.fail(&n.path, "must not be empty (leave the key out instead)");
                None
            }
            other => other.map(|s| Some(s.to_owned())),
        },
    };
    let format_given = r
        .optional(e, "format")
        .is_some_and(|n| n.value.as_str() != Some("auto"));
    let format = format(r, e);
    let filter = opt_string(r, "fail2ban_filter").map(|o| o.map(PathBuf::from));
    let mode = opt_string(r, "mode");
    let jail = opt_string(r, "jail");
    let vars = match r.optional(e, "fail2ban_vars") {
        None => Some(Vec::new()),
        Some(n) => match n.value {
            serde_json::Value::Object(map) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (k, v) in map {
                    match v.as_str() {
                        Some(s) => out.push((k.to_lowercase(), s.to_owned())),
                        None => {
                            r.fail(&format!("{}.{k}", n.path), "must be a string");
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            _ => {
                r.fail(&n.path, "must be a mapping of variable names to strings");
                None
            }
        },
    };
    let (Some(filter), Some(mode), Some(vars)) = (filter, mode, vars) else {
        return (None, jail);
    };
    let parse = match (filter, mode, vars) {
        (Some(path), mode, vars) => {
            if format_given {
                r.fail(
                    &format!("{}.format", e.path),
                    "`format` and `fail2ban_filter` exclude each other: the filter parses the lines",
                );
                None
            } else {
                Some(LineFormat::Fail2ban(Fail2banFilterConfig {
                    path,
                    mode,
                    vars,
                }))
            }
        }
        (None, mode, vars) => {
            if !vars.is_empty() {
                r.fail(&e.path, "`fail2ban_vars` needs `fail2ban_filter`");
            }
            if mode.is_some() {
                r.fail(&e.path, "`mode` needs `fail2ban_filter`");
            }
            if !vars.is_empty() || mode.is_some() {
                None
            } else {
                format.map(LineFormat::Named)
            }
        }
    };
    (parse, jail)
}
