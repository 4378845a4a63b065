//! The policy and the allowlist the configuration describes, and the heuristic's settings.

use sentinel_config::ValidatedConfig;
use sentinel_detect::HeuristicSettings;
use sentinel_respond::{ActionTemplate, Allowlist, Bands, MatrixRule, PolicyMatrix};

/// The heuristic detector's settings (the detector's own type, validated by the configuration).
pub fn heuristic_settings(cfg: &ValidatedConfig) -> HeuristicSettings {
    cfg.detect.heuristic.clone()
}

/// The policy: one matrix per scenario that some rule names (its own rules and the general ones, in
/// order), and the general rules for every other alert.
#[derive(Debug, Clone)]
pub struct ScenarioPolicy {
    general: PolicyMatrix,
    by_scenario: std::collections::HashMap<String, PolicyMatrix>,
}

impl ScenarioPolicy {
    /// The mode plans are made in.
    pub fn mode(&self) -> sentinel_core::Mode {
        self.general.mode()
    }
}

impl sentinel_core::Policy for ScenarioPolicy {
    fn decide(&self, inv: &sentinel_core::Investigation) -> sentinel_core::Plan {
        self.by_scenario
            .get(&inv.alert.scenario)
            .unwrap_or(&self.general)
            .decide(inv)
    }
}

/// The policy the configuration describes.
pub fn policy_matrix(cfg: &ValidatedConfig) -> ScenarioPolicy {
    let general = matrix(cfg, |r| r.scenario.is_empty());
    let mut by_scenario = std::collections::HashMap::new();
    for name in cfg.policy.rules.iter().flat_map(|r| r.scenario.iter()) {
        if !by_scenario.contains_key(name) {
            let m = matrix(cfg, |r| r.scenario.is_empty() || r.scenario.contains(name));
            by_scenario.insert(name.clone(), m);
        }
    }
    ScenarioPolicy {
        general,
        by_scenario,
    }
}

fn matrix(cfg: &ValidatedConfig, keep: impl Fn(&sentinel_config::Rule) -> bool) -> PolicyMatrix {
    let p = &cfg.policy;
    let rules = p
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| keep(r))
        .map(|(i, r)| MatrixRule {
            name: r.name.clone().unwrap_or_else(|| format!("rule #{}", i + 1)),
            severity: r.severity.clone(),
            risk: r.risk.clone(),
            confidence: r.confidence.clone(),
            actions: r
                .actions
                .iter()
                .map(|a| ActionTemplate {
                    kind: a.kind,
                    ttl: p.ttl_for(a),
                    params: a.params.clone(),
                })
                .collect(),
        })
        .collect();
    PolicyMatrix::new(
        rules,
        Bands {
            medium: f64::from(p.risk_bands.medium),
            high: f64::from(p.risk_bands.high),
        },
        Bands {
            medium: p.confidence_bands.medium,
            high: p.confidence_bands.high,
        },
        p.mode,
    )
}

/// The allowlist: loopback, the configured networks, and the address the API listens on.
pub fn allowlist(cfg: &ValidatedConfig) -> Allowlist {
    let mut a = Allowlist::new(cfg.policy.allowlist.iter().copied());
    let ip = cfg.api.listen.ip();
    if !ip.is_unspecified() {
        a.add(ipnet::IpNet::from(ip));
    } else {
        // Listening on every address: every address of this host is a management address.
        match local_addresses() {
            Ok(addrs) => {
                for ip in addrs {
                    a.add(ipnet::IpNet::from(ip));
                }
            }
            Err(e) => {
                tracing::warn!(evt = "local_addresses_unknown", error = %e, note = "only loopback and policy.allowlist protect this host's own addresses")
            }
        }
    }
    a
}

/// This host's own addresses (every interface's, link-local ones included), from `getifaddrs`.
pub(crate) fn local_addresses() -> std::io::Result<Vec<std::net::IpAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .collect())
}

#[cfg(test)]
mod tests {
    use sentinel_core::{
        ActionKind, Alert, AlertId, Investigation, InvestigationId, Policy, Severity, Subject,
        Timestamp, TraceId,
    };

    fn investigation(scenario: &str, subject: Subject, severity: Severity) -> Investigation {
        let alert = Alert {
            id: AlertId::new(),
            ts: Timestamp::now(),
            detector: "falco".into(),
            scenario: scenario.into(),
            severity,
            score: 95,
            confidence: 0.9,
            subject,
            reasons: vec![],
            evidence: vec![],
            trace_id: TraceId::new(),
        };
        Investigation {
            id: InvestigationId::new(),
            ts: Timestamp::now(),
            trace_id: alert.trace_id.clone(),
            alert,
            evidence: vec![],
            risk_score: 100,
            confidence: 0.9,
            uncertainty: vec![],
            contributions: vec![],
        }
    }

    /// The default rules: a critical container alert (the Falco detector's) is isolated for an hour; a
    /// critical alert about an address is blocked as before and never isolated, and a container is never
    /// blocked.
    #[test]
    fn default_rules_isolate_a_critical_container_and_only_that() {
        let cfg = sentinel_config::load_str("policy:\n  mode: enforce\n", None, &[]).unwrap();
        let p = super::policy_matrix(&cfg);
        let c = Subject::Container("web1".into());
        let plan = p.decide(&investigation(
            sentinel_detect::falco::CONTAINER_SCENARIO,
            c.clone(),
            Severity::Critical,
        ));
        assert_eq!(plan.actions.len(), 1, "{plan:?}");
        assert_eq!(plan.actions[0].kind, ActionKind::IsolateContainer);
        assert_eq!(
            (&plan.actions[0].subject, plan.actions[0].ttl_secs),
            (&c, 3600)
        );
        assert!(
            plan.reason.starts_with("isolate_container_threat matched"),
            "{}",
            plan.reason
        );
        // High (Falco's Error) is recorded: the general rules only block addresses.
        let plan = p.decide(&investigation(
            sentinel_detect::falco::CONTAINER_SCENARIO,
            c.clone(),
            Severity::High,
        ));
        assert!(plan.actions.is_empty(), "{plan:?}");
        assert!(plan.reason.contains("skipped block_ip"), "{}", plan.reason);

        let ip = Subject::Ip("203.0.113.7".parse().unwrap());
        for scenario in ["ssh_bruteforce", sentinel_detect::falco::HOST_SCENARIO] {
            let plan = p.decide(&investigation(scenario, ip.clone(), Severity::Critical));
            let kinds: Vec<_> = plan.actions.iter().map(|a| a.kind).collect();
            assert_eq!(kinds, [ActionKind::BlockIp], "{scenario}: {plan:?}");
            assert_eq!(plan.actions[0].ttl_secs, 24 * 3600);
            assert!(!plan.reason.contains("isolate"), "{}", plan.reason);
        }
    }

    #[test]
    fn a_wildcard_listen_protects_every_local_address() {
        let cfg = sentinel_config::load_str("api:\n  listen: 0.0.0.0:8000\n", None, &[]).unwrap();
        let a = super::allowlist(&cfg);
        let local = super::local_addresses().unwrap();
        assert!(local.contains(&"127.0.0.1".parse().unwrap()), "{local:?}");
        for ip in &local {
            assert!(a.covering(*ip).is_some(), "{ip} not protected");
        }
        // The same addresses iproute2 reports (what Sentinel read before, by running `ip -j addr`).
        let out = std::process::Command::new("ip")
            .args(["-j", "addr"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for info in v.as_array().unwrap() {
            for addr in info["addr_info"].as_array().unwrap() {
                let ip: std::net::IpAddr = addr["local"].as_str().unwrap().parse().unwrap();
                assert!(
                    local.contains(&ip),
                    "{ip} (from ip -j addr) missing: {local:?}"
                );
            }
        }
        let cfg = sentinel_config::load_str("api:\n  listen: 127.0.0.2:8000\n", None, &[]).unwrap();
        assert!(super::allowlist(&cfg)
            .covering("127.0.0.2".parse().unwrap())
            .is_some());
    }
}
