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
use sentinel_core::{
    ActError, ActionKind, ActionParams, ActionSpec, Actuator, Applied, Preview, Subject,
};
use std::net::SocketAddr;

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

    /// The rule line and its comment for a spec, built only from its typed values: addresses and
    /// ports are re-formatted from their parsed forms, the comment is generated.
    fn rule(&self, a: &ActionSpec) -> Result<(String, String), NftError> {
        let (Subject::Ip(ip), ActionParams::RedirectToHoneypot(p)) = (&a.subject, &a.params) else {
            return Err(NftError::Invalid(format!(
                "redirect_to_honeypot needs an address and redirect parameters, not {} with {} parameters",
                a.subject,
                a.params.kind()
            )));
        };
        let honeypot = p.honeypot.ok_or_else(|| {
            NftError::Invalid("params.honeypot: required (an address:port)".into())
        })?;
        let honeypot: SocketAddr = honeypot.addr();
        if honeypot.is_ipv4() != ip.is_ipv4() {
            return Err(NftError::Invalid(
                "params.honeypot: must be of the attacker's address family".into(),
            ));
        }
        let ports: Vec<String> = match &p.ports {
            Some(list) => list.entries().iter().map(|p| p.to_string()).collect(),
            None => vec!["22".into()],
        };
        let fam = if ip.is_ipv4() { "ip" } else { "ip6" };
        let comment = tagged::comment_for(a, p.action_id.as_ref())?;
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
        let operations =
            tagged::apply_rule(&self.table, CHAIN_HONEYPOT, &line, &comment, a.subject.ip())
                .await?;
        Ok(Applied {
            kind: ActionKind::RedirectToHoneypot,
            subject: a.subject.clone(),
            token: tagged::token(CHAIN_HONEYPOT, &comment),
            operations,
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

    fn spec(ip: &str, params: serde_json::Value) -> ActionSpec {
        let p = ActionParams::parse(ActionKind::RedirectToHoneypot, &params).unwrap();
        ActionSpec {
            kind: ActionKind::RedirectToHoneypot,
            subject: Subject::Ip(ip.parse().unwrap()),
            ttl_secs: 60,
            params: p,
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
        // Wrong family or no honeypot: refused by the actuator.
        for bad in [
            json!({"honeypot": "[2001:db8::30]:2222"}),
            json!({"ports": [22]}),
        ] {
            assert!(r.rule(&spec("192.0.2.18", bad)).is_err());
        }
        // Malformed values never become parameters at all.
        for bad in [
            json!({"honeypot": "2001:db8::30"}),
            json!({"honeypot": "192.0.2.30:2222", "ports": [0]}),
            json!({"honeypot": "192.0.2.30:2222", "ports": ["22 } flush ruleset"]}),
            json!({"honeypot": "192.0.2.30:2222", "ports": []}),
        ] {
            assert!(ActionParams::parse(ActionKind::RedirectToHoneypot, &bad).is_err());
        }
        let (line, _) = r
            .rule(&spec(
                "192.0.2.18",
                json!({"honeypot": "192.0.2.30:2222", "ports": [22, "8000-8010"]}),
            ))
            .unwrap();
        assert!(line.contains("tcp dport { 22, 8000-8010 } counter dnat ip to 192.0.2.30:2222"));
    }
}
