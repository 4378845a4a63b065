//! Investigation: what Sentinel finds out about an alert's subject before deciding anything.
//!
//! [`build`] turns the `intel:` configuration into an [`Intel`]: the [`Investigator`] the pipeline runs,
//! over these enrichers, all at once under one per-investigation deadline:
//! - [`LocalContext`]: the kind of address (loopback, private, documentation, public);
//! - [`Feeds`]: local IP/CIDR lists, FireHOL netsets, Spamhaus DROP/EDROP, Tor exit lists and CSV feeds
//!   in one prefix table, reloaded when their files change;
//! - the remote providers that have a key ([`providers`]: AbuseIPDB v2, VirusTotal v3, OTX), each
//!   behind a [`Guarded`] layer: answer cache (memory, and Redis shared by every node), request
//!   coalescing, circuit breaker, rate limiter matching the provider's quota, and retries with backoff
//!   that honour `Retry-After`;
//! - the source's history in the store ([`History`]).
//!
//! A provider that fails or does not answer in time becomes an uncertainty flag, never a failed
//! investigation. [`correlate()`] turns the answers, the alert and the local context (asset criticality,
//! history) into a risk score and confidence with the contribution of every input recorded. Without
//! keys everything is local and deterministic (offline mode). The crate never decides what to do about
//! an alert (that is the policy's job) and never writes to the store.
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
pub use provider::{
    Answer, ApiKey, Provider, ProviderError, Quota, RateInfo, Reply, MAX_PROVIDER_WAIT,
};
pub use providers::{http_client, http_client_via, AbuseIpDb, EnvProxy, Otx, VirusTotal};
