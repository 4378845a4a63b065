//! Sentinel's supervisor: keeps Sentinel's own roles and the services it guards running.
//!
//! Each [`config::ChildConfig`] is a process (command, environment, working directory, user) or a
//! Docker container (by name or label). The supervisor starts processes in order, probes each
//! child's health (HTTP, TCP connect, a command, Docker's health status), restarts a child that
//! exits or fails its probe with exponential backoff (1 s base, ×2, 60 s cap, jitter; reset after a
//! period of stable health), stops restarting a crash loop (N restarts within a window) and raises a
//! critical notice, and sends every crash through the notification routes with the last lines of the
//! child's output. On stop it sends SIGTERM in reverse start order, waits, then SIGKILL.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backoff;
mod child;
pub mod config;
mod container;
mod notice;
pub mod output;
mod probe;
mod process;
pub mod sdnotify;
pub mod status;
mod supervisor;
pub mod user;

pub use config::SuperviseConfig;
pub use status::{ChildState, ChildStatus, LastExit};
pub use supervisor::{check, StatusHandle, SuperviseError, Supervisor};
