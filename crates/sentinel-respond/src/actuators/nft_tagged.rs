//! Rules Sentinel owns one by one, found again by their comment: the scheme behind rate limits and
//! honeypot redirects.
//!
//! Each such rule carries a generated comment `sentinel:<tag>`, where the tag is the action id given in
//! `params.action_id` (validated) or a stable hash of the whole spec. Applying adds the rule unless one
//! with that comment is already in the chain; reverting looks the handles up with `nft -j -a` and deletes
//! exactly those rules. Only rules in Sentinel's own chains are ever listed or deleted.

use super::nft::{NftError, NftTable, COMMENT_PREFIX};
use sentinel_core::params::RuleTag;
use sentinel_core::{ActionKind, ActionSpec, Applied, Subject};
use serde_json::{json, Value};

/// The comment that identifies the rule an action adds: the action's typed `action_id` tag, or a
/// stable hash of the whole (typed) spec.
pub fn comment_for(a: &ActionSpec, tag: Option<&RuleTag>) -> Result<String, NftError> {
    let tag = match tag {
        Some(t) => t.as_str().to_owned(),
        None => {
            let text = serde_json::to_string(a).map_err(|e| NftError::Invalid(e.to_string()))?;
            format!("{:016x}", fnv1a(text.as_bytes()))
        }
    };
    Ok(format!("{COMMENT_PREFIX}{tag}"))
}

/// 64-bit FNV-1a: stable across builds and Rust versions, which is all a tag needs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The script line adding `body` to `chain`, tagged with `comment`.
pub fn add_line(table: &NftTable, chain: &str, body: &str, comment: &str) -> String {
    format!(
        "add rule {} {chain} {body} comment \"{comment}\"",
        table.spec()
    )
}

/// Adds the rule unless a rule with the same comment is already in the chain; returns the operations
/// it ran: the rule's line, or none when the rule was found in place.
///
/// A rule with the comment but another source address is not this action's rule: a caller-given
/// `action_id` naming another source's rule is refused (taking it as "in place" would record an action
/// that changed nothing, and its revert would delete the other source's rule).
pub async fn apply_rule(
    table: &NftTable,
    chain: &str,
    line: &str,
    comment: &str,
    saddr: Option<std::net::IpAddr>,
) -> Result<Vec<String>, NftError> {
    table.ensure_cached().await?;
    let rules = table.list_rules(chain).await?;
    let same: Vec<_> = rules
        .iter()
        .filter(|r| r.comment.as_deref() == Some(comment))
        .collect();
    if same.iter().any(|r| r.saddr() != saddr) {
        return Err(NftError::Invalid(
            "params.action_id: already tags the rule of another source".into(),
        ));
    }
    if !same.is_empty() {
        return Ok(Vec::new());
    }
    table.run(&format!("{line}\n")).await?;
    Ok(vec![line.to_owned()])
}

/// The revert token of a tagged rule.
pub fn token(chain: &str, comment: &str) -> Value {
    json!({ "chain": chain, "comment": comment })
}

/// The comment a token names, checked to be one Sentinel generates.
pub fn token_comment(t: &Applied, kind: ActionKind) -> Result<String, NftError> {
    if t.kind != kind {
        return Err(NftError::Token(format!("{} is not {kind}", t.kind)));
    }
    let c = t
        .token
        .get("comment")
        .and_then(Value::as_str)
        .ok_or_else(|| NftError::Token("no `comment`".into()))?;
    let tag = c
        .strip_prefix(COMMENT_PREFIX)
        .ok_or_else(|| NftError::Token(format!("`{c}` is not a Sentinel comment")))?;
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    if !ok {
        return Err(NftError::Token(format!("`{c}` is not a Sentinel comment")));
    }
    Ok(c.to_string())
}

/// Deletes every rule of `chain` carrying `comment`; none left is success.
pub async fn revert_rule(table: &NftTable, chain: &str, comment: &str) -> Result<(), NftError> {
    let script: String = table
        .list_rules(chain)
        .await?
        .iter()
        .filter(|r| r.comment.as_deref() == Some(comment))
        .map(|r| format!("delete rule {} {chain} handle {}\n", table.spec(), r.handle))
        .collect();
    if script.is_empty() {
        return Ok(());
    }
    match table.run(&script).await {
        Err(e) if e.is_absent() => Ok(()),
        other => other,
    }
}

/// Every Sentinel-tagged rule of `chain` with a source address, as revert tokens.
pub async fn observe_rules(
    table: &NftTable,
    chain: &str,
    kind: ActionKind,
) -> Result<Vec<Applied>, NftError> {
    Ok(table
        .list_rules(chain)
        .await?
        .into_iter()
        .filter_map(|r| {
            let comment = r.comment.as_deref()?;
            if !comment.starts_with(COMMENT_PREFIX) {
                return None;
            }
            let ip = r.saddr()?;
            let mut tok = token(chain, comment);
            tok["handle"] = json!(r.handle);
            Some(Applied {
                kind,
                subject: Subject::Ip(ip),
                token: tok,
                operations: Vec::new(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn spec() -> ActionSpec {
        ActionSpec::plain(
            ActionKind::RateLimit,
            Subject::Ip("192.0.2.18".parse().unwrap()),
            60,
        )
    }

    #[test]
    fn comments_are_generated_and_stable() {
        let a = comment_for(&spec(), None).unwrap();
        assert_eq!(a, comment_for(&spec(), None).unwrap());
        assert!(a.starts_with("sentinel:") && a.len() == 9 + 16);
        let tag: RuleTag = "01HX-a_b".parse().unwrap();
        assert_eq!(
            comment_for(&spec(), Some(&tag)).unwrap(),
            "sentinel:01HX-a_b"
        );
        assert!("x\" ; flush ruleset".parse::<RuleTag>().is_err());
    }

    #[test]
    fn tokens_must_carry_a_generated_comment() {
        let mut t = Applied {
            kind: ActionKind::RateLimit,
            subject: Subject::Ip("192.0.2.18".parse().unwrap()),
            token: token("ratelimit", "sentinel:abc"),
            operations: Vec::new(),
        };
        assert_eq!(
            token_comment(&t, ActionKind::RateLimit).unwrap(),
            "sentinel:abc"
        );
        assert!(token_comment(&t, ActionKind::BlockIp).is_err());
        t.token = token("ratelimit", "sentinel:a\"b");
        assert!(token_comment(&t, ActionKind::RateLimit).is_err());
        t.token = token("ratelimit", "other:abc");
        assert!(token_comment(&t, ActionKind::RateLimit).is_err());
    }
}
