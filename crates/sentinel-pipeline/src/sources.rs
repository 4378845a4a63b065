//! Log sources in the daemon: each configured source feeds raw lines to a parse task, which turns them
//! into redacted events for the pipeline's intake (waiting when it is full, so tailing pauses rather
//! than drops). Lines no parser understands are counted by reason. Each source's own counters (and its
//! fail2ban filter's session counters) are registered with the metrics, which read them at every scrape.

use crate::intake::Submission;
use crate::metrics::{LineCounts, Metrics, SessionReading};
use anyhow::Context;
use sentinel_config::{SourceConfig, ValidatedConfig};
use sentinel_core::Redactor;
use sentinel_ingest::config::LineFormat;
use sentinel_ingest::fail2ban::Fail2banFilter;
use sentinel_ingest::source::{RawLine, SourceMetrics};
use sentinel_ingest::{LineParser, ParseCtx};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The running sources and their parse tasks.
pub struct RunningSources {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSources {
    /// Stops every source, lets the parse tasks hand over what was read, and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// What `config check` verifies beyond the pure validation (it reads files): fail2ban jails (expanded as the
/// daemon would), every source's parser (fail2ban filters load), every scenario, the scenario whitelist's
/// host names (resolved as the daemon does), that every actuator builds, and that `data_dir` is (or can
/// become) a directory. Returns notes to print (`WARNING: …` lines and a summary of the jails) and errors.
pub fn preflight(cfg: &ValidatedConfig) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let mut errors: Vec<String> = dir_problem("data_dir", &cfg.data_dir).into_iter().collect();
    errors.extend(listen_problems(cfg));
    let (expanded, warnings) = crate::jails::expand(cfg);
    notes.extend(warnings.into_iter().map(|w| format!("WARNING: {w}")));
    let cfg = match expanded {
        Ok(cfg) => cfg,
        Err(jail_errors) => {
            errors.extend(jail_errors);
            return (notes, errors);
        }
    };
    for (i, src) in cfg.sources.iter().enumerate() {
        match source_parser(src) {
            Ok(p) => {
                if let SourceConfig::File {
                    jail: Some(j),
                    file,
                    ..
                } = src
                {
                    let paths: Vec<&str> = file.paths.iter().map(|g| g.as_str()).collect();
                    notes.push(format!(
                        "fail2ban jail {j}: filter {} on {}",
                        p.name(),
                        paths.join(", ")
                    ));
                } else if let SourceConfig::Journald {
                    jail: Some(j),
                    journald,
                    ..
                } = src
                {
                    notes.push(format!(
                        "fail2ban jail {j}: filter {} on `{}`",
                        p.name(),
                        journald.command.join(" ")
                    ));
                }
            }
            // Names and paths are quoted: `config check` masks secrets in what it prints, and a bare
            // `…/auth.log:` or `nginx-http-auth.conf:` would read as a secret key whose value is the cause.
            Err(e) => errors.push(match src {
                SourceConfig::File { jail: Some(j), .. }
                | SourceConfig::Journald { jail: Some(j), .. } => format!("jail `{j}`: {e:#}"),
                SourceConfig::File { file, .. } => format!(
                    "sources[{i}] file `{}`: {e:#}",
                    file.paths
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                _ => format!("sources[{i}] {}: {e:#}", source_label(src)),
            }),
        }
    }
    let sc = &cfg.detect.scenarios;
    if let Err(e) = crate::scenarios::load_defs(sc.builtin, sc.dir.as_deref(), &sc.define) {
        errors.push(format!("{e:#}"));
    }
    if let Err(e) = crate::scenarios::resolve_whitelist(&sc.whitelist) {
        errors.push(format!("detect.scenarios.{e:#}"));
    }
    errors.extend(crate::actuators::preflight(&cfg));
    (notes, errors)
}

/// Addresses the daemon would listen on (the API, syslog sources) that are not this host's: binding them
/// fails when the daemon starts. Whether a port is free is left to the daemon (a check here would fail
/// while the daemon itself runs).
fn listen_problems(cfg: &ValidatedConfig) -> Vec<String> {
    let mut wanted: Vec<(String, std::net::SocketAddr)> =
        vec![("`api.listen`".into(), cfg.api.listen)];
    for (i, src) in cfg.sources.iter().enumerate() {
        if let SourceConfig::Syslog { syslog, .. } = src {
            for (proto, addr) in [("udp", syslog.udp), ("tcp", syslog.tcp)] {
                if let Some(addr) = addr {
                    wanted.push((format!("`sources[{i}].{proto}`"), addr));
                }
            }
        }
    }
    let local = match crate::policy::local_addresses() {
        Ok(local) => local,
        Err(e) => return vec![format!("cannot list this host's addresses: {e}")],
    };
    wanted
        .into_iter()
        .filter(|(_, a)| !a.ip().is_unspecified() && !local.contains(&a.ip()))
        .map(|(key, a)| format!("{key}: {} is not an address of this host", a.ip()))
        .collect()
}

/// Why the daemon could not use `dir` (the setting `key`) as a directory: it, or the nearest part of its
/// path that exists, is not a directory. Whether it may be written is left to the daemon (a check here
/// could pass as another user).
pub(crate) fn dir_problem(key: &str, dir: &std::path::Path) -> Option<String> {
    let existing = dir
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_ok())?;
    match std::fs::metadata(existing) {
        Ok(m) if m.is_dir() => None,
        Ok(_) if existing == dir => Some(format!(
            "`{key}`: {} exists and is not a directory",
            dir.display()
        )),
        Ok(_) => Some(format!(
            "`{key}`: {} cannot be created: {} is not a directory",
            dir.display(),
            existing.display()
        )),
        Err(e) => Some(format!(
            "`{key}`: {} cannot be used: {}: {e}",
            dir.display(),
            existing.display()
        )),
    }
}

/// A parser, and its fail2ban filter when it is one (whose session counters `/metrics` reads).
type BuiltParser = (Box<dyn LineParser>, Option<Arc<Fail2banFilter>>);

/// Builds the parser a source's lines are read with: a named format always builds; a fail2ban filter is
/// read and compiled now (its errors name the file).
fn build_parser(format: &LineFormat) -> anyhow::Result<BuiltParser> {
    match format {
        LineFormat::Named(f) => Ok((f.build(), None)),
        LineFormat::Fail2ban(f) => {
            // The filter's error names the file and its cause (an I/O error's text included): as an
            // error chain the cause would print twice.
            // The filter's path is quoted and said once (its error starts with it).
            let filter = Arc::new(f.build().map_err(|e| {
                let path = f.path.display().to_string();
                let text = e.to_string();
                let cause = text
                    .strip_prefix(path.as_str())
                    .and_then(|t| t.strip_prefix(": "))
                    .unwrap_or(&text);
                anyhow::anyhow!("loading the fail2ban filter `{path}`: {cause}")
            })?);
            Ok((Box::new(SharedFilter(filter.clone())), Some(filter)))
        }
    }
}

/// A fail2ban filter shared between the parse task and the metrics that read its session counters.
struct SharedFilter(Arc<Fail2banFilter>);

impl LineParser for SharedFilter {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn parse(
        &self,
        line: &str,
        ctx: &ParseCtx,
    ) -> Result<sentinel_ingest::Parsed, sentinel_ingest::Unparsed> {
        self.0.parse(line, ctx)
    }
}

/// The parser of one configured source, tagged with its jail when it has one.
pub fn source_parser(src: &SourceConfig) -> anyhow::Result<Box<dyn LineParser>> {
    source_parser_and_filter(src).map(|(p, _)| p)
}

fn source_parser_and_filter(src: &SourceConfig) -> anyhow::Result<BuiltParser> {
    let (format, jail) = match src {
        SourceConfig::File { parse, jail, .. } | SourceConfig::Journald { parse, jail, .. } => {
            (parse.clone(), jail)
        }
        SourceConfig::Syslog { format, .. } => (LineFormat::Named(*format), &None),
        SourceConfig::Fail2banJails { dir } => anyhow::bail!(
            "fail2ban_jails {} was not expanded into its jails' sources",
            dir.display()
        ),
    };
    let (parser, filter) = build_parser(&format)?;
    let parser: Box<dyn LineParser> = match jail {
        Some(j) => Box::new(JailTagged {
            inner: parser,
            jail: j.clone(),
        }),
        None => parser,
    };
    Ok((parser, filter))
}

/// The `source` label of a source in `/metrics`.
pub fn source_label(src: &SourceConfig) -> String {
    match src {
        SourceConfig::File { jail: Some(j), .. } | SourceConfig::Journald { jail: Some(j), .. } => {
            format!("jail:{j}")
        }
        SourceConfig::File { file, .. } => format!(
            "file:{}",
            file.paths
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
        SourceConfig::Syslog { syslog, .. } => format!(
            "syslog:{}",
            syslog
                .udp
                .iter()
                .map(|a| format!("udp:{a}"))
                .chain(syslog.tcp.iter().map(|a| format!("tcp:{a}")))
                .collect::<Vec<_>>()
                .join(",")
        ),
        SourceConfig::Journald { .. } => "journald".into(),
        SourceConfig::Fail2banJails { dir } => format!("fail2ban_jails:{}", dir.display()),
    }
}

/// A jail's parser: its filter's matches carry the field `jail=<name>`, which the jail's scenario selects.
struct JailTagged {
    inner: Box<dyn LineParser>,
    jail: String,
}

impl LineParser for JailTagged {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn parse(
        &self,
        line: &str,
        ctx: &ParseCtx,
    ) -> Result<sentinel_ingest::Parsed, sentinel_ingest::Unparsed> {
        let mut p = self.inner.parse(line, ctx)?;
        p.fields.push(("jail", self.jail.clone()));
        Ok(p)
    }
}

fn stop_future(
    rx: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// Starts every configured source. Fails (before anything runs) if a parser or a listener cannot be built.
pub async fn start(
    cfg: &ValidatedConfig,
    intake: mpsc::Sender<Submission>,
    metrics: Arc<Metrics>,
    redactor: Arc<Redactor>,
) -> anyhow::Result<RunningSources> {
    let (stop, stop_rx) = watch::channel(false);
    let state_dir = cfg.data_dir.join("sources");
    let mut tasks = Vec::new();
    for (i, src) in cfg.sources.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<RawLine>(1024);
        let (parser, filter) =
            source_parser_and_filter(src).with_context(|| format!("sources[{i}]"))?;
        let label = source_label(src);
        let counts = metrics.source_lines.counts(&label, parser.name());
        let source_metrics = Arc::new(SourceMetrics::default());
        register_metrics(&metrics, &label, &source_metrics, filter);
        // A jail's state is named after the jail, so adding or removing jails keeps every offset.
        let state_name = |kind: &str| match src {
            SourceConfig::File { jail: Some(j), .. }
            | SourceConfig::Journald { jail: Some(j), .. } => format!("{kind}-jail-{j}.json"),
            _ => format!("{kind}-{i}.json"),
        };
        match src {
            SourceConfig::File { file, .. } => {
                std::fs::create_dir_all(&state_dir)?;
                let tail = file.build(
                    Some(state_dir.join(state_name("file"))),
                    source_metrics.clone(),
                );
                let stopped = stop_future(&stop_rx);
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = tail.run(tx, stopped).await {
                        tracing::error!(evt = "source_failed", source = i, error = %e);
                    }
                }));
            }
            SourceConfig::Syslog { syslog, .. } => {
                let recv = syslog
                    .build(source_metrics.clone())
                    .await
                    .with_context(|| format!("sources[{i}]: cannot listen for syslog"))?;
                tracing::info!(evt = "syslog_listening", udp = ?recv.udp_addr(), tcp = ?recv.tcp_addr());
                let stopped = stop_future(&stop_rx);
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = recv.run(tx, stopped).await {
                        tracing::error!(evt = "source_failed", source = i, error = %e);
                    }
                }));
            }
            SourceConfig::Journald { journald, .. } => {
                std::fs::create_dir_all(&state_dir)?;
                let j = journald.build(
                    Some(state_dir.join(state_name("journald"))),
                    source_metrics.clone(),
                );
                let stopped = stop_future(&stop_rx);
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = j.run(tx, stopped).await {
                        tracing::error!(evt = "source_failed", source = i, error = %e);
                    }
                }));
            }
            SourceConfig::Fail2banJails { dir } => anyhow::bail!(
                "sources[{i}]: fail2ban_jails {} was not expanded",
                dir.display()
            ),
        }
        tasks.push(tokio::spawn(parse_lines(
            rx,
            parser,
            counts,
            intake.clone(),
            metrics.clone(),
            redactor.clone(),
        )));
    }
    Ok(RunningSources { stop, tasks })
}

/// Makes `/metrics` read the source's own counters (and its fail2ban filter's session counters) each
/// time it is rendered, under the source's label.
fn register_metrics(
    metrics: &Metrics,
    label: &str,
    source: &Arc<SourceMetrics>,
    filter: Option<Arc<Fail2banFilter>>,
) {
    let source = source.clone();
    metrics
        .log_sources
        .register(label, move || source.snapshot());
    if let Some(f) = filter {
        let name = f.name().to_owned();
        metrics.fail2ban_filters.register(label, &name, move || {
            let s = f.session_stats();
            SessionReading {
                live: s.live as u64,
                evicted: s.evicted,
                expired: s.expired,
                pending: s.pending,
                users_dropped: s.users_dropped,
                buffer_trimmed: s.buffer_trimmed,
            }
        });
    }
}

/// Parses lines into events and hands them to the pipeline, waiting while intake is full.
async fn parse_lines(
    mut rx: mpsc::Receiver<RawLine>,
    parser: Box<dyn LineParser>,
    counts: Arc<LineCounts>,
    intake: mpsc::Sender<Submission>,
    metrics: Arc<Metrics>,
    redactor: Arc<Redactor>,
) {
    while let Some(raw) = rx.recv().await {
        let ctx = ParseCtx {
            reference: raw.received,
            utc_offset_secs: 0,
        };
        // journald lines carry their time beside the text: put it in front so the syslog header parses.
        let text = match raw.ts_hint {
            Some(ts) if !raw.origin.starts_with("syslog") => {
                format!("{} {}", ts.to_rfc3339(), raw.text)
            }
            _ => raw.text,
        };
        match parser.parse(&text, &ctx) {
            Ok(p) => {
                metrics.log_lines_parsed.inc();
                counts.matched.inc();
                let (event, masked) = p.to_event_counted(
                    &raw.origin,
                    &text,
                    raw.ts_hint.unwrap_or(raw.received),
                    &redactor,
                );
                metrics.secrets_redacted.add(masked as u64);
                if intake.send(Submission::log(event)).await.is_err() {
                    break;
                }
                metrics.events_accepted.inc();
            }
            Err(u) => {
                metrics.log_lines_unparsed.inc();
                counts.unmatched_because(u.reason());
                metrics
                    .by_reason
                    .add("log_lines_unparsed_by_reason", u.reason(), 1);
                tracing::debug!(evt = "line_unparsed", origin = %raw.origin, reason = u.reason());
            }
        }
    }
}
