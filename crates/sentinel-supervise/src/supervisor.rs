//! The supervisor: validates the configuration, starts one task per child in order, answers the
//! status of every child, and stops them in reverse start order.

use crate::child::ChildCtx;
use crate::config::{Check, SuperviseConfig, Target};
use crate::notice::Notices;
use crate::probe::Prober;
use crate::status::{lock, ChildStatus, Entry, Slot};
use crate::user::{self, RunAs};
use crate::{container, process};
use sentinel_core::Notifier;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long [`Supervisor::stop`] waits for crash notices still being handed to the notifier.
pub const NOTICE_SETTLE: Duration = Duration::from_secs(10);

/// Why the supervisor would not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperviseError {
    /// The configuration cannot be run as it is (every problem, one per line).
    #[error("supervise configuration:\n{}", .0.join("\n"))]
    Config(Vec<String>),
}

/// One running child task.
struct Running {
    name: String,
    slot: Slot,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Runs and watches the configured children until [`Supervisor::stop`].
pub struct Supervisor {
    children: Vec<Running>,
    notices: Notices,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field(
                "children",
                &self.children.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Reads the children's status; see [`Supervisor::status_handle`].
#[derive(Clone)]
pub struct StatusHandle {
    slots: Arc<Vec<Slot>>,
}

impl std::fmt::Debug for StatusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusHandle")
            .field("children", &self.slots.len())
            .finish()
    }
}

impl StatusHandle {
    /// Every child's status, in start order.
    pub fn status(&self) -> Vec<ChildStatus> {
        let now = Instant::now();
        self.slots
            .iter()
            .flat_map(|s| lock(s).iter().map(|e| e.snapshot(now)).collect::<Vec<_>>())
            .collect()
    }
}

/// What a child needs resolved before it starts.
struct Prepared {
    run_as: Option<RunAs>,
    prober: Option<Prober>,
}

fn prepare(cfg: &SuperviseConfig) -> Result<Vec<Prepared>, SuperviseError> {
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    let euid = rustix::process::geteuid();
    for c in &cfg.children {
        let mut p = Prepared {
            run_as: None,
            prober: None,
        };
        if c.name.trim().is_empty() {
            errors.push("a child has an empty name".to_string());
        } else if !names.insert(c.name.clone()) {
            errors.push(format!("child {:?}: the name is used twice", c.name));
        }
        if let Some(probe) = &c.probe {
            if matches!(probe.check, Check::DockerHealth) && matches!(c.target, Target::Process(_))
            {
                errors.push(format!(
                    "child {:?}: docker_health applies to containers only",
                    c.name
                ));
            } else {
                match Prober::new(probe.clone()) {
                    Ok(pr) => p.prober = Some(pr),
                    Err(e) => errors.push(format!("child {:?}: probe: {e}", c.name)),
                }
            }
        }
        if let Target::Process(t) = &c.target {
            if t.command.trim().is_empty() {
                errors.push(format!("child {:?}: empty command", c.name));
            }
            if let Some(u) = &t.user {
                match user::resolve(u, Path::new("/etc/passwd")) {
                    Err(e) => errors.push(format!("child {:?}: user: {e}", c.name)),
                    Ok(r) if !euid.is_root() && r.uid != euid.as_raw() => errors.push(format!(
                        "child {:?}: running it as user {u:?} needs the supervisor to run as root",
                        c.name
                    )),
                    Ok(r) => p.run_as = Some(r),
                }
            }
        }
        out.push(p);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(SuperviseError::Config(errors))
    }
}

/// Every problem [`Supervisor::start`] would refuse `cfg` for (a user missing from `/etc/passwd`, a
/// user the current one cannot switch to, a probe that cannot be set up), without starting anything:
/// what `sentinel supervise --check` adds to the file's validation. Empty when it would start.
pub fn check(cfg: &SuperviseConfig) -> Vec<String> {
    match prepare(cfg) {
        Ok(_) => Vec::new(),
        Err(SuperviseError::Config(errors)) => errors,
    }
}

impl Supervisor {
    /// Validates `cfg` (every problem at once) and starts the children in order: each child's first
    /// start is made before the next child's. Must run inside a Tokio runtime.
    pub async fn start(
        cfg: SuperviseConfig,
        notifier: Arc<dyn Notifier>,
    ) -> Result<Supervisor, SuperviseError> {
        let prepared = prepare(&cfg)?;
        let notices = Notices::new(notifier);
        let mut children = Vec::new();
        for (c, p) in cfg.children.into_iter().zip(prepared) {
            let kind = match c.target {
                Target::Process(_) => "process",
                _ => "container",
            };
            let slot: Slot = Arc::new(Mutex::new(match kind {
                "process" => vec![Entry::new(c.name.clone(), kind)],
                _ => Vec::new(),
            }));
            let (stop_tx, stop_rx) = watch::channel(false);
            let (started_tx, started_rx) = oneshot::channel();
            let ctx = ChildCtx {
                grace: c.stop_grace.unwrap_or(cfg.stop_grace),
                output_lines: cfg.output_lines,
                notifier: notices.clone(),
                slot: Arc::clone(&slot),
                stop: stop_rx,
                cfg: c.clone(),
            };
            let task = match c.target {
                Target::Process(t) => {
                    tokio::spawn(process::run(ctx, t, p.run_as, p.prober, started_tx))
                }
                Target::Container(t) => tokio::spawn(container::run(ctx, t, p.prober, started_tx)),
            };
            let _ = started_rx.await;
            tracing::info!(evt = "child_supervised", child = %c.name, kind);
            children.push(Running {
                name: c.name,
                slot,
                stop: stop_tx,
                task,
            });
        }
        Ok(Supervisor { children, notices })
    }

    /// Every child's status, in start order.
    pub fn status(&self) -> Vec<ChildStatus> {
        self.status_handle().status()
    }

    /// A cheap, cloneable reader of the children's status (for the heartbeat), usable while
    /// [`Supervisor::stop`] owns the supervisor; it shows the final `stopped` states afterwards.
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            slots: Arc::new(self.children.iter().map(|c| Arc::clone(&c.slot)).collect()),
        }
    }

    /// The children whose supervising task has ended although the supervisor was not stopped (a
    /// panic: the child is no longer watched). Empty while all is well; for the watchdog.
    pub fn ended(&self) -> Vec<String> {
        self.children
            .iter()
            .filter(|c| c.task.is_finished())
            .map(|c| c.name.clone())
            .collect()
    }

    /// Stops every child in reverse start order (SIGTERM, the grace period, SIGKILL; `docker stop`
    /// for containers), each one gone before the next is stopped. Returns once every crash notice
    /// raised so far has been accepted by the notifier (at most [`NOTICE_SETTLE`] more), so the
    /// caller may stop the notification engine next without losing one.
    pub async fn stop(self) {
        for c in self.children.into_iter().rev() {
            let _ = c.stop.send(true);
            if let Err(e) = c.task.await {
                tracing::error!(evt = "child_task_failed", child = %c.name, error = %e);
            }
        }
        let left = self.notices.settle(NOTICE_SETTLE).await;
        if left > 0 {
            tracing::error!(
                evt = "crash_notices_unsettled",
                in_flight = left,
                "crash notices were still being handed to the notifier when the supervisor stopped"
            );
        }
    }
}
