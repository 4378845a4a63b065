//! Events: one normalised observation from any source.

use crate::ids::{EventId, TraceId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// What an event observed, e.g. `telemetry`, `auth_failure`, `http_request`, `flow`.
///
/// An open set: sources name their kinds, detectors match on the ones they understand.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventKind(pub String);

impl EventKind {
    /// Telemetry posted by an application (`/v1/defend`, `/v1/events`).
    pub fn telemetry() -> Self {
        Self("telemetry".into())
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One normalised observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id.
    pub id: EventId,
    /// What kind of observation this is.
    pub kind: EventKind,
    /// When it happened (the event's own time where the source gives one).
    pub ts: Timestamp,
    /// Where it came from (`api`, `file:/var/log/auth.log`, …).
    pub source: String,
    /// The remote address the observation is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    /// What was targeted (a service, a path, a container), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Free-form attributes, already redacted.
    #[serde(default)]
    pub attrs: serde_json::Map<String, serde_json::Value>,
    /// The trace this event belongs to.
    pub trace_id: TraceId,
}
