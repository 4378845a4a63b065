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
        /// Only observations whose value of this field (`path`, `user`, `path:file`, …) is not already
        /// among the values in the bucket pour (CrowdSec's `distinct`).
        #[serde(default)]
        distinct: Option<String>,
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
    /// Fires when failures keep coming at regular, slow intervals: at least `count` matching
    /// observations, none more than `expire` after the previous one, whose last `count` are spaced by
    /// a median interval longer than `median_interval` (CrowdSec's time-based brute force).
    Spaced {
        /// Observations needed.
        count: u32,
        /// The median interval between the last `count` must be longer than this.
        #[serde(with = "humantime_serde")]
        median_interval: Duration,
        /// A gap longer than this starts over.
        #[serde(with = "humantime_serde")]
        expire: Duration,
    },
}

/// Which part of a field a condition looks at (for `path`: the request target as sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The whole value.
    #[default]
    Whole,
    /// Before the first `?` (the path of a request target).
    Path,
    /// After the first `?` (the query string; empty when there is none).
    Query,
    /// The last `/`-separated segment of [`Part::Path`] (the file name).
    File,
}

/// One test of a field. Exactly one of `equals`, `contains`, `starts_with`, `ends_with`, `words`,
/// `regex`, `present` is given. List entries of the form `@name` stand for every line of the built-in
/// data list `name` (see `scenario/data/`); `@@…` is a literal starting with `@`. Matching ignores ASCII case unless `case_sensitive`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The field (`path`, `user_agent`, `status`, …).
    pub field: String,
    /// Which part of it.
    #[serde(default)]
    pub part: Part,
    /// Also test the value percent-decoded once and twice (with `+` as a space and nginx's `\xHH`
    /// escapes undone); the condition holds if any form matches.
    #[serde(default)]
    pub decode: bool,
    /// Compare case-sensitively.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Holds when the test does not match (a missing field still fails).
    #[serde(default)]
    pub negate: bool,
    /// The value is one of these.
    #[serde(default)]
    pub equals: Vec<String>,
    /// The value contains one of these.
    #[serde(default)]
    pub contains: Vec<String>,
    /// The value starts with one of these.
    #[serde(default)]
    pub starts_with: Vec<String>,
    /// The value ends with one of these.
    #[serde(default)]
    pub ends_with: Vec<String>,
    /// The value contains one of these as a whole word (ASCII word boundaries on both sides).
    #[serde(default)]
    pub words: Vec<String>,
    /// The value matches one of these regular expressions (Rust `regex` syntax, on bytes, without
    /// Unicode classes: `.` and `[^/]` match one byte, `(?i)` folds ASCII only).
    #[serde(default)]
    pub regex: Vec<String>,
    /// The field is present (`true`) or absent (`false`).
    #[serde(default)]
    pub present: Option<bool>,
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
    /// Field tests that must all hold.
    #[serde(default, rename = "match")]
    pub conditions: Vec<Condition>,
    /// Alternatives of which at least one must hold (each a filter of its own).
    #[serde(default)]
    pub any_of: Vec<Filter>,
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
    /// What the counting is per: `source` (the remote address, per IPv6 prefix if so configured) and
    /// field specs (`vhost`, `path:path`). Default: `[source]`.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// With a group that is not per source: fire only when at least this many sources are in it.
    #[serde(default)]
    pub min_sources: u32,
    /// Observations that reset a key's count (a successful login ends a slow brute force).
    #[serde(default)]
    pub cancel_on: Option<Filter>,
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

fn default_group_by() -> Vec<String> {
    vec![SOURCE.to_string()]
}

/// Most observations a `spaced` count looks back on.
pub const MAX_SPACED: usize = 8;

/// The `group_by` entry that stands for the remote address.
pub const SOURCE: &str = "source";

/// Most sources a group not per source keeps a tally of (for `min_sources` and the alert's top list).
pub const MAX_TALLIED_SOURCES: u32 = 64;

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
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| vec![err(e.to_string())])?;
    let items = match value {
        serde_norway::Value::Sequence(items) => items,
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
        match serde_norway::from_value::<ScenarioDef>(item) {
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
        Counting::Leaky {
            capacity,
            leak,
            distinct,
        } => {
            if *capacity == 0 {
                out.push("`counting.capacity` must be at least 1".into());
            }
            if leak.is_zero() {
                out.push("`counting.leak` must be longer than 0".into());
            }
            if let Some(f) = distinct {
                if let Err(m) = FieldSpec::parse(f) {
                    out.push(format!("`counting.distinct`: {m}"));
                }
            }
        }
        Counting::Spaced {
            count,
            median_interval,
            expire,
        } => {
            if !(3..=MAX_SPACED as u32).contains(count) {
                out.push(format!(
                    "`counting.count` must be within 3..={MAX_SPACED}, not {count}"
                ));
            }
            if median_interval >= expire {
                out.push(
                    "`counting.median_interval` must be shorter than `counting.expire`".into(),
                );
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
    if d.group_by.is_empty() {
        out.push("`group_by` must name `source` or at least one field".into());
    }
    for g in d.group_by.iter().filter(|g| g.as_str() != SOURCE) {
        if let Err(m) = FieldSpec::parse(g) {
            out.push(format!("`group_by`: {m}"));
        }
    }
    let per_source = d.group_by.iter().any(|g| g == SOURCE);
    if d.min_sources > 0 && per_source {
        out.push("`min_sources` needs a `group_by` without `source`".into());
    }
    if d.min_sources > MAX_TALLIED_SOURCES {
        out.push(format!(
            "`min_sources` must be at most {MAX_TALLIED_SOURCES}, not {}",
            d.min_sources
        ));
    }
    if !per_source && !matches!(d.counting, Counting::Leaky { .. }) {
        out.push("a `group_by` without `source` needs `counting.type: leaky`".into());
    }
    check_filter(&d.filter, "filter", &mut out);
    if let Some(c) = &d.cancel_on {
        check_filter(c, "cancel_on", &mut out);
    }
    out
}

/// The largest `threshold` of a `window` scenario (each key keeps that many times).
pub const MAX_WINDOW_THRESHOLD: u32 = 10_000;

fn check_filter(f: &Filter, at: &str, out: &mut Vec<String>) {
    for (i, c) in f.conditions.iter().enumerate() {
        let at = format!("{at}.match[{i}]");
        if c.field.is_empty() {
            out.push(format!("`{at}.field` must name a field"));
        }
        let ops = [
            !c.equals.is_empty(),
            !c.contains.is_empty(),
            !c.starts_with.is_empty(),
            !c.ends_with.is_empty(),
            !c.words.is_empty(),
            !c.regex.is_empty(),
            c.present.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if ops != 1 {
            out.push(format!(
                "`{at}` must give exactly one of equals, contains, starts_with, ends_with, words, regex, present (found {ops})"
            ));
        }
        let lists = [
            &c.equals,
            &c.contains,
            &c.starts_with,
            &c.ends_with,
            &c.words,
            &c.regex,
        ];
        for entry in lists.into_iter().flatten() {
            if let Some(name) = crate::scenario::data::list_name(entry) {
                if crate::scenario::data::list(name).is_none() {
                    out.push(format!(
                        "`{at}`: no built-in list `{name}` (known: {})",
                        crate::scenario::data::NAMES.join(", ")
                    ));
                }
            }
        }
        // An empty needle is found in every value: the condition would match everything, silently.
        for (op, list) in [
            ("contains", &c.contains),
            ("starts_with", &c.starts_with),
            ("ends_with", &c.ends_with),
            ("words", &c.words),
            ("regex", &c.regex),
        ] {
            if list.iter().any(|e| e.is_empty()) {
                out.push(format!(
                    "`{at}.{op}` has an empty entry, which every value would match"
                ));
            }
        }
        for r in &c.regex {
            if let Err(e) = regex::bytes::RegexBuilder::new(r).unicode(false).build() {
                out.push(format!("`{at}.regex` `{r}`: {e}"));
            }
        }
    }
    for (i, sub) in f.any_of.iter().enumerate() {
        check_filter(sub, &format!("{at}.any_of[{i}]"), out);
    }
}

/// A field reference as written in `group_by` and `distinct`: `name` or `name:part`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    /// The field.
    pub field: String,
    /// Which part of it.
    pub part: Part,
}

impl FieldSpec {
    /// Parses `name` or `name:whole|path|query|file`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (field, part) = match s.split_once(':') {
            None => (s, Part::Whole),
            Some((f, p)) => {
                let part = match p {
                    "whole" => Part::Whole,
                    "path" => Part::Path,
                    "query" => Part::Query,
                    "file" => Part::File,
                    other => {
                        return Err(format!(
                            "`{s}`: unknown part `{other}` (whole, path, query, file)"
                        ))
                    }
                };
                (f, part)
            }
        };
        if field.is_empty() {
            return Err(format!("`{s}` names no field"));
        }
        Ok(Self {
            field: field.to_string(),
            part,
        })
    }
}

/// The scenarios Sentinel ships with.
pub const BUILTIN: &str = include_str!("builtin.yaml");
