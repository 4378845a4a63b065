//! Loading scenarios for the daemon and for replay: the built-in set plus a directory or file of the
//! user's, every problem reported at once; and the whitelist, with hostnames resolved at load.

use anyhow::Context;
use sentinel_detect::scenario::{parse_scenarios, ScenarioDef, BUILTIN};
use std::path::Path;

/// The built-in scenarios (when `builtin`), those in `extra` (a `*.yaml` directory or one file) and those
/// written inline in the configuration (`define`).
pub fn load_defs(
    builtin: bool,
    extra: Option<&Path>,
    define: &[serde_json::Value],
) -> anyhow::Result<Vec<ScenarioDef>> {
    let mut defs = Vec::new();
    let mut errors = Vec::new();
    if builtin {
        match parse_scenarios("builtin", BUILTIN) {
            Ok(d) => defs.extend(d),
            Err(e) => errors.extend(e),
        }
    }
    if let Some(p) = extra {
        let unreadable =
            |path: &Path, e: std::io::Error| sentinel_detect::scenario::ScenarioError {
                origin: path.display().to_string(),
                message: format!("cannot read: {e}"),
            };
        let mut files = Vec::new();
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(entries) => {
                    for entry in entries {
                        match entry {
                            Ok(entry) => {
                                let path = entry.path();
                                if matches!(
                                    path.extension().and_then(|e| e.to_str()),
                                    Some("yaml" | "yml")
                                ) {
                                    files.push(path);
                                }
                            }
                            Err(e) => errors.push(unreadable(p, e)),
                        }
                    }
                }
                Err(e) => errors.push(unreadable(p, e)),
            }
            files.sort();
        } else {
            files.push(p.to_path_buf());
        }
        for f in files {
            match std::fs::read_to_string(&f) {
                Ok(text) => match parse_scenarios(&f.display().to_string(), &text) {
                    Ok(d) => defs.extend(d),
                    Err(e) => errors.extend(e),
                },
                Err(e) => errors.push(unreadable(&f, e)),
            }
        }
    }
    if !define.is_empty() {
        let text = serde_norway::to_string(define).context("detect.scenarios.define")?;
        match parse_scenarios("detect.scenarios.define", &text) {
            Ok(d) => defs.extend(d),
            Err(e) => errors.extend(e),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &defs {
        if !seen.insert(d.name.clone()) {
            errors.push(sentinel_detect::scenario::ScenarioError {
                origin: "scenarios".into(),
                message: format!("scenario `{}` is defined twice", d.name),
            });
        }
    }
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow::bail!(
            "the scenarios have {} problem(s):\n{}",
            lines.len(),
            lines.join("\n")
        );
    }
    Ok(defs)
}

/// Whitelist entries as networks: CIDRs and addresses as given, hostnames resolved now (every address
/// they resolve to). A hostname that does not resolve is an error naming it.
pub fn resolve_whitelist(entries: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    use std::net::ToSocketAddrs;
    let mut nets = Vec::new();
    let mut errors = Vec::new();
    for e in entries {
        if let Ok(n) = e.parse::<ipnet::IpNet>() {
            nets.push(n);
        } else if let Ok(ip) = e.parse::<std::net::IpAddr>() {
            nets.push(ipnet::IpNet::from(ip));
        } else {
            match (e.as_str(), 0u16).to_socket_addrs() {
                Ok(addrs) => {
                    let before = nets.len();
                    nets.extend(addrs.map(|a| ipnet::IpNet::from(a.ip())));
                    if nets.len() == before {
                        errors.push(format!("whitelist: `{e}` resolves to no address"));
                    }
                }
                Err(err) => errors.push(format!("whitelist: cannot resolve `{e}`: {err}")),
            }
        }
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    nets.sort();
    nets.dedup();
    Ok(nets)
}

/// The scenario engine the configuration describes: its scenarios loaded, its whitelist resolved.
pub fn engine(
    cfg: &sentinel_config::ValidatedConfig,
    redactor: &sentinel_core::Redactor,
) -> anyhow::Result<sentinel_detect::ScenarioEngine> {
    let sc = &cfg.detect.scenarios;
    Ok(sentinel_detect::ScenarioEngine::new(
        load_defs(sc.builtin, sc.dir.as_deref(), &sc.define)?,
        sentinel_detect::EngineOptions {
            whitelist: resolve_whitelist(&sc.whitelist)?,
            ipv6_prefix: sc.ipv6_prefix,
            max_keys_per_scenario: sc.max_keys,
            ..sentinel_detect::EngineOptions::default()
        },
    )
    .with_redactor(redactor.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_resolve_and_bad_ones_are_named() {
        let nets = resolve_whitelist(&[
            "192.0.2.0/24".into(),
            "198.51.100.7".into(),
            "localhost".into(),
        ])
        .unwrap();
        assert!(nets
            .iter()
            .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
        assert!(nets.contains(&"198.51.100.7/32".parse().unwrap()));
        let err = resolve_whitelist(&["no-such-host.invalid".into()]).unwrap_err();
        assert!(err.to_string().contains("no-such-host.invalid"));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dup.yaml"),
            "- name: ssh_bruteforce\n  counting: { type: trigger }\n  severity: low\n",
        )
        .unwrap();
        let err = load_defs(true, Some(dir.path()), &[]).unwrap_err();
        assert!(err
            .to_string()
            .contains("`ssh_bruteforce` is defined twice"));
        assert_eq!(load_defs(false, Some(dir.path()), &[]).unwrap().len(), 1);
    }
}
