//! `redirect_to_honeypot` with nftables: a DNAT rule per attacker in Sentinel's nat chain `honeypot`
//! (prerouting, priority -110, so before Docker's DNAT at -100), sending the attacker's new TCP
//! connections to the given ports to the honeypot instead.
//!
//! Params: `honeypot` (`"192.0.2.30:2222"` or `"[2001:db8::30]:2222"`, same family as the attacker) and
//! `ports` (default `[22]`). Connections already open are not moved (NAT applies to new connections).
//! The honeypot must be reachable from this host (routing/forwarding is the operator's part). Rules are
//! found by their comment (see `nft_tagged`); expiry is the ledger's job.

use super::nft::{NftError, NftTable, CHAIN_HONEYPOT};
use super::nft_tagged as tagged;
use async_trait::async_trait;
use sentinel_core::{ActError, ActionKind, ActionSpec, Actuator, Applied, Preview, Subject};
use serde_json::Value;
use std::net::SocketAddr;

/// Most ports one redirect may list.
const MAX_PORTS: usize = 64;

/// Redirects an address's TCP connections to a honeypot.
#[derive(Debug, Clone)]
pub struct NftHoneypotRedirect {
    table: NftTable,
}

impl NftHoneypotRedirect {
    /// A redirect actuator working in `table`.
    pub fn new(table: NftTable) -> Self {
        Self { table }
    }

    /// The rule line and its comment for a spec.
    fn rule(&self, a: &ActionSpec) -> Result<(String, String), NftError> {
        if a.kind != ActionKind::RedirectToHoneypot {
            return Err(NftError::Invalid(format!(
                "{} is not redirect_to_honeypot",
                a.kind
            )));
        }
        let Subject::Ip(ip) = a.subject else {
            return Err(NftError::Invalid(format!(
                "redirect_to_honeypot needs an address, not {}",
                a.subject
            )));
        };
        let honeypot: SocketAddr = a
            .params
            .get("honeypot")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| NftError::Invalid("params.honeypot must be an address:port".into()))?;
        if honeypot.is_ipv4() != ip.is_ipv4() || honeypot.port() == 0 {
            return Err(NftError::Invalid(format!(
                "honeypot {honeypot} does not fit the attacker {ip} (same family, port above 0)"
            )));
        }
        let ports: Vec<u16> = match a.params.get("ports") {
            None | Some(Value::Null) => vec![22],
            Some(Value::Array(list)) => list
                .iter()
                .map(|p| {
                    p.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| *n > 0)
                })
                .collect::<Option<Vec<u16>>>()
                .ok_or_else(|| NftError::Invalid("ports must be numbers 1-65535".into()))?,
            Some(other) => {
                return Err(NftError::Invalid(format!(
                    "ports must be a list, not {other}"
                )))
            }
        };
        if ports.is_empty() || ports.len() > MAX_PORTS {
            return Err(NftError::Invalid(format!(
                "a redirect needs 1 to {MAX_PORTS} ports"
            )));
        }
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let fam = if ip.is_ipv4() { "ip" } else { "ip6" };
        let comment = tagged::comment_for(a)?;
        let body = format!(
            "{fam} saddr {ip} tcp dport {{ {} }} counter dnat {fam} to {honeypot}",
            ports.join(", ")
        );
        Ok((
            tagged::add_line(&self.table, CHAIN_HONEYPOT, &body, &comment),
            comment,
        ))
    }
}

#[async_trait]
impl Actuator for NftHoneypotRedirect {
    fn kind(&self) -> ActionKind {
        ActionKind::RedirectToHoneypot
    }

    async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
        let (line, _) = self.rule(a)?;
        Ok(Preview {
            kind: ActionKind::RedirectToHoneypot,
            operations: vec![line],
        })
    }

    async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
        let (line, comment) = self.rule(a)?;
        tagged::apply_rule(&self.table, CHAIN_HONEYPOT, &line, &comment).await?;
        Ok(Applied {
            kind: ActionKind::RedirectToHoneypot,
            subject: a.subject.clone(),
            token: tagged::token(CHAIN_HONEYPOT, &comment),
        })
    }

    async fn revert(&self, t: &Applied) -> Result<(), ActError> {
        let comment = tagged::token_comment(t, ActionKind::RedirectToHoneypot)?;
        Ok(tagged::revert_rule(&self.table, CHAIN_HONEYPOT, &comment).await?)
    }

    async fn observe(&self) -> Result<Vec<Applied>, ActError> {
        Ok(
            tagged::observe_rules(&self.table, CHAIN_HONEYPOT, ActionKind::RedirectToHoneypot)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn spec(ip: &str, params: Value) -> ActionSpec {
        ActionSpec {
            kind: ActionKind::RedirectToHoneypot,
            subject: Subject::Ip(ip.parse().unwrap()),
            ttl_secs: 60,
            params,
        }
    }

    #[test]
    fn rules_are_built_from_typed_params() {
        let r = NftHoneypotRedirect::new(NftTable::default());
        let (line, _) = r
            .rule(&spec(
                "192.0.2.18",
                json!({"honeypot": "192.0.2.30:2222", "ports": [22, 2022], "action_id": "r1"}),
            ))
            .unwrap();
        assert_eq!(
            line,
            "add rule inet sentinel honeypot ip saddr 192.0.2.18 tcp dport { 22, 2022 } counter dnat ip to 192.0.2.30:2222 comment \"sentinel:r1\""
        );
        let (line, _) = r
            .rule(&spec(
                "2001:db8::7",
                json!({"honeypot": "[2001:db8::30]:2222"}),
            ))
            .unwrap();
        assert!(line.contains(
            "ip6 saddr 2001:db8::7 tcp dport { 22 } counter dnat ip6 to [2001:db8::30]:2222"
        ));
        for bad in [
            json!({"honeypot": "2001:db8::30"}),
            json!({"honeypot": "[2001:db8::30]:2222"}),
            json!({"honeypot": "192.0.2.30:2222", "ports": [0]}),
            json!({"honeypot": "192.0.2.30:2222", "ports": ["22 } flush ruleset"]}),
            json!({"honeypot": "192.0.2.30:2222", "ports": []}),
        ] {
            assert!(r.rule(&spec("192.0.2.18", bad)).is_err());
        }
    }
}
