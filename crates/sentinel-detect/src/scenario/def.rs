//! Scenario definitions as users write them in YAML, and their validation (every problem reported).

use serde::Deserialize;
use std::time::Duration;

/// How a scenario counts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Counting {
    /// A leaky bucket per key: each matching observation pours one unit; the bucket leaks one unit
    /// every `leak`; it overflows when more than `capacity` units are in it.
    Leaky {
        /// Units the bucket holds before it overflows.
        capacity: u32,
        /// Time for one unit to leak out.
        #[serde(with = "humantime_serde")]
        leak: Duration,
    },
    /// Distinct values of `field` per key within `window`; fires at `threshold` distinct values.
    Distinct {
        /// The field whose distinct values are counted (`user`, `path`, `port`, …).
        field: String,
        /// Distinct values that make it fire.
        threshold: u32,
        /// How far back values count.
        #[serde(with = "humantime_serde")]
        window: Duration,
    },
    /// A sliding window per key: fires when `threshold` matching observations fall within `window`
    /// (fail2ban's `maxretry` failures within `findtime`).
    Window {
        /// Observations within `window` that make it fire.
        threshold: u32,
        /// How far back observations count.
        #[serde(with = "humantime_serde")]
        window: Duration,
    },
    /// Fires on the first matching observation.
    Trigger,
}

/// Which observations a scenario looks at. Every given condition must hold; a list means any of.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Observation kinds (`auth_failure`, `http_request`, …).
    #[serde(default)]
    pub kind: Vec<String>,
    /// Services; `sshd` also matches `sshd-session` (prefix up to a `-`).
    #[serde(default)]
    pub service: Vec<String>,
    /// Field values that must match exactly, per field.
    #[serde(default)]
    pub field_in: std::collections::BTreeMap<String, Vec<String>>,
    /// Substrings (case-insensitive) of which a field must contain one, per field.
    #[serde(default)]
    pub field_contains: std::collections::BTreeMap<String, Vec<String>>,
}

/// One scenario as written in YAML.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioDef {
    /// Unique name (`ssh_bruteforce`).
    pub name: String,
    /// What it detects, for people.
    #[serde(default)]
    pub description: String,
    /// How it counts.
    pub counting: Counting,
    /// What it looks at.
    #[serde(default)]
    pub filter: Filter,
    /// After it fires for a key, further firings for that key are suppressed this long.
    #[serde(default = "default_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
    /// Severity of its alerts.
    pub severity: sentinel_core::Severity,
    /// Confidence of its alerts, 0–1.
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    /// Whether it runs.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_cooldown() -> Duration {
    Duration::from_secs(60)
}
fn default_confidence() -> f32 {
    0.8
}
fn default_enabled() -> bool {
    true
}

/// A problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ScenarioError {
    /// The file (or `builtin`) and scenario it is in.
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

/// Parses the scenarios in one YAML text; `origin` names it in errors. Reports every problem found.
pub fn parse_scenarios(origin: &str, text: &str) -> Result<Vec<ScenarioDef>, Vec<ScenarioError>> {
    let err = |message: String| ScenarioError {
        origin: origin.to_owned(),
        message,
    };
    // Parse as a generic value first so each scenario's error names it.
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| vec![err(e.to_string())])?;
    let items = match value {
        serde_yaml::Value::Sequence(items) => items,
        other => vec![other],
    };
    let mut defs = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let label = item
            .get("name")
            .and_then(|n| n.as_str())
            .map(|n| format!("scenario `{n}`"))
            .unwrap_or_else(|| format!("scenario #{}", i + 1));
        match serde_yaml::from_value::<ScenarioDef>(item) {
            Ok(d) => defs.push(d),
            Err(e) => errors.push(err(format!("{label}: {e}"))),
        }
    }
    for d in &defs {
        for m in check(d) {
            errors.push(err(format!("scenario `{}`: {m}", d.name)));
        }
    }
    if errors.is_empty() {
        Ok(defs)
    } else {
        Err(errors)
    }
}

fn check(d: &ScenarioDef) -> Vec<String> {
    let mut out = Vec::new();
    if d.name.is_empty()
        || !d
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        out.push("`name` must be non-empty letters, digits, `_` or `-`".into());
    }
    if !(0.0..=1.0).contains(&d.confidence) {
        out.push(format!(
            "`confidence` must be within 0..1, not {}",
            d.confidence
        ));
    }
    match &d.counting {
        Counting::Leaky { capacity, leak } => {
            if *capacity == 0 {
                out.push("`counting.capacity` must be at least 1".into());
            }
            if leak.is_zero() {
                out.push("`counting.leak` must be longer than 0".into());
            }
        }
        Counting::Distinct {
            field,
            threshold,
            window,
        } => {
            if field.is_empty() {
                out.push("`counting.field` must name a field".into());
            }
            if *threshold < 2 {
                out.push("`counting.threshold` must be at least 2".into());
            }
            if window.is_zero() {
                out.push("`counting.window` must be longer than 0".into());
            }
        }
        Counting::Window { threshold, window } => {
            if !(1..=MAX_WINDOW_THRESHOLD).contains(threshold) {
                out.push(format!(
                    "`counting.threshold` must be within 1..={MAX_WINDOW_THRESHOLD}"
                ));
            }
            if window.is_zero() {
                out.push("`counting.window` must be longer than 0".into());
            }
        }
        Counting::Trigger => {}
    }
    out
}

/// The largest `threshold` of a `window` scenario (each key keeps that many times).
pub const MAX_WINDOW_THRESHOLD: u32 = 10_000;

/// The scenarios Sentinel ships with.
pub const BUILTIN: &str = include_str!("builtin.yaml");
