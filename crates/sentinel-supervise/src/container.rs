//! Supervised Docker containers: one by name, or every container carrying a label. The engine runs
//! them; this watcher polls `inspect`, starts again (with backoff) a container that stopped, exited
//! or died, restarts one that is unhealthy (Docker's health status with `docker_health`, or a
//! failing probe), reads the tail of its logs for the crash notice, and on stop runs `docker stop`
//! with the grace period as timeout. It never creates or removes containers.

use crate::backoff::Schedule;
use crate::child::{on_failure, AfterFailure, ChildCtx};
use crate::config::{Check, ContainerTarget};
use crate::probe::Prober;
use crate::status::{lock, ChildState, Entry, LastExit};
use bollard::container::{
    InspectContainerOptions, ListContainersOptions, LogsOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use bollard::Docker;
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Engine calls give up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Restart,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Up,
    Backoff { until: Instant, action: Action },
    CrashLoop,
}

/// One watched container.
struct Watched {
    /// Shown name (`<child>` or `<child>/<container>`).
    name: String,
    id: String,
    schedule: Schedule,
    phase: Phase,
    started: Instant,
    stable_since: Option<Instant>,
    failures: u32,
    next_probe: Instant,
    restarts: u64,
    entry: Entry,
}

/// Connects to the local engine (`DOCKER_HOST` or the default socket) and negotiates the API version.
pub(crate) async fn connect() -> Result<Docker, String> {
    let d = Docker::connect_with_local_defaults().map_err(|e| format!("docker connect: {e}"))?;
    tokio::time::timeout(CALL_TIMEOUT, d.negotiate_version())
        .await
        .map_err(|_| "docker version negotiation timed out".to_string())?
        .map_err(|e| format!("docker version negotiation: {e}"))
}

/// The task of one container child.
pub(crate) async fn run(
    mut ctx: ChildCtx,
    target: ContainerTarget,
    prober: Option<Prober>,
    started: oneshot::Sender<()>,
) {
    let mut started = Some(started);
    let mut notified = false;
    let docker = loop {
        match connect().await {
            Ok(d) => break d,
            Err(error) => {
                tracing::error!(evt = "docker_unavailable", child = %ctx.cfg.name, error = %error);
                // One notice per outage, not one per retry.
                if !notified {
                    notified = true;
                    ctx.notifier
                        .send(crate::notice::docker_unavailable(&ctx.cfg.name, &error));
                }
                let mut e = Entry::new(ctx.cfg.name.clone(), "container");
                e.status.last_exit = Some(LastExit::StartFailed { error });
                e.set_state(ChildState::Stopped);
                *lock(&ctx.slot) = vec![e];
                if let Some(tx) = started.take() {
                    let _ = tx.send(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = ctx.stopped() => return,
                }
            }
        }
    };
    let probe_interval = prober.as_ref().map(|p| p.cfg.interval);
    let tick = probe_interval
        .unwrap_or(Duration::from_secs(1))
        .clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut watched: BTreeMap<String, Watched> = BTreeMap::new();
    let mut missing_logged = false;
    loop {
        let found = resolve(&docker, &target, &ctx.cfg.name).await;
        match found {
            Err(error) => {
                tracing::error!(evt = "docker_poll_failed", child = %ctx.cfg.name, error = %error)
            }
            Ok(found) => {
                if found.is_empty() && !missing_logged {
                    tracing::warn!(evt = "container_missing", child = %ctx.cfg.name, target = ?target);
                    missing_logged = true;
                } else if !found.is_empty() {
                    missing_logged = false;
                }
                let ids: HashMap<String, ()> = found.iter().map(|(k, _)| (k.clone(), ())).collect();
                watched.retain(|_, w| ids.contains_key(&w.id));
                for (id, info) in found {
                    let shown = match &target {
                        ContainerTarget::Name(_) => ctx.cfg.name.clone(),
                        ContainerTarget::Label(_) => format!(
                            "{}/{}",
                            ctx.cfg.name,
                            info.name.as_deref().unwrap_or(&id).trim_start_matches('/')
                        ),
                    };
                    let w = watched
                        .entry(shown.clone())
                        .or_insert_with(|| first_sight(&ctx, &shown, &id, &info, probe_interval));
                    w.id = id;
                    step(&ctx, &docker, prober.as_ref(), w, &info).await;
                }
            }
        }
        publish(&ctx, &watched, &target);
        if let Some(tx) = started.take() {
            let _ = tx.send(());
        }
        let now = Instant::now();
        let mut wake = now + tick;
        for w in watched.values() {
            if let Phase::Backoff { until, .. } = w.phase {
                wake = wake.min(until.max(now));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = ctx.stopped() => break,
        }
    }
    // Stop: `docker stop` with the grace as timeout.
    let t = ctx.grace.as_secs_f64().ceil() as i64;
    for w in watched.values_mut() {
        {
            let r = tokio::time::timeout(
                ctx.grace + CALL_TIMEOUT,
                docker.stop_container(&w.id, Some(StopContainerOptions { t })),
            )
            .await;
            match r {
                Ok(Ok(())) => tracing::info!(evt = "child_stopped", child = %w.name),
                Ok(Err(e)) => {
                    tracing::error!(evt = "child_stop_failed", child = %w.name, error = %e)
                }
                Err(_) => {
                    tracing::error!(evt = "child_stop_failed", child = %w.name, error = "timed out")
                }
            }
        }
        w.entry.status.pid = None;
        w.entry.set_state(ChildState::Stopped);
    }
    publish(&ctx, &watched, &target);
}

/// Writes the watched containers' status into the child's slot; when nothing matches, one
/// `stopped` entry says so (a missing container is never silent).
fn publish(ctx: &ChildCtx, watched: &BTreeMap<String, Watched>, target: &ContainerTarget) {
    let mut entries: Vec<Entry> = watched.values().map(|w| w.entry.clone()).collect();
    if entries.is_empty() {
        let mut e = Entry::new(ctx.cfg.name.clone(), "container");
        let what = match target {
            ContainerTarget::Name(n) => format!("no container named {n:?}"),
            ContainerTarget::Label(l) => format!("no container labelled {l:?}"),
        };
        e.status.last_exit = Some(LastExit::StartFailed { error: what });
        e.set_state(ChildState::Stopped);
        entries.push(e);
    }
    *lock(&ctx.slot) = entries;
}

fn first_sight(
    ctx: &ChildCtx,
    shown: &str,
    id: &str,
    info: &ContainerInspectResponse,
    probe_interval: Option<Duration>,
) -> Watched {
    let now = Instant::now();
    let mut entry = Entry::new(shown.to_string(), "container");
    entry.status.container_id = Some(id.to_string());
    let running = is_running(info);
    let phase = if running {
        entry.set_state(ChildState::Running);
        Phase::Up
    } else {
        // Down when first seen: started now, not counted as a restart.
        Phase::Backoff {
            until: now,
            action: Action::Start,
        }
    };
    Watched {
        name: shown.to_string(),
        id: id.to_string(),
        schedule: Schedule::new(ctx.cfg.restart.clone()),
        phase,
        started: now,
        stable_since: None,
        failures: 0,
        next_probe: now + probe_interval.unwrap_or_default(),
        restarts: 0,
        entry,
    }
}

/// The containers a target names, inspected, by id.
async fn resolve(
    docker: &Docker,
    target: &ContainerTarget,
    child: &str,
) -> Result<Vec<(String, ContainerInspectResponse)>, String> {
    let names: Vec<String> = match target {
        ContainerTarget::Name(n) => vec![n.clone()],
        ContainerTarget::Label(l) => {
            let mut filters = HashMap::new();
            filters.insert("label".to_string(), vec![l.clone()]);
            let list = tokio::time::timeout(
                CALL_TIMEOUT,
                docker.list_containers(Some(ListContainersOptions {
                    all: true,
                    filters,
                    ..Default::default()
                })),
            )
            .await
            .map_err(|_| "list containers timed out".to_string())?
            .map_err(|e| format!("list containers: {e}"))?;
            list.into_iter().filter_map(|c| c.id).collect()
        }
    };
    let mut out = Vec::new();
    for n in names {
        match tokio::time::timeout(
            CALL_TIMEOUT,
            docker.inspect_container(&n, None::<InspectContainerOptions>),
        )
        .await
        {
            Err(_) => return Err(format!("inspect {n} timed out")),
            Ok(Ok(info)) => out.push((info.id.clone().unwrap_or(n), info)),
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => {
                tracing::debug!(evt = "container_not_found", child, container = %n);
            }
            Ok(Err(e)) => return Err(format!("inspect {n}: {e}")),
        }
    }
    Ok(out)
}

fn is_running(info: &ContainerInspectResponse) -> bool {
    let st = info.state.as_ref();
    matches!(
        st.and_then(|s| s.status),
        Some(ContainerStateStatusEnum::RUNNING)
            | Some(ContainerStateStatusEnum::RESTARTING)
            | Some(ContainerStateStatusEnum::PAUSED)
    )
}

fn exit_of(info: &ContainerInspectResponse) -> LastExit {
    let code = info.state.as_ref().and_then(|s| s.exit_code).unwrap_or(-1);
    // Docker reports a signal as 128 + its number.
    if (129..=128 + 64).contains(&code) {
        LastExit::Signal {
            signal: (code - 128) as i32,
        }
    } else {
        LastExit::Code { code }
    }
}

/// One poll of one container.
async fn step(
    ctx: &ChildCtx,
    docker: &Docker,
    prober: Option<&Prober>,
    w: &mut Watched,
    info: &ContainerInspectResponse,
) {
    let now = Instant::now();
    w.entry.status.pid = info
        .state
        .as_ref()
        .and_then(|s| s.pid)
        .filter(|p| *p > 0)
        .map(|p| p as u32);
    match w.phase {
        Phase::CrashLoop => {
            w.entry.status.pid = None;
        }
        Phase::Backoff { until, action } => {
            if now < until {
                return;
            }
            let t = ctx.grace.as_secs_f64().ceil() as isize;
            let r = match action {
                Action::Start => tokio::time::timeout(
                    CALL_TIMEOUT,
                    docker.start_container(&w.id, None::<StartContainerOptions<String>>),
                )
                .await
                .map_err(|_| "start timed out".to_string())
                .and_then(|r| r.map_err(|e| format!("start: {e}"))),
                Action::Restart => tokio::time::timeout(
                    CALL_TIMEOUT + ctx.grace,
                    docker.restart_container(&w.id, Some(RestartContainerOptions { t })),
                )
                .await
                .map_err(|_| "restart timed out".to_string())
                .and_then(|r| r.map_err(|e| format!("restart: {e}"))),
            };
            let counted = w.entry.status.last_exit.is_some();
            match r {
                Ok(()) => {
                    if counted {
                        w.restarts += 1;
                        tracing::info!(evt = "child_restarted", child = %w.name, restarts = w.restarts);
                    } else {
                        tracing::info!(evt = "child_started", child = %w.name);
                    }
                    w.entry.status.restarts = w.restarts;
                    w.phase = Phase::Up;
                    w.started = now;
                    w.failures = 0;
                    w.stable_since = prober.is_none().then_some(now);
                    w.next_probe = now + prober.map(|p| p.cfg.interval).unwrap_or_default();
                    w.entry.set_state(ChildState::Running);
                }
                Err(error) => {
                    tracing::error!(evt = "child_start_failed", child = %w.name, error = %error);
                    fail(
                        ctx,
                        docker,
                        w,
                        LastExit::StartFailed { error },
                        Action::Start,
                    )
                    .await;
                }
            }
        }
        Phase::Up => {
            if !is_running(info) {
                fail(ctx, docker, w, exit_of(info), Action::Start).await;
                return;
            }
            if prober.is_none() && w.stable_since.is_none() {
                w.stable_since = Some(w.started);
            }
            let Some(p) = prober else { return };
            let result = match &p.cfg.check {
                Check::DockerHealth => Some(docker_health(info)),
                _ if now >= w.next_probe => {
                    w.next_probe = now + p.cfg.interval;
                    Some(p.check().await.map(|()| true))
                }
                _ => None,
            };
            match result {
                None | Some(Ok(false)) => {}
                Some(Ok(true)) => {
                    w.failures = 0;
                    w.stable_since.get_or_insert(now);
                    w.entry.set_state(ChildState::Healthy);
                }
                Some(Err(reason)) => {
                    w.stable_since = None;
                    if now.saturating_duration_since(w.started) < p.cfg.start_period {
                        return;
                    }
                    w.failures += 1;
                    let threshold = p.cfg.failure_threshold.max(1);
                    tracing::warn!(evt = "probe_failed", child = %w.name, failures = w.failures, threshold, reason = %reason);
                    w.entry.set_state(ChildState::Unhealthy);
                    if w.failures >= threshold {
                        fail(
                            ctx,
                            docker,
                            w,
                            LastExit::Unhealthy { reason },
                            Action::Restart,
                        )
                        .await;
                    }
                }
            }
        }
    }
}

/// Docker's own health: `Ok(true)` healthy, `Ok(false)` not known yet, `Err` unhealthy.
fn docker_health(info: &ContainerInspectResponse) -> Result<bool, String> {
    let health = info.state.as_ref().and_then(|s| s.health.as_ref());
    match health.and_then(|h| h.status) {
        Some(HealthStatusEnum::HEALTHY) => Ok(true),
        Some(HealthStatusEnum::UNHEALTHY) => {
            let last = health
                .and_then(|h| h.log.as_ref())
                .and_then(|l| l.last())
                .map(|r| {
                    format!(
                        " (exit {}{})",
                        r.exit_code.unwrap_or(-1),
                        r.output
                            .as_deref()
                            .map(str::trim)
                            .filter(|o| !o.is_empty())
                            .map(|o| format!(": {o}"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            Err(format!("docker health status unhealthy{last}"))
        }
        _ => Ok(false),
    }
}

async fn fail(ctx: &ChildCtx, docker: &Docker, w: &mut Watched, exit: LastExit, action: Action) {
    let lines = logs_tail(docker, &w.id, ctx.output_lines).await;
    let shown = w.name.clone();
    let decision = on_failure(
        &ctx.notifier,
        &mut w.entry,
        &shown,
        &mut w.schedule,
        w.stable_since,
        exit,
        w.restarts,
        &lines,
    );
    w.stable_since = None;
    w.failures = 0;
    w.phase = match decision {
        AfterFailure::CrashLoop => Phase::CrashLoop,
        AfterFailure::RestartAfter(after) => Phase::Backoff {
            until: Instant::now() + after,
            action,
        },
    };
}

/// The last `n` lines of a container's stdout and stderr.
async fn logs_tail(docker: &Docker, id: &str, n: usize) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let mut stream = docker.logs(
        id,
        Some(LogsOptions::<String> {
            stdout: true,
            stderr: true,
            tail: n.to_string(),
            ..Default::default()
        }),
    );
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => text.push_str(&c.to_string()),
                Err(e) => {
                    tracing::warn!(evt = "container_logs_failed", container = %id, error = %e);
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let skip = lines.len().saturating_sub(n);
    lines.into_iter().skip(skip).collect()
}
