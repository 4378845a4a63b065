//! fail2ban jails (`jail.conf`, `jail.d/*.conf`, `jail.local`, `jail.d/*.local`) read the way fail2ban 1.0.2
//! reads them, so a fail2ban user can point Sentinel at `/etc/fail2ban` and get the same detection.
//!
//! [`read_jails`] merges the files in fail2ban's order with their `[INCLUDES]` (`paths-debian.conf`,
//! `paths-common.conf`, …), expands `%(name)s` against the jail's section and `[DEFAULT]` (with
//! `%(__name__)s`, `%(known/name)s`, `fail2ban_version` and `fail2ban_confpath`), keeps enabled jails only,
//! and checks each one: its `filter` (`name[mode=…, key=value]`), `backend`, `maxretry`, `findtime`,
//! `bantime` and `bantime.*`, `ignoreip`, `port` and `logpath` lines. A jail that cannot be honoured is a
//! [`JailProblem`] naming the jail and the key, never silently dropped. This module reads configuration only:
//! it does not glob log paths, and it turns nothing into sources or scenarios (the binary does that).

use super::config::Config;
use super::error::FilterError;
use super::FilterOptions;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use values::{is_address_or_host, normalize_ignoreip, parse_bool};
pub use values::{split_options, str2seconds};

mod values;

/// The version fail2ban's `%(fail2ban_version)s` expands to (the semantics followed are 1.0.2's).
const FAIL2BAN_VERSION: &str = "1.0.2";

/// How a jail reads its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `auto`, `polling`, `pyinotify` or `gamin`: log files named by `logpath` (the name kept as written).
    Files(String),
    /// `systemd` (with optional `[journalflags=…]` options): the journal, selected by the filter's `journalmatch`.
    Systemd,
}

/// `bantime`: how long a ban lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanTime {
    /// A ban of this many seconds.
    Seconds(u64),
    /// A negative `bantime` (`-1`): banned for ever.
    Permanent,
}

/// `bantime.increment` and its parameters (only when `bantime.increment = true`).
#[derive(Debug, Clone, PartialEq)]
pub struct BanIncrement {
    /// `bantime.factor` (default 1).
    pub factor: f64,
    /// `bantime.formula`, when set (the default formula doubles per earlier ban).
    pub formula: Option<String>,
    /// `bantime.multipliers`, when set (replaces the formula).
    pub multipliers: Vec<u64>,
    /// `bantime.maxtime` in seconds, when set.
    pub maxtime: Option<u64>,
    /// `bantime.rndtime` in seconds, when set.
    pub rndtime: Option<u64>,
    /// `bantime.overalljails`: earlier bans in every jail count (default: only this jail's).
    pub overalljails: bool,
}

/// The filter a jail parses its lines with.
#[derive(Debug, Clone, PartialEq)]
pub struct JailFilter {
    /// The filter name (`sshd`).
    pub name: String,
    /// `filter.d/<name>.conf`.
    pub path: PathBuf,
    /// Options from `name[…]` and jail-level filter settings; `logtype` follows the backend as in fail2ban.
    pub options: FilterOptions,
    /// A `journalmatch` set in the jail itself (it overrides the filter's).
    pub journalmatch: Option<String>,
}

/// One enabled jail, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Jail {
    /// The section name (`sshd`).
    pub name: String,
    /// The filter.
    pub filter: JailFilter,
    /// `logpath`, one glob per line, without fail2ban's ` head`/` tail` suffix (empty for `systemd`).
    pub logpaths: Vec<String>,
    /// The backend.
    pub backend: Backend,
    /// `maxretry`: failures that make a ban.
    pub maxretry: u32,
    /// `findtime` in seconds: how far back failures count.
    pub findtime: u64,
    /// `bantime`.
    pub bantime: BanTime,
    /// `bantime.increment`, when enabled.
    pub increment: Option<BanIncrement>,
    /// `ignoreip`: addresses, CIDRs or host names never banned.
    pub ignoreip: Vec<String>,
    /// `port`, as written (Sentinel blocks the address on every port).
    pub port: String,
    /// Options set to something Sentinel does not do (`ignorecommand`, `usedns`, `logtimezone`,
    /// `logencoding`), as `(key, value)`, so the caller can say so.
    pub unhonoured: Vec<(String, String)>,
}

impl Jail {
    /// Loads the jail's filter with its options.
    pub fn load_filter(&self) -> Result<super::Fail2banFilter, FilterError> {
        super::Fail2banFilter::load(&self.filter.path, &self.filter.options)
    }

    /// The journal match of a `systemd` jail: the jail's own, else `filter`'s `journalmatch` (its lines
    /// joined with ` + `, journalctl's "or"); `None` when neither sets one (the whole journal is read).
    pub fn journalmatch(&self, filter: &super::Fail2banFilter) -> Option<String> {
        if let Some(m) = &self.filter.journalmatch {
            return Some(m.clone());
        }
        let m = filter
            .journalmatch()
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" + ");
        (!m.is_empty()).then_some(m)
    }
}

/// A jail that is enabled but cannot be used as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jail [{jail}] {key}: {what}")]
pub struct JailProblem {
    /// The jail.
    pub jail: String,
    /// The option at fault.
    pub key: String,
    /// What is wrong.
    pub what: String,
}

/// The jails of one fail2ban configuration directory.
#[derive(Debug, Default)]
pub struct JailSet {
    /// The directory read.
    pub dir: PathBuf,
    /// Enabled jails that were checked successfully, in name order.
    pub jails: Vec<Jail>,
    /// Enabled jails that could not be checked, each with why.
    pub problems: Vec<JailProblem>,
    /// Jails present but not enabled.
    pub disabled: Vec<String>,
}

/// Reads `dir/jail.conf` (required) with `jail.d/*.conf`, `jail.local` and `jail.d/*.local` and their
/// includes. A file that cannot be read or parsed (syntax, include cycle, missing include) fails the whole
/// read; a broken jail only adds a [`JailProblem`].
pub fn read_jails(dir: &Path) -> Result<JailSet, FilterError> {
    let cfg = Config::load(&dir.join("jail.conf"))?;
    let mut vars = HashMap::new();
    vars.insert("fail2ban_version".into(), FAIL2BAN_VERSION.into());
    vars.insert("fail2ban_confpath".into(), dir.display().to_string());
    let mut set = JailSet {
        dir: dir.to_path_buf(),
        ..JailSet::default()
    };
    let mut names: Vec<String> = cfg
        .section_names()
        .into_iter()
        .filter(|s| s != "default")
        .collect();
    names.sort();
    for name in names {
        let reader = JailReader {
            cfg: &cfg,
            name: &name,
            vars: &vars,
            dir,
        };
        match reader.enabled() {
            Ok(false) => set.disabled.push(name),
            Ok(true) => match reader.jail() {
                Ok(j) => set.jails.push(j),
                Err(p) => set.problems.push(p),
            },
            Err(p) => set.problems.push(p),
        }
    }
    Ok(set)
}

struct JailReader<'a> {
    cfg: &'a Config,
    name: &'a str,
    vars: &'a HashMap<String, String>,
    dir: &'a Path,
}

impl JailReader<'_> {
    fn problem(&self, key: &str, what: impl Into<String>) -> JailProblem {
        JailProblem {
            jail: self.name.to_string(),
            key: key.to_string(),
            what: what.into(),
        }
    }

    /// The expanded value, `Ok(None)` when the key is set nowhere. `vars` are fail2ban's static defaults:
    /// the file wins over them.
    fn get(&self, key: &str) -> Result<Option<String>, JailProblem> {
        let file_has = self.cfg.raw(self.name, key).is_some();
        let vars: HashMap<String, String> = self
            .vars
            .iter()
            .filter(|(k, _)| self.cfg.raw(self.name, k).is_none())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !file_has && !vars.contains_key(key) {
            return Ok(None);
        }
        self.cfg
            .get(self.name, key, &vars)
            .map(|v| v.map(|s| s.trim().to_string()))
            .map_err(|e| self.problem(key, e.to_string()))
    }

    fn enabled(&self) -> Result<bool, JailProblem> {
        match self.get("enabled")? {
            None => Ok(false),
            Some(v) => parse_bool(&v).ok_or_else(|| {
                self.problem(
                    "enabled",
                    format!("not a boolean: {v:?} (true/false, yes/no, on/off, 1/0)"),
                )
            }),
        }
    }

    fn jail(&self) -> Result<Jail, JailProblem> {
        let backend_raw = self.get("backend")?.unwrap_or_else(|| "auto".into());
        let (backend_name, _) =
            split_options(&backend_raw).map_err(|e| self.problem("backend", e))?;
        let backend = match backend_name.as_str() {
            "auto" | "polling" | "pyinotify" | "gamin" => Backend::Files(backend_name),
            "systemd" => Backend::Systemd,
            other => {
                return Err(self.problem(
                    "backend",
                    format!("unknown backend `{other}` (auto, polling, pyinotify, gamin, systemd)"),
                ))
            }
        };
        let filter = self.filter(&backend)?;
        let maxretry = match self.get("maxretry")? {
            None => 3, // fail2ban's built-in default when nothing sets it
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
                Ok(n) => {
                    return Err(self.problem("maxretry", format!("must be at least 1, got {n}")))
                }
                Err(_) => return Err(self.problem("maxretry", format!("not an integer: {v:?}"))),
            },
        };
        let findtime = match self.get("findtime")? {
            None => 600,
            Some(v) => match str2seconds(&v) {
                Some(s) if s > 0.0 => s.round() as u64,
                Some(_) => {
                    return Err(self.problem("findtime", format!("must be longer than 0: {v:?}")))
                }
                None => {
                    return Err(self.problem(
                        "findtime",
                        format!("not a time: {v:?} (e.g. 600, 10m, 1h 30m)"),
                    ))
                }
            },
        };
        let bantime = match self.get("bantime")? {
            None => BanTime::Seconds(600),
            Some(v) => match str2seconds(&v) {
                Some(s) if s < 0.0 => BanTime::Permanent,
                Some(s) => BanTime::Seconds(s.round() as u64),
                None => {
                    return Err(
                        self.problem("bantime", format!("not a time: {v:?} (e.g. 600, 10m, -1)"))
                    )
                }
            },
        };
        let increment = self.increment()?;
        let logpaths = match backend {
            Backend::Systemd => Vec::new(),
            Backend::Files(_) => {
                let raw = self.get("logpath")?.unwrap_or_default();
                let paths: Vec<String> = raw
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| match l.rsplit_once(' ') {
                        Some((p, "head" | "tail")) => p.trim().to_string(),
                        _ => l.to_string(),
                    })
                    .collect();
                if paths.is_empty() {
                    return Err(self.problem("logpath", "no log path for a file backend"));
                }
                paths
            }
        };
        let mut ignoreip = Vec::new();
        for e in self
            .get("ignoreip")?
            .unwrap_or_default()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
        {
            match normalize_ignoreip(e).filter(|n| is_address_or_host(n)) {
                Some(n) => ignoreip.push(n),
                None => {
                    return Err(self.problem(
                        "ignoreip",
                        format!("not an address, a CIDR, an address/netmask or a host name: {e:?}"),
                    ))
                }
            }
        }
        let mut unhonoured = Vec::new();
        for key in ["ignorecommand", "usedns", "logtimezone", "logencoding"] {
            let Some(v) = self.get(key)? else { continue };
            let fine = match key {
                "usedns" => v.eq_ignore_ascii_case("no") || v.eq_ignore_ascii_case("raw"),
                "logencoding" => {
                    v.is_empty()
                        || v.eq_ignore_ascii_case("auto")
                        || v.eq_ignore_ascii_case("utf-8")
                        || v.eq_ignore_ascii_case("utf8")
                }
                _ => v.is_empty(),
            };
            if !fine {
                unhonoured.push((key.to_string(), v));
            }
        }
        Ok(Jail {
            unhonoured,
            name: self.name.to_string(),
            filter,
            logpaths,
            backend,
            maxretry,
            findtime,
            bantime,
            increment,
            ignoreip,
            port: self.get("port")?.unwrap_or_default(),
        })
    }

    fn filter(&self, backend: &Backend) -> Result<JailFilter, JailProblem> {
        let raw = self.get("filter")?.unwrap_or_default();
        if raw.is_empty() {
            return Err(self.problem("filter", "no filter set: the jail would never match a line"));
        }
        let (name, opts) = split_options(&raw).map_err(|e| self.problem("filter", e))?;
        if name.is_empty() || name.contains('/') || name.contains("..") {
            return Err(self.problem("filter", format!("not a filter name: {raw:?}")));
        }
        let path = self.dir.join("filter.d").join(format!("{name}.conf"));
        if !path.is_file() {
            return Err(self.problem(
                "filter",
                format!(
                    "filter `{name}` not found: {} does not exist",
                    path.display()
                ),
            ));
        }
        let mut mode = None;
        let mut vars = Vec::new();
        for (k, v) in opts {
            if k == "mode" {
                mode = Some(v);
            } else {
                vars.push((k, v));
            }
        }
        // fail2ban sets `logtype` from the backend unless the filter options or the filter's own
        // [Definition] (its .local included, [DEFAULT] not) set it.
        let filter_sets_logtype = Config::load(&path)
            .map(|c| c.own_keys("definition").iter().any(|k| k == "logtype"))
            .unwrap_or(false);
        if !filter_sets_logtype && !vars.iter().any(|(k, _)| k == "logtype") {
            let lt = if *backend == Backend::Systemd {
                "journal"
            } else {
                "file"
            };
            vars.push(("logtype".into(), lt.into()));
        }
        // Filter settings given in the jail itself override the filter's (fail2ban fills them last).
        for key in [
            "datepattern",
            "maxlines",
            "prefregex",
            "failregex",
            "ignoreregex",
        ] {
            if self.cfg.raw(self.name, key).is_some() {
                if let Some(v) = self.get(key)? {
                    vars.push((key.to_string(), v));
                }
            }
        }
        let journalmatch = if self.cfg.raw(self.name, "journalmatch").is_some() {
            self.get("journalmatch")?
        } else {
            None
        };
        Ok(JailFilter {
            name,
            path,
            options: FilterOptions { mode, vars },
            journalmatch,
        })
    }

    fn increment(&self) -> Result<Option<BanIncrement>, JailProblem> {
        let on = match self.get("bantime.increment")? {
            None => false,
            Some(v) => parse_bool(&v).ok_or_else(|| {
                self.problem("bantime.increment", format!("not a boolean: {v:?}"))
            })?,
        };
        if !on {
            return Ok(None);
        }
        let time = |key: &str| -> Result<Option<u64>, JailProblem> {
            match self.get(key)? {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => match str2seconds(&v) {
                    Some(s) if s >= 0.0 => Ok(Some(s.round() as u64)),
                    _ => Err(self.problem(key, format!("not a time: {v:?}"))),
                },
            }
        };
        let factor = match self.get("bantime.factor")? {
            None => 1.0,
            Some(v) if v.is_empty() => 1.0,
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f > 0.0)
                .ok_or_else(|| {
                    self.problem("bantime.factor", format!("not a positive number: {v:?}"))
                })?,
        };
        let multipliers = match self.get("bantime.multipliers")? {
            None => Vec::new(),
            Some(v) => v
                .split_whitespace()
                .map(|m| m.parse::<u64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    self.problem(
                        "bantime.multipliers",
                        format!("not a list of integers: {v:?}"),
                    )
                })?,
        };
        let overalljails = match self.get("bantime.overalljails")? {
            None => false,
            Some(v) => parse_bool(&v).ok_or_else(|| {
                self.problem("bantime.overalljails", format!("not a boolean: {v:?}"))
            })?,
        };
        Ok(Some(BanIncrement {
            factor,
            formula: self.get("bantime.formula")?.filter(|f| !f.is_empty()),
            multipliers,
            maxtime: time("bantime.maxtime")?,
            rndtime: time("bantime.rndtime")?,
            overalljails,
        }))
    }
}
