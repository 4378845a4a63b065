//! The supervisor's configuration (`supervise.yml`, or `supervise:` in `sentinel.yml`), as the config
//! crate validates it into typed values.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the supervisor runs and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuperviseConfig {
    /// Children in start order (stopped in reverse); names are unique.
    pub children: Vec<ChildConfig>,
    /// How long a child has after SIGTERM before SIGKILL (a child may override it).
    pub stop_grace: Duration,
    /// Lines of a child's output kept for crash notices.
    pub output_lines: usize,
}

impl Default for SuperviseConfig {
    fn default() -> Self {
        SuperviseConfig {
            children: Vec::new(),
            stop_grace: Duration::from_secs(10),
            output_lines: 20,
        }
    }
}

/// One supervised child.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildConfig {
    /// Unique name, used in logs, notices and the heartbeat.
    pub name: String,
    /// What it is.
    pub target: Target,
    /// How its health is checked (none: alive is healthy).
    pub probe: Option<ProbeConfig>,
    /// How it is restarted.
    pub restart: RestartPolicy,
    /// SIGTERM-to-SIGKILL grace for this child (`None`: the supervisor's `stop_grace`).
    pub stop_grace: Option<Duration>,
}

/// A process or a container.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Target {
    /// A process the supervisor starts itself.
    Process(ProcessTarget),
    /// Docker containers the engine runs; the supervisor watches and restarts them.
    Container(ContainerTarget),
}

/// `type: process`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessTarget {
    /// The program (a path, or a name looked up in `PATH`).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it (over the supervisor's own environment, unless `clear_env`).
    pub env: BTreeMap<String, String>,
    /// Start it with only `env` (and `PATH`).
    pub clear_env: bool,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Run as this user (name or uid; the supervisor must be root to change user).
    pub user: Option<String>,
}

/// `type: container`: one container by name, or every container carrying a label.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerTarget {
    /// A container name (or id).
    Name(String),
    /// `key=value` (or just `key`): every container with that label.
    Label(String),
}

/// A health probe and its schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeConfig {
    /// What is checked.
    pub check: Check,
    /// Time between probes.
    pub interval: Duration,
    /// Time one probe may take.
    pub timeout: Duration,
    /// Consecutive failures that make the child unhealthy (and restarted).
    pub failure_threshold: u32,
    /// Probes are not counted for this long after a (re)start.
    pub start_period: Duration,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Check {
    /// A GET answered with a 2xx (e.g. Sentinel's `/ready`).
    Http {
        /// The URL.
        url: String,
    },
    /// A TCP connection accepted.
    Tcp {
        /// The address.
        addr: SocketAddr,
    },
    /// A command exiting 0.
    Exec {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// The container's own Docker health status is `healthy` (containers only).
    DockerHealth,
}

/// Restarts: exponential backoff and crash-loop detection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartPolicy {
    /// First wait before a restart.
    pub base: Duration,
    /// Growth of each next wait.
    pub factor: f64,
    /// Longest wait.
    pub cap: Duration,
    /// Random spread added to each wait, as a fraction of it (0.1 = up to +10 %).
    pub jitter: f64,
    /// Healthy (or alive, with no probe) this long after a restart resets the backoff.
    pub reset_after: Duration,
    /// Restarts within `crash_window` that make a crash loop: restarting stops and a critical
    /// notice is raised.
    pub crash_max: u32,
    /// The crash-loop window.
    pub crash_window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            base: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(60),
            jitter: 0.1,
            reset_after: Duration::from_secs(60),
            crash_max: 5,
            crash_window: Duration::from_secs(300),
        }
    }
}
