//! Scenarios: what fail2ban and CrowdSec do — count matching observations per source and fire when a
//! threshold is crossed — with bounded state that expires by event time.
//!
//! A scenario is a filter (which observations count) plus a way of counting: a leaky bucket, a count of
//! distinct values within a window, or trigger-on-first. Definitions are YAML ([`def`]); the defaults
//! ship in `builtin.yaml`. The [`ScenarioEngine`] keeps per-key state in compact maps with a cap per
//! scenario; idle keys are dropped as event time passes, and past the cap the stalest keys are evicted
//! (and counted). It reads no clock: replaying a week of logs gives the week's alerts.

pub mod def;
mod engine;
mod filter;
mod state;

pub use def::{parse_scenarios, Counting, Filter, ScenarioDef, ScenarioError, BUILTIN};
pub use engine::{EngineOptions, EngineStats, ScenarioEngine};
