//! `sentinel intel lookup|feeds`: what the investigation says about an address, and what the local
//! feeds loaded. A lookup asks the running daemon by default (so it shares the daemon's cache, limits
//! and quota); `--local` builds the investigation in-process from the configuration instead. `feeds`
//! always loads the configured files here, so a feed that lists nothing is never silent.
//!
//! Exit codes: 0 ok; 1 the daemon cannot be reached or answered with an error, or (feeds) a feed
//! did not load; 2 a usage or configuration error.

use super::client::{Remote, Target};
use super::Common;
use clap::{Args, Subcommand};
use sentinel_core::Severity;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// `sentinel intel` arguments.
#[derive(Args)]
pub struct IntelArgs {
    #[command(subcommand)]
    command: IntelCommand,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Subcommand)]
enum IntelCommand {
    /// What each provider and local feed says about an address, the cache state, and the risk score
    /// an alert from it would get (with each input's contribution).
    Lookup {
        /// The address (IPv4 or IPv6).
        ip: IpAddr,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
        /// Severity of the alert the score assumes: info, low, medium, high, critical.
        #[arg(long, default_value = "medium", value_parser = parse_severity)]
        severity: Severity,
        /// Build the investigation here from the configuration instead of asking the daemon (its
        /// own cache, starting empty; the store's history when the data directory holds a store).
        #[arg(long)]
        local: bool,
    },
    /// Load the configured feeds here and print what each one loaded (entries, malformed lines,
    /// errors). Exit 1 when any feed did not load.
    Feeds {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

/// A failure and its exit code.
struct Fail(u8, String);

/// Runs an `intel` subcommand.
pub fn run(a: IntelArgs) -> ExitCode {
    let done = match a.command {
        IntelCommand::Lookup {
            ip,
            json,
            severity,
            local,
        } => lookup(&a.common, a.remote, ip, severity, local).map(|report| {
            if json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                )
            } else {
                human(&report)
            }
        }),
        IntelCommand::Feeds { json } => feeds(&a.common, json),
    };
    match done {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(Fail(code, msg)) => {
            eprintln!("sentinel intel: {msg}");
            ExitCode::from(code)
        }
    }
}

fn lookup(
    common: &Common,
    remote: Remote,
    ip: IpAddr,
    severity: Severity,
    local: bool,
) -> Result<Value, Fail> {
    let cfg = common.load().map_err(|e| Fail(2, e))?;
    let rt = super::small_runtime().map_err(|e| Fail(2, format!("cannot start: {e}")))?;
    if local {
        return rt.block_on(lookup_local(&cfg, ip, severity));
    }
    // Every failure to find the daemon and have it prove itself is "the daemon cannot be reached"
    // (exit 1, as documented): nothing listens, a stale `api.addr` or another program holds the
    // port, the socket or its peer is not this install's, or no admin key exists because the daemon
    // never ran here. Usage and configuration errors were caught above (exit 2).
    let target = Target::resolve(remote, &cfg.data_dir, &cfg.api).map_err(|e| {
        Fail(
            1,
            format!(
                "{e:#}\n(is the daemon running here? start it with `sentinel run`, or use --local)"
            ),
        )
    })?;
    rt.block_on(async {
        let client = target.client().map_err(|e| Fail(1, format!("{e:#}")))?;
        let resp = client
            .get(format!("{}/v1/intel/{ip}", target.base))
            .query(&[("severity", severity.as_str())])
            .bearer_auth(&target.key)
            .send()
            .await
            .map_err(|e| {
                Fail(
                    1,
                    format!(
                        "the daemon at {} does not answer ({}): start it (`sentinel run`) or use --local",
                        target,
                        if e.is_connect() { "connection refused" } else if e.is_timeout() { "timed out" } else { "request failed" }
                    ),
                )
            })?;
        let status = resp.status();
        Target::check(resp)
            .await
            .map_err(|e| Fail(if status == 400 { 2 } else { 1 }, format!("{e:#}")))
    })
}

/// The investigation built here: the configured providers (their keys and quotas), feeds and
/// assets, with history from the data directory's store when there is one.
async fn lookup_local(
    cfg: &sentinel_config::ValidatedConfig,
    ip: IpAddr,
    severity: Severity,
) -> Result<Value, Fail> {
    let db = cfg.data_dir.join("sentinel.db");
    let store = if let Some(url) = &cfg.store.url {
        let shown = sentinel_config::mask_url(url);
        let s = sentinel_store::Store::open_url(url)
            .await
            .map_err(|e| Fail(2, format!("{shown}: {e}")))?;
        eprintln!("history: from the store at {shown}");
        Some(s)
    } else if db.is_file() {
        let s = sentinel_store::Store::open(&db)
            .await
            .map_err(|e| Fail(2, format!("{}: {e}", db.display())))?;
        eprintln!("history: from the store at {}", db.display());
        Some(s)
    } else {
        eprintln!(
            "history: none (no store at {}; pass --data-dir to use one)",
            db.display()
        );
        None
    };
    let history = store.clone().map(|s| {
        Arc::new(sentinel_pipeline::history::StoreHistory::new(s))
            as Arc<dyn sentinel_intel::History>
    });
    let built = sentinel_intel::build(&cfg.intel, history);
    let (intel, reports) = match built {
        Ok(b) => b,
        Err(e) => {
            if let Some(s) = store {
                s.close().await;
            }
            return Err(Fail(2, format!("cannot build the investigation: {e}")));
        }
    };
    for r in reports.iter().filter(|r| r.error.is_some()) {
        eprintln!(
            "feed {}: not loaded: {}",
            r.feed,
            r.error.as_deref().unwrap_or_default()
        );
    }
    let report = intel.lookup(ip, severity).await;
    if let Some(s) = store {
        s.close().await;
    }
    serde_json::to_value(&report).map_err(|e| Fail(1, format!("cannot show the report: {e}")))
}

/// The Cortex-style level of a verdict.
fn level(verdict: &str) -> &str {
    match verdict {
        "malicious" => "malicious",
        "suspicious" => "suspicious",
        "benign" => "safe",
        _ => "info",
    }
}

/// `hit memory 12s`, `hit redis 3s`, `miss`, or `-` for an enricher that keeps no cache.
fn cache_state(details: &Value) -> String {
    let c = &details["cache"];
    match c["hit"].as_bool() {
        None => "-".into(),
        Some(false) => "miss".into(),
        Some(true) => {
            let source = c["source"].as_str().unwrap_or("?");
            match c["age_secs"].as_u64() {
                Some(age) => format!("hit {source} {age}s"),
                None => format!("hit {source}"),
            }
        }
    }
}

/// The details worth a glance, on one line: scalars as `key=value`, feed matches as
/// `feed prefix (reason)`, lists joined; the cache is shown apart.
fn facts(details: &Value) -> String {
    let Some(m) = details.as_object() else {
        return String::new();
    };
    let mut out: Vec<String> = Vec::new();
    for (k, v) in m {
        match (k.as_str(), v) {
            ("cache", _) | (_, Value::Null) => {}
            ("matches", Value::Array(items)) => {
                if items.is_empty() {
                    out.push("listed in no feed".into());
                }
                for i in items {
                    let mut s = format!(
                        "{} {}",
                        i["feed"].as_str().unwrap_or("?"),
                        i["prefix"].as_str().unwrap_or("")
                    );
                    if let Some(r) = i["reason"].as_str() {
                        let _ = write!(s, " ({r})");
                    }
                    out.push(s);
                }
            }
            (_, Value::Array(items)) if !items.is_empty() => {
                let shown: Vec<String> = items.iter().take(8).map(scalar).collect();
                out.push(format!("{k}={}", shown.join(",")));
            }
            (_, Value::Array(_)) => {}
            (_, Value::Object(_)) => {}
            _ => out.push(format!("{k}={}", scalar(v))),
        }
    }
    let line = out.join(" ");
    if line.chars().count() > 160 {
        let cut: String = line.chars().take(157).collect();
        format!("{cut}...")
    } else {
        line
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The report for a person: one line per enricher, the flags, the score and how it was made.
fn human(r: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  (assumed alert: {} severity, detector score {}){}",
        scalar(&r["ip"]),
        scalar(&r["assumed_alert"]["severity"]),
        scalar(&r["assumed_alert"]["score"]),
        if r["offline"] == true {
            "  [offline: local feeds and history only]"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "{:<16} {:<10} {:>5}  {:<14} FACTS",
        "ENRICHER", "LEVEL", "SCORE", "CACHE"
    );
    for e in r["evidence"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let score = e["score"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:>5}  {:<14} {}",
            e["provider"].as_str().unwrap_or("?"),
            level(e["verdict"].as_str().unwrap_or("")),
            score,
            cache_state(&e["details"]),
            facts(&e["details"])
        );
    }
    let flags: Vec<String> = r["uncertainty"]
        .as_array()
        .map(|a| a.iter().map(scalar).collect())
        .unwrap_or_default();
    if flags.is_empty() {
        out.push_str("uncertainty: none\n");
    } else {
        out.push_str("uncertainty:\n");
        for f in flags {
            let _ = writeln!(out, "  - {f}");
        }
    }
    let _ = writeln!(
        out,
        "risk score {}/100, confidence {:.2}",
        scalar(&r["risk_score"]),
        r["confidence"].as_f64().unwrap_or(0.0)
    );
    out.push_str("contributions:\n");
    let _ = writeln!(
        out,
        "  {:<20} {:>6} {:>10}  DETAIL",
        "INPUT", "POINTS", "CONFIDENCE"
    );
    for c in r["contributions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let _ = writeln!(
            out,
            "  {:<20} {:>+6} {:>+10.2}  {}",
            c["input"].as_str().unwrap_or("?"),
            c["risk"].as_i64().unwrap_or(0),
            c["confidence"].as_f64().unwrap_or(0.0),
            c["detail"].as_str().unwrap_or("")
        );
    }
    out
}

/// Loads every configured feed here and reports each.
fn feeds(common: &Common, json: bool) -> Result<String, Fail> {
    let cfg = common.load().map_err(|e| Fail(2, e))?;
    let (_feeds, reports) = sentinel_intel::Feeds::load(&cfg.intel.feeds);
    let failed = reports
        .iter()
        .filter(|r| r.error.is_some() || r.entries == 0)
        .count();
    let text = if json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        )
    } else if reports.is_empty() {
        "no feeds configured (intel.feeds)\n".to_owned()
    } else {
        let mut out = String::new();
        for r in &reports {
            let _ = writeln!(
                out,
                "{}  {}  entries {}  malformed lines {}{}",
                r.feed,
                r.path.display(),
                r.entries,
                r.malformed,
                if r.warnings > 0 {
                    format!("  corrected lines {}", r.warnings)
                } else {
                    String::new()
                }
            );
            if let Some(e) = &r.error {
                let _ = writeln!(out, "  error: {e}");
            }
            for n in &r.notes {
                let _ = writeln!(out, "  note: {n}");
            }
            for l in &r.samples {
                let _ = writeln!(out, "  line {}: {}: {}", l.line, l.why, l.text);
            }
        }
        out
    };
    if failed > 0 {
        // The reports still go to stdout: they say what went wrong.
        print!("{text}");
        return Err(Fail(
            1,
            format!("{failed} of {} feed(s) did not load", reports.len()),
        ));
    }
    Ok(text)
}
