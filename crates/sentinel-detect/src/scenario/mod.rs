//! Scenarios: what fail2ban and CrowdSec do — count matching observations per source and fire when a
//! threshold is crossed — with bounded state that expires by event time.
//!
//! A scenario is a filter (which observations count) plus a way of counting: a leaky bucket (optionally
//! pouring only distinct values), a count of distinct values within a window, regularly spaced
//! failures, or trigger-on-first; counting is per source by default, or per any group of fields
//! (`group_by`). Definitions are YAML ([`def`]); the defaults ship in `builtin.yaml`, with their data
//! lists under `data/` ([`data`]). Filters are compiled once at load (aho-corasick automata, regex
//! sets). The [`ScenarioEngine`] keeps per-key state in compact maps with a cap per scenario; idle keys
//! are dropped as event time passes, and past the cap the stalest keys are evicted (and counted). It
//! reads no clock: replaying a week of logs gives the week's alerts.

mod counting;
pub mod data;
pub mod def;
mod engine;
mod filter;
mod state;
mod views;

pub use def::{
    parse_scenarios, Condition, Counting, FieldSpec, Filter, Part, ScenarioDef, ScenarioError,
    BUILTIN,
};
pub use engine::{EngineOptions, EngineStats, ScenarioCounts, ScenarioEngine, ScenarioTally};
