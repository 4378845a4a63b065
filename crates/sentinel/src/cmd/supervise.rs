//! `sentinel supervise`: the standalone supervisor. Loads `supervise.yml`, opens its own store
//! (`<data_dir>/supervise.db`, the notification outbox), starts the notification engine and the
//! supervisor, tells systemd it is ready (and pings its watchdog while the supervision runs), keeps
//! `<data_dir>/status.json` current, and on SIGTERM or SIGINT stops the children in reverse order,
//! then the notification engine (after the last crash notices are queued), then the store.
//! `--check` validates and prints the effective configuration; `status` reads `status.json`.

use anyhow::Context;
use clap::{Args, Subcommand};
use sentinel::supervised::{self, STATUS_FILE};
use sentinel_config::SuperviseFile;
use sentinel_core::{Redactor, Timestamp};
use sentinel_supervise::sdnotify::SdNotify;
use sentinel_supervise::{ChildStatus, Supervisor};
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the status file is checked for a change (and the supervision loop proves it runs).
const TICK: Duration = Duration::from_millis(200);
/// The status file is rewritten at least this often, changed or not.
const REFRESH: Duration = Duration::from_secs(5);

/// `sentinel supervise` arguments.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SuperviseArgs {
    #[command(subcommand)]
    command: Option<SuperviseCommand>,
    /// The supervisor's configuration file.
    #[arg(long, global = true, default_value = "supervise.yml")]
    config: PathBuf,
    /// Validate the file, print the effective configuration (secrets as ***) and a WARNING per
    /// unsafe setting, and exit: 0 when valid, 2 otherwise.
    #[arg(long)]
    check: bool,
    /// Log level.
    #[arg(long, default_value = "info", value_parser = ["trace", "debug", "info", "warn", "error"])]
    log_level: String,
}

/// `sentinel supervise` subcommands.
#[derive(Subcommand)]
pub enum SuperviseCommand {
    /// Show the children of the supervisor running with this configuration (from
    /// `<data_dir>/status.json`). Exit 0 while it runs; 1 when it is not running; 2 on a
    /// configuration error.
    Status {
        /// Print the status document as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the subcommand.
pub fn run(a: SuperviseArgs) -> ExitCode {
    let file = match load(&a.config) {
        Ok(f) => f,
        Err(code) => return code,
    };
    match a.command {
        Some(SuperviseCommand::Status { json }) => status(&file, json),
        None if a.check => {
            print!("{}", file.effective_yaml());
            for w in file.warnings().into_iter().chain(command_warnings(&file)) {
                println!("WARNING: {w}");
            }
            let mut problems = super::notify::channel_build_problems(&file.notify);
            // What the supervisor would refuse at start (users, probes), as the user running this.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match &rt {
                Ok(rt) => {
                    let _guard = rt.enter();
                    problems.extend(sentinel_supervise::check(&file.supervise));
                }
                Err(e) => {
                    problems.push(format!("cannot start a runtime to check the children: {e}"))
                }
            }
            if problems.is_empty() {
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "the supervise configuration has {} problem(s):",
                problems.len()
            );
            for p in problems {
                eprintln!("{}", sentinel_core::redact::builtin().redact_text(&p));
            }
            ExitCode::from(2)
        }
        None => supervise(file, &a.log_level),
    }
}

/// A WARNING per process child whose program is not there now (a path that is not a file, a name
/// not found on `PATH`): it would fail to start and be retried until it is a crash loop. Not an
/// error: the program may be installed after the check.
fn command_warnings(file: &SuperviseFile) -> Vec<String> {
    let here = std::env::current_dir().unwrap_or_default();
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut out = Vec::new();
    for (i, c) in file.supervise.children.iter().enumerate() {
        let sentinel_supervise::config::Target::Process(t) = &c.target else {
            continue;
        };
        let cmd = t.command.trim();
        let found = if cmd.contains('/') {
            let base = t.cwd.as_deref().map_or(here.clone(), |d| here.join(d));
            base.join(cmd).is_file()
        } else {
            let dirs = t
                .env
                .get("PATH")
                .map(std::ffi::OsString::from)
                .unwrap_or_else(|| path_var.clone());
            std::env::split_paths(&dirs).any(|d| d.join(cmd).is_file())
        };
        if !found {
            out.push(format!(
                "children[{i}].process.command: `{cmd}` is {} here: `{}` would fail to start",
                if cmd.contains('/') {
                    "not a file"
                } else {
                    "not found on PATH"
                },
                c.name
            ));
        }
    }
    out
}

/// Loads the file; every problem on stderr (secrets masked) and exit code 2 when it is not valid.
fn load(path: &Path) -> Result<SuperviseFile, ExitCode> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    sentinel_config::load_supervise(path, &env).map_err(|errors| {
        eprintln!(
            "the supervise configuration has {} problem(s):",
            errors.0.len()
        );
        for e in &errors.0 {
            eprintln!(
                "{}",
                sentinel_core::redact::builtin().redact_text(&e.to_string())
            );
        }
        ExitCode::from(2)
    })
}

fn supervise(file: SuperviseFile, level: &str) -> ExitCode {
    sentinel::logs::init(level, Arc::new(Redactor::default()), 0);
    for w in file.warnings() {
        tracing::warn!(evt = "unsafe_setting", warning = %w);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(serve(file, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(evt = "fatal", error = format!("{e:#}"));
            eprintln!("sentinel supervise: {e:#}");
            // What the supervisor refuses at start (a user that does not exist, a probe that
            // cannot be built) is a configuration problem like the loader's.
            match e.downcast_ref::<sentinel_supervise::SuperviseError>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::FAILURE,
            }
        }
    };
    drop(rt);
    sentinel::logs::finish();
    code
}

/// Runs the supervisor until `shutdown` completes, then stops it.
async fn serve(
    file: SuperviseFile,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let data_dir = file.data_dir.clone();
    sentinel::private::restrict_umask();
    sentinel::private::prepare_data_dir(&data_dir)?;
    let store = sentinel_store::Store::open(&data_dir.join("supervise.db"))
        .await
        .context("cannot open the supervisor's store")?;
    let (notifications, notify_task) =
        match sentinel_notify::build(&file.notify, store.clone(), None) {
            Ok(n) => n,
            Err(e) => {
                store.close().await;
                anyhow::bail!("cannot start the notifications: {e}");
            }
        };
    let started_at = Timestamp::now();
    let n = file.supervise.children.len();
    let stats_of = notifications.clone();
    let sup = match Supervisor::start(file.supervise, Arc::new(notifications)).await {
        Ok(sup) => sup,
        Err(e) => {
            notify_task.stop().await;
            store.close().await;
            return Err(e).context("cannot start the supervisor");
        }
    };
    let handle = sup.status_handle();
    let mut writer = StatusWriter::new(&data_dir, started_at, stats_of);
    writer.write("running", &handle.status());
    tracing::info!(
        evt = "supervise_ready",
        children = n,
        names = ?handle.status().iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        data_dir = %data_dir.display(),
    );

    // The watchdog pings while the supervision loop below ticks and every child is watched.
    let base = Instant::now();
    let last_tick = Arc::new(AtomicU64::new(0));
    let all_watched = Arc::new(AtomicBool::new(true));
    let sd = SdNotify::from_env();
    let watchdog = sd.as_ref().and_then(|sd| {
        sd_send(sd.ready(), "READY=1");
        sd_send(sd.status(&format!("supervising {n} children")), "STATUS");
        let limit = sd
            .watchdog_interval()
            .map_or(Duration::from_secs(10), |w| w / 2)
            .max(TICK * 5);
        let (last_tick, all_watched) = (last_tick.clone(), all_watched.clone());
        sd.spawn_watchdog(move || {
            let age = base
                .elapsed()
                .saturating_sub(Duration::from_millis(last_tick.load(Ordering::Acquire)));
            let ok = age < limit && all_watched.load(Ordering::Acquire);
            async move { ok }
        })
    });
    tracing::info!(
        evt = "sd_notify",
        systemd = sd.is_some(),
        watchdog = watchdog.is_some()
    );

    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ended_logged = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                last_tick.store(base.elapsed().as_millis() as u64, Ordering::Release);
                let ended = sup.ended();
                if !ended.is_empty() {
                    all_watched.store(false, Ordering::Release);
                    if !ended_logged {
                        ended_logged = true;
                        tracing::error!(
                            evt = "supervise_task_ended",
                            children = ?ended,
                            "a child is no longer watched: the watchdog pings stop so systemd restarts the supervisor"
                        );
                    }
                }
                writer.maybe_write("running", &handle.status());
            }
        }
    }

    tracing::info!(evt = "shutting_down");
    if let Some(sd) = &sd {
        sd_send(sd.stopping(), "STOPPING=1");
        sd_send(sd.status("stopping the children"), "STATUS");
    }
    writer.write("stopping", &handle.status());
    let stop = supervised::stop(Some(sup));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                last_tick.store(base.elapsed().as_millis() as u64, Ordering::Release);
                writer.maybe_write("stopping", &handle.status());
            }
        }
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    writer.write("stopped", &handle.status());
    // The crash notices of the stop are in the outbox now: what is not yet delivered is sent by
    // the next start.
    notify_task.stop().await;
    store.close().await;
    tracing::info!(evt = "stopped", children = n);
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
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

/// Logs a notification systemd did not get.
fn sd_send(r: std::io::Result<()>, what: &str) {
    if let Err(e) = r {
        tracing::error!(evt = "sd_notify_failed", state = what, error = %e);
    }
}

/// Keeps `status.json` current: rewritten on every change and every [`REFRESH`].
struct StatusWriter {
    dir: PathBuf,
    started_at: Timestamp,
    /// The notification engine, for its counters and outbox gauges (`notify` in the document).
    notify: sentinel_notify::Notifications,
    last: Option<(String, Vec<ChildStatus>)>,
    written: Instant,
    failing: bool,
}

impl StatusWriter {
    fn new(
        dir: &Path,
        started_at: Timestamp,
        notify: sentinel_notify::Notifications,
    ) -> StatusWriter {
        StatusWriter {
            dir: dir.to_path_buf(),
            started_at,
            notify,
            last: None,
            written: Instant::now(),
            failing: false,
        }
    }

    fn maybe_write(&mut self, state: &str, children: &[ChildStatus]) {
        let fp = supervised::fingerprint(children);
        let same = self
            .last
            .as_ref()
            .is_some_and(|(s, f)| s == state && *f == fp);
        if !same || self.written.elapsed() >= REFRESH {
            self.write(state, children);
        }
    }

    fn write(&mut self, state: &str, children: &[ChildStatus]) {
        let mut doc = supervised::status_document(state, self.started_at, children);
        doc["notify"] = serde_json::to_value(self.notify.stats()).unwrap_or(Value::Null);
        match supervised::write_status(&self.dir, &doc) {
            Ok(()) => {
                if self.failing {
                    tracing::info!(evt = "status_file_written");
                    self.failing = false;
                }
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(
                        evt = "status_file_failed",
                        path = %self.dir.join(STATUS_FILE).display(),
                        error = %e,
                    );
                    self.failing = true;
                }
            }
        }
        self.last = Some((state.to_owned(), supervised::fingerprint(children)));
        self.written = Instant::now();
    }
}

/// `sentinel supervise status`.
fn status(file: &SuperviseFile, json: bool) -> ExitCode {
    let path = file.data_dir.join(STATUS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "not running: no supervisor has run with data_dir {} ({} does not exist)",
                file.data_dir.display(),
                path.display()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: not a status document: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let pid = doc["pid"].as_u64().unwrap_or(0);
    let state = doc["state"].as_str().unwrap_or("unknown").to_owned();
    let alive = pid > 0 && Path::new(&format!("/proc/{pid}")).exists();
    let running = alive && state != "stopped";
    doc["alive"] = Value::Bool(running);
    if json {
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!("{}", render(&doc, &state, running));
    }
    if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn stamp(v: &Value) -> Option<Timestamp> {
    serde_json::from_value(v.clone()).ok()
}

/// The status document as a table.
fn render(doc: &Value, state: &str, running: bool) -> String {
    let pid = doc["pid"].as_u64().unwrap_or(0);
    let now = Timestamp::now();
    let written = stamp(&doc["written_at"]);
    let age_ms = written.map_or(0, |w| (now.as_millis() - w.as_millis()).max(0));
    let mut out = String::new();
    let head = if running {
        format!("supervisor pid {pid}: {state}")
    } else if state == "stopped" {
        "supervisor: stopped".to_owned()
    } else {
        format!("supervisor pid {pid}: not running (it ended without stopping; the status below is its last)")
    };
    out.push_str(&head);
    if let Some(s) = stamp(&doc["started_at"]) {
        out.push_str(&format!(", started {}", s.to_rfc3339()));
    }
    if let Some(w) = written {
        out.push_str(&format!(", status of {}", w.to_rfc3339()));
    }
    out.push('\n');
    let mut rows = vec![[
        "NAME".to_owned(),
        "KIND".to_owned(),
        "STATE".to_owned(),
        "PID".to_owned(),
        "RESTARTS".to_owned(),
        "LAST EXIT".to_owned(),
        "SINCE".to_owned(),
    ]];
    for c in doc["children"].as_array().into_iter().flatten() {
        let mut st = c["state"].as_str().unwrap_or("?").to_owned();
        if let Some(ms) = c["next_restart_in_ms"].as_i64() {
            let left = (ms - age_ms).max(0);
            st.push_str(&format!(" (restart in {:.1}s)", left as f64 / 1000.0));
        }
        let pid = c["pid"]
            .as_u64()
            .map(|p| p.to_string())
            .or_else(|| {
                c["container_id"]
                    .as_str()
                    .map(|id| id.chars().take(12).collect())
            })
            .unwrap_or_else(|| "-".to_owned());
        let last_exit = match c["last_exit"]["type"].as_str() {
            Some("code") => format!("code {}", c["last_exit"]["code"]),
            Some("signal") => format!("signal {}", c["last_exit"]["signal"]),
            Some("unhealthy") => "unhealthy".to_owned(),
            Some("start_failed") => "start failed".to_owned(),
            _ => "-".to_owned(),
        };
        rows.push([
            c["name"].as_str().unwrap_or("?").to_owned(),
            c["kind"].as_str().unwrap_or("?").to_owned(),
            st,
            pid,
            c["restarts"].to_string(),
            last_exit,
            stamp(&c["since"]).map_or_else(|| "-".to_owned(), |s| s.to_rfc3339()),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let n = &doc["notify"];
    if n.is_object() {
        let k = |key: &str| n[key].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "notices: {} sent, {} waiting in the outbox, {} dead letter(s){}\n",
            k("delivered"),
            k("outbox_pending"),
            k("outbox_dead"),
            if k("outbox_dead") > 0 {
                " (not delivered after every retry: see the `notice_dead_letter` lines in the log)"
            } else {
                ""
            }
        ));
    }
    out
}
