//! The `sentinel` binary's library half: wiring the stage crates into a running daemon.
//!
//! [`daemon`] builds every part from a validated configuration, runs the API and the pipeline (the
//! `sentinel-pipeline` crate), and shuts them down by draining; [`logs`] the JSON-lines logger. The CLI
//! in `main.rs` only parses arguments and calls into here.
#![forbid(unsafe_code)]

pub mod cli_decisions;
pub mod daemon;
pub mod import;
pub mod loggen;
pub mod logs;
pub mod private;
