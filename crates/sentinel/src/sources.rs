//! Log sources in the daemon: each configured source feeds raw lines to a parse task, which turns them
//! into redacted events for the pipeline's intake (waiting when it is full, so tailing pauses rather
//! than drops). Lines no parser understands are counted by reason.

use anyhow::Context;
use sentinel_api::metrics::Metrics;
use sentinel_api::submit::Submission;
use sentinel_config::{SourceConfig, ValidatedConfig};
use sentinel_core::Redactor;
use sentinel_ingest::source::file::{FileTail, FileTailConfig};
use sentinel_ingest::source::journald::{Journald, JournaldConfig};
use sentinel_ingest::source::syslog::{SyslogConfig, SyslogReceiver};
use sentinel_ingest::source::{RawLine, SourceMetrics};
use sentinel_ingest::{LineParser, ParseCtx};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The running sources and their parse tasks.
pub struct RunningSources {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// What the sources read, all together.
    pub metrics: Arc<SourceMetrics>,
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

/// Builds the parser a source's lines are read with.
pub fn parser_for(
    format: &str,
    fail2ban: Option<(&Path, Option<String>)>,
) -> anyhow::Result<Box<dyn LineParser>> {
    if let Some((path, mode)) = fail2ban {
        let opts = sentinel_ingest::fail2ban::FilterOptions {
            mode,
            vars: Vec::new(),
        };
        let f = sentinel_ingest::fail2ban::Fail2banFilter::load(path, &opts)
            .with_context(|| format!("loading the fail2ban filter {}", path.display()))?;
        return Ok(Box::new(f));
    }
    sentinel_ingest::parse::by_name(format)
        .ok_or_else(|| anyhow::anyhow!("unknown format `{format}`"))
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
    let source_metrics = Arc::new(SourceMetrics::default());
    let state_dir = cfg.data_dir.join("sources");
    let mut tasks = Vec::new();
    for (i, src) in cfg.sources.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<RawLine>(1024);
        let parser = match src {
            SourceConfig::File {
                format,
                fail2ban_filter,
                mode,
                ..
            } => parser_for(
                format,
                fail2ban_filter.as_deref().map(|p| (p, mode.clone())),
            )?,
            SourceConfig::Syslog { format, .. } | SourceConfig::Journald { format, .. } => {
                parser_for(format, None)?
            }
        };
        match src {
            SourceConfig::File {
                paths,
                from_beginning,
                poll_interval,
                ..
            } => {
                std::fs::create_dir_all(&state_dir)?;
                let tail = FileTail::new(
                    FileTailConfig {
                        patterns: paths.clone(),
                        state_path: Some(state_dir.join(format!("file-{i}.json"))),
                        from_beginning: *from_beginning,
                        poll_interval: *poll_interval,
                        ..FileTailConfig::default()
                    },
                    source_metrics.clone(),
                );
                let stopped = stop_future(&stop_rx);
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = tail.run(tx, stopped).await {
                        tracing::error!(evt = "source_failed", source = i, error = %e);
                    }
                }));
            }
            SourceConfig::Syslog { udp, tcp, .. } => {
                let rx_cfg = SyslogConfig {
                    udp: *udp,
                    tcp: *tcp,
                    ..SyslogConfig::default()
                };
                let recv = SyslogReceiver::bind(rx_cfg, source_metrics.clone())
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
            SourceConfig::Journald { command, .. } => {
                std::fs::create_dir_all(&state_dir)?;
                let j = Journald::new(
                    JournaldConfig {
                        command: command.clone(),
                        state_path: Some(state_dir.join(format!("journald-{i}.json"))),
                        ..JournaldConfig::default()
                    },
                    source_metrics.clone(),
                );
                let stopped = stop_future(&stop_rx);
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = j.run(tx, stopped).await {
                        tracing::error!(evt = "source_failed", source = i, error = %e);
                    }
                }));
            }
        }
        tasks.push(tokio::spawn(parse_lines(
            rx,
            parser,
            intake.clone(),
            metrics.clone(),
            redactor.clone(),
        )));
    }
    Ok(RunningSources {
        stop,
        tasks,
        metrics: source_metrics,
    })
}

/// Parses lines into events and hands them to the pipeline, waiting while intake is full.
async fn parse_lines(
    mut rx: mpsc::Receiver<RawLine>,
    parser: Box<dyn LineParser>,
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
                let event = p.to_event(
                    &raw.origin,
                    &text,
                    raw.ts_hint.unwrap_or(raw.received),
                    &redactor,
                );
                if intake
                    .send(Submission { event, reply: None })
                    .await
                    .is_err()
                {
                    break;
                }
                metrics.events_accepted.inc();
            }
            Err(u) => {
                metrics.log_lines_unparsed.inc();
                metrics
                    .by_reason
                    .add("log_lines_unparsed_by_reason", u.reason(), 1);
                tracing::debug!(evt = "line_unparsed", origin = %raw.origin, reason = u.reason());
            }
        }
    }
}
