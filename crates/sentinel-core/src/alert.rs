//! Alerts (a detector's finding) and investigations (an alert plus enrichment and risk).

use crate::event::Event;
use crate::ids::{AlertId, InvestigationId, TraceId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// How bad a finding is, ordered from `Info` to `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording, not acting on.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Maps a 0–100 score to a severity.
    pub fn from_score(score: u8) -> Self {
        match score {
            0..=19 => Severity::Info,
            20..=39 => Severity::Low,
            40..=59 => Severity::Medium,
            60..=79 => Severity::High,
            _ => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown severity `{s}` (info, low, medium, high, critical)"))
    }
}

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Subject {
    /// A remote address.
    Ip(IpAddr),
    /// A container, by id or name.
    Container(String),
    /// A file path.
    File(String),
    /// A user account.
    User(String),
}

impl Subject {
    /// The address, when the subject is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Subject::Ip(ip) => Some(*ip),
            _ => None,
        }
    }

    /// A stable text key (`ip:203.0.113.7`), used for filtering and storage.
    pub fn key(&self) -> String {
        match self {
            Subject::Ip(ip) => format!("ip:{ip}"),
            Subject::Container(c) => format!("container:{c}"),
            Subject::File(p) => format!("file:{p}"),
            Subject::User(u) => format!("user:{u}"),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// One reason a detector fired, with the weight it added to the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable machine code, e.g. `failed_logins`.
    pub code: String,
    /// Human-readable detail, e.g. `12 failed logins (threshold 5)`.
    pub detail: String,
    /// Points added to the score.
    pub weight: u8,
}

/// A detector's finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique id.
    pub id: AlertId,
    /// When the detector fired.
    pub ts: Timestamp,
    /// Which detector fired.
    pub detector: String,
    /// The scenario it recognised, e.g. `http_attack`, `ssh_bruteforce`.
    pub scenario: String,
    /// How bad it is.
    pub severity: Severity,
    /// Detector score, 0–100.
    pub score: u8,
    /// How sure the detector is, 0.0–1.0.
    pub confidence: f32,
    /// Who or what it is about.
    pub subject: Subject,
    /// Why it fired.
    pub reasons: Vec<Reason>,
    /// The events that triggered it (redacted).
    pub evidence: Vec<Event>,
    /// The trace it belongs to.
    pub trace_id: TraceId,
}

/// A provider's opinion of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Known bad.
    Malicious,
    /// Some signs of bad.
    Suspicious,
    /// Known good.
    Benign,
    /// No opinion.
    Unknown,
}

/// What one enricher found about a subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Which enricher produced it (`local_context`, `abuseipdb`, …).
    pub provider: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its score where it gives one, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// Provider-specific details.
    #[serde(default)]
    pub details: serde_json::Value,
}

/// An alert plus enrichment and the resulting risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Investigation {
    /// Unique id.
    pub id: InvestigationId,
    /// When it concluded.
    pub ts: Timestamp,
    /// The alert investigated.
    pub alert: Alert,
    /// What each enricher found.
    pub evidence: Vec<Evidence>,
    /// Combined risk, 0–100.
    pub risk_score: u8,
    /// Confidence in the risk, 0.0–1.0.
    pub confidence: f32,
    /// Where providers were missing, slow or disagreed.
    pub uncertainty: Vec<String>,
    /// How the risk score and confidence were made: one entry per input, in the order applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributions: Vec<Contribution>,
    /// The trace it belongs to.
    pub trace_id: TraceId,
}

/// One input's part in an investigation's risk score and confidence, so the score can be explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The input (`alert`, a provider's name, `feed:<name>`, `history`, `asset`, `disagreement`, …).
    pub input: String,
    /// What the input said, in words (`abuseipdb: malicious (confidence score 100)`).
    pub detail: String,
    /// Points this input added to (or took from) the risk score.
    pub risk: i32,
    /// What it added to (or took from) the confidence.
    pub confidence: f32,
}
