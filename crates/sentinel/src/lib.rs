//! The `sentinel` binary's library half: wiring the library crates into a running daemon.
//!
//! [`daemon`] builds every part from a validated configuration, runs the API and the pipeline (the
//! `sentinel-pipeline` crate), and shuts them down by draining; [`logs`] is the JSON-lines logger;
//! [`private`] keeps the data directory private; [`supervised`] runs the supervisor (in the daemon
//! and as `sentinel supervise`); [`loggen`] writes synthetic logs with a known answer
//! (for `sentinel gen-logs`, the benchmarks and the tests); [`egress`] is the CONNECT proxy of
//! `sentinel egress-proxy`. The command line (`main.rs` and `cmd/`) only
//! parses arguments and calls into here. Nothing here detects, decides or acts.
#![forbid(unsafe_code)]

pub mod daemon;
pub mod egress;
pub mod fleet;
pub mod jwt_setup;
pub mod local;
pub mod loggen;
pub mod logs;
pub mod notices;
pub mod private;
pub mod ratehook;
pub mod supervised;
