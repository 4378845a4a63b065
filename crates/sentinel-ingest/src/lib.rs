//! Ingest: where raw observations enter Sentinel and become normalised records.
//!
//! This crate owns the sources (rotation-safe file tailing, the syslog receiver, the journald stream) and the
//! parsers (syslog headers, sshd, nginx/apache, postfix/dovecot, JSON lines, Falco's JSON alerts, and
//! fail2ban filter files).
//! A parser turns one line into a [`Parsed`] (cheap, borrowed-friendly, readable by detectors through
//! [`sentinel_core::Observed`]) or an [`Unparsed`] reason that is counted; it never panics on input.
//! It must not decide anything about attacks: that is detection's job.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod fail2ban;
pub mod parse;
mod parsed;
pub mod source;

pub use parsed::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
