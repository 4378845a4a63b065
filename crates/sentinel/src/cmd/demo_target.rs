//! `sentinel demo-target`: a target for the demonstration network, written in Sentinel's own binary
//! because the network has no other image. It plays a web application ([`super::demo_web`]), an
//! ssh-like login service ([`super::demo_ssh`]) or a receiver of Sentinel's signed webhooks
//! ([`super::demo_receiver`]), and writes what it sees as the real software would log it (nginx's
//! combined access log, Debian's sshd in auth.log, Falco's JSON alerts) so Sentinel reads it unchanged.
//!
//! It never executes anything a client sends. It writes only the files named by `--log` and
//! `--falco-log` (appended, created 0640), so it runs on a read-only root file system as any user.
//! Everything is bounded: connections, line and body sizes, idle time.

use anyhow::Context;
use clap::{Args, ValueEnum};
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What the target plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A small web application with a login form (nginx-style access log).
    Http,
    /// An ssh-like line-protocol login service (sshd-style auth log).
    Tcp,
    /// A receiver of Sentinel's webhook notifications (`POST /<any path>`, `GET /received`).
    Receiver,
}

/// `sentinel demo-target` arguments.
#[derive(Args, Debug)]
pub struct DemoTargetArgs {
    /// What to play.
    #[arg(long)]
    pub kind: Kind,
    /// Address to listen on (e.g. 0.0.0.0:8080).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The name it shows and logs under (the container's name; default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Append what it sees to this file (http, receiver: nginx combined access log; tcp: sshd
    /// auth.log lines). Created 0640 if missing.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// (http, with --exploitable) append a Falco alert (file_output JSON) here when the simulated
    /// exploit succeeds. Created 0640 if missing.
    #[arg(long, requires = "exploitable")]
    pub falco_log: Option<PathBuf>,
    /// (http) answer a ThinkPHP CVE-2018-20062 request as a vulnerable server would and record the
    /// compromise in --falco-log (nothing is ever executed).
    #[arg(long, requires = "falco_log")]
    pub exploitable: bool,
    /// (http, tcp) the account that logs in successfully.
    #[arg(long, default_value = "admin")]
    pub user: String,
    /// (http, tcp) its password.
    #[arg(long, default_value = "correct-horse")]
    pub password: String,
    /// (receiver) verify Sentinel's webhook signature with the secret in this file (as the
    /// channel's `secret_file`); a bad or missing signature is answered 401.
    #[arg(long)]
    pub secret: Option<PathBuf>,
    /// Most connections open at once; more are closed at once (and counted).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,
    /// Milliseconds a connection may stay silent (a request head or a line must arrive within it).
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub idle_timeout: u64,
}

/// Runs the target until SIGTERM or SIGINT. Exit 0 after a clean stop; 1 when it cannot run (the
/// port is taken, a file cannot be opened); 2 on a usage error.
pub fn run(a: DemoTargetArgs) -> ExitCode {
    sentinel::logs::init("info", Arc::new(sentinel_core::Redactor::default()), 0);
    if let Some(problem) = usage_problem(&a) {
        eprintln!("sentinel demo-target: {problem}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sentinel demo-target: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(serve(a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(evt = "fatal", error = format!("{e:#}"));
            eprintln!("sentinel demo-target: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Connections still held by a slow client must not delay the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Flags that only make sense with another kind (clap cannot say "only with --kind http").
fn usage_problem(a: &DemoTargetArgs) -> Option<String> {
    if a.exploitable && a.kind != Kind::Http {
        return Some("--exploitable is for --kind http".into());
    }
    if a.secret.is_some() && a.kind != Kind::Receiver {
        return Some("--secret is for --kind receiver".into());
    }
    if let Some(n) = &a.name {
        if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_graphic()) {
            return Some(format!(
                "--name {n:?}: 1 to 64 printable characters without spaces (it goes in log lines)"
            ));
        }
    }
    for (flag, v) in [("--user", &a.user), ("--password", &a.password)] {
        if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
            return Some(format!(
                "{flag}: 1 to 128 characters, no control characters"
            ));
        }
    }
    None
}

async fn serve(a: DemoTargetArgs) -> anyhow::Result<()> {
    let name = a.name.clone().unwrap_or_else(host_name);
    let log = a.log.as_deref().map(AppendLog::open).transpose()?;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr().unwrap_or(a.listen);
    let limits = Limits {
        max_connections: a.max_connections as usize,
        idle: Duration::from_millis(a.idle_timeout),
    };
    tracing::info!(
        evt = "demo_target_listening",
        kind = format!("{:?}", a.kind).to_lowercase(),
        name = %name,
        addr = %addr,
        log = a.log.as_ref().map(|p| p.display().to_string()),
        max_connections = limits.max_connections,
        idle_timeout_ms = a.idle_timeout,
    );
    match a.kind {
        Kind::Http => {
            let falco = a.falco_log.as_deref().map(AppendLog::open).transpose()?;
            let web = super::demo_web::Web::new(name, a.user, a.password, log, falco);
            super::demo_web::serve(listener, web, limits, shutdown_signal()).await
        }
        Kind::Receiver => {
            let secret = a.secret.as_deref().map(read_secret).transpose()?;
            let rx = super::demo_receiver::Receiver::new(name, secret, log);
            super::demo_receiver::serve(listener, rx, limits, shutdown_signal()).await
        }
        Kind::Tcp => {
            let login = super::demo_ssh::Login::new(name, a.user, a.password, log);
            super::demo_ssh::serve(listener, login, limits, shutdown_signal()).await
        }
    }
}

/// The bounds every kind serves under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most open connections.
    pub max_connections: usize,
    /// How long a connection may stay silent.
    pub idle: Duration,
}

/// A log file lines are appended to, one `write` per line (whole lines even with several writers on
/// an `O_APPEND` file). A failed write is counted and logged, never fatal: the service goes on.
#[derive(Debug)]
pub struct AppendLog {
    path: PathBuf,
    file: Mutex<File>,
    failed: AtomicU64,
}

impl AppendLog {
    /// Opens `path` for appending, creating it with mode 0640.
    pub fn open(path: &Path) -> anyhow::Result<Arc<AppendLog>> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        Ok(Arc::new(AppendLog {
            path: path.to_owned(),
            file: Mutex::new(file),
            failed: AtomicU64::new(0),
        }))
    }

    /// Appends `line` and a newline.
    pub fn line(&self, line: &str) {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let r = self
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&buf);
        if let Err(e) = r {
            let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(
                evt = "log_write_failed",
                file = %self.path.display(),
                failed,
                error = %e,
            );
        }
    }
}

/// The webhook secret as Sentinel reads a `secret_file` (trailing newlines dropped).
fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the secret file {}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(
        !secret.trim().is_empty(),
        "the secret file {} is empty",
        path.display()
    );
    Ok(secret.as_bytes().to_vec())
}

/// The kernel's host name (in a container, the container's), or `localhost`.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(evt = "signal_handler_failed", signal = "SIGTERM", error = %e);
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!(evt = "signal", signal = "SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!(evt = "signal", signal = "SIGINT"),
    }
}

/// `b` as nginx writes a variable into its access log (`escape=default`): `"`, `\`, control bytes
/// and bytes from 0x7f up as `\xHH`, at most `max` input bytes (longer text is cut, `...` added).
pub fn nginx_escape(b: &[u8], max: usize) -> String {
    let mut out = String::with_capacity(b.len().min(max) + 8);
    for &c in b.iter().take(max) {
        if c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c) {
            out.push_str(&format!("\\x{c:02X}"));
        } else {
            out.push(char::from(c));
        }
    }
    if b.len() > max {
        out.push_str("...");
    }
    out
}

/// `%XX` sequences decoded (and `+` as a space when `plus`); bad sequences are kept as written.
pub fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_escape_writes_what_nginx_writes() {
        assert_eq!(
            nginx_escape(b"GET /a?b=1 HTTP/1.1", 100),
            "GET /a?b=1 HTTP/1.1"
        );
        assert_eq!(
            nginx_escape(b"a\"b\\c\n\x7f\xff", 100),
            "a\\x22b\\x5Cc\\x0A\\x7F\\xFF"
        );
        assert_eq!(nginx_escape(b"abcdef", 3), "abc...");
    }

    #[test]
    fn percent_decode_decodes_and_keeps_bad_sequences() {
        assert_eq!(percent_decode("%5Cthink%5capp", false), "\\think\\app");
        assert_eq!(percent_decode("a+b%20c", true), "a b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%", false), "%");
        assert_eq!(percent_decode("%ff%fe", false), "\u{fffd}\u{fffd}");
    }
}
