//! `rate_limit` with nftables: one `limit rate over … drop` rule per source address in Sentinel's
//! `ratelimit` chain (jumped to from its input and forward chains).
//!
//! Params: `rate_per_sec` (packets, default 10) with `burst` (packets, default 5), or
//! `rate_bytes_per_sec` with `burst_bytes` (default: one second's worth). nft has no timeout for rules,
//! so expiry is the ledger's job: it calls revert when the TTL is up. Rules are found by their comment
//! (see `nft_tagged`); this module touches no other rule.

use super::nft::{NftError, NftTable, CHAIN_RATELIMIT};
use super::nft_tagged as tagged;
use async_trait::async_trait;
use sentinel_core::params::{DEFAULT_BURST, DEFAULT_RATE_PER_SEC};
use sentinel_core::{
    ActError, ActionKind, ActionParams, ActionSpec, Actuator, Applied, Preview, Subject,
};

/// Limits the rate of traffic from single addresses.
#[derive(Debug, Clone)]
pub struct NftRateLimit {
    table: NftTable,
}

impl NftRateLimit {
    /// A rate-limit actuator working in `table`.
    pub fn new(table: NftTable) -> Self {
        Self { table }
    }

    /// The rule line and its comment for a spec, built only from its typed values: the address is
    /// re-formatted from its parsed form, rates and bursts are integers above zero, the comment is
    /// generated.
    fn rule(&self, a: &ActionSpec) -> Result<(String, String), NftError> {
        let (Subject::Ip(ip), ActionParams::RateLimit(p)) = (&a.subject, &a.params) else {
            return Err(NftError::Invalid(format!(
                "rate_limit needs an address and rate_limit parameters, not {} with {} parameters",
                a.subject,
                a.params.kind()
            )));
        };
        let fam = if ip.is_ipv4() { "ip" } else { "ip6" };
        let limit = match p.rate_bytes_per_sec {
            Some(bytes) => {
                let burst = p.burst_bytes.unwrap_or(bytes);
                format!("limit rate over {bytes} bytes/second burst {burst} bytes")
            }
            None => {
                let rate = p.rate_per_sec.map_or(DEFAULT_RATE_PER_SEC, |r| r.get());
                let burst = p.burst.map_or(DEFAULT_BURST, |b| b.get());
                format!("limit rate over {rate}/second burst {burst} packets")
            }
        };
        let comment = tagged::comment_for(a, p.action_id.as_ref())?;
        let body = format!("{fam} saddr {ip} {limit} counter drop");
        Ok((
            tagged::add_line(&self.table, CHAIN_RATELIMIT, &body, &comment),
            comment,
        ))
    }
}

#[async_trait]
impl Actuator for NftRateLimit {
    fn kind(&self) -> ActionKind {
        ActionKind::RateLimit
    }

    async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
        let (line, _) = self.rule(a)?;
        Ok(Preview {
            kind: ActionKind::RateLimit,
            operations: vec![line],
        })
    }

    async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
        let (line, comment) = self.rule(a)?;
        let operations = tagged::apply_rule(
            &self.table,
            CHAIN_RATELIMIT,
            &line,
            &comment,
            a.subject.ip(),
        )
        .await?;
        Ok(Applied {
            kind: ActionKind::RateLimit,
            subject: a.subject.clone(),
            token: tagged::token(CHAIN_RATELIMIT, &comment),
            operations,
        })
    }

    async fn revert(&self, t: &Applied) -> Result<(), ActError> {
        let comment = tagged::token_comment(t, ActionKind::RateLimit)?;
        Ok(tagged::revert_rule(&self.table, CHAIN_RATELIMIT, &comment).await?)
    }

    async fn observe(&self) -> Result<Vec<Applied>, ActError> {
        Ok(tagged::observe_rules(&self.table, CHAIN_RATELIMIT, ActionKind::RateLimit).await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn spec(ip: &str, params: serde_json::Value) -> ActionSpec {
        ActionSpec::parse(
            ActionKind::RateLimit,
            Subject::Ip(ip.parse().unwrap()),
            60,
            &params,
        )
        .unwrap()
    }

    #[test]
    fn rules_are_built_from_typed_params() {
        let r = NftRateLimit::new(NftTable::default());
        let (line, _) = r
            .rule(&spec(
                "192.0.2.18",
                json!({"rate_per_sec": 100, "action_id": "a1"}),
            ))
            .unwrap();
        assert_eq!(
            line,
            "add rule inet sentinel ratelimit ip saddr 192.0.2.18 limit rate over 100/second burst 5 packets counter drop comment \"sentinel:a1\""
        );
        let (line, _) = r
            .rule(&spec("2001:db8::7", json!({"rate_bytes_per_sec": 10000})))
            .unwrap();
        assert!(line.contains(
            "ip6 saddr 2001:db8::7 limit rate over 10000 bytes/second burst 10000 bytes"
        ));
        for bad in [json!("10; flush"), json!(0), json!(-1)] {
            assert!(
                ActionParams::parse(ActionKind::RateLimit, &json!({ "rate_per_sec": bad }))
                    .is_err()
            );
        }
        let (line, _) = r
            .rule(&spec("192.0.2.18", serde_json::Value::Null))
            .unwrap();
        assert!(line.contains("limit rate over 10/second burst 5 packets"));
    }
}
