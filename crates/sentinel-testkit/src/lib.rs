//! Harnesses shared by tests: real parts, set up and torn down by the test itself.
//!
//! [`netns`] builds hosts in network namespaces joined by veth pairs, addressed only from the
//! documentation ranges, and removes them on drop even when a test panics. [`ti`] runs fake
//! threat-intelligence providers (AbuseIPDB, VirusTotal, OTX) on loopback, speaking their real wire
//! format; [`redis`] runs a real `redis-server` on a free loopback port and [`postgres`] a real
//! PostgreSQL cluster in a temp dir. [`smtp`] is a real SMTP
//! server (STARTTLS with a private CA, AUTH, scripted 4xx/5xx replies) and [`receivers`] are the
//! webhook, Matrix and Slack receivers the notification channels deliver to. It is a
//! dev-dependency only: nothing in a shipped binary links it, and it never stands in for a real
//! component (no mocks).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod netns;
pub mod postgres;
pub mod receivers;
pub mod redis;
pub mod smtp;
pub mod ti;
