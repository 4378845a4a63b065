//! Response: deciding what to do about an investigation, and doing it (or recording what would be done).
//!
//! This crate owns the policy matrix (severity × risk band × confidence band → actions with TTLs), the
//! allowlist no action may touch, and the actuators. Every action has a dry run (`plan`), and in `observe`
//! mode the dry run is all that happens: it is the real actuator's own `plan()` for the same typed
//! [`sentinel_core::ActionSpec`] that `apply()` would get, so there is one action path. A kind whose
//! backend this role does not hold keeps its real actuator behind [`PlanOnly`]: it plans, and refuses
//! to apply, loudly.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod actuators;
mod allowlist;
pub mod config;
mod ledger;
mod matrix;
mod plan_only;
mod responder;

pub use allowlist::Allowlist;
pub use ledger::{Correction, Escalation, Ledger, LedgerConfig};
pub use matrix::{ActionTemplate, Band, Bands, MatrixRule, PolicyMatrix};
pub use plan_only::PlanOnly;
pub use responder::Responder;
