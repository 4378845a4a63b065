//! Detectors: pure, synchronous functions from events to alerts.
//!
//! This crate owns the scoring of events: the deterministic [`Heuristic`] detector over telemetry fields
//! (failed logins, request rate, bytes out, known-bad ports, payload signatures), the
//! [`ScenarioEngine`] over parsed log lines (leaky buckets, distinct counts, the built-in scenario set and
//! the scenario file format), and the [`FalcoDetector`] that turns Falco's runtime alerts into alerts
//! about a container. It does no I/O (callers hand it scenario text) and reads no clock except the
//! timestamps it is given, so a replay gives the same alerts as live traffic did. It never investigates,
//! decides or acts.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod falco;
mod heuristic;
pub mod scenario;
mod signatures;

pub use falco::{FalcoDetector, FalcoSettings, FalcoTally};
pub use heuristic::{Assessment, Heuristic, HeuristicSettings};
pub use scenario::{EngineOptions, EngineStats, ScenarioDef, ScenarioEngine};
pub use signatures::{Signature, SignatureFamily, SIGNATURES};
