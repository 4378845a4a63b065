//! Investigation: what Sentinel finds out about an alert's subject before deciding anything.
//!
//! This crate owns the enrichers (for now [`LocalContext`]: the kind of address, and how often the subject
//! offended recently) and [`Investigator`], which runs them concurrently under one deadline, tolerates their failures as recorded
//! uncertainty, and correlates everything into a risk score and confidence. Remote threat-intelligence
//! providers slot in as further [`sentinel_core::Enricher`]s. It never decides what to do about an alert
//! (that is the policy's job) and never writes to the store.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backoff;
pub mod breaker;
mod build;
pub mod cache;
pub mod coalesce;
pub mod config;
pub mod correlate;
pub mod feeds;
pub mod guarded;
pub mod history;
mod investigator;
pub mod limiter;
mod local;
pub mod provider;
pub mod providers;

pub use breaker::BreakerState;
pub use build::{build, AssumedAlert, Intel, IntelStats, LookupReport, ProviderStats};
pub use cache::{AnswerCache, CacheSource, CacheStats, Cached};
pub use config::IntelConfig;
pub use correlate::{correlate, Context, Scored};
pub use feeds::{FeedMatch, FeedReport, FeedStats, Feeds};
pub use guarded::{GuardSettings, GuardStats, Guarded};
pub use history::{History, SourceHistory};
pub use investigator::Investigator;
pub use local::{AddressClass, LocalContext};
pub use provider::{Answer, ApiKey, Provider, ProviderError, Quota, RateInfo, Reply};
pub use providers::{http_client, AbuseIpDb, Otx, VirusTotal};
