//! The journald stream: runs `journalctl -o json -f` as a child process and turns each entry into a
//! [`RawLine`] whose text is `host ident[pid]: message` and whose `ts_hint` is `__REALTIME_TIMESTAMP`.
//!
//! The child is restarted with backoff when it exits and killed at shutdown. The last `__CURSOR` is
//! checkpointed (JSON, atomic rename) and passed back as `--after-cursor=` so a restart neither repeats nor
//! skips entries (the checkpoint is read and written on the blocking pool, not on the async runtime). It must
//! not interpret messages beyond picking the journal fields.

use crate::source::lines::{LineSplitter, SplitLine};
use crate::source::{bump, send_or_stop, LineTx, RawLine, SourceError, SourceMetrics};
use sentinel_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// How to run journalctl.
#[derive(Debug, Clone)]
pub struct JournaldConfig {
    /// The command and its arguments; `--after-cursor=…` is appended when a cursor is known.
    pub command: Vec<String>,
    /// Where the cursor is checkpointed; `None` keeps it in memory only.
    pub state_path: Option<PathBuf>,
    /// First wait before restarting an exited child; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest wait between restarts.
    pub backoff_max: Duration,
    /// Longer JSON lines are cut (and then fail to parse, counted as errors).
    pub max_line_bytes: usize,
    /// Checkpoint the cursor after this many entries…
    pub checkpoint_lines: u64,
    /// …or this much time (and at shutdown).
    pub checkpoint_interval: Duration,
}

impl Default for JournaldConfig {
    fn default() -> Self {
        Self {
            command: ["journalctl", "-o", "json", "-f", "--no-pager"]
                .map(String::from)
                .to_vec(),
            state_path: None,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_line_bytes: 1 << 20,
            checkpoint_lines: 1000,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// The journald cursor checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldCheckpoint {
    /// The `__CURSOR` of the last entry delivered.
    pub cursor: Option<String>,
}

/// Follows the systemd journal through a `journalctl` child process.
#[derive(Debug)]
pub struct Journald {
    cfg: JournaldConfig,
    metrics: Arc<SourceMetrics>,
}

/// One journal entry turned into a line, with its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// `host ident[pid]: message`.
    pub text: String,
    /// `__REALTIME_TIMESTAMP`, in milliseconds.
    pub ts: Option<Timestamp>,
    /// `__CURSOR`.
    pub cursor: Option<String>,
}

/// Reads one `journalctl -o json` line; `None` if it is not a JSON object with a `MESSAGE`.
pub fn parse_entry(line: &str) -> Option<JournalEntry> {
    let v: serde_json::Map<String, Value> = serde_json::from_str(line).ok()?;
    let message = match v.get("MESSAGE")? {
        Value::String(s) => s.clone(),
        Value::Array(bytes) => {
            let b: Vec<u8> = bytes
                .iter()
                .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect();
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => return None,
    };
    let text_of = |k: &str| match v.get(k) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let ident = text_of("SYSLOG_IDENTIFIER")
        .or_else(|| text_of("_COMM"))
        .unwrap_or("-");
    let mut text = String::with_capacity(message.len() + 32);
    if let Some(host) = text_of("_HOSTNAME") {
        text.push_str(host);
        text.push(' ');
    }
    text.push_str(ident);
    if let Some(pid) = text_of("_PID").or_else(|| text_of("SYSLOG_PID")) {
        text.push('[');
        text.push_str(pid);
        text.push(']');
    }
    text.push_str(": ");
    text.push_str(message.trim_end_matches('\n'));
    let ts = text_of("__REALTIME_TIMESTAMP")
        .and_then(|us| us.parse::<i64>().ok())
        .map(|us| Timestamp::from_millis(us / 1000));
    Some(JournalEntry {
        text,
        ts,
        cursor: text_of("__CURSOR").map(str::to_owned),
    })
}

impl Journald {
    /// A journald source; nothing runs until [`Journald::run`].
    pub fn new(cfg: JournaldConfig, metrics: Arc<SourceMetrics>) -> Self {
        Self { cfg, metrics }
    }

    /// Follows the journal until `shutdown` completes (the child is killed) or `out` is closed.
    pub async fn run(
        self,
        out: LineTx,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), SourceError> {
        let Some((program, args)) = self.cfg.command.split_first() else {
            return Err(SourceError::Io("journald: empty command".into()));
        };
        let mut cursor = match &self.cfg.state_path {
            Some(p) => {
                let path = p.clone();
                tokio::task::spawn_blocking(move || load_cursor(&path))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
                    .map_err(|e| {
                        SourceError::Io(format!("journald checkpoint {}: {e}", p.display()))
                    })?
            }
            None => None,
        };
        tokio::pin!(shutdown);
        let origin: Arc<str> = Arc::from("journald");
        let mut backoff = self.cfg.backoff_initial;
        let mut first = true;
        let result = loop {
            if !first {
                bump(&self.metrics.restarts, 1);
            }
            first = false;
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true);
            if let Some(c) = &cursor {
                cmd.arg(format!("--after-cursor={c}"));
            }
            let started = Instant::now();
            let outcome = match cmd.spawn() {
                Ok(mut child) => {
                    let r = self
                        .follow(&mut child, &origin, &mut cursor, &out, &mut shutdown)
                        .await;
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    r
                }
                Err(e) => {
                    bump(&self.metrics.errors, 1);
                    tracing::warn!(%program, error = %e, "could not start journalctl");
                    Ok(true)
                }
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            if started.elapsed() > self.cfg.backoff_max {
                backoff = self.cfg.backoff_initial;
            }
            tracing::info!(?backoff, "journalctl exited; restarting");
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => break Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.cfg.backoff_max);
        };
        self.store(&cursor).await;
        result
    }

    /// Reads the child's output until it ends (`Ok(true)`) or shutdown (`Ok(false)`).
    async fn follow<S: Future<Output = ()> + ?Sized>(
        &self,
        child: &mut tokio::process::Child,
        origin: &Arc<str>,
        cursor: &mut Option<String>,
        out: &LineTx,
        stop: &mut Pin<&mut S>,
    ) -> Result<bool, SourceError> {
        let Some(mut stdout) = child.stdout.take() else {
            return Ok(true);
        };
        let mut splitter = LineSplitter::new(self.cfg.max_line_bytes);
        let mut buf = vec![0u8; 64 * 1024];
        let mut lines: Vec<SplitLine> = Vec::new();
        let mut since_flush = 0u64;
        let mut last_flush = Instant::now();
        loop {
            let n = tokio::select! {
                biased;
                _ = stop.as_mut() => return Ok(false),
                r = stdout.read(&mut buf) => r.unwrap_or(0),
            };
            if n == 0 {
                return Ok(true);
            }
            bump(&self.metrics.bytes_read, n as u64);
            splitter.feed(&buf[..n], &mut lines);
            let received = Timestamp::now();
            for l in lines.drain(..) {
                if l.cut {
                    bump(&self.metrics.lines_too_long, 1);
                }
                if l.lossy {
                    bump(&self.metrics.lines_invalid_utf8, 1);
                }
                let Some(e) = parse_entry(&l.text) else {
                    bump(&self.metrics.errors, 1);
                    continue;
                };
                bump(&self.metrics.lines_read, 1);
                let raw = RawLine {
                    text: e.text,
                    origin: origin.clone(),
                    received,
                    ts_hint: e.ts,
                };
                if !send_or_stop(out, raw, stop).await? {
                    return Ok(false);
                }
                if e.cursor.is_some() {
                    *cursor = e.cursor;
                }
                since_flush += 1;
            }
            if since_flush >= self.cfg.checkpoint_lines
                || last_flush.elapsed() >= self.cfg.checkpoint_interval
            {
                self.store(cursor).await;
                since_flush = 0;
                last_flush = Instant::now();
            }
        }
    }

    /// Writes the cursor checkpoint on the blocking pool (it fsyncs), never on the async runtime.
    async fn store(&self, cursor: &Option<String>) {
        let Some(path) = self.cfg.state_path.clone() else {
            return;
        };
        let cp = JournaldCheckpoint {
            cursor: cursor.clone(),
        };
        let p = path.clone();
        let r = tokio::task::spawn_blocking(move || {
            serde_json::to_vec(&cp)
                .map_err(std::io::Error::other)
                .and_then(|b| crate::source::file::write_atomic(&p, &b))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
        if let Err(e) = r {
            bump(&self.metrics.errors, 1);
            tracing::warn!(path = %path.display(), error = %e, "could not write journald checkpoint");
        }
    }
}

fn load_cursor(path: &std::path::Path) -> std::io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice::<JournaldCheckpoint>(&b)
            .map(|c| c.cursor)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait::async_trait]
impl sentinel_core::Source for Journald {
    fn kind(&self) -> &'static str {
        "journald"
    }

    async fn run(
        self: Box<Self>,
        out: sentinel_core::LineTx,
        shutdown: sentinel_core::Shutdown,
    ) -> Result<(), SourceError> {
        Journald::run(*self, out, shutdown).await
    }
}
