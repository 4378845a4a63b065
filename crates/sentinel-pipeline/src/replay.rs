//! `sentinel replay`: a one-shot offline run over log files, like `fail2ban-regex` and CrowdSec's
//! one-shot mode. It uses the lines' own timestamps, not the wall clock, so replaying a week of logs
//! gives the alerts the week would have given. Prints a summary (or JSON), or every matched line.

use anyhow::Context;
use sentinel_core::{Alert, Redactor, Timestamp};
use sentinel_detect::scenario::ScenarioDef;
use sentinel_detect::{EngineOptions, EngineStats, ScenarioEngine};
use sentinel_ingest::config::{LineFormat, LogFormat};
use sentinel_ingest::{LineParser, ParseCtx};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

/// What to replay, and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Files (`-` for standard input), plain or gzip.
    pub files: Vec<PathBuf>,
    /// How lines are parsed: a built-in format (`auto`, `sshd`, `nginx`, …) or a fail2ban filter with
    /// its mode (`normal`, `aggressive`, `ddos`, … as the filter defines them).
    pub format: LineFormat,
    /// Extra scenario files (a directory of `*.yaml`, or one file).
    pub scenarios: Option<PathBuf>,
    /// Whether the built-in scenarios run too.
    pub builtin: bool,
    /// Sources never counted.
    pub whitelist: Vec<ipnet::IpNet>,
    /// IPv6 aggregation prefix.
    pub ipv6_prefix: Option<u8>,
    /// Key cap per scenario.
    pub max_keys: usize,
    /// Print every matched line instead of the summary.
    pub matches: bool,
    /// Machine-readable output.
    pub json: bool,
}

/// The outcome of a replay.
#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    /// Files read.
    pub files: Vec<String>,
    /// Lines read.
    pub lines: u64,
    /// Lines a parser understood.
    pub parsed: u64,
    /// Lines not parsed, by reason.
    pub unparsed: BTreeMap<String, u64>,
    /// Lines with invalid UTF-8 (read lossily).
    pub invalid_utf8: u64,
    /// Lines longer than the limit, cut to it (and parsed as cut).
    pub lines_too_long: u64,
    /// Files that could not be read (or not to their end), each with why; the others still count.
    pub unreadable: Vec<UnreadableFile>,
    /// What the reader must not miss (a filter that matched nothing, …); also printed to stderr.
    pub warnings: Vec<String>,
    /// Alerts raised, by scenario.
    pub alerts_by_scenario: BTreeMap<String, u64>,
    /// Sources with the most alerts.
    pub top_sources: Vec<TopSource>,
    /// Every alert, oldest first (in JSON output).
    pub alerts: Vec<AlertLine>,
    /// Engine counters (state kept, expired, evicted).
    pub live_keys: u64,
    /// Keys dropped as idle by event time.
    pub expired_keys: u64,
    /// Keys evicted at the cap.
    pub evicted_keys: u64,
    /// Wall time.
    pub elapsed_ms: u64,
    /// Throughput.
    pub lines_per_sec: u64,
}

/// A file replay could not read, or not to its end.
#[derive(Debug, Serialize)]
pub struct UnreadableFile {
    /// The file as given.
    pub file: String,
    /// Why (`No such file or directory`, `Permission denied`, `is a directory`, `corrupt gzip …`).
    pub reason: String,
    /// Lines read from it before the error (they were replayed).
    pub lines_read: u64,
}

impl ReplaySummary {
    /// Whether some file could not be read (exit code 1: the results are partial).
    pub fn is_partial(&self) -> bool {
        !self.unreadable.is_empty()
    }

    /// Whether no file could be read at all (exit code 2: there are no results, not partial ones).
    pub fn nothing_read(&self) -> bool {
        !self.unreadable.is_empty() && self.unreadable.len() == self.files.len() && self.lines == 0
    }
}

/// A source and how many alerts it raised.
#[derive(Debug, Serialize)]
pub struct TopSource {
    /// The address.
    pub ip: String,
    /// Alerts it raised.
    pub alerts: u64,
}

/// One alert, flattened for output.
#[derive(Debug, Serialize)]
pub struct AlertLine {
    /// When (event time).
    pub ts: Timestamp,
    /// Which scenario.
    pub scenario: String,
    /// About whom.
    pub source: String,
    /// How bad.
    pub severity: String,
    /// Why.
    pub detail: String,
}

fn load_scenarios(opts: &ReplayOptions) -> anyhow::Result<Vec<ScenarioDef>> {
    crate::scenarios::load_defs(opts.builtin, opts.scenarios.as_deref(), &[])
}

fn parser(opts: &ReplayOptions) -> anyhow::Result<Box<dyn LineParser>> {
    let f = match &opts.format {
        LineFormat::Named(format) => return Ok(format.build()),
        LineFormat::Fail2ban(f) => f,
    };
    // The error names the file, the option and the cause itself (its I/O source included): as a chain
    // the cause would print twice.
    let filter = f.build().map_err(|e| {
        let text = e.to_string();
        match &f.mode {
            // A mode the filter does not define leaves its `<mdre-MODE…>` tag unresolved.
            Some(mode) if text.contains(&format!("<mdre-{mode}")) => anyhow::anyhow!(
                "{text}: the filter has no mode `{mode}` (its modes are the `mdre-*` options of its [Definition])"
            ),
            _ => anyhow::anyhow!("{text}"),
        }
    })?;
    Ok(Box::new(filter))
}

/// Runs the replay, writing the summary (or matches) to `out`.
pub fn run(opts: &ReplayOptions, out: &mut dyn Write) -> anyhow::Result<ReplaySummary> {
    let parser = parser(opts)?;
    // A parser the user chose (a fail2ban filter, or a format other than `auto`) that matches nothing is
    // almost always the wrong filter or a broken one: say so.
    let explicit = opts.format != LineFormat::Named(LogFormat::Auto);
    let filter_name = match &opts.format {
        LineFormat::Fail2ban(_) => parser.name().to_owned(),
        LineFormat::Named(format) => format.as_str().to_owned(),
    };
    let defs = load_scenarios(opts)?;
    let mut engine = ScenarioEngine::new(
        defs,
        EngineOptions {
            whitelist: opts.whitelist.clone(),
            ipv6_prefix: opts.ipv6_prefix,
            max_keys_per_scenario: opts.max_keys,
            ..Default::default()
        },
    )
    .with_redactor(Redactor::default());
    let started = Instant::now();
    let progress = std::io::stderr().is_terminal() && !opts.matches;
    let mut summary = ReplaySummary::default();
    let mut unparsed: HashMap<&'static str, u64> = HashMap::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut io_error: Option<std::io::Error> = None;
    for file in &opts.files {
        let reference = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Timestamp::from_millis(d.as_millis() as i64))
            .unwrap_or_else(Timestamp::now);
        let ctx = ParseCtx {
            reference,
            utc_offset_secs: 0,
        };
        summary.files.push(file.display().to_string());
        let before = (summary.lines, summary.parsed);
        let mut line_no = 0u64;
        let mut per_line = |line: &str| {
            line_no += 1;
            summary.lines += 1;
            match parser.parse(line, &ctx) {
                Ok(p) => {
                    summary.parsed += 1;
                    let before = alerts.len();
                    engine.observe(&p, Some(line), &mut alerts);
                    if opts.matches {
                        let mut fields: Vec<String> = Vec::new();
                        if let Some(ip) = p.src_ip {
                            fields.push(format!("src_ip={ip}"));
                        }
                        for (k, v) in p.all_fields() {
                            fields.push(format!("{k}={v}"));
                        }
                        let ts = p.ts.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into());
                        if let Err(e) = writeln!(
                            out,
                            "{}:{line_no}\t{}\t{}\t{ts}\t{}",
                            file.display(),
                            p.service,
                            p.kind.as_str(),
                            fields.join(" ")
                        ) {
                            io_error.get_or_insert(e);
                        }
                        for a in &alerts[before..] {
                            if let Err(e) = writeln!(out, "{}", match_alert_line(a)) {
                                io_error.get_or_insert(e);
                            }
                        }
                    }
                }
                Err(u) => *unparsed.entry(u.reason()).or_default() += 1,
            }
            if progress && summary.lines % 500_000 == 0 {
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                eprint!(
                    "\r{} lines, {:.0} lines/s, {} alerts   ",
                    summary.lines,
                    summary.lines as f64 / secs,
                    alerts.len()
                );
            }
        };
        let opened = if file.as_os_str() != "-" && file.is_dir() {
            Err(std::io::Error::other("is a directory"))
        } else {
            sentinel_ingest::source::file::LineReader::open(file)
        };
        let mut stats = None;
        let read = opened.and_then(|mut reader| {
            let r = reader.for_each_line(&mut per_line);
            stats = Some(reader.stats());
            r
        });
        if let Some(st) = stats {
            summary.invalid_utf8 += st.invalid_utf8;
            summary.lines_too_long += st.too_long;
        }
        if let Err(e) = read {
            let lines_read = summary.lines - before.0;
            let reason = if lines_read > 0 {
                format!("{e} (after {lines_read} lines, which were replayed)")
            } else {
                e.to_string()
            };
            summary.unreadable.push(UnreadableFile {
                file: file.display().to_string(),
                reason,
                lines_read,
            });
        }
        if let Some(e) = io_error.take() {
            return Err(e).context("writing the matches");
        }
        let (lines, parsed) = (summary.lines - before.0, summary.parsed - before.1);
        if explicit && opts.files.len() > 1 && lines > 0 && parsed == 0 {
            summary.warnings.push(format!(
                "filter {filter_name} matched 0 of {lines} lines in {}",
                file.display()
            ));
        }
    }
    if explicit && summary.lines > 0 && summary.parsed == 0 {
        summary.warnings.insert(
            0,
            format!("filter {filter_name} matched 0 of {} lines", summary.lines),
        );
    }
    // `auto` with no line even recognised (every one foreign to every built-in parser): binary data, or a
    // format Sentinel does not read. Lines a parser recognised and set aside (`ignored`) do not count here.
    let no_match = unparsed.get("no_match").copied().unwrap_or(0);
    if !explicit && summary.lines > 0 && summary.parsed == 0 && no_match == summary.lines {
        summary.warnings.insert(
            0,
            format!(
                "no built-in parser recognised any of {} lines (format auto): name the format with --format or use --fail2ban-filter",
                summary.lines
            ),
        );
    }
    if progress {
        eprintln!();
    }
    let elapsed = started.elapsed();
    summary.elapsed_ms = elapsed.as_millis() as u64;
    summary.lines_per_sec = (summary.lines as f64 / elapsed.as_secs_f64().max(1e-9)) as u64;
    summary.unparsed = unparsed
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let EngineStats {
        alerts: by_scenario,
        live_keys,
        expired_keys,
        evicted_keys,
        ..
    } = engine.stats();
    summary.alerts_by_scenario = by_scenario;
    summary.live_keys = live_keys;
    summary.expired_keys = expired_keys;
    summary.evicted_keys = evicted_keys;
    let mut per_source: HashMap<String, u64> = HashMap::new();
    for a in &alerts {
        *per_source.entry(a.subject.to_string()).or_default() += 1;
    }
    let mut top: Vec<(String, u64)> = per_source.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    summary.top_sources = top
        .into_iter()
        .take(10)
        .map(|(ip, alerts)| TopSource {
            ip: ip.trim_start_matches("ip:").to_owned(),
            alerts,
        })
        .collect();
    summary.alerts = alerts
        .iter()
        .map(|a| AlertLine {
            ts: a.ts,
            scenario: a.scenario.clone(),
            source: a.subject.to_string().trim_start_matches("ip:").to_owned(),
            severity: a.severity.to_string(),
            detail: a
                .reasons
                .first()
                .map(|r| r.detail.clone())
                .unwrap_or_default(),
        })
        .collect();
    for u in &summary.unreadable {
        eprintln!("ERROR: {}: {}", u.file, u.reason);
    }
    for w in &summary.warnings {
        eprintln!("WARNING: {w}");
    }
    if opts.json {
        serde_json::to_writer_pretty(&mut *out, &summary)?;
        writeln!(out)?;
    } else if !opts.matches {
        print_table(&summary, out)?;
    }
    Ok(summary)
}

/// The line `--matches` prints under the line that raised `a`: scenario, subject and the first
/// reason's detail (`-` for an alert that gives none).
fn match_alert_line(a: &Alert) -> String {
    let detail = a.reasons.first().map_or("-", |r| r.detail.as_str());
    format!("  ALERT {} {} {detail}", a.scenario, a.subject)
}

fn print_table(s: &ReplaySummary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Replayed {} file(s){} in {:.2} s ({} lines/s)",
        s.files.len(),
        if s.unreadable.is_empty() {
            String::new()
        } else if s.nothing_read() {
            ": NOTHING could be read".to_owned()
        } else {
            format!(", {} unreadable: results are PARTIAL", s.unreadable.len())
        },
        s.elapsed_ms as f64 / 1000.0,
        s.lines_per_sec
    )?;
    writeln!(out)?;
    writeln!(out, "  lines read        {:>12}", s.lines)?;
    writeln!(out, "  parsed            {:>12}", s.parsed)?;
    for (reason, n) in &s.unparsed {
        writeln!(out, "  unparsed: {reason:<15}{n:>9}")?;
    }
    writeln!(out, "  cut (too long)    {:>12}", s.lines_too_long)?;
    if s.invalid_utf8 > 0 {
        writeln!(out, "  invalid UTF-8     {:>12}", s.invalid_utf8)?;
    }
    for u in &s.unreadable {
        writeln!(out, "  UNREADABLE {}: {}", u.file, u.reason)?;
    }
    for w in &s.warnings {
        writeln!(out, "  WARNING: {w}")?;
    }
    writeln!(out)?;
    let total: u64 = s.alerts_by_scenario.values().sum();
    writeln!(out, "  alerts            {total:>12}")?;
    for (sc, n) in &s.alerts_by_scenario {
        writeln!(out, "    {sc:<28}{n:>8}")?;
    }
    if !s.top_sources.is_empty() {
        writeln!(out)?;
        writeln!(out, "  top sources")?;
        for t in &s.top_sources {
            writeln!(out, "    {:<40}{:>6}", t.ip, t.alerts)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "  scenario state: {} keys live, {} expired by event time, {} evicted at the cap",
        s.live_keys, s.expired_keys, s.evicted_keys
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_core::{AlertId, Reason, Severity, Subject, TraceId};

    fn alert(reasons: Vec<Reason>) -> Alert {
        Alert {
            id: AlertId::new(),
            ts: Timestamp::from_millis(0),
            detector: "scenario".into(),
            scenario: "ssh_bruteforce".into(),
            severity: Severity::High,
            score: 80,
            confidence: 0.9,
            subject: Subject::Ip("203.0.113.7".parse().unwrap()),
            reasons,
            evidence: vec![],
            trace_id: TraceId::new(),
        }
    }

    #[test]
    fn an_alert_without_reasons_prints_a_dash() {
        assert_eq!(
            match_alert_line(&alert(vec![])),
            "  ALERT ssh_bruteforce ip:203.0.113.7 -"
        );
        let reason = Reason {
            code: "failed_logins".into(),
            detail: "6 failed logins in 60s".into(),
            weight: 40,
        };
        assert_eq!(
            match_alert_line(&alert(vec![reason])),
            "  ALERT ssh_bruteforce ip:203.0.113.7 6 failed logins in 60s"
        );
    }
}
