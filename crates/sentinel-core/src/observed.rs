//! A borrowed view of an observation, so detectors can read a parsed log line as cheaply as an event.

use crate::event::Event;
use crate::time::Timestamp;
use std::net::IpAddr;

/// What detectors read from anything observed: an [`Event`], or a parsed log line before it becomes one.
pub trait Observed {
    /// When it happened (the observation's own time).
    fn ts(&self) -> Timestamp;
    /// What kind of observation (`auth_failure`, `invalid_user`, `http_request`, …).
    fn kind(&self) -> &str;
    /// Which service reported it (`sshd`, `nginx`, `postfix`, …), empty if unknown.
    fn service(&self) -> &str;
    /// The remote address, if any.
    fn src_ip(&self) -> Option<IpAddr>;
    /// A named field as text (`user`, `path`, `status`, `user_agent`, `method`, `dst_port`, …).
    fn field(&self, name: &str) -> Option<std::borrow::Cow<'_, str>>;
}

impl Observed for Event {
    fn ts(&self) -> Timestamp {
        self.ts
    }
    fn kind(&self) -> &str {
        &self.kind.0
    }
    fn service(&self) -> &str {
        self.attrs
            .get("service")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }
    fn src_ip(&self) -> Option<IpAddr> {
        self.src_ip
    }
    fn field(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match self.attrs.get(name)? {
            serde_json::Value::String(s) => Some(Cow::Borrowed(s.as_str())),
            serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
            serde_json::Value::Bool(b) => Some(Cow::Owned(b.to_string())),
            _ => None,
        }
    }
}
