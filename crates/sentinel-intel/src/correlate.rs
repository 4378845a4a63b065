//! Correlation: what an alert, its evidence, the missing answers and the local context add up to.
//!
//! Pure and deterministic: the same inputs always give the same [`Scored`], with one [`Contribution`]
//! per input in the order applied. The contributions' `risk` points add up exactly to the final
//! `risk_score`, and their `confidence` parts to the final confidence: when the sum falls outside the
//! allowed range, the clamp is recorded as a contribution of its own (`clamp`), so the dashboard's
//! explanation always adds up.
//!
//! # Risk (0–100), in points
//!
//! | input | points |
//! |---|---|
//! | `alert` | the detector's score, plus [`SEVERITY_INFO`] −10 / [`SEVERITY_LOW`] −5 / medium 0 / [`SEVERITY_HIGH`] +5 / [`SEVERITY_CRITICAL`] +10 |
//! | a remote provider | malicious [`PROVIDER_MALICIOUS`] +30, suspicious [`PROVIDER_SUSPICIOUS`] +12, each × the provider's score / 100 (at least ×0.5: a verdict counts at least half, and fully when no score is given); safe [`PROVIDER_SAFE`] −25; info 0 |
//! | `feeds` | the worst listing: malicious feed [`FEED_MALICIOUS`] +35, suspicious [`FEED_SUSPICIOUS`] +15 (× score as above), allow-list (safe) [`FEED_SAFE`] −30; +[`FEED_EXTRA_LISTING`] 5 per further bad listing, at most [`FEED_EXTRA_CAP`] 10 |
//! | `local_context` | loopback [`LOOPBACK`] −40, private [`PRIVATE`] −15, documentation / public 0; without the store's history, its own count of earlier alerts as `history` below |
//! | `asset` | criticality low [`ASSET_LOW`] −10, medium 0, high [`ASSET_HIGH`] +10, critical [`ASSET_CRITICAL`] +20 |
//! | `history` | [`HISTORY_PER_ALERT`] +5 per earlier alert (at most [`HISTORY_ALERTS_CAP`] 20), [`HISTORY_PER_ACTION`] +10 per action (at most [`HISTORY_ACTIONS_CAP`] 20), together at most [`HISTORY_CAP`] 30 |
//! | `clamp` | whatever brings the sum back into 0–100 |
//!
//! # Confidence (0.05–0.99)
//!
//! | input | change |
//! |---|---|
//! | `alert` | the detector's confidence |
//! | a remote provider or `feeds` | corroborates (malicious) [`CONF_CORROBORATES`] +0.10, suspicious [`CONF_SUSPICIOUS`] +0.05, contradicts (safe) −0.10, info 0 |
//! | `history` (or `local_context`'s count without it) | [`CONF_HISTORY`] +0.05 when the source offended before |
//! | `missing:<provider>` | [`CONF_MISSING`] −0.10 for each remote provider that did not answer (an uncertainty `"<provider>: …"`) |
//! | `no_remote_answer` | when remote providers are configured and none answered: [`CONF_NO_REMOTE_ANSWER`] −0.25 more, or as much more as brings the detector's confidence and the `missing:` parts down to [`NO_REMOTE_ANSWER_MAX`] 0.45 (an alert nobody could corroborate is never trusted at the policy's medium band on the detector's word alone; local evidence still adds to it) |
//! | `disagreement` | [`CONF_DISAGREE`] −0.15 when one source says bad (malicious/suspicious) and another safe |
//! | `clamp` | whatever brings the sum back into [`CONF_MIN`]–[`CONF_MAX`] |
//!
//! So with remote providers configured and none answering, an alert with no other corroboration ends
//! at most at 0.45, below the default policy's medium-confidence band (0.5), whatever its detector's
//! confidence (0.8 − 0.10 − 0.25 = 0.45; 0.9 − 0.10 − 0.35 = 0.45).
//!
//! # Offline (no remote provider configured)
//!
//! When `remote_providers` is 0 (offline mode, or simply no key), nothing remote is expected, so there is
//! no `missing:` or `no_remote_answer` penalty: the confidence is the detector's, moved only by local
//! evidence (feeds, the source's history and address class), then clamped. The flag
//! `"offline: local evidence only"` (or `"no threat-intelligence provider answered (none configured)"`
//! when not explicitly offline, or `"no threat-intelligence provider asked: … not asked about this
//! subject …"` when the providers that are on do not look up this subject, e.g. a private address, or
//! `"no threat-intelligence provider asked: container:web1 is not an address …"` for a subject that is
//! not an address) says so. The same inputs always give the same result.
//!
//! # A subject that is not an address
//!
//! A container (Falco's alerts), a file or a user is looked up by no provider and no feed, and has no
//! address class: its risk is the alert's points, the asset's and the subject's history, and its
//! confidence the detector's, moved only by that history. A critical Falco alert (score 95, +10) is
//! therefore high risk (100 after the clamp) at the detector's confidence (0.9), which the default
//! policy's `isolate_container_threat` rule acts on.

use crate::config::Criticality;
use crate::history::SourceHistory;
use sentinel_core::{Alert, Contribution, Evidence, Severity, Verdict};

/// Risk points of an info-severity alert.
pub const SEVERITY_INFO: i32 = -10;
/// Risk points of a low-severity alert.
pub const SEVERITY_LOW: i32 = -5;
/// Risk points of a high-severity alert.
pub const SEVERITY_HIGH: i32 = 5;
/// Risk points of a critical alert.
pub const SEVERITY_CRITICAL: i32 = 10;
/// A remote provider's malicious verdict, at score 100.
pub const PROVIDER_MALICIOUS: i32 = 30;
/// A remote provider's suspicious verdict, at score 100.
pub const PROVIDER_SUSPICIOUS: i32 = 12;
/// A remote provider's safe verdict (whitelisted).
pub const PROVIDER_SAFE: i32 = -25;
/// Listed in a malicious local feed, at score 100.
pub const FEED_MALICIOUS: i32 = 35;
/// Listed in a suspicious local feed, at score 100.
pub const FEED_SUSPICIOUS: i32 = 15;
/// Listed in an allow-list feed (verdict safe).
pub const FEED_SAFE: i32 = -30;
/// Each further bad feed listing beyond the worst.
pub const FEED_EXTRA_LISTING: i32 = 5;
/// At most this much from further listings.
pub const FEED_EXTRA_CAP: i32 = 10;
/// A loopback source.
pub const LOOPBACK: i32 = -40;
/// A private (RFC 1918, unique-local, link-local, CGNAT) source.
pub const PRIVATE: i32 = -15;
/// A low-criticality target.
pub const ASSET_LOW: i32 = -10;
/// A high-criticality target.
pub const ASSET_HIGH: i32 = 10;
/// A critical target.
pub const ASSET_CRITICAL: i32 = 20;
/// Each earlier alert about the source in the history window.
pub const HISTORY_PER_ALERT: i32 = 5;
/// At most this much from earlier alerts.
pub const HISTORY_ALERTS_CAP: i32 = 20;
/// Each action taken against the source in the history window.
pub const HISTORY_PER_ACTION: i32 = 10;
/// At most this much from actions.
pub const HISTORY_ACTIONS_CAP: i32 = 20;
/// At most this much from history in all.
pub const HISTORY_CAP: i32 = 30;
/// The least weight (percent) a malicious or suspicious verdict gets, whatever its score.
pub const MIN_WEIGHT_PCT: i32 = 50;

/// Confidence from a source that corroborates the alert (malicious), or takes from it (safe).
pub const CONF_CORROBORATES: f32 = 0.10;
/// Confidence from a suspicious verdict.
pub const CONF_SUSPICIOUS: f32 = 0.05;
/// Confidence from the source having offended before.
pub const CONF_HISTORY: f32 = 0.05;
/// Confidence lost per remote provider that did not answer.
pub const CONF_MISSING: f32 = -0.10;
/// Confidence lost when remote providers are configured and none answered.
pub const CONF_NO_REMOTE_ANSWER: f32 = -0.25;
/// With remote providers configured and none answering, the detector's confidence and the `missing:`
/// parts together are brought down to at most this (before local evidence).
pub const NO_REMOTE_ANSWER_MAX: f32 = 0.45;
/// Confidence lost when sources disagree (one bad, another safe).
pub const CONF_DISAGREE: f32 = -0.15;
/// The lowest confidence.
pub const CONF_MIN: f32 = 0.05;
/// The highest confidence: never certain.
pub const CONF_MAX: f32 = 0.99;

/// Enrichers that look nothing up remotely (their failures are not missing providers).
const LOCAL_INPUTS: [&str; 3] = ["local_context", "feeds", "history"];

/// What correlation needs besides the alert and the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The criticality of the alert's target.
    pub criticality: Criticality,
    /// The asset rule that named the target, if one did.
    pub asset: Option<String>,
    /// The source's history in the store, when it was looked up.
    pub history: Option<SourceHistory>,
    /// Offline mode: never ask a remote provider.
    pub offline: bool,
    /// How many remote providers are on (0 offline).
    pub remote_providers: usize,
    /// Remote providers that are on but do not look up this subject (a private or loopback address,
    /// a container): not counted in `remote_providers`, named in the flag so an operator is not told
    /// that none is configured.
    pub out_of_reach: Vec<String>,
}

impl Default for Context {
    /// Medium criticality, no asset, no history, no remote provider.
    fn default() -> Self {
        Context {
            criticality: Criticality::Medium,
            asset: None,
            history: None,
            offline: false,
            remote_providers: 0,
            out_of_reach: Vec::new(),
        }
    }
}

/// The outcome of correlation.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Combined risk, 0–100.
    pub risk_score: u8,
    /// Confidence in it, [`CONF_MIN`]–[`CONF_MAX`].
    pub confidence: f32,
    /// One entry per input, in the order applied; risk points and confidence parts add up to the result.
    pub contributions: Vec<Contribution>,
    /// The uncertainty given, then anything correlation adds (disagreement, no remote answer, offline).
    pub flags: Vec<String>,
}

/// Where a source leans: +1 bad, −1 safe, 0 no opinion.
fn lean(v: Verdict) -> i8 {
    match v {
        Verdict::Malicious | Verdict::Suspicious => 1,
        Verdict::Benign => -1,
        Verdict::Unknown => 0,
    }
}

/// The Cortex level of a verdict.
fn level(v: Verdict) -> &'static str {
    match v {
        Verdict::Malicious => "malicious",
        Verdict::Suspicious => "suspicious",
        Verdict::Benign => "safe",
        Verdict::Unknown => "info",
    }
}

/// `points` × score / 100, at least × [`MIN_WEIGHT_PCT`]; the full points without a score.
fn weighted(points: i32, score: Option<u8>) -> i32 {
    let pct = score.map_or(100, i32::from).clamp(MIN_WEIGHT_PCT, 100);
    // Rounds half away from zero, in integers, so the result is the same everywhere.
    let num = points * pct;
    if num >= 0 {
        (num + 50) / 100
    } else {
        (num - 50) / 100
    }
}

fn verdict_conf(v: Verdict) -> f32 {
    match v {
        Verdict::Malicious => CONF_CORROBORATES,
        Verdict::Suspicious => CONF_SUSPICIOUS,
        Verdict::Benign => -CONF_CORROBORATES,
        Verdict::Unknown => 0.0,
    }
}

fn parse_verdict(s: &str) -> Option<Verdict> {
    match s {
        "malicious" => Some(Verdict::Malicious),
        "suspicious" => Some(Verdict::Suspicious),
        "benign" | "safe" => Some(Verdict::Benign),
        "unknown" | "info" => Some(Verdict::Unknown),
        _ => None,
    }
}

struct Listing {
    feed: String,
    verdict: Verdict,
    score: Option<u8>,
}

/// The feeds evidence's listings (`details.matches`); the evidence itself when it has none readable.
fn listings(e: &Evidence) -> Vec<Listing> {
    match e.details.get("matches").and_then(|m| m.as_array()) {
        Some(ms) => ms
            .iter()
            .filter_map(|m| {
                let verdict = parse_verdict(m.get("verdict")?.as_str()?)?;
                Some(Listing {
                    feed: m
                        .get("feed")
                        .and_then(|f| f.as_str())
                        .unwrap_or("?")
                        .to_owned(),
                    verdict,
                    score: m
                        .get("score")
                        .and_then(|s| s.as_u64())
                        .map(|s| s.min(100) as u8),
                })
            })
            .collect(),
        None if e.verdict != Verdict::Unknown => vec![Listing {
            feed: "?".into(),
            verdict: e.verdict,
            score: e.score,
        }],
        None => Vec::new(),
    }
}

fn listing_points(l: &Listing) -> i32 {
    match l.verdict {
        Verdict::Malicious => weighted(FEED_MALICIOUS, l.score),
        Verdict::Suspicious => weighted(FEED_SUSPICIOUS, l.score),
        Verdict::Benign => FEED_SAFE,
        Verdict::Unknown => 0,
    }
}

/// The feeds evidence: points, confidence, its lean and the words.
fn feeds(e: &Evidence) -> (i32, f32, i8, String) {
    let ls = listings(e);
    if ls.is_empty() {
        return (0, 0.0, 0, "not listed in any feed".into());
    }
    let bad: Vec<&Listing> = ls.iter().filter(|l| lean(l.verdict) > 0).collect();
    let names = ls
        .iter()
        .map(|l| format!("{} ({})", l.feed, level(l.verdict)))
        .collect::<Vec<_>>()
        .join(", ");
    if bad.is_empty() {
        // Only allow-lists (or info feeds): the safest listing counts.
        let worst = ls.iter().map(listing_points).min().unwrap_or(0);
        let lean_ = if ls.iter().any(|l| l.verdict == Verdict::Benign) {
            -1
        } else {
            0
        };
        let conf = if lean_ < 0 { -CONF_CORROBORATES } else { 0.0 };
        return (worst, conf, lean_, format!("listed in {names}"));
    }
    let worst = bad.iter().map(|l| listing_points(l)).max().unwrap_or(0);
    let extra = (FEED_EXTRA_LISTING * (bad.len() as i32 - 1)).min(FEED_EXTRA_CAP);
    let top = if bad.iter().any(|l| l.verdict == Verdict::Malicious) {
        Verdict::Malicious
    } else {
        Verdict::Suspicious
    };
    (
        worst + extra,
        verdict_conf(top),
        1,
        format!("listed in {names}"),
    )
}

fn history_points(alerts: u64, actions: u64) -> i32 {
    let a = i32::try_from(alerts.min(1000)).unwrap_or(1000) * HISTORY_PER_ALERT;
    let b = i32::try_from(actions.min(1000)).unwrap_or(1000) * HISTORY_PER_ACTION;
    (a.min(HISTORY_ALERTS_CAP) + b.min(HISTORY_ACTIONS_CAP)).min(HISTORY_CAP)
}

fn severity_points(s: Severity) -> i32 {
    match s {
        Severity::Info => SEVERITY_INFO,
        Severity::Low => SEVERITY_LOW,
        Severity::Medium => 0,
        Severity::High => SEVERITY_HIGH,
        Severity::Critical => SEVERITY_CRITICAL,
    }
}

/// The name before `": "` in an uncertainty string, when it names a remote provider.
fn missing_remote(flag: &str) -> Option<&str> {
    let (name, _) = flag.split_once(": ")?;
    let remote = !name.is_empty()
        && !name.contains(' ')
        && !LOCAL_INPUTS.contains(&name)
        && !name.starts_with("feed:");
    remote.then_some(name)
}

fn is_local(provider: &str) -> bool {
    LOCAL_INPUTS.contains(&provider) || provider.starts_with("feed:")
}

fn contribution(
    input: impl Into<String>,
    detail: String,
    risk: i32,
    confidence: f32,
) -> Contribution {
    Contribution {
        input: input.into(),
        detail,
        risk,
        confidence,
    }
}

/// Correlates an alert, its evidence (in the enrichers' order), the uncertainty so far
/// (`"<provider>: …"` for a provider that did not answer) and the context into risk and confidence.
pub fn correlate(
    alert: &Alert,
    evidence: &[Evidence],
    uncertainty: &[String],
    ctx: &Context,
) -> Scored {
    let mut cs: Vec<Contribution> = Vec::with_capacity(evidence.len() + 6);
    let mut flags: Vec<String> = uncertainty.to_vec();

    let sev = severity_points(alert.severity);
    let detector_conf = if alert.confidence.is_finite() {
        alert.confidence.clamp(0.0, 1.0)
    } else {
        0.0
    };
    cs.push(contribution(
        "alert",
        format!(
            "{} alert from {} (detector score {}, severity {sev:+}), detector confidence {detector_conf:.2}",
            alert.severity, alert.detector, alert.score
        ),
        i32::from(alert.score) + sev,
        detector_conf,
    ));

    let mut bad: Vec<String> = Vec::new();
    let mut safe: Vec<String> = Vec::new();
    let mut remote_answered = 0usize;
    for e in evidence {
        let name = e.provider.as_str();
        let (risk, conf, lean_, detail) = match name {
            "feeds" => {
                let (r, c, l, d) = feeds(e);
                (r, c, l, format!("feeds: {d}"))
            }
            "local_context" => {
                let class = e.details.get("address_class").and_then(|c| c.as_str());
                let what = class.map_or("not an address".to_owned(), |c| format!("{c} address"));
                let class_pts = match class.unwrap_or("") {
                    "loopback" => LOOPBACK,
                    "private" => PRIVATE,
                    _ => 0,
                };
                let prior = e
                    .details
                    .get("prior_alerts")
                    .and_then(|p| p.as_u64())
                    .unwrap_or(0);
                if ctx.history.is_some() {
                    (
                        class_pts,
                        0.0,
                        0,
                        // With the store, local context only classifies; naming its (always 0)
                        // in-process count read as "no earlier alerts" next to a history of several.
                        format!("{what} (earlier alerts: see `history`, from the store)"),
                    )
                } else {
                    let conf = if prior > 0 { CONF_HISTORY } else { 0.0 };
                    (
                        class_pts + history_points(prior, 0),
                        conf,
                        0,
                        format!("{what}, {prior} earlier alerts in this process's window"),
                    )
                }
            }
            _ => {
                let remote = !is_local(name);
                if remote {
                    remote_answered += 1;
                }
                let pts = match e.verdict {
                    Verdict::Malicious => weighted(PROVIDER_MALICIOUS, e.score),
                    Verdict::Suspicious => weighted(PROVIDER_SUSPICIOUS, e.score),
                    Verdict::Benign => PROVIDER_SAFE,
                    Verdict::Unknown => 0,
                };
                let score = e.score.map_or(String::new(), |s| format!(" (score {s})"));
                (
                    pts,
                    verdict_conf(e.verdict),
                    lean(e.verdict),
                    format!("{name}: {}{score}", level(e.verdict)),
                )
            }
        };
        match lean_ {
            1 => bad.push(name.to_owned()),
            -1 => safe.push(name.to_owned()),
            _ => {}
        }
        cs.push(contribution(name, detail, risk, conf));
    }

    let asset_pts = match ctx.criticality {
        Criticality::Low => ASSET_LOW,
        Criticality::Medium => 0,
        Criticality::High => ASSET_HIGH,
        Criticality::Critical => ASSET_CRITICAL,
    };
    cs.push(contribution(
        "asset",
        match &ctx.asset {
            Some(a) => format!("target {a} is {} criticality", ctx.criticality.as_str()),
            None => format!(
                "no asset rule names the target: default criticality {}",
                ctx.criticality.as_str()
            ),
        },
        asset_pts,
        0.0,
    ));

    if let Some(h) = ctx.history {
        let pts = history_points(h.alerts, h.actions);
        let conf = if h.alerts + h.actions > 0 {
            CONF_HISTORY
        } else {
            0.0
        };
        let last = h
            .last_seen
            .map_or(String::new(), |t| format!(", last alert at {t}"));
        cs.push(contribution(
            "history",
            format!(
                "{} earlier alerts and {} actions in the window{last}",
                h.alerts, h.actions
            ),
            pts,
            conf,
        ));
    }

    if ctx.remote_providers > 0 {
        let mut missing = 0usize;
        for f in uncertainty {
            if let Some(name) = missing_remote(f) {
                missing += 1;
                cs.push(contribution(
                    format!("missing:{name}"),
                    f.clone(),
                    0,
                    CONF_MISSING,
                ));
            }
        }
        if remote_answered == 0 {
            let flag = format!(
                "no threat-intelligence provider answered ({} configured, {missing} failed)",
                ctx.remote_providers
            );
            // Counts the missing parts as applied (f32 sums), so the cap is exact.
            let unsupported = detector_conf + (0..missing).fold(0.0f32, |a, _| a + CONF_MISSING);
            let part = CONF_NO_REMOTE_ANSWER.min(NO_REMOTE_ANSWER_MAX - unsupported);
            cs.push(contribution("no_remote_answer", flag.clone(), 0, part));
            flags.push(flag);
        }
    } else if remote_answered == 0 {
        flags.push(if alert.subject.ip().is_none() {
            // A container, file or user: every provider and feed looks up addresses only.
            format!(
                "no threat-intelligence provider asked: {} is not an address (providers and feeds look up addresses only; the risk rests on the alert, the asset and the subject's history)",
                alert.subject
            )
        } else if ctx.offline {
            "offline: local evidence only".into()
        } else if !ctx.out_of_reach.is_empty() {
            format!(
                "no threat-intelligence provider asked: {} not asked about this subject (a private, loopback or reserved address, or not an IP)",
                ctx.out_of_reach.join(", ")
            )
        } else {
            "no threat-intelligence provider answered (none configured)".into()
        });
    }

    if !bad.is_empty() && !safe.is_empty() {
        let flag = format!(
            "providers disagree: {} say bad, {} say safe",
            bad.join(", "),
            safe.join(", ")
        );
        cs.push(contribution("disagreement", flag.clone(), 0, CONF_DISAGREE));
        flags.push(flag);
    }

    let sum: i32 = cs.iter().map(|c| c.risk).sum();
    let risk = sum.clamp(0, 100);
    let conf_sum: f32 = cs.iter().map(|c| c.confidence).sum();
    let conf = conf_sum.clamp(CONF_MIN, CONF_MAX);
    if risk != sum || conf != conf_sum {
        cs.push(contribution(
            "clamp",
            format!(
                "risk {sum} kept within 0–100, confidence {conf_sum:.2} within {CONF_MIN}–{CONF_MAX}"
            ),
            risk - sum,
            conf - conf_sum,
        ));
    }
    // The confidence reported is the sum of the parts, so the explanation adds up to the last bit.
    let confidence: f32 = cs.iter().map(|c| c.confidence).sum();
    Scored {
        risk_score: u8::try_from(risk).unwrap_or(0),
        confidence: confidence.clamp(CONF_MIN, CONF_MAX),
        contributions: cs,
        flags,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use sentinel_core::{AlertId, Subject, Timestamp, TraceId};
    use serde_json::json;

    fn alert(score: u8, confidence: f32) -> Alert {
        Alert {
            id: AlertId::new(),
            ts: Timestamp::from_millis(1_000_000),
            detector: "heuristic".into(),
            scenario: "web_attack".into(),
            severity: Severity::from_score(score),
            score,
            confidence,
            subject: Subject::Ip("203.0.113.7".parse().unwrap()),
            reasons: vec![],
            evidence: vec![],
            trace_id: TraceId::new(),
        }
    }

    fn ev(provider: &str, verdict: Verdict, score: Option<u8>) -> Evidence {
        Evidence {
            provider: provider.into(),
            verdict,
            score,
            details: serde_json::Value::Null,
        }
    }

    fn local(class: &str, prior: u64) -> Evidence {
        Evidence {
            provider: "local_context".into(),
            verdict: Verdict::Unknown,
            score: Some(0),
            details: json!({"address_class": class, "prior_alerts": prior, "window_secs": 3600}),
        }
    }

    fn feeds(matches: serde_json::Value) -> Evidence {
        Evidence {
            provider: "feeds".into(),
            verdict: Verdict::Unknown,
            score: None,
            details: json!({ "matches": matches }),
        }
    }

    fn online(n: usize) -> Context {
        Context {
            remote_providers: n,
            ..Context::default()
        }
    }

    fn part<'a>(s: &'a Scored, input: &str) -> &'a Contribution {
        s.contributions
            .iter()
            .find(|c| c.input == input)
            .unwrap_or_else(|| panic!("no {input} in {:?}", s.contributions))
    }

    fn adds_up(s: &Scored) {
        let risk: i32 = s.contributions.iter().map(|c| c.risk).sum();
        assert_eq!(risk, i32::from(s.risk_score), "{:?}", s.contributions);
        let conf: f32 = s.contributions.iter().map(|c| c.confidence).sum();
        assert!(
            (conf - s.confidence).abs() < 1e-4,
            "{conf} vs {}",
            s.confidence
        );
    }

    #[test]
    fn the_alert_is_the_base() {
        let s = correlate(&alert(50, 0.6), &[], &[], &Context::default());
        assert_eq!(s.risk_score, 50);
        assert!((s.confidence - 0.6).abs() < 1e-6);
        assert_eq!(s.contributions[0].input, "alert");
        assert_eq!(s.contributions[0].risk, 50);
        let hi = correlate(&alert(65, 0.6), &[], &[], &Context::default());
        assert_eq!(part(&hi, "alert").risk, 65 + SEVERITY_HIGH);
        let info = correlate(&alert(10, 0.6), &[], &[], &Context::default());
        assert_eq!(info.risk_score, 0, "10 − 10 for info severity");
        adds_up(&info);
        assert!(s.flags.iter().any(|f| f.contains("none configured")));
    }

    #[test]
    fn a_container_is_judged_on_the_alert_and_its_history() {
        let mut a = alert(95, 0.9);
        a.severity = Severity::Critical;
        a.subject = Subject::Container("web1".into());
        // What the local context answers about a subject without an address (and feeds and providers
        // do not answer: not applicable).
        let local = Evidence {
            provider: "local_context".into(),
            verdict: Verdict::Unknown,
            score: Some(0),
            details: json!({"address_class": null}),
        };
        let ctx = Context {
            history: Some(SourceHistory::default()),
            out_of_reach: vec!["abuseipdb".into()],
            ..Context::default()
        };
        let s = correlate(&a, &[local], &[], &ctx);
        assert_eq!(s.risk_score, 100, "95 + 10 for critical, clamped");
        assert!((s.confidence - 0.9).abs() < 1e-6, "the detector's");
        assert_eq!(
            part(&s, "local_context").detail,
            "not an address (earlier alerts: see `history`, from the store)"
        );
        assert_eq!(
            s.flags,
            ["no threat-intelligence provider asked: container:web1 is not an address (providers \
              and feeds look up addresses only; the risk rests on the alert, the asset and the \
              subject's history)"]
        );
        adds_up(&s);
    }

    #[test]
    fn providers_out_of_reach_are_named_not_called_unconfigured() {
        let ctx = Context {
            out_of_reach: vec!["abuseipdb".into()],
            ..Context::default()
        };
        let s = correlate(&alert(50, 0.6), &[], &[], &ctx);
        assert!(
            s.flags.iter().any(|f| f.contains("abuseipdb not asked")),
            "{:?}",
            s.flags
        );
        assert!(!s.flags.iter().any(|f| f.contains("none configured")));
        assert!(
            (s.confidence - 0.6).abs() < 1e-6,
            "no missing-provider penalty"
        );
    }

    #[test]
    fn provider_levels_are_weighted_by_score() {
        let a = alert(50, 0.6);
        let c = online(1);
        let mal = |score| correlate(&a, &[ev("abuseipdb", Verdict::Malicious, score)], &[], &c);
        assert_eq!(part(&mal(Some(100)), "abuseipdb").risk, PROVIDER_MALICIOUS);
        assert_eq!(part(&mal(Some(80)), "abuseipdb").risk, 24);
        assert_eq!(part(&mal(Some(10)), "abuseipdb").risk, 15, "at least half");
        assert_eq!(part(&mal(None), "abuseipdb").risk, PROVIDER_MALICIOUS);
        let s = correlate(&a, &[ev("otx", Verdict::Suspicious, Some(100))], &[], &c);
        assert_eq!(part(&s, "otx").risk, PROVIDER_SUSPICIOUS);
        assert!(part(&s, "otx").confidence > 0.0);
        let safe = correlate(&a, &[ev("abuseipdb", Verdict::Benign, Some(0))], &[], &c);
        assert_eq!(part(&safe, "abuseipdb").risk, PROVIDER_SAFE);
        assert!(safe.confidence < 0.6, "safe contradicts the alert");
        let info = correlate(&a, &[ev("virustotal", Verdict::Unknown, Some(0))], &[], &c);
        assert_eq!(part(&info, "virustotal").risk, 0);
        assert_eq!(info.risk_score, 50);
        assert!(
            !info
                .flags
                .iter()
                .any(|f| f.contains("no threat-intelligence")),
            "a provider answered: {:?}",
            info.flags
        );
        for s in [mal(Some(100)), s, safe, info] {
            adds_up(&s);
        }
    }

    #[test]
    fn malicious_feed_listings_are_strong_evidence() {
        let a = alert(40, 0.6);
        let one = correlate(
            &a,
            &[feeds(
                json!([{"feed": "firehol_level1", "verdict": "malicious", "score": 100, "prefix": "203.0.113.0/24"}]),
            )],
            &[],
            &Context::default(),
        );
        assert_eq!(part(&one, "feeds").risk, FEED_MALICIOUS);
        assert!(part(&one, "feeds").detail.contains("firehol_level1"));
        assert!(part(&one, "feeds").confidence > 0.0);
        let three = correlate(
            &a,
            &[feeds(json!([
                {"feed": "a", "verdict": "suspicious", "score": 60},
                {"feed": "b", "verdict": "malicious", "score": 100},
                {"feed": "c", "verdict": "malicious", "score": 80},
            ]))],
            &[],
            &Context::default(),
        );
        assert_eq!(part(&three, "feeds").risk, FEED_MALICIOUS + FEED_EXTRA_CAP);
        let none = correlate(&a, &[feeds(json!([]))], &[], &Context::default());
        assert_eq!(part(&none, "feeds").risk, 0);
        assert_eq!(none.risk_score, 40);
        let allow = correlate(
            &a,
            &[feeds(
                json!([{"feed": "partners", "verdict": "benign", "score": 0}]),
            )],
            &[],
            &Context::default(),
        );
        assert_eq!(part(&allow, "feeds").risk, FEED_SAFE);
        for s in [one, three, none, allow] {
            adds_up(&s);
        }
    }

    #[test]
    fn address_class_lowers_risk() {
        let a = alert(50, 0.6);
        let at = |class| {
            let s = correlate(&a, &[local(class, 0)], &[], &Context::default());
            adds_up(&s);
            s.risk_score
        };
        assert_eq!(at("loopback"), 10);
        assert_eq!(at("private"), 35);
        assert_eq!(at("documentation"), 50);
        assert_eq!(at("public"), 50);
    }

    #[test]
    fn local_prior_alerts_count_only_without_the_store() {
        let a = alert(50, 0.6);
        let alone = correlate(&a, &[local("public", 2)], &[], &Context::default());
        assert_eq!(alone.risk_score, 60);
        let with_store = Context {
            history: Some(SourceHistory::default()),
            ..Context::default()
        };
        let s = correlate(&a, &[local("public", 2)], &[], &with_store);
        assert_eq!(
            s.risk_score, 50,
            "the store's history replaces the local count"
        );
        // The detail sends the reader to `history`, and names no in-process count next to it.
        let detail = &part(&s, "local_context").detail;
        assert!(detail.contains("see `history`"), "{detail}");
        assert!(!detail.contains("recent alerts"), "{detail}");
    }

    #[test]
    fn asset_criticality() {
        let a = alert(50, 0.6);
        let at = |criticality| {
            let s = correlate(
                &a,
                &[],
                &[],
                &Context {
                    criticality,
                    asset: Some("db".into()),
                    ..Context::default()
                },
            );
            assert!(part(&s, "asset").detail.contains("db"));
            s.risk_score
        };
        assert_eq!(at(Criticality::Low), 40);
        assert_eq!(at(Criticality::Medium), 50);
        assert_eq!(at(Criticality::High), 60);
        assert_eq!(at(Criticality::Critical), 70);
    }

    #[test]
    fn history_raises_risk_capped() {
        let a = alert(50, 0.6);
        let with = |alerts, actions| {
            let s = correlate(
                &a,
                &[],
                &[],
                &Context {
                    history: Some(SourceHistory {
                        alerts,
                        actions,
                        last_seen: Some(Timestamp::from_millis(900_000)),
                    }),
                    ..Context::default()
                },
            );
            adds_up(&s);
            s
        };
        assert_eq!(part(&with(0, 0), "history").risk, 0);
        assert_eq!(part(&with(2, 0), "history").risk, 10);
        assert_eq!(part(&with(2, 1), "history").risk, 20);
        assert_eq!(part(&with(100, 0), "history").risk, HISTORY_ALERTS_CAP);
        assert_eq!(part(&with(100, 100), "history").risk, HISTORY_CAP);
        assert!(with(1, 0).confidence > with(0, 0).confidence);
    }

    #[test]
    fn missing_providers_lower_confidence() {
        let a = alert(50, 0.7);
        let answers = [ev("abuseipdb", Verdict::Unknown, Some(0))];
        let all = correlate(&a, &answers, &[], &online(2));
        let one_missing = correlate(
            &a,
            &answers,
            &["otx: provider timed out".to_string()],
            &online(2),
        );
        assert!((all.confidence - one_missing.confidence - 0.10).abs() < 1e-5);
        assert_eq!(part(&one_missing, "missing:otx").confidence, CONF_MISSING);
        assert!(one_missing
            .flags
            .contains(&"otx: provider timed out".to_string()));
        // A local enricher's failure is not a missing provider.
        let feeds_failed = correlate(
            &a,
            &answers,
            &["feeds: not applicable".to_string()],
            &online(2),
        );
        assert_eq!(feeds_failed.confidence, all.confidence);
    }

    #[test]
    fn no_remote_answer_keeps_even_a_confident_detector_below_the_medium_band() {
        let down = ["abuseipdb: provider answered 503".to_string()];
        for conf in [0.6f32, 0.8, 0.9, 0.99, 1.0] {
            let s = correlate(&alert(75, conf), &[], &down, &online(1));
            assert!(s.confidence <= NO_REMOTE_ANSWER_MAX + 1e-5, "{conf}: {s:?}");
            assert!(part(&s, "no_remote_answer").confidence <= CONF_NO_REMOTE_ANSWER);
            let sum: f32 = s.contributions.iter().map(|c| c.confidence).sum();
            assert!((sum - s.confidence).abs() < 1e-5);
        }
        // Local corroboration still counts on top.
        let listed = ev("feeds", Verdict::Malicious, Some(90));
        let s = correlate(&alert(75, 0.9), &[listed], &down, &online(1));
        assert!(s.confidence > NO_REMOTE_ANSWER_MAX + 0.05, "{s:?}");
    }

    #[test]
    fn disagreement_is_flagged_and_costs_confidence() {
        let a = alert(60, 0.7);
        let s = correlate(
            &a,
            &[
                ev("abuseipdb", Verdict::Malicious, Some(90)),
                ev("virustotal", Verdict::Benign, None),
            ],
            &[],
            &online(2),
        );
        let flag = s
            .flags
            .iter()
            .find(|f| f.starts_with("providers disagree: "))
            .expect("flag");
        assert!(
            flag.contains("abuseipdb") && flag.contains("virustotal"),
            "{flag}"
        );
        assert_eq!(part(&s, "disagreement").confidence, CONF_DISAGREE);
        let agree = correlate(
            &a,
            &[
                ev("abuseipdb", Verdict::Malicious, Some(90)),
                ev("virustotal", Verdict::Malicious, None),
            ],
            &[],
            &online(2),
        );
        assert!(agree.confidence > a.confidence, "agreement raises it");
        assert!(s.confidence < agree.confidence - 0.3);
        assert!(!agree.flags.iter().any(|f| f.contains("disagree")));
    }

    /// Acceptance: a source in a malicious local feed that AbuseIPDB scores 100, on a high-severity
    /// alert, lands in the default policy's block rule (risk ≥ 70, confidence ≥ 0.8).
    #[test]
    fn known_bad_source_reaches_the_block_band() {
        for (score, conf) in [(60u8, 0.6f32), (65, 0.7), (79, 0.8)] {
            let a = alert(score, conf);
            assert_eq!(a.severity, Severity::High);
            let s = correlate(
                &a,
                &[
                    local("public", 0),
                    feeds(json!([{"feed": "spamhaus_drop", "verdict": "malicious", "score": 90}])),
                    ev("abuseipdb", Verdict::Malicious, Some(100)),
                ],
                &[],
                &online(1),
            );
            assert!(s.risk_score >= 70, "{s:?}");
            assert!(s.confidence >= 0.8, "{s:?}");
            adds_up(&s);
        }
    }

    /// Acceptance: an unknown source with every provider down ends with low confidence (below the
    /// default medium band, 0.5) whenever the detector's confidence is at most 0.8.
    #[test]
    fn unknown_source_with_providers_down_has_low_confidence() {
        for n in 1..=3usize {
            let names = ["abuseipdb", "virustotal", "otx"];
            let unc: Vec<String> = names[..n]
                .iter()
                .map(|p| format!("{p}: circuit open after 5 failures; next try in 23 s"))
                .collect();
            let s = correlate(
                &alert(70, 0.8),
                &[local("public", 0), feeds(json!([]))],
                &unc,
                &online(n),
            );
            assert!(s.confidence < 0.5, "{n} down: {s:?}");
            assert!(s
                .flags
                .iter()
                .any(|f| f.starts_with("no threat-intelligence provider answered")));
            adds_up(&s);
        }
    }

    /// Offline: nothing remote is expected, so nothing is missing: confidence is the detector's, moved by
    /// local evidence only.
    #[test]
    fn offline_rests_on_local_evidence() {
        let a = alert(70, 0.7);
        let ctx = Context {
            offline: true,
            ..Context::default()
        };
        let bare = correlate(&a, &[local("public", 0), feeds(json!([]))], &[], &ctx);
        assert!((bare.confidence - 0.7).abs() < 1e-6, "{bare:?}");
        assert!(bare
            .flags
            .contains(&"offline: local evidence only".to_string()));
        assert!(!bare
            .contributions
            .iter()
            .any(|c| c.input.starts_with("missing")));
        let listed = correlate(
            &a,
            &[
                local("public", 0),
                feeds(json!([{"feed": "tor_exits", "verdict": "suspicious", "score": 60}])),
            ],
            &[],
            &ctx,
        );
        assert!(listed.confidence > bare.confidence);
    }

    #[test]
    fn clamping_is_a_contribution() {
        let s = correlate(
            &alert(95, 0.95),
            &[
                ev("abuseipdb", Verdict::Malicious, Some(100)),
                ev("otx", Verdict::Malicious, Some(100)),
            ],
            &[],
            &online(2),
        );
        assert_eq!(s.risk_score, 100);
        let c = part(&s, "clamp");
        assert_eq!(c.risk, 100 - (95 + 10 + 30 + 30));
        assert!(c.confidence < 0.0);
        adds_up(&s);
        let low = correlate(
            &alert(5, 0.1),
            &[local("loopback", 0)],
            &[],
            &Context::default(),
        );
        assert_eq!(low.risk_score, 0);
        assert!(part(&low, "clamp").risk > 0);
        adds_up(&low);
        let none = correlate(&alert(50, 0.5), &[], &[], &Context::default());
        assert!(!none.contributions.iter().any(|c| c.input == "clamp"));
    }

    #[test]
    fn one_contribution_per_input_in_order() {
        let s = correlate(
            &alert(50, 0.6),
            &[
                local("public", 0),
                feeds(json!([])),
                ev("abuseipdb", Verdict::Suspicious, Some(40)),
            ],
            &["otx: provider timed out".into()],
            &Context {
                history: Some(SourceHistory::default()),
                remote_providers: 2,
                ..Context::default()
            },
        );
        let inputs: Vec<&str> = s.contributions.iter().map(|c| c.input.as_str()).collect();
        assert_eq!(
            inputs,
            [
                "alert",
                "local_context",
                "feeds",
                "abuseipdb",
                "asset",
                "history",
                "missing:otx"
            ]
        );
    }

    fn verdict() -> impl Strategy<Value = Verdict> {
        prop_oneof![
            Just(Verdict::Malicious),
            Just(Verdict::Suspicious),
            Just(Verdict::Benign),
            Just(Verdict::Unknown)
        ]
    }

    fn evidence() -> impl Strategy<Value = Evidence> {
        (
            prop_oneof![
                Just("abuseipdb"),
                Just("virustotal"),
                Just("otx"),
                Just("feeds"),
                Just("local_context")
            ],
            verdict(),
            proptest::option::of(0u8..=100),
            prop::collection::vec((verdict(), 0u8..=100), 0..4),
            prop_oneof![Just("loopback"), Just("private"), Just("public")],
            0u64..10,
        )
            .prop_map(|(p, v, score, matches, class, prior)| {
                let level = |v| match v {
                    Verdict::Malicious => "malicious",
                    Verdict::Suspicious => "suspicious",
                    Verdict::Benign => "benign",
                    Verdict::Unknown => "unknown",
                };
                let details = match p {
                    "feeds" => json!({"matches": matches.iter().map(|(v, s)| json!({"feed": "f", "verdict": level(*v), "score": s})).collect::<Vec<_>>()}),
                    "local_context" => json!({"address_class": class, "prior_alerts": prior}),
                    _ => serde_json::Value::Null,
                };
                Evidence {
                    provider: p.into(),
                    verdict: v,
                    score,
                    details,
                }
            })
    }

    proptest! {
        #[test]
        fn contributions_add_up_and_stay_in_range(
            score in 0u8..=100,
            conf in 0.0f32..=1.0,
            evs in prop::collection::vec(evidence(), 0..6),
            missing in prop::collection::vec(prop_oneof![Just("abuseipdb: provider timed out"), Just("otx: provider refused: x"), Just("feeds: not applicable")], 0..3),
            crit in prop_oneof![Just(Criticality::Low), Just(Criticality::Medium), Just(Criticality::High), Just(Criticality::Critical)],
            history in proptest::option::of((0u64..50, 0u64..50)),
            remote in 0usize..4,
            offline in any::<bool>(),
        ) {
            let a = alert(score, conf);
            let unc: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
            let ctx = Context {
                criticality: crit,
                asset: None,
                history: history.map(|(alerts, actions)| SourceHistory { alerts, actions, last_seen: None }),
                offline,
                remote_providers: remote,
                out_of_reach: Vec::new(),
            };
            let s = correlate(&a, &evs, &unc, &ctx);
            let risk: i32 = s.contributions.iter().map(|c| c.risk).sum();
            prop_assert_eq!(risk, i32::from(s.risk_score));
            prop_assert!(s.risk_score <= 100);
            let c: f32 = s.contributions.iter().map(|c| c.confidence).sum();
            prop_assert!((c - s.confidence).abs() < 1e-4);
            prop_assert!((CONF_MIN..=CONF_MAX).contains(&s.confidence));
            // One contribution per evidence, in order, after the alert's.
            for (i, e) in evs.iter().enumerate() {
                prop_assert_eq!(&s.contributions[i + 1].input, &e.provider);
            }
            // Deterministic.
            prop_assert_eq!(correlate(&a, &evs, &unc, &ctx), s);
        }
    }
}
