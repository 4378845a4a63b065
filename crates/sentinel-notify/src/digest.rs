//! The daily digest: what it sums up ([`DigestFigures`], from a [`DigestSource`]), when it is sent
//! ([`next_run`]) and how it reads ([`digest_notice`]).
//!
//! The engine's scheduler sends it once per UTC day at the configured time; the outbox row's fixed
//! id (`digest:<date>:<channel>`) makes it at most once per day even across restarts.

use sentinel_core::{Notice, NoticeKind, Severity, Timestamp, TraceId};
use sentinel_store::Store;
use serde::Serialize;
use std::fmt::Write as _;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Everything the digest lists, for a window of time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DigestFigures {
    /// Events accepted.
    pub events: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts by scenario, most first.
    pub alerts_by_scenario: Vec<(String, u64)>,
    /// Actions by kind, most first.
    pub actions_by_kind: Vec<(String, u64)>,
    /// Subjects with the most alerts, most first.
    pub top_sources: Vec<(String, u64)>,
    /// Errors of threat-intelligence providers, by provider.
    pub provider_errors: Vec<(String, u64)>,
    /// Actions undone (reverted or expired).
    pub reverted: u64,
    /// The latest of those, as `"<kind> <subject>"`.
    pub reverted_recent: Vec<String>,
}

/// Where the digest's figures come from (the daemon combines the store's with its providers').
#[async_trait::async_trait]
pub trait DigestSource: Send + Sync {
    /// Figures for `[since, until)`; the error is logged and the digest is not sent.
    async fn figures(&self, since: Timestamp, until: Timestamp) -> Result<DigestFigures, String>;
}

/// The store's figures alone (no provider errors), listing at most `top` sources.
#[derive(Debug, Clone)]
pub struct StoreDigestSource {
    store: Store,
    top: usize,
}

impl StoreDigestSource {
    /// Figures from `store`, with at most `top` sources and reverted actions listed.
    pub fn new(store: Store, top: usize) -> StoreDigestSource {
        StoreDigestSource { store, top }
    }
}

#[async_trait::async_trait]
impl DigestSource for StoreDigestSource {
    async fn figures(&self, since: Timestamp, until: Timestamp) -> Result<DigestFigures, String> {
        let d = self
            .store
            .digest(since, until, self.top)
            .await
            .map_err(|e| e.to_string())?;
        Ok(DigestFigures {
            events: d.events,
            alerts: d.alerts,
            alerts_by_scenario: d.alerts_by_scenario,
            actions_by_kind: d.actions_by_kind,
            top_sources: d.top_sources,
            provider_errors: Vec::new(),
            reverted: d.reverted,
            reverted_recent: d.reverted_recent,
        })
    }
}

/// The first time strictly after `now` that is `at` = `(hour, minute)` UTC (hours past 23 and
/// minutes past 59 are clamped).
pub fn next_run(now: Timestamp, at: (u8, u8)) -> Timestamp {
    let ms = now.as_millis();
    let day = ms.div_euclid(DAY_MS) * DAY_MS;
    let offset = i64::from(at.0.min(23)) * 3_600_000 + i64::from(at.1.min(59)) * 60_000;
    let today = day + offset;
    Timestamp::from_millis(if today > ms { today } else { today + DAY_MS })
}

/// The UTC date of `t` as `YYYY-MM-DD`.
pub fn utc_date(t: Timestamp) -> String {
    t.to_rfc3339().chars().take(10).collect()
}

fn list(out: &mut String, name: &str, items: &[(String, u64)]) {
    if items.is_empty() {
        let _ = writeln!(out, "{name}: none");
        return;
    }
    let _ = writeln!(out, "{name}:");
    for (k, n) in items {
        let _ = writeln!(out, "  {k}: {n}");
    }
}

/// The digest as a notice (kind digest, severity info, key `key`), listing every figure.
pub fn digest_notice(f: &DigestFigures, since: Timestamp, until: Timestamp, key: &str) -> Notice {
    let mut body = String::new();
    let _ = writeln!(body, "Sentinel digest from {since} to {until}");
    let _ = writeln!(body);
    let _ = writeln!(body, "events: {}", f.events);
    let _ = writeln!(body, "alerts: {}", f.alerts);
    list(&mut body, "alerts by scenario", &f.alerts_by_scenario);
    list(&mut body, "actions by kind", &f.actions_by_kind);
    list(&mut body, "top sources", &f.top_sources);
    let provider_total: u64 = f.provider_errors.iter().map(|(_, n)| n).sum();
    let _ = writeln!(body, "provider errors: {provider_total}");
    for (k, n) in &f.provider_errors {
        let _ = writeln!(body, "  {k}: {n}");
    }
    let _ = writeln!(body, "reverted: {}", f.reverted);
    for r in &f.reverted_recent {
        let _ = writeln!(body, "  {r}");
    }
    Notice::new(
        NoticeKind::Digest,
        Severity::Info,
        format!(
            "Daily digest {}: {} alerts, {} events",
            utc_date(until),
            f.alerts,
            f.events
        ),
        body.trim_end().to_owned(),
        TraceId::new(),
    )
    .with_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn next_run_is_today_if_still_ahead_else_tomorrow() {
        let now = at("2026-11-30T07:59:59Z");
        assert_eq!(next_run(now, (8, 0)), at("2026-11-30T08:00:00Z"));
        assert_eq!(
            next_run(at("2026-11-30T08:00:00Z"), (8, 0)),
            at("2026-12-01T08:00:00Z")
        );
        assert_eq!(
            next_run(at("2026-11-30T23:59:00Z"), (0, 0)),
            at("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            next_run(at("2026-12-31T22:30:00Z"), (23, 15)),
            at("2026-12-31T23:15:00Z")
        );
        assert_eq!(
            next_run(at("2026-12-31T23:30:00Z"), (23, 15)),
            at("2027-01-01T23:15:00Z")
        );
        assert_eq!(
            next_run(at("2026-11-30T10:00:00Z"), (99, 99)),
            at("2026-11-30T23:59:00Z")
        );
        assert_eq!(utc_date(at("2026-12-31T23:59:59.999Z")), "2026-12-31");
    }

    #[test]
    fn body_lists_every_figure() {
        let f = DigestFigures {
            events: 1234,
            alerts: 7,
            alerts_by_scenario: vec![("ssh_bruteforce".into(), 5), ("web_scan".into(), 2)],
            actions_by_kind: vec![("block_ip".into(), 4)],
            top_sources: vec![("ip:203.0.113.7".into(), 5)],
            provider_errors: vec![("abuseipdb".into(), 3)],
            reverted: 2,
            reverted_recent: vec!["block_ip ip:203.0.113.9".into()],
        };
        let n = digest_notice(
            &f,
            at("2026-11-29T08:00:00Z"),
            at("2026-11-30T08:00:00Z"),
            "2026-11-30",
        );
        assert_eq!(n.kind, NoticeKind::Digest);
        assert_eq!(n.dedup_key(), "digest:2026-11-30");
        for needle in [
            "events: 1234",
            "alerts: 7",
            "ssh_bruteforce: 5",
            "web_scan: 2",
            "block_ip: 4",
            "ip:203.0.113.7: 5",
            "provider errors: 3",
            "abuseipdb: 3",
            "reverted: 2",
            "block_ip ip:203.0.113.9",
        ] {
            assert!(n.body.contains(needle), "{needle} missing from\n{}", n.body);
        }
        let empty = digest_notice(
            &DigestFigures::default(),
            at("2026-11-29T08:00:00Z"),
            at("2026-11-30T08:00:00Z"),
            "k",
        );
        assert!(empty.body.contains("top sources: none"));
    }
}
