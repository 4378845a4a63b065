//! Sentinel's golden path as a library: detect → investigate → decide → act → notify.
//!
//! This crate owns the stages ([`stages`]), what enters them and what they answer ([`intake`]), the one
//! way records reach the store and their audit entries the Merkle audit log ([`recorder`]), the
//! in-process [`bus`], the log sources' parse stage ([`sources`]), scenario loading ([`scenarios`]),
//! the actuators the configuration asks for ([`actuators`]), a source's history in the store for the
//! investigator ([`history`]), the ledger's tasks (manual decisions, expiry, reconcile: [`ledger`]), the
//! policy ([`policy`]), fail2ban jails as sources, scenarios and rules ([`jails`]), offline replay
//! ([`replay`]), the stage boundaries over a bus ([`links`]) and the roles they let run apart
//! ([`roles`]), event retention ([`retention`]), the manual-decision contract front ends call
//! ([`decisions`]), the metrics every stage moves ([`metrics`]) and the OTLP export of each trace
//! ([`otel`]).
//!
//! It never depends on the API: the API, the daemon and any future role process depend on it. It never
//! parses Sentinel's configuration text (it is handed a validated configuration) and never parses a
//! command line.
#![forbid(unsafe_code)]

pub mod actuators;
pub mod bus;
pub mod decisions;
pub mod history;
pub mod intake;
pub mod jails;
pub mod ledger;
pub mod links;
pub mod metrics;
pub mod otel;
pub mod policy;
pub mod recorder;
pub mod replay;
pub mod retention;
pub mod roles;
pub mod scenarios;
pub mod sources;
pub mod stages;
