//! The `sentinel` binary's library half: wiring the stage crates into a running daemon.
//!
//! [`daemon`] builds every part from a validated configuration, runs the API and the pipeline, and shuts
//! them down by draining; [`pipeline`] holds the stage tasks; [`logs`] the JSON-lines logger. The CLI in
//! `main.rs` only parses arguments and calls into here.
#![forbid(unsafe_code)]

pub mod actuators;
pub mod cli_decisions;
pub mod daemon;
pub mod import;
pub mod jails;
pub mod ledger_tasks;
pub mod loggen;
pub mod logs;
pub mod pipeline;
pub mod private;
pub mod replay;
pub mod scenarios;
pub mod sources;
