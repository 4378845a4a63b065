//! Actuators that change the host for real: nftables (block, rate limit, honeypot redirect), the Docker
//! Engine (container isolation), and the file system (quarantine). Each implements
//! [`sentinel_core::Actuator`]: a dry run that lists the exact operations, apply, an idempotent revert that
//! needs only the serialised [`sentinel_core::Applied`], and observe (what is really in place now).
//! Each touches only what it created.
pub mod docker;
mod docker_calls;
mod docker_token;
pub mod quarantine;
mod quarantine_rules;
mod quarantine_store;

pub mod nft;
mod nft_block;
mod nft_ratelimit;
mod nft_redirect;
mod nft_session;
mod nft_tagged;
