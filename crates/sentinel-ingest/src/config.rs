//! The sources' and parsers' own configuration types, already checked, and the `build` that turns each
//! into the running component: a log format name ([`LogFormat`]), a file glob parsed when the
//! configuration is read ([`Glob`]), how a source's lines are parsed ([`LineFormat`]: a named format or a
//! fail2ban filter), and the file, syslog and journald sources' settings. The configuration crate reads
//! and validates these (reporting every problem at once) and composes them; this module never reads
//! configuration text and never decides a default another crate relies on.

use crate::fail2ban::{Fail2banFilter, FilterError, FilterOptions};
use crate::parse::falco::Falco;
use crate::parse::http::{AccessLog, Caddy, ErrorLog, ErrorLogFlavor, Haproxy, Traefik};
use crate::parse::json::JsonLines;
use crate::parse::mail::{Dovecot, Postfix};
use crate::parse::sshd::Sshd;
use crate::parse::Auto;
use crate::source::file::{FileTail, FileTailConfig};
use crate::source::journald::{Journald, JournaldConfig};
use crate::source::syslog::{SyslogConfig, SyslogReceiver};
use crate::source::{SourceError, SourceMetrics};
use crate::LineParser;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use strum::VariantNames;

/// A log format: which parser reads a source's lines. The names are the ones written in the
/// configuration (`format: sshd`) and given to `sentinel replay --format`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::VariantArray,
)]
pub enum LogFormat {
    /// Detects the family line by line.
    #[default]
    #[strum(serialize = "auto")]
    Auto,
    /// OpenSSH's sshd (inside a syslog header).
    #[strum(serialize = "sshd")]
    Sshd,
    /// nginx's combined access log.
    #[strum(serialize = "nginx")]
    Nginx,
    /// Apache's combined access log.
    #[strum(serialize = "apache")]
    Apache,
    /// Any common/combined access log.
    #[strum(serialize = "access")]
    Access,
    /// nginx's error log.
    #[strum(serialize = "nginx-error")]
    NginxError,
    /// Apache's error log.
    #[strum(serialize = "apache-error")]
    ApacheError,
    /// Postfix (inside a syslog header).
    #[strum(serialize = "postfix")]
    Postfix,
    /// Dovecot (inside a syslog header).
    #[strum(serialize = "dovecot")]
    Dovecot,
    /// One JSON object per line.
    #[strum(serialize = "json")]
    Json,
    /// Apache's `vhost_combined` access log.
    #[strum(serialize = "vhost_combined")]
    VhostCombined,
    /// Traefik's access log.
    #[strum(serialize = "traefik")]
    Traefik,
    /// Caddy's JSON access log.
    #[strum(serialize = "caddy")]
    Caddy,
    /// HAProxy's HTTP log.
    #[strum(serialize = "haproxy")]
    Haproxy,
    /// Falco's JSON alerts (`json_output: true`).
    #[strum(serialize = "falco")]
    Falco,
}

impl LogFormat {
    /// Every format name, in declaration order.
    pub const NAMES: &'static [&'static str] = <LogFormat as VariantNames>::VARIANTS;
    /// Every format, in declaration order.
    pub const ALL: &'static [LogFormat] = <LogFormat as strum::VariantArray>::VARIANTS;

    /// The name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The parser for this format.
    pub fn build(self) -> Box<dyn LineParser> {
        match self {
            LogFormat::Auto => Box::new(Auto::default()),
            LogFormat::Sshd => Box::new(Sshd),
            LogFormat::Nginx => Box::new(AccessLog::new("nginx")),
            LogFormat::Apache | LogFormat::VhostCombined => Box::new(AccessLog::new("apache")),
            LogFormat::Access => Box::new(AccessLog::default()),
            LogFormat::NginxError => Box::new(ErrorLog::new(ErrorLogFlavor::Nginx)),
            LogFormat::ApacheError => Box::new(ErrorLog::new(ErrorLogFlavor::Apache)),
            LogFormat::Postfix => Box::new(Postfix),
            LogFormat::Dovecot => Box::new(Dovecot),
            LogFormat::Json => Box::new(JsonLines::default()),
            LogFormat::Traefik => Box::new(Traefik),
            LogFormat::Caddy => Box::new(Caddy),
            LogFormat::Haproxy => Box::new(Haproxy),
            LogFormat::Falco => Box::new(Falco),
        }
    }

    /// Parses a name, with an error listing every format.
    pub fn named(s: &str) -> Result<Self, String> {
        s.parse()
            .map_err(|_| format!("unknown format `{s}` (one of: {})", Self::NAMES.join(", ")))
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A file path or glob (`/var/log/auth.log`, `/var/log/nginx/*.log`), checked when the configuration is
/// read so that a bad pattern is a configuration error, never a surprise once the daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
}

impl Glob {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Glob {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        glob::Pattern::new(s)
            .map(|_| Glob { text: s.to_owned() })
            .map_err(|e| format!("not a valid glob: {s:?}: {e}"))
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A fail2ban `filter.d/*.conf` and how it is instantiated (its `mode` and further variables, as in a
/// jail's `filter = name[mode=aggressive, key=value]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail2banFilterConfig {
    /// The filter file.
    pub path: PathBuf,
    /// The filter's mode (`normal`, `aggressive`, … as the filter defines them); `None` keeps the file's.
    pub mode: Option<String>,
    /// More filter variables (`logtype`, `port`, …), names lower-cased.
    pub vars: Vec<(String, String)>,
}

impl Fail2banFilterConfig {
    /// Loads the filter (reads the file and the files it includes, compiles its expressions).
    pub fn build(&self) -> Result<Fail2banFilter, FilterError> {
        Fail2banFilter::load(
            &self.path,
            &FilterOptions {
                mode: self.mode.clone(),
                vars: self.vars.clone(),
            },
        )
    }
}

/// How a source's lines are parsed: a named format, or a fail2ban filter.
///
/// Serialises flat, as written: `format: sshd`, or `fail2ban_filter: …` with `mode` and `fail2ban_vars`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFormat {
    /// A built-in parser.
    Named(LogFormat),
    /// A fail2ban filter.
    Fail2ban(Fail2banFilterConfig),
}

impl Default for LineFormat {
    fn default() -> Self {
        LineFormat::Named(LogFormat::Auto)
    }
}

impl LineFormat {
    /// The fail2ban filter, when the lines are parsed by one.
    pub fn fail2ban(&self) -> Option<&Fail2banFilterConfig> {
        match self {
            LineFormat::Fail2ban(f) => Some(f),
            LineFormat::Named(_) => None,
        }
    }

    /// The filter file, when the lines are parsed by a fail2ban filter.
    pub fn filter_path(&self) -> Option<&Path> {
        self.fail2ban().map(|f| f.path.as_path())
    }
}

impl Serialize for LineFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LineFormat::Named(f) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("format", f)?;
                m.end()
            }
            LineFormat::Fail2ban(f) => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("fail2ban_filter", &f.path)?;
                if let Some(mode) = &f.mode {
                    m.serialize_entry("mode", mode)?;
                }
                if !f.vars.is_empty() {
                    let vars: std::collections::BTreeMap<&str, &str> = f
                        .vars
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    m.serialize_entry("fail2ban_vars", &vars)?;
                }
                m.end()
            }
        }
    }
}

/// A `file` source: files tailed across rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSourceConfig {
    /// Paths or globs, re-expanded at every poll.
    pub paths: Vec<Glob>,
    /// Read files that were never seen from their start instead of their end.
    pub from_beginning: bool,
    /// How often files are checked for new lines and rotation.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl FileSourceConfig {
    /// The tail, checkpointing its offsets at `state_path`.
    pub fn build(&self, state_path: Option<PathBuf>, metrics: Arc<SourceMetrics>) -> FileTail {
        FileTail::new(
            FileTailConfig {
                patterns: self.paths.iter().map(|g| g.as_str().to_owned()).collect(),
                state_path,
                from_beginning: self.from_beginning,
                poll_interval: self.poll_interval,
                ..FileTailConfig::default()
            },
            metrics,
        )
    }
}

/// A `syslog` source: a receiver for RFC 3164 and 5424 messages over UDP and TCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyslogSourceConfig {
    /// UDP address to listen on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<SocketAddr>,
    /// TCP address to listen on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<SocketAddr>,
    /// Senders accepted; never empty (the configuration refuses an empty list, which the receiver would
    /// read as "everybody").
    pub allowed_peers: Vec<ipnet::IpNet>,
}

impl SyslogSourceConfig {
    /// Binds the receiver's sockets.
    pub async fn build(&self, metrics: Arc<SourceMetrics>) -> Result<SyslogReceiver, SourceError> {
        SyslogReceiver::bind(
            SyslogConfig {
                udp: self.udp,
                tcp: self.tcp,
                allowed_peers: self.allowed_peers.clone(),
                ..SyslogConfig::default()
            },
            metrics,
        )
        .await
    }
}

/// A `journald` source: the output of `journalctl -o json -f`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournaldSourceConfig {
    /// The command and its arguments; never empty.
    pub command: Vec<String>,
}

impl JournaldSourceConfig {
    /// The reader, checkpointing its cursor at `state_path`.
    pub fn build(&self, state_path: Option<PathBuf>, metrics: Arc<SourceMetrics>) -> Journald {
        Journald::new(
            JournaldConfig {
                command: self.command.clone(),
                state_path,
                ..JournaldConfig::default()
            },
            metrics,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_name_parses_back_to_its_format() {
        for f in <LogFormat as strum::VariantArray>::VARIANTS {
            assert_eq!(LogFormat::named(f.as_str()), Ok(*f));
        }
        assert_eq!(
            LogFormat::NAMES.len(),
            <LogFormat as strum::VariantArray>::VARIANTS.len()
        );
        let e = LogFormat::named("syslogg").unwrap_err();
        assert!(e.contains("unknown format `syslogg`") && e.contains("nginx-error"));
    }

    #[test]
    fn a_bad_glob_is_refused_with_its_reason() {
        assert!("/var/log/*.log".parse::<Glob>().is_ok());
        let e = "/var/log/[auth.log".parse::<Glob>().unwrap_err();
        assert!(e.contains("/var/log/[auth.log"), "{e}");
        assert!("".parse::<Glob>().is_err());
    }
}
