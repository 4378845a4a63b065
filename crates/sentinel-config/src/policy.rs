//! Reading and checking the `policy` section: mode, allowlist, TTLs, the ordered rules (severity
//! names, band names, action kinds, TTLs within `max_ttl`, each action's parameters parsed into their
//! typed form) and the risk and confidence bands.
//! Part of the pure `validate` step; it does no I/O.

use crate::model::{ActionRule, Band, ConfidenceBands, PolicyConfig, RiskBands, Rule};
use crate::reader::{Node, Reader};
use ipnet::IpNet;
use sentinel_core::{ActionKind, ActionParams, Mode, Severity};
use serde_json::Value;
use std::fmt::Display;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// Reads `policy`.
pub(crate) fn policy(r: &mut Reader, s: Option<&Node<'_>>) -> Option<PolicyConfig> {
    let mode = r.get(s, "mode").and_then(|n| mode(r, &n));
    let allowlist = r.get(s, "allowlist").and_then(|n| r.each(&n, allow_entry));
    let default_ttl = r.get(s, "default_ttl").and_then(|n| r.duration(&n));
    let max_ttl_node = r.get(s, "max_ttl");
    let max_ttl = max_ttl_node.as_ref().and_then(|n| r.duration(n));
    let max_ttl = match (max_ttl, &max_ttl_node) {
        (Some(m), Some(n)) if m.as_secs() > sentinel_core::params::MAX_TTL_SECS => {
            r.fail(
                &n.path,
                format!(
                    "{} is longer than any action may last ({}d; nftables refuses longer timeouts)",
                    fmt(m),
                    sentinel_core::params::MAX_TTL_SECS / 86_400
                ),
            );
            None
        }
        (m, _) => m,
    };
    if let (Some(d), Some(m), Some(s)) = (default_ttl, max_ttl, s) {
        if d > m {
            r.fail(
                &format!("{}.default_ttl", s.path),
                format!("{} is longer than policy.max_ttl ({})", fmt(d), fmt(m)),
            );
        }
    }
    let rules = r
        .get(s, "rules")
        .and_then(|n| r.each(&n, |r, e| rule(r, e, max_ttl)));
    let bands = r.get(s, "risk_bands");
    let risk_bands = risk_bands(r, bands.as_ref());
    let bands = r.get(s, "confidence_bands");
    let confidence_bands = confidence_bands(r, bands.as_ref());
    Some(PolicyConfig {
        mode: mode?,
        allowlist: allowlist?,
        default_ttl: default_ttl?,
        max_ttl: max_ttl?,
        rules: rules?,
        risk_bands: risk_bands?,
        confidence_bands: confidence_bands?,
    })
}

fn fmt(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

fn mode(r: &mut Reader, n: &Node<'_>) -> Option<Mode> {
    let s = r.string(n)?;
    match s.trim().to_ascii_lowercase().as_str() {
        "observe" => Some(Mode::Observe),
        "enforce" => Some(Mode::Enforce),
        _ => {
            r.fail(&n.path, format!("unknown mode `{s}` (observe, enforce)"));
            None
        }
    }
}

/// A CIDR, or a plain address taken as a single-host network.
fn allow_entry(r: &mut Reader, n: &Node<'_>) -> Option<IpNet> {
    let s = r.string(n)?;
    let t = s.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        return Some(net);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(IpNet::from(ip));
    }
    r.fail(&n.path, format!("not a CIDR or IP address: {s:?}"));
    None
}

fn rule(r: &mut Reader, e: &Node<'_>, max_ttl: Option<Duration>) -> Option<Rule> {
    let name = match r.optional(e, "name") {
        None => Some(None),
        Some(n) => r.string(&n).map(|s| Some(s.to_string())),
    };
    let scenario = match r.optional(e, "scenario") {
        None => Some(Vec::new()),
        Some(n) => match n.value {
            Value::String(s) => Some(vec![s.clone()]),
            _ => r.each(&n, |r, s| r.string(s).map(str::to_owned)),
        },
    };
    let severity = r
        .get(Some(e), "severity")
        .and_then(|n| any_or_list(r, &n, &Severity::ALL));
    let risk = r
        .get(Some(e), "risk")
        .and_then(|n| any_or_list(r, &n, &Band::ALL));
    let confidence = r
        .get(Some(e), "confidence")
        .and_then(|n| any_or_list(r, &n, &Band::ALL));
    let actions = r
        .get(Some(e), "actions")
        .and_then(|n| r.each(&n, |r, a| action(r, a, max_ttl)));
    Some(Rule {
        name: name?,
        scenario: scenario?,
        severity: severity?,
        risk: risk?,
        confidence: confidence?,
        actions: actions?,
    })
}

/// `"any"` (all values), a single name, or a non-empty list of names.
fn any_or_list<T>(r: &mut Reader, n: &Node<'_>, all: &[T]) -> Option<Vec<T>>
where
    T: FromStr + Copy + PartialEq,
    T::Err: Display,
{
    if let Value::String(s) = n.value {
        if s.trim().eq_ignore_ascii_case("any") {
            return Some(all.to_vec());
        }
        return r.named::<T>(n).map(|t| vec![t]);
    }
    let items = r.each(n, |r, item| r.named::<T>(item))?;
    if items.is_empty() {
        r.fail(
            &n.path,
            "must not be empty (write \"any\" to match everything)",
        );
        return None;
    }
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for t in items {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Some(out)
}

fn action(r: &mut Reader, a: &Node<'_>, max_ttl: Option<Duration>) -> Option<ActionRule> {
    let kind = r
        .get(Some(a), "kind")
        .and_then(|n| r.named::<ActionKind>(&n));
    let ttl = match r.optional(a, "ttl") {
        None => Some(None),
        Some(n) => r.duration(&n).and_then(|d| match max_ttl {
            Some(m) if d > m => {
                r.fail(
                    &n.path,
                    format!("{} is longer than policy.max_ttl ({})", fmt(d), fmt(m)),
                );
                None
            }
            _ => Some(Some(d)),
        }),
    };
    // Parsed into the kind's typed parameters now, so a bad value is a config error naming the rule's
    // action and the field, never a surprise at the first alert.
    let given = r
        .optional(a, "params")
        .map_or(Value::Null, |n| n.value.clone());
    let params = kind.and_then(|k| match ActionParams::parse(k, &given) {
        Ok(p) => Some(p),
        Err(e) => {
            r.fail(&format!("{}.{}", a.path, e.field), e.reason);
            None
        }
    });
    Some(ActionRule {
        kind: kind?,
        ttl: ttl?,
        params: params?,
    })
}

fn risk_bands(r: &mut Reader, s: Option<&Node<'_>>) -> Option<RiskBands> {
    let medium = r.get(s, "medium").and_then(|n| r.int::<u8>(&n, 1, 100));
    let high = r.get(s, "high").and_then(|n| r.int::<u8>(&n, 1, 100));
    let (medium, high, s) = (medium?, high?, s?);
    if medium >= high {
        r.fail(
            &s.path,
            format!("need 0 < medium < high <= 100, got medium {medium} and high {high}"),
        );
        return None;
    }
    Some(RiskBands { medium, high })
}

fn confidence_bands(r: &mut Reader, s: Option<&Node<'_>>) -> Option<ConfidenceBands> {
    let mut unit = |key: &str| {
        let n = r.get(s, key)?;
        let f = r.float(&n)?;
        if f > 0.0 && f <= 1.0 {
            Some(f)
        } else {
            r.fail(
                &n.path,
                format!("must be greater than 0 and at most 1, got {f}"),
            );
            None
        }
    };
    let medium = unit("medium");
    let high = unit("high");
    let (medium, high, s) = (medium?, high?, s?);
    if medium >= high {
        r.fail(
            &s.path,
            format!("need 0 < medium < high <= 1, got medium {medium} and high {high}"),
        );
        return None;
    }
    Some(ConfidenceBands { medium, high })
}
