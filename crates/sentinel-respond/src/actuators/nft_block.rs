//! `block_ip` with nftables: addresses and ranges as elements of Sentinel's interval sets, each with its
//! own kernel timeout, so a block ends on time even if Sentinel is not running.
//!
//! A spec blocks `Subject::Ip`, or the range in `params.cidr` (which must contain the subject's address).
//! [`NftBlockIp::apply_batch`] puts any number of elements in one nftables transaction: all of them are in
//! place, or none is. Revert deletes exactly the element it added; one already gone (expired, deleted by
//! hand) counts as reverted. This module only adds and deletes elements of Sentinel's own two sets.

use super::nft::{NftError, NftTable, BLOCK_SETS, SET_NET_V4, SET_NET_V6, SET_V4, SET_V6};
use async_trait::async_trait;
use ipnet::IpNet;
use sentinel_core::{
    ActError, ActionKind, ActionParams, ActionSpec, Actuator, Applied, Preview, Subject,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::IpAddr;

/// Elements per `add element` line of a batch script (one transaction whatever the count).
const CHUNK: usize = 5000;

/// Blocks addresses and ranges through Sentinel's nftables sets.
#[derive(Debug, Clone)]
pub struct NftBlockIp {
    table: NftTable,
}

/// One validated element: what to put in which set, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    net: IpNet,
    ttl: u64,
}

impl Element {
    /// The element a spec adds: its parameters are already typed (the range's bounds and normal form
    /// are the [`Cidr`] type's); here only what ties them to the subject is checked again.
    fn from_spec(a: &ActionSpec) -> Result<Element, NftError> {
        let (Subject::Ip(ip), ActionParams::BlockIp(p)) = (&a.subject, &a.params) else {
            return Err(NftError::Invalid(format!(
                "block_ip needs an address and block_ip parameters, not {} with {} parameters",
                a.subject,
                a.params.kind()
            )));
        };
        let net = match p.cidr {
            None => IpNet::from(*ip),
            Some(c) if c.contains(ip) => c.net(),
            Some(c) => {
                return Err(NftError::Invalid(format!(
                    "params.cidr: range {c} does not contain the subject {ip}"
                )))
            }
        };
        if a.ttl_secs == 0 {
            return Err(NftError::Invalid("block_ip needs a ttl above 0 s".into()));
        }
        Ok(Element {
            net,
            ttl: a.ttl_secs,
        })
    }

    fn set(&self) -> &'static str {
        set_for(&self.net)
    }

    /// The element as nft writes it: a bare address for a single host, `addr/len` for a range.
    fn value(&self) -> String {
        format_net(&self.net)
    }

    fn applied(&self, expires: Option<u64>, operations: Vec<String>) -> Applied {
        Applied {
            kind: ActionKind::BlockIp,
            subject: Subject::Ip(self.net.addr()),
            token: json!({
                "set": self.set(),
                "element": self.value(),
                "timeout_secs": self.ttl,
                "expires_secs": expires.unwrap_or(self.ttl),
            }),
            operations,
        }
    }
}

fn set_for(net: &IpNet) -> &'static str {
    let single = net.prefix_len() == net.max_prefix_len();
    match (net, single) {
        (IpNet::V4(_), true) => SET_V4,
        (IpNet::V6(_), true) => SET_V6,
        (IpNet::V4(_), false) => SET_NET_V4,
        (IpNet::V6(_), false) => SET_NET_V6,
    }
}

fn format_net(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

impl NftBlockIp {
    /// A block actuator working in `table`.
    pub fn new(table: NftTable) -> Self {
        Self { table }
    }

    /// The table it works in.
    pub fn table(&self) -> &NftTable {
        &self.table
    }

    /// The script (one line per chunk of a set) that adds `elems`, duplicates removed.
    fn script_lines(&self, elems: &[&Element]) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut lines = Vec::new();
        for set in BLOCK_SETS {
            let items: Vec<String> = elems
                .iter()
                .filter(|e| e.set() == set && seen.insert(e.net))
                .map(|e| format!("{} timeout {}s", e.value(), e.ttl))
                .collect();
            for chunk in items.chunks(CHUNK) {
                lines.push(format!(
                    "add element {} {set} {{ {} }}",
                    self.table.spec(),
                    chunk.join(", ")
                ));
            }
        }
        lines
    }

    /// Applies many blocks in one nftables transaction; one result per spec, in order. Specs that are
    /// not acceptable fail alone; if the kernel refuses the transaction, every other spec fails with it.
    /// The script is `script_lines` of every element, the same builder `plan()` renders
    /// one element with; each result lists its own element's line (merged into the batch's lines).
    pub async fn apply_batch(&self, specs: &[ActionSpec]) -> Vec<Result<Applied, ActError>> {
        let parsed: Vec<Result<Element, NftError>> = specs.iter().map(Element::from_spec).collect();
        let good: Vec<&Element> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let outcome = if good.is_empty() {
            Ok(())
        } else {
            let mut script = self.script_lines(&good).join("\n");
            script.push('\n');
            match self.table.run_ensured(&script).await {
                // Lost mid-transaction: the kernel says whether it was committed (all or nothing).
                Err(e) if e.is_unknown() => self.confirm(&good, e).await,
                other => other,
            }
        };
        let failure = outcome.err().map(|e| e.to_string());
        parsed
            .into_iter()
            .map(|p| match (p, &failure) {
                (Err(e), _) => Err(e.into()),
                (Ok(_), Some(msg)) => Err(ActError::Backend(msg.clone())),
                (Ok(el), None) => {
                    let ops = self.script_lines(&[&el]);
                    Ok(el.applied(None, ops))
                }
            })
            .collect()
    }

    /// After a transaction whose outcome is unknown: `Ok` if every one of `elems` is in its set (the
    /// transaction was committed), else an error saying which it was, or that it cannot be told.
    async fn confirm(&self, elems: &[&Element], unknown: NftError) -> Result<(), NftError> {
        let present: HashSet<IpNet> = match self.list().await {
            Ok(found) => found.iter().filter_map(|a| token_net(a).ok()).collect(),
            Err(e) => {
                return Err(NftError::Unknown(format!(
                    "{unknown}; and the sets could not be listed to tell: {e}"
                )))
            }
        };
        if elems.iter().all(|e| present.contains(&e.net.trunc())) {
            tracing::warn!(
                elements = elems.len(),
                "nft: a transaction whose session was lost was committed (checked in the sets)"
            );
            Ok(())
        } else {
            // One transaction: none of it is there, so none of it was committed.
            Err(NftError::Nft(format!(
                "{unknown}; checked: not in the sets, so not applied"
            )))
        }
    }

    /// Every element in Sentinel's sets, with its remaining time.
    async fn list(&self) -> Result<Vec<Applied>, NftError> {
        let mut out = Vec::new();
        for set in BLOCK_SETS {
            let items = match self
                .table
                .list_json(&["list", "set", "inet", self.table.name(), set])
                .await
            {
                Ok(items) => items,
                Err(e) if e.is_absent() => continue,
                Err(e) => return Err(e),
            };
            for item in &items {
                let Some(elems) = item
                    .get("set")
                    .and_then(|s| s.get("elem"))
                    .and_then(Value::as_array)
                else {
                    continue;
                };
                out.extend(elems.iter().filter_map(parse_elem));
            }
        }
        Ok(out)
    }
}

/// One entry of `nft -j list set`: a bare address, `{"prefix":…}`, or `{"elem":{"val":…, "timeout":…}}`.
fn parse_elem(v: &Value) -> Option<Applied> {
    let (val, timeout, expires) = match v.get("elem") {
        Some(e) => (
            e.get("val")?,
            e.get("timeout").and_then(Value::as_u64),
            e.get("expires").and_then(Value::as_u64),
        ),
        None => (v, None, None),
    };
    let net = match val {
        Value::String(s) => IpNet::from(s.parse::<IpAddr>().ok()?),
        Value::Object(_) => {
            let p = val.get("prefix")?;
            let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
            let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
            IpNet::new(addr, len).ok()?
        }
        _ => return None,
    };
    let el = Element {
        net,
        ttl: timeout.unwrap_or(0),
    };
    Some(el.applied(Some(expires.unwrap_or(0)), Vec::new()))
}

fn token_net(t: &Applied) -> Result<IpNet, NftError> {
    if t.kind != ActionKind::BlockIp {
        return Err(NftError::Token(format!("{} is not block_ip", t.kind)));
    }
    let s = t
        .token
        .get("element")
        .and_then(Value::as_str)
        .ok_or_else(|| NftError::Token("no `element`".into()))?;
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| NftError::Token(format!("`{s}` is not an address or range")))
}

#[async_trait]
impl Actuator for NftBlockIp {
    fn kind(&self) -> ActionKind {
        ActionKind::BlockIp
    }

    async fn plan(&self, a: &ActionSpec) -> Result<Preview, ActError> {
        let el = Element::from_spec(a)?;
        Ok(Preview {
            kind: ActionKind::BlockIp,
            operations: self.script_lines(&[&el]),
        })
    }

    async fn apply(&self, a: &ActionSpec) -> Result<Applied, ActError> {
        self.apply_batch(std::slice::from_ref(a))
            .await
            .pop()
            .unwrap_or_else(|| Err(ActError::Backend("no result".into())))
    }

    async fn apply_batch(&self, specs: &[ActionSpec]) -> Vec<Result<Applied, ActError>> {
        NftBlockIp::apply_batch(self, specs).await
    }

    async fn revert(&self, t: &Applied) -> Result<(), ActError> {
        let net = token_net(t)?;
        let script = format!(
            "delete element {} {} {{ {} }}\n",
            self.table.spec(),
            set_for(&net),
            format_net(&net)
        );
        match self.table.run(&script).await {
            Err(e) if e.is_absent() => Ok(()),
            other => Ok(other?),
        }
    }

    async fn observe(&self) -> Result<Vec<Applied>, ActError> {
        Ok(self.list().await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn spec(ip: &str, params: Value) -> ActionSpec {
        ActionSpec::parse(
            ActionKind::BlockIp,
            Subject::Ip(ip.parse().unwrap()),
            60,
            &params,
        )
        .unwrap()
    }

    #[test]
    fn specs_become_elements() {
        let e = Element::from_spec(&spec("203.0.113.7", Value::Null)).unwrap();
        assert_eq!((e.set(), e.value()), (SET_V4, "203.0.113.7".to_string()));
        let e = Element::from_spec(&spec(
            "2001:db8:1:2::9",
            json!({"cidr": "2001:db8:1:2::/64"}),
        ))
        .unwrap();
        assert_eq!(
            (e.set(), e.value()),
            (SET_NET_V6, "2001:db8:1:2::/64".to_string())
        );
        // A range not holding the subject never becomes a spec; built by hand, the actuator refuses it.
        let mut s = spec("203.0.113.7", Value::Null);
        s.params =
            ActionParams::parse(ActionKind::BlockIp, &json!({"cidr": "198.51.100.0/24"})).unwrap();
        assert!(Element::from_spec(&s).is_err());
        for bad in [
            json!({"cidr": "0.0.0.0/0"}),
            json!({"cidr": "203.0.113.0/24; flush ruleset"}),
            json!({"cidr": 5}),
        ] {
            assert!(ActionParams::parse(ActionKind::BlockIp, &bad).is_err());
        }
    }

    #[test]
    fn batches_are_chunked_and_deduplicated() {
        let b = NftBlockIp::new(NftTable::default());
        let specs: Vec<ActionSpec> = (0..12_000u32)
            .map(|i| spec(&format!("2001:db8::{:x}", i % 11_000), Value::Null))
            .collect();
        let els: Vec<Element> = specs
            .iter()
            .map(|s| Element::from_spec(s).unwrap())
            .collect();
        let refs: Vec<&Element> = els.iter().collect();
        let lines = b.script_lines(&refs);
        assert_eq!(lines.len(), 3);
        let n: usize = lines.iter().map(|l| l.matches(" timeout ").count()).sum();
        assert_eq!(n, 11_000);
        assert!(
            lines[0].starts_with("add element inet sentinel blocked_v6 { 2001:db8:: timeout 60s, ")
        );
    }

    #[test]
    fn listed_elements_parse() {
        let a = parse_elem(&json!({"elem": {"val": {"prefix": {"addr": "203.0.113.0", "len": 24}}, "timeout": 60, "expires": 59}})).unwrap();
        assert_eq!(a.subject, Subject::Ip("203.0.113.0".parse().unwrap()));
        assert_eq!(a.token["element"], "203.0.113.0/24");
        assert_eq!(a.token["expires_secs"], 59);
        let a = parse_elem(&json!({"elem": {"val": "192.0.2.18", "timeout": 30, "expires": 29}}))
            .unwrap();
        assert_eq!(
            token_net(&a).unwrap(),
            "192.0.2.18/32".parse::<IpNet>().unwrap()
        );
    }
}
