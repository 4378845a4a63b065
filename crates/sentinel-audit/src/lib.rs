//! Sentinel's audit trail: an append-only log built the way Certificate Transparency logs are
//! (RFC 6962 / RFC 9162 Merkle tree hashing), with Ed25519-signed checkpoints in the C2SP signed-note
//! form, inclusion and consistency proofs, and verification that names the first bad record.

pub mod chain;
pub mod format;
pub mod merkle;
pub mod note;
pub mod witness;
