//! The record-only actuator: computes the exact operations an action would make and applies nothing.
//!
//! It is what every kind uses in `observe` mode, and what a kind falls back to until a kernel or engine
//! actuator is configured for it; asked to apply, it refuses with a clear error instead of pretending.

use async_trait::async_trait;
use sentinel_core::{ActError, ActionKind, ActionSpec, Actuator, Applied, Preview, Subject};
use std::net::IpAddr;

/// Dry run only, for one action kind.
#[derive(Debug, Clone, Copy)]
pub struct RecordOnly {
    kind: ActionKind,
}

impl RecordOnly {
    /// A record-only actuator for `kind`.
    pub fn new(kind: ActionKind) -> Self {
        Self { kind }
    }
}

/// The nftables set an address belongs in.
fn set_for(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "blocked_v4",
        IpAddr::V6(_) => "blocked_v6",
    }
}

/// The operations an action would make, as the commands an operator could run by hand.
pub(crate) fn operations(a: &ActionSpec) -> Result<Vec<String>, ActError> {
    let ttl = a.ttl_secs;
    let ops = match (a.kind, &a.subject) {
        (ActionKind::BlockIp, Subject::Ip(ip)) => {
            match a.params.get("cidr").and_then(|c| c.as_str()) {
                Some(cidr) => {
                    let set = if ip.is_ipv4() {
                        "blocked_net_v4"
                    } else {
                        "blocked_net_v6"
                    };
                    vec![format!(
                        "nft add element inet sentinel {set} {{ {cidr} timeout {ttl}s }}"
                    )]
                }
                None => vec![format!(
                    "nft add element inet sentinel {} {{ {ip} timeout {ttl}s }}",
                    set_for(ip)
                )],
            }
        }
        (ActionKind::RateLimit, Subject::Ip(ip)) => {
            let rate = a
                .params
                .get("rate_per_sec")
                .and_then(|v| v.as_u64())
                .unwrap_or(10);
            let fam = if ip.is_ipv4() { "ip" } else { "ip6" };
            vec![format!(
                "nft add rule inet sentinel input {fam} saddr {ip} limit rate over {rate}/second drop comment \"sentinel ttl={ttl}s\""
            )]
        }
        (ActionKind::RedirectToHoneypot, Subject::Ip(ip)) => {
            let to = a
                .params
                .get("honeypot")
                .and_then(|v| v.as_str())
                .unwrap_or("<honeypot>");
            let ports = a
                .params
                .get("ports")
                .map(|p| p.to_string())
                .unwrap_or_else(|| "22".into());
            vec![format!(
                "nft add rule inet sentinel prerouting ip saddr {ip} tcp dport {ports} dnat to {to} comment \"sentinel ttl={ttl}s\""
            )]
        }
        (ActionKind::IsolateContainer, Subject::Container(c)) => vec![
            format!("GET /containers/{c}/json (remember networks, aliases, addresses)"),
            format!("POST /networks/<each>/disconnect {{\"Container\":\"{c}\",\"Force\":true}}"),
        ],
        (ActionKind::QuarantineFile, Subject::File(p)) => vec![format!(
            "move {p} to the quarantine directory (0600), recording path, mode, owner and sha256"
        )],
        (kind, subject) => {
            return Err(ActError::Refused(format!(
                "{kind} does not apply to {subject}"
            )));
        }
    };
    Ok(ops)
}

#[async_trait]
impl Actuator for RecordOnly {
    fn kind(&self) -> ActionKind {
        self.kind
    }

    async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
        Ok(Preview {
            kind: a.kind,
            operations: operations(a)?,
        })
    }

    async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
        Err(ActError::Backend(format!(
            "no enforcing actuator is configured for {}; only observe mode is available for it",
            a.kind
        )))
    }

    async fn revert(&self, _t: &Applied) -> Result<(), ActError> {
        Ok(())
    }

    async fn observe(&self) -> Result<Vec<Applied>, ActError> {
        Ok(Vec::new())
    }
}
