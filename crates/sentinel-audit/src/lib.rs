//! Sentinel's audit trail: an append-only log built the way Certificate Transparency logs are
//! (RFC 6962 / RFC 9162 Merkle tree hashing), with Ed25519-signed checkpoints in the C2SP signed-note
//! form, inclusion and consistency proofs, and verification that names the first bad record.

pub mod archive;
pub mod chain;
pub mod files;
pub mod format;
pub mod keyfile;
pub mod log;
pub mod merkle;
pub mod note;
pub mod reader;
#[cfg(any(test, feature = "testlog"))]
pub mod testlog;
pub mod verify;
pub mod witness;
mod writer;

pub use log::{
    Appended, AuditSettings, Log, LogError, LogStats, LogTask, PendingAppend, StatsSnapshot,
    StoredEntry,
};
