//! Sentinel's notifications: telling people what Sentinel saw and did, and when something broke.
//!
//! The flow: a [`sentinel_core::Notice`] reaches [`Notifications`] (the pipeline's `Notifier`), the
//! [`config::Route`]s choose channels by kind and severity, and one outbox row per channel is written
//! to the store before `notify` returns — a notice accepted is a notice on disk. Delivery workers
//! (one per channel) take due rows, fold rows with the same de-duplication key into one message with
//! a count, send it with retries and backoff, and move it to the dead-letter list after the last
//! attempt. Every message carries a delivery id that stays the same across retries and restarts, so
//! a receiver that de-duplicates on it sees each message exactly once.
//!
//! Channels ([`channel::Channel`]): a webhook (JSON, HMAC-SHA256 signed), email over SMTP (STARTTLS),
//! Matrix (client-server API) and Slack-compatible incoming webhooks, each built from its closed
//! config enum by [`build_channel`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod backoff;
pub mod channel;
pub mod channels;
pub mod config;
pub mod deliver;
pub mod digest;
pub mod engine;
pub mod route;
pub mod stats;

pub use channel::{Channel, Message, SendError};
pub use channels::build_channel;
pub use config::NotifyConfig;
pub use digest::{next_run, DigestFigures, DigestSource, StoreDigestSource};
pub use engine::{DeadLetter, Notifications, NotifyTask, OutboxError, Submitted};
pub use stats::{ChannelStats, NotifyStats};

/// Builds every configured channel and starts the engine on `store` (the daemon's and the
/// supervisor's one entry point). Fails, naming the channel, when a channel cannot be built (an
/// unreadable `ca_file`, a bad address): a configured channel that could not send would be silent.
/// Needs a Tokio runtime.
pub fn build(
    cfg: &NotifyConfig,
    store: sentinel_store::Store,
    digest: Option<std::sync::Arc<dyn DigestSource>>,
) -> Result<(Notifications, NotifyTask), String> {
    let mut channels = std::collections::BTreeMap::new();
    for (name, c) in &cfg.channels {
        let ch = build_channel(name, c)
            .map_err(|e| format!("notify.channels.{name} ({}): {e}", c.kind()))?;
        channels.insert(name.clone(), ch);
    }
    Ok(Notifications::start(cfg, store, channels, digest))
}
