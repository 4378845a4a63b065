//! The notification channels: one module per `type:`, each a [`Channel`] built from its config by
//! [`build_channel`].
//!
//! - [`webhook`]: signed JSON POSTs; [`sign`] and [`verify`] are the signature scheme for receivers.
//! - [`slack`]: Slack-compatible incoming webhooks.
//! - [`matrix`]: a Matrix room through the client-server API.
//! - [`smtp`]: email (STARTTLS, TLS, or plain to a loopback relay).
//! - [`log`]: the structured log.
//!
//! The HTTP channels share one behaviour: rustls, redirects never followed, the configured
//! per-attempt timeout, at most 64 KiB of an answer read; 2xx is delivered, 408/429/5xx and
//! connection failures are transient (honouring `Retry-After`), other answers permanent. No
//! channel puts a secret (token, password, signing key, Slack URL) in `Debug`, an error or a log.

mod http;
pub mod log;
pub mod matrix;
pub mod slack;
pub mod smtp;
pub mod webhook;

pub use webhook::{sign, verify, VerifyError};

use crate::channel::Channel;
use crate::config::ChannelConfig;
use std::sync::Arc;

/// Builds the channel `name` from its configuration. Fails, with a message naming the channel and
/// never a secret, on configuration that cannot work (a bad URL or address, an unreadable CA file).
pub fn build_channel(name: &str, cfg: &ChannelConfig) -> Result<Arc<dyn Channel>, String> {
    let channel: Arc<dyn Channel> = match cfg {
        ChannelConfig::Webhook(c) => Arc::new(webhook::WebhookChannel::new(name, c)?),
        ChannelConfig::Slack(c) => Arc::new(slack::SlackChannel::new(name, c)?),
        ChannelConfig::Matrix(c) => Arc::new(matrix::MatrixChannel::new(name, c)?),
        ChannelConfig::Smtp(c) => Arc::new(smtp::SmtpChannel::new(name, c)?),
        ChannelConfig::Log => Arc::new(log::LogChannel::new(name)),
    };
    Ok(channel)
}
