//! The seam every channel implements, and the message it sends.

use sentinel_core::{NoticeKind, Severity, Timestamp, TraceId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One message as a channel sends it: one notice, or several with the same de-duplication key
/// folded into one with their count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Stays the same across every retry and restart of this message: receivers de-duplicate on it
    /// (webhook `X-Sentinel-Delivery`, Matrix transaction id, email `Message-ID`).
    pub delivery_id: String,
    /// What it is about.
    pub kind: NoticeKind,
    /// The highest severity of the notices folded in.
    pub severity: Severity,
    /// The first notice's title.
    pub title: String,
    /// The first notice's body (with a line saying how many more there were, when folded).
    pub body: String,
    /// The first notice's trace.
    pub trace_id: TraceId,
    /// How many notices this message stands for (1 when nothing was folded).
    pub count: u64,
    /// When the first of them was accepted.
    pub first_seen: Timestamp,
    /// When the last of them was accepted.
    pub last_seen: Timestamp,
}

impl Message {
    /// The one-line subject: `[Sentinel] HIGH: <title>`, with ` (×N)` when folded. Control
    /// characters in the title (CR, LF, NUL, tab…) become spaces, so a title cannot add lines to a
    /// mail subject, a chat heading or anything else that expects one line.
    pub fn subject(&self) -> String {
        let upper = self.severity.as_str().to_ascii_uppercase();
        let title: String = self
            .title
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if self.count > 1 {
            format!("[Sentinel] {upper}: {title} (×{})", self.count)
        } else {
            format!("[Sentinel] {upper}: {title}")
        }
    }

    /// The plain-text body every channel shows: the body, then the kind, count, times and trace.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.body.len() + 160);
        s.push_str(&self.body);
        s.push_str("\n\n");
        s.push_str(&format!("kind: {}\n", self.kind));
        if self.count > 1 {
            s.push_str(&format!(
                "count: {} between {} and {}\n",
                self.count, self.first_seen, self.last_seen
            ));
        } else {
            s.push_str(&format!("at: {}\n", self.first_seen));
        }
        s.push_str(&format!("trace: {}\n", self.trace_id));
        s.push_str(&format!("delivery: {}\n", self.delivery_id));
        s
    }
}

/// Why a send failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// May work later (connection refused, timeout, 5xx, 408, 429); retried with backoff, or no
    /// sooner than `retry_after` when the receiver said so.
    #[error("{reason}")]
    Transient {
        /// What happened, without secrets.
        reason: String,
        /// The receiver's own `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Will not work by retrying (a 4xx such as 400, 401, 403, 404; a rejected recipient): the
    /// message becomes a dead letter at once, for an operator to fix the channel and retry it.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    /// A transient failure with no receiver-given wait.
    pub fn transient(reason: impl Into<String>) -> SendError {
        SendError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// A way to reach people.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// The configured name (what routes refer to).
    fn name(&self) -> &str;
    /// The `type:` (`webhook`, `smtp`, `matrix`, `slack`, `log`).
    fn kind(&self) -> &'static str;
    /// Sends one message, once; the caller retries.
    async fn send(&self, m: &Message) -> Result<(), SendError>;
}
