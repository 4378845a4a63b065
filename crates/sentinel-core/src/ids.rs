//! Identifiers: ULIDs for records (sortable by creation time) and trace ids that tie records together.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use ulid::Ulid;

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Ulid);

        impl $name {
            /// A new id, ordered after every id made earlier.
            pub fn new() -> Self {
                Self(Ulid::new())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ulid::DecodeError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ulid::from_string(s).map(Self)
            }
        }
    };
}

ulid_id!(
    /// Identifies one event.
    EventId
);
ulid_id!(
    /// Identifies one alert.
    AlertId
);
ulid_id!(
    /// Identifies one investigation.
    InvestigationId
);
ulid_id!(
    /// Identifies one plan.
    PlanId
);
ulid_id!(
    /// Identifies one action.
    ActionId
);

/// Ties every log line and record about one request or event together.
///
/// Taken from a caller's `X-Trace-Id` when it is 1–64 characters of `[A-Za-z0-9._-]`, else newly made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TraceId(String);

impl TraceId {
    /// A new random trace id (a ULID in text form).
    pub fn new() -> Self {
        Self(Ulid::new().to_string())
    }

    /// Accepts a caller's trace id if it is well formed and not shaped like a credential (a trace id
    /// is stored with every record and logged in clear: `ghp_…` or `AKIA…` is refused).
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && matches!(
                crate::redact::builtin().redact_text(s),
                std::borrow::Cow::Borrowed(_)
            );
        ok.then(|| Self(s.to_owned()))
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TraceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_checked() {
        assert!(TraceId::parse("abc-123_x.y").is_some());
        assert!(TraceId::parse("").is_none());
        assert!(TraceId::parse("has space").is_none());
        assert!(TraceId::parse(&"a".repeat(65)).is_none());
        assert!(TraceId::parse("line\nbreak").is_none());
        // Credential shapes are not taken as trace ids (they would be stored and logged in clear).
        assert!(TraceId::parse("ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6").is_none());
        assert!(TraceId::parse("AKIAABCDEFGHIJKLMNOP").is_none());
        assert!(TraceId::parse("AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW").is_none());
        assert!(TraceId::parse("req-2026-11-29.0042").is_some());
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = AlertId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = AlertId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<AlertId>().unwrap(), a);
    }
}
