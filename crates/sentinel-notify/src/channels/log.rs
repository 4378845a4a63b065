//! The log channel: a message becomes one structured `evt=notice` warning in the daemon's log. It
//! cannot fail, which makes it a route's fallback and the default when no channel is configured.

use crate::channel::{Channel, Message, SendError};

/// `type: log`.
#[derive(Debug, Clone)]
pub struct LogChannel {
    name: String,
}

impl LogChannel {
    /// A log channel with this name.
    pub fn new(name: &str) -> LogChannel {
        LogChannel {
            name: name.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl Channel for LogChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "log"
    }

    async fn send(&self, m: &Message) -> Result<(), SendError> {
        tracing::warn!(
            evt = "notice",
            channel = %self.name,
            delivery_id = %m.delivery_id,
            kind = %m.kind,
            severity = m.severity.as_str(),
            count = m.count,
            title = %m.title,
            body = %m.body,
            trace_id = %m.trace_id,
            first_seen = %m.first_seen,
            last_seen = %m.last_seen,
            "{}",
            m.subject()
        );
        Ok(())
    }
}
