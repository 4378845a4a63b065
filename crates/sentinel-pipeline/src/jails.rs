//! fail2ban jails in Sentinel's terms: each enabled jail of a `fail2ban_jails` source (or of
//! `sentinel import fail2ban`) becomes a file or journald source parsed by the jail's filter, a scenario
//! and a block TTL.
//!
//! The mapping, and where it is not exact:
//! - `maxretry` failures within `findtime` → a `window` scenario (`threshold: maxretry, window: findtime`),
//!   counted per source address, on lines tagged `jail=<name>` by the jail's source. A leaky bucket cannot
//!   say this exactly (a bucket that fires on a burst of `maxretry` within `findtime` also fires, later, on a
//!   slow steady trickle that fail2ban never bans), so the jail uses the sliding window fail2ban documents.
//! - `bantime` → a policy rule for that scenario only: `block_ip` for `bantime` (at any risk and confidence:
//!   fail2ban bans without an investigation). `bantime = -1` (permanent) becomes `policy.max_ttl`, because every
//!   Sentinel action has a time limit; a `bantime` above `policy.max_ttl` is cut to it. Both are warnings.
//! - `bantime.increment` → `respond.escalation_*` (TTL × factor^earlier actions, capped): fail2ban's default
//!   formula doubles per earlier ban, which is `escalation_factor: 2`, `escalation_max_ttl: bantime.maxtime`.
//!   `bantime.factor` ≠ 1, a custom `bantime.formula`, `bantime.multipliers` and `bantime.rndtime` cannot be
//!   expressed, and escalation is global in Sentinel (fail2ban's `bantime.overalljails = true`): warnings.
//! - `ignoreip` → `detect.scenarios.whitelist`, which is global: jails with different lists are a warning.
//! - `port` → none: Sentinel blocks the address on every port (a warning names the jails that set one).
//! - `backend = systemd` → a journald source with the filter's `journalmatch` as `journalctl` match arguments.
//!
//! Errors (the daemon refuses to start, `config check` exits 2): an unreadable jail file, an enabled jail whose
//! options are wrong, whose filter is missing or does not load. A `logpath` that matches no file now is a
//! warning: fail2ban refuses such a jail, but Sentinel's tail picks the file up when it appears.

use sentinel_config::{ActionRule, Rule, SourceConfig, ValidatedConfig};
use sentinel_core::{ActionKind, Severity};
use sentinel_ingest::config::{
    Fail2banFilterConfig, FileSourceConfig, Glob, JournaldSourceConfig, LineFormat,
};
use sentinel_ingest::fail2ban::{read_jails, Backend, BanTime, Jail};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// The scenario name of a jail (`fail2ban-sshd`); characters a scenario name cannot hold become `_`.
pub fn scenario_name(jail: &str) -> String {
    let clean: String = jail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("fail2ban-{clean}")
}

/// What the jails of one or more directories add to a configuration.
#[derive(Debug, Default)]
pub struct JailPlan {
    /// One source per enabled jail.
    pub sources: Vec<SourceConfig>,
    /// One scenario per jail, in the scenario file format.
    pub scenarios: Vec<Value>,
    /// One policy rule per jail (its block TTL).
    pub rules: Vec<Rule>,
    /// `ignoreip` entries, all jails together.
    pub whitelist: Vec<String>,
    /// `respond.escalation_*` to express `bantime.increment`: (factor, max_ttl), when a jail enables it.
    pub escalation: Option<(u32, Duration)>,
    /// What cannot be honoured exactly, or may not work yet.
    pub warnings: Vec<String>,
    /// What makes the jails unusable.
    pub errors: Vec<String>,
    /// Enabled jails turned into sources.
    pub jails: Vec<String>,
}

/// Reads the jails of `dir` and maps each enabled one. `max_ttl` caps ban times.
pub fn plan(dir: &Path, max_ttl: Duration) -> JailPlan {
    let mut p = JailPlan::default();
    let set = match read_jails(dir) {
        Ok(s) => s,
        Err(e) => {
            p.errors
                .push(format!("fail2ban jails in {}: {e}", dir.display()));
            return p;
        }
    };
    p.errors.extend(set.problems.iter().map(|e| e.to_string()));
    if set.jails.is_empty() && set.problems.is_empty() {
        p.errors.push(format!(
            "fail2ban jails in {}: no jail is enabled (set `enabled = true` in jail.local)",
            dir.display()
        ));
    }
    let mut ignore_lists: Vec<(String, Vec<String>)> = Vec::new();
    let mut ports = Vec::new();
    let mut unhonoured: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for j in &set.jails {
        if let Err(e) = map_jail(j, max_ttl, &mut p) {
            p.errors.push(format!("jail [{}] filter: {e}", j.name));
            continue;
        }
        p.jails.push(j.name.clone());
        ignore_lists.push((j.name.clone(), j.ignoreip.clone()));
        for (k, v) in &j.unhonoured {
            unhonoured
                .entry(format!("{k} = {v}"))
                .or_default()
                .push(j.name.clone());
        }
        if !j.port.is_empty() && j.port != "0:65535" {
            ports.push(format!("{} ({})", j.name, j.port));
        }
    }
    for (_, list) in &ignore_lists {
        for ip in list {
            if !p.whitelist.contains(ip) {
                p.whitelist.push(ip.clone());
            }
        }
    }
    if ignore_lists.windows(2).any(|w| w[0].1 != w[1].1) {
        p.warnings.push(format!(
            "jails have different `ignoreip` lists; Sentinel's whitelist is global, so their union ({}) is never counted by any scenario",
            p.whitelist.join(" ")
        ));
    }
    if !ports.is_empty() {
        p.warnings.push(format!(
            "`port` is not used: Sentinel blocks an address on every port, not only {}",
            ports.join(", ")
        ));
    }
    for (opt, jails) in unhonoured {
        let why = if opt.starts_with("usedns") {
            "Sentinel never resolves host names found in log lines (such lines are counted as host_not_an_address)"
        } else if opt.starts_with("ignorecommand") {
            "Sentinel runs no command to decide whether to ignore an address (use ignoreip / the whitelist)"
        } else if opt.starts_with("logtimezone") {
            "log times without a zone are read as UTC"
        } else {
            "log lines are read as UTF-8 (invalid bytes replaced and counted)"
        };
        p.warnings.push(format!(
            "`{opt}` ({}): not honoured: {why}",
            jails.join(", ")
        ));
    }
    escalation(&set.jails, max_ttl, &mut p);
    p
}

/// A `logpath` glob as fail2ban expands it (Python's `glob.glob`, not recursive): `**` is `*` there, one
/// path component, where Sentinel's file source would descend into every directory below (`/var/log/**`
/// would tail every file under /var/log, re-walked at each poll).
pub fn logpath_glob(g: &str) -> String {
    let mut out = String::with_capacity(g.len());
    for c in g.chars() {
        if !(c == '*' && out.ends_with('*')) {
            out.push(c);
        }
    }
    out
}

/// `FIELD=value` (a journal field name: upper-case letters, digits, `_`) or `+`.
fn is_journal_match(term: &str) -> bool {
    term == "+"
        || term.split_once('=').is_some_and(|(field, _)| {
            !field.is_empty()
                && !field.starts_with(|c: char| c.is_ascii_digit())
                && field
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn map_jail(j: &Jail, max_ttl: Duration, p: &mut JailPlan) -> anyhow::Result<()> {
    let filter = j.load_filter()?;
    let logpaths: Vec<String> = j.logpaths.iter().map(|g| logpath_glob(g)).collect();
    // Jails whose names differ only in characters a scenario name cannot hold (`ssh.d`, `ssh_d`) get
    // distinct scenarios.
    let base = scenario_name(&j.name);
    let mut name = base.clone();
    let mut n = 2;
    while p.scenarios.iter().any(|s| s["name"] == name.as_str()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    let filter_config = Fail2banFilterConfig {
        path: j.filter.path.clone(),
        mode: j.filter.options.mode.clone(),
        vars: j.filter.options.vars.clone(),
    };
    match &j.backend {
        Backend::Files(_) => {
            let mut missing = Vec::new();
            for g in &logpaths {
                let found = glob::glob(g)
                    .map(|paths| paths.filter_map(Result::ok).any(|p| p.is_file()))
                    .unwrap_or(false);
                if !found {
                    missing.push(g.as_str());
                }
            }
            if missing.len() == logpaths.len() {
                p.warnings.push(format!(
                    "jail [{}] logpath: no file matches {} now (fail2ban would refuse this jail; Sentinel reads the file once it appears)",
                    j.name,
                    missing.join(", ")
                ));
            } else if !missing.is_empty() {
                p.warnings.push(format!(
                    "jail [{}] logpath: no file matches {} now",
                    j.name,
                    missing.join(", ")
                ));
            }
            let mut paths = Vec::with_capacity(logpaths.len());
            for g in &logpaths {
                paths.push(
                    g.parse::<Glob>()
                        .map_err(|e| anyhow::anyhow!("logpath {e}"))?,
                );
            }
            p.sources.push(SourceConfig::File {
                file: FileSourceConfig {
                    paths,
                    from_beginning: false,
                    poll_interval: Duration::from_millis(250),
                },
                parse: LineFormat::Fail2ban(filter_config),
                jail: Some(j.name.clone()),
            });
        }
        Backend::Systemd => {
            let mut command: Vec<String> = ["journalctl", "-o", "json", "-f", "--no-pager"]
                .map(String::from)
                .to_vec();
            match j.journalmatch(&filter) {
                Some(m) => {
                    // fail2ban hands each term to the journal as a match; here they become journalctl
                    // arguments, so anything but `FIELD=value` and `+` (an option such as `-D /dir`) is refused.
                    if let Some(bad) = m.split_whitespace().find(|t| !is_journal_match(t)) {
                        anyhow::bail!(
                            "journalmatch: {bad:?} is not a journal match (FIELD=value, or + between groups)"
                        );
                    }
                    command.extend(m.split_whitespace().map(String::from));
                }
                None => p.warnings.push(format!(
                    "jail [{}]: backend systemd and no journalmatch: the whole journal is read",
                    j.name
                )),
            }
            p.sources.push(SourceConfig::Journald {
                journald: JournaldSourceConfig { command },
                parse: LineFormat::Fail2ban(filter_config),
                jail: Some(j.name.clone()),
            });
        }
    }
    let ttl = match j.bantime {
        BanTime::Permanent => {
            p.warnings.push(format!(
                "jail [{}] bantime -1 (permanent): every Sentinel block has a time limit, so it lasts policy.max_ttl ({})",
                j.name,
                humantime::format_duration(max_ttl)
            ));
            max_ttl
        }
        BanTime::Seconds(s) if Duration::from_secs(s) > max_ttl => {
            p.warnings.push(format!(
                "jail [{}] bantime {} is longer than policy.max_ttl: blocks last {}",
                j.name,
                humantime::format_duration(Duration::from_secs(s)),
                humantime::format_duration(max_ttl)
            ));
            max_ttl
        }
        BanTime::Seconds(s) => Duration::from_secs(s.max(1)),
    };
    let findtime = humantime::format_duration(Duration::from_secs(j.findtime)).to_string();
    p.scenarios.push(json!({
        "name": name,
        "description": format!(
            "fail2ban jail {}: {} failures within {findtime} (filter {}{})",
            j.name,
            j.maxretry,
            j.filter.name,
            j.filter.options.mode.as_deref().map(|m| format!("[mode={m}]")).unwrap_or_default()
        ),
        "counting": { "type": "window", "threshold": j.maxretry, "window": findtime },
        "filter": { "kind": ["rule_match"], "field_in": { "jail": [j.name] } },
        // A banned address is not counted by fail2ban until its ban ends; in observe mode the alert repeats
        // at most once per ban time.
        "cooldown": humantime::format_duration(ttl).to_string(),
        "severity": "high",
        "confidence": 1.0,
    }));
    p.rules.push(Rule {
        name: Some(name.clone()),
        scenario: vec![name],
        severity: Severity::ALL.to_vec(),
        risk: sentinel_config::Band::ALL.to_vec(),
        confidence: sentinel_config::Band::ALL.to_vec(),
        actions: vec![ActionRule {
            kind: ActionKind::BlockIp,
            ttl: Some(ttl),
            params: sentinel_core::ActionParams::none(ActionKind::BlockIp),
        }],
    });
    Ok(())
}

fn escalation(jails: &[Jail], max_ttl: Duration, p: &mut JailPlan) {
    let inc: Vec<_> = jails
        .iter()
        .filter(|j| p.jails.contains(&j.name))
        .filter_map(|j| j.increment.as_ref().map(|i| (j, i)))
        .collect();
    if inc.is_empty() {
        return;
    }
    if inc.len() != p.jails.len() {
        p.warnings.push(
            "bantime.increment is on for some jails only; Sentinel's escalation applies to every block"
                .into(),
        );
    }
    let mut max = Duration::ZERO;
    for (j, i) in &inc {
        let mut cannot = Vec::new();
        if (i.factor - 1.0).abs() > f64::EPSILON {
            cannot.push(format!("bantime.factor {}", i.factor));
        }
        if let Some(f) = &i.formula {
            cannot.push(format!("bantime.formula {f:?}"));
        }
        if !i.multipliers.is_empty() {
            cannot.push("bantime.multipliers".to_string());
        }
        if i.rndtime.is_some() {
            cannot.push("bantime.rndtime".to_string());
        }
        if !i.overalljails {
            cannot.push(
                "bantime.overalljails = false (Sentinel counts earlier blocks from every scenario)"
                    .to_string(),
            );
        }
        if !cannot.is_empty() {
            p.warnings.push(format!(
                "jail [{}]: not expressible, ignored: {}; TTLs double per earlier block",
                j.name,
                cannot.join(", ")
            ));
        }
        // fail2ban has no cap without maxtime; Sentinel's is policy.max_ttl.
        let cap = i.maxtime.map_or(max_ttl, Duration::from_secs).min(max_ttl);
        max = max.max(cap);
    }
    p.escalation = Some((2, max));
}

/// Replaces every `fail2ban_jails` source by the jails' sources, adds their scenarios, rules and whitelist.
/// Returns the expanded configuration (or every error) and the warnings, which hold either way.
pub fn expand(cfg: &ValidatedConfig) -> (Result<ValidatedConfig, Vec<String>>, Vec<String>) {
    let mut out = cfg.clone();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut sources = Vec::new();
    let mut rules = Vec::new();
    for src in &cfg.sources {
        let SourceConfig::Fail2banJails { dir } = src else {
            sources.push(src.clone());
            continue;
        };
        let p = plan(dir, cfg.policy.max_ttl);
        errors.extend(p.errors);
        warnings.extend(p.warnings);
        sources.extend(p.sources);
        rules.extend(p.rules);
        out.detect.scenarios.define.extend(p.scenarios);
        for w in p.whitelist {
            if !out.detect.scenarios.whitelist.contains(&w) {
                out.detect.scenarios.whitelist.push(w);
            }
        }
        match p.escalation {
            Some((factor, max)) => {
                let r = &cfg.respond;
                if r.escalation_factor != factor || r.escalation_max_ttl != max {
                    warnings.push(format!(
                        "jails in {} use bantime.increment (double per earlier ban, at most {}); respond has escalation_factor {} and escalation_max_ttl {}: set them to {factor} and {} to match",
                        dir.display(),
                        humantime::format_duration(max),
                        r.escalation_factor,
                        humantime::format_duration(r.escalation_max_ttl),
                        humantime::format_duration(max),
                    ));
                }
            }
            None if cfg.respond.escalation_factor > 1 => warnings.push(format!(
                "no jail in {} uses bantime.increment, but respond.escalation_factor is {}: repeat offenders get longer blocks than fail2ban would give (set it to 1 to match)",
                dir.display(),
                cfg.respond.escalation_factor
            )),
            None => {}
        }
    }
    if !errors.is_empty() {
        return (Err(errors), warnings);
    }
    rules.extend(out.policy.rules);
    out.policy.rules = rules;
    out.sources = sources;
    (Ok(out), warnings)
}

#[cfg(test)]
mod tests {
    #[test]
    fn scenario_names_are_valid_for_any_jail_name() {
        assert_eq!(super::scenario_name("sshd"), "fail2ban-sshd");
        assert_eq!(
            super::scenario_name("apache.bad bots"),
            "fail2ban-apache_bad_bots"
        );
    }

    #[test]
    fn jails_whose_names_clean_to_the_same_scenario_get_distinct_ones() {
        let dir = tempfile::tempdir().unwrap();
        let f2b = dir.path();
        std::fs::create_dir(f2b.join("filter.d")).unwrap();
        std::fs::write(
            f2b.join("filter.d/x.conf"),
            "[Definition]\nfailregex = ^fail <HOST>$\n",
        )
        .unwrap();
        std::fs::write(
            f2b.join("jail.conf"),
            "[DEFAULT]\nfilter = x\nlogpath = /dev/null\nenabled = true\n[ssh.d]\n[ssh_d]\n[ssh d]\n",
        )
        .unwrap();
        let p = super::plan(f2b, std::time::Duration::from_secs(86_400));
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let mut names: Vec<&str> = p
            .scenarios
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["fail2ban-ssh_d", "fail2ban-ssh_d-2", "fail2ban-ssh_d-3"]
        );
        let mut ruled: Vec<&str> = p.rules.iter().map(|r| r.scenario[0].as_str()).collect();
        ruled.sort_unstable();
        assert_eq!(ruled, names);
    }

    #[test]
    fn journalmatch_terms_are_matches_never_options() {
        for ok in [
            "_SYSTEMD_UNIT=sshd.service",
            "+",
            "_COMM=sshd",
            "SYSLOG_IDENTIFIER=a=b",
        ] {
            assert!(super::is_journal_match(ok), "{ok}");
        }
        for bad in [
            "-D",
            "/var/log/journal",
            "--file=/x",
            "=x",
            "lower=x",
            "1X=y",
            "--output=cat",
        ] {
            assert!(!super::is_journal_match(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let f2b = dir.path();
        std::fs::create_dir(f2b.join("filter.d")).unwrap();
        std::fs::write(
            f2b.join("filter.d/x.conf"),
            "[Definition]\nfailregex = ^fail <HOST>$\njournalmatch = -D /tmp/elsewhere\n",
        )
        .unwrap();
        std::fs::write(
            f2b.join("jail.conf"),
            "[j]\nenabled = true\nfilter = x\nbackend = systemd\n",
        )
        .unwrap();
        let p = super::plan(f2b, std::time::Duration::from_secs(86_400));
        assert!(p.sources.is_empty());
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        assert!(
            p.errors[0].contains("jail [j]")
                && p.errors[0].contains("\"-D\" is not a journal match"),
            "{:?}",
            p.errors
        );
    }

    #[test]
    fn logpath_globs_do_not_recurse_as_in_fail2ban() {
        assert_eq!(super::logpath_glob("/var/log/**"), "/var/log/*");
        assert_eq!(super::logpath_glob("/**/x/***.log"), "/*/x/*.log");
        assert_eq!(
            super::logpath_glob("/var/log/nginx/*error.log"),
            "/var/log/nginx/*error.log"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("top.log"), "").unwrap();
        std::fs::write(dir.path().join("a/b/deep.log"), "").unwrap();
        let pattern = super::logpath_glob(&format!("{}/**", dir.path().display()));
        let found: Vec<_> = glob::glob(&pattern)
            .unwrap()
            .flatten()
            .filter(|p| p.is_file())
            .collect();
        assert_eq!(found, [dir.path().join("top.log")]);
    }
}
