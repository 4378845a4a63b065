//! Response: deciding what to do about an investigation, and doing it (or recording what would be done).
//!
//! This crate owns the policy matrix (severity × risk band × confidence band → actions with TTLs), the
//! allowlist no action may touch, and the actuators. Every action has a dry run (`plan`), and in `observe`
//! mode the dry run is all that happens. Kernel and engine actuators slot in behind
//! [`sentinel_core::Actuator`]; until one is configured for a kind, enforce-mode actions of that kind fail
//! loudly rather than pretend.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod actuators;
mod allowlist;
mod ledger;
mod matrix;
mod preview;
mod responder;

pub use allowlist::Allowlist;
pub use ledger::{Correction, Escalation, Ledger, LedgerConfig};
pub use matrix::{ActionTemplate, Band, Bands, MatrixRule, PolicyMatrix};
pub use preview::RecordOnly;
pub use responder::Responder;
