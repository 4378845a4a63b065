//! A supervised process: started in its own process group with its environment, directory and
//! user; its output captured; watched for exit and probed; restarted with backoff; stopped with
//! SIGTERM to its group, a grace period, then SIGKILL. `kill_on_drop` guarantees that a dropped
//! task never leaves its process behind.

use crate::backoff::Schedule;
use crate::child::{on_failure, AfterFailure, ChildCtx};
use crate::config::ProcessTarget;
use crate::output::{pump, OutputRing};
use crate::probe::Prober;
use crate::status::{lock, ChildState, LastExit};
use crate::user::RunAs;
use rustix::process::{kill_process_group, Pid, Signal};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How a watched run ended.
enum Outcome {
    Exited(std::io::Result<ExitStatus>),
    Unhealthy(String),
    Stopped,
}

/// The task of one process child.
pub(crate) async fn run(
    mut ctx: ChildCtx,
    target: ProcessTarget,
    run_as: Option<RunAs>,
    prober: Option<Prober>,
    started: oneshot::Sender<()>,
) {
    let name = ctx.cfg.name.clone();
    let mut schedule = Schedule::new(ctx.cfg.restart.clone());
    let ring = OutputRing::new(ctx.output_lines);
    let mut started = Some(started);
    let mut restarts: u64 = 0;
    loop {
        ctx.update(0, |e| e.set_state(ChildState::Starting));
        if restarts > 0 {
            // A crash notice's "last output" may span runs: mark where this one begins.
            ring.push(format!("--- restart {restarts} ---"));
        }
        let spawned = spawn(&target, run_as, &ring, &name);
        if let Some(tx) = started.take() {
            let _ = tx.send(());
        }
        let mut stable_since = None;
        let exit = match spawned {
            Err(error) => {
                tracing::error!(evt = "child_start_failed", child = %name, error = %error);
                LastExit::StartFailed { error }
            }
            Ok((mut child, pumps)) => {
                let pid = child.id();
                tracing::info!(evt = "child_started", child = %name, pid, restarts);
                ctx.update(0, |e| {
                    e.status.pid = pid;
                    e.set_state(ChildState::Running);
                });
                let outcome = watch(&mut ctx, &mut child, prober.as_ref(), &mut stable_since).await;
                let exit = match outcome {
                    Outcome::Stopped => {
                        terminate(&name, &mut child, ctx.grace).await;
                        drain(pumps).await;
                        ctx.update(0, |e| {
                            e.status.pid = None;
                            e.set_state(ChildState::Stopped);
                        });
                        tracing::info!(evt = "child_stopped", child = %name);
                        return;
                    }
                    Outcome::Exited(st) => {
                        kill_group(child.id().or(pid), Signal::KILL);
                        match st {
                            Ok(st) => exit_of(st),
                            Err(e) => LastExit::StartFailed {
                                error: format!("wait: {e}"),
                            },
                        }
                    }
                    Outcome::Unhealthy(reason) => {
                        ctx.update(0, |e| e.set_state(ChildState::Unhealthy));
                        terminate(&name, &mut child, ctx.grace).await;
                        LastExit::Unhealthy { reason }
                    }
                };
                drain(pumps).await;
                exit
            }
        };
        if ctx.stopping() {
            ctx.update(0, |e| {
                e.status.pid = None;
                e.status.last_exit = Some(exit);
                e.set_state(ChildState::Stopped);
            });
            return;
        }
        let lines = ring.lines();
        let decision = {
            let mut slot = lock(&ctx.slot);
            let Some(entry) = slot.first_mut() else {
                return;
            };
            on_failure(
                &ctx.notifier,
                entry,
                &name,
                &mut schedule,
                stable_since,
                exit,
                restarts,
                &lines,
            )
        };
        match decision {
            AfterFailure::CrashLoop => {
                ctx.stopped().await;
                ctx.update(0, |e| e.set_state(ChildState::Stopped));
                return;
            }
            AfterFailure::RestartAfter(after) => {
                tokio::select! {
                    _ = tokio::time::sleep(after) => {}
                    _ = ctx.stopped() => {
                        ctx.update(0, |e| e.set_state(ChildState::Stopped));
                        return;
                    }
                }
                restarts += 1;
                ctx.update(0, |e| e.status.restarts = restarts);
                tracing::info!(evt = "child_restarted", child = %name, restarts);
            }
        }
    }
}

type Pumps = [JoinHandle<()>; 2];

fn spawn(
    t: &ProcessTarget,
    run_as: Option<RunAs>,
    ring: &OutputRing,
    name: &str,
) -> Result<(Child, Pumps), String> {
    let mut cmd = tokio::process::Command::new(&t.command);
    cmd.args(&t.args);
    if t.clear_env {
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
    }
    // systemd's notification socket is the supervisor's: a child must not speak for it (its
    // READY=1 or WATCHDOG=1 would be taken as the supervisor's with NotifyAccess=all).
    for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        cmd.env_remove(v);
    }
    cmd.envs(&t.env);
    if let Some(cwd) = &t.cwd {
        cmd.current_dir(cwd);
    }
    if let Some(r) = run_as {
        cmd.uid(r.uid);
        cmd.gid(r.gid);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", t.command))?;
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(pump(o, name.to_string(), "stdout", ring.clone())));
    let err = child
        .stderr
        .take()
        .map(|o| tokio::spawn(pump(o, name.to_string(), "stderr", ring.clone())));
    let none = || tokio::spawn(async {});
    Ok((child, [out.unwrap_or_else(none), err.unwrap_or_else(none)]))
}

/// Waits (briefly) for the output readers to take the last lines; a grandchild holding the pipes
/// open does not hold the restart up.
async fn drain(pumps: Pumps) {
    for p in pumps {
        let abort = p.abort_handle();
        if tokio::time::timeout(Duration::from_millis(500), p)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// Watches a running child until it exits, fails its probe `failure_threshold` times in a row, or
/// the supervisor stops.
async fn watch(
    ctx: &mut ChildCtx,
    child: &mut Child,
    prober: Option<&Prober>,
    stable_since: &mut Option<Instant>,
) -> Outcome {
    let started = Instant::now();
    let name = ctx.cfg.name.clone();
    if prober.is_none() {
        *stable_since = Some(started);
    }
    let mut failures = 0u32;
    let mut next_probe = started + prober.map(|p| p.cfg.interval).unwrap_or_default();
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            st = child.wait() => return Outcome::Exited(st),
            _ = until_stop(&mut stop) => return Outcome::Stopped,
            _ = tokio::time::sleep_until(next_probe.into()), if prober.is_some() => {
                let Some(p) = prober else { continue };
                let r = p.check().await;
                let now = Instant::now();
                next_probe = now + p.cfg.interval;
                match r {
                    Ok(()) => {
                        if failures > 0 {
                            tracing::info!(evt = "probe_recovered", child = %name, failures);
                        }
                        failures = 0;
                        stable_since.get_or_insert(now);
                        ctx.update(0, |e| e.set_state(ChildState::Healthy));
                    }
                    Err(reason) => {
                        *stable_since = None;
                        if now.saturating_duration_since(started) < p.cfg.start_period {
                            tracing::debug!(evt = "probe_failed_in_start_period", child = %name, reason = %reason);
                            continue;
                        }
                        failures += 1;
                        let threshold = p.cfg.failure_threshold.max(1);
                        tracing::warn!(evt = "probe_failed", child = %name, failures, threshold, reason = %reason);
                        ctx.update(0, |e| e.set_state(ChildState::Unhealthy));
                        if failures >= threshold {
                            return Outcome::Unhealthy(reason);
                        }
                    }
                }
            }
        }
    }
}

async fn until_stop(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn exit_of(st: ExitStatus) -> LastExit {
    match (st.code(), st.signal()) {
        (Some(code), _) => LastExit::Code {
            code: i64::from(code),
        },
        (None, Some(signal)) => LastExit::Signal { signal },
        (None, None) => LastExit::Code { code: -1 },
    }
}

/// Signals a process group; a group that is already gone is not an error.
fn kill_group(pid: Option<u32>, sig: Signal) {
    let Some(pid) = pid.and_then(|p| Pid::from_raw(p as i32)) else {
        return;
    };
    match kill_process_group(pid, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => {
            tracing::warn!(evt = "child_signal_failed", pid = pid.as_raw_nonzero().get(), error = %e)
        }
    }
}

/// SIGTERM to the child's group, up to `grace` for it to exit, then SIGKILL to the group.
pub(crate) async fn terminate(name: &str, child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else {
        return;
    };
    kill_group(Some(pid), Signal::TERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            tracing::warn!(
                evt = "child_killed",
                child = %name,
                pid,
                grace_ms = grace.as_millis() as u64,
                "still running after the grace period: SIGKILL"
            );
            kill_group(Some(pid), Signal::KILL);
            let _ = child.kill().await;
        }
    }
    // Whatever of its group outlived it.
    kill_group(Some(pid), Signal::KILL);
}
