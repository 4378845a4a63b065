//! Wall-clock timestamps with millisecond precision, serialised as RFC 3339.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self(ms)
    }

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This time plus a duration (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }

    /// Parses RFC 3339 (`2026-11-27T19:56:49Z`, `…+01:00`, fractional seconds allowed).
    pub fn parse_rfc3339(s: &str) -> Result<Self, time::error::Parse> {
        let dt = OffsetDateTime::parse(s, &Rfc3339)?;
        Ok(Self((dt.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// Formats as RFC 3339 in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        // Millisecond precision keeps the text stable and sortable.
        let date = dt.date();
        let t = dt.time();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            date.year(),
            u8::from(date.month()),
            date.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Millis(i64),
        }
        match Repr::deserialize(d)? {
            Repr::Text(s) => Timestamp::parse_rfc3339(&s)
                .map_err(|e| serde::de::Error::custom(format!("not an RFC 3339 time: {e}"))),
            Repr::Millis(ms) => Ok(Timestamp(ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-27T19:56:49.123+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T18:56:49.123Z");
        let back: Timestamp = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn millis_are_accepted() {
        let t: Timestamp = serde_json::from_str("1000").unwrap();
        assert_eq!(t.to_rfc3339(), "1970-01-01T00:00:01.000Z");
    }
}
