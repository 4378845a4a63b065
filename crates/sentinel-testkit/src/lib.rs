//! Harnesses shared by tests: real parts, set up and torn down by the test itself.
//!
//! [`netns`] builds hosts in network namespaces joined by veth pairs, addressed only from the
//! documentation ranges, and removes them on drop even when a test panics. [`ti`] runs fake
//! threat-intelligence providers (AbuseIPDB, VirusTotal, OTX) on loopback, speaking their real wire
//! format; [`redis`] runs a real `redis-server` on a free loopback port. It is a dev-dependency only:
//! nothing in a shipped binary links it, and it never stands in for a real component (no mocks).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod netns;
pub mod redis;
pub mod ti;
