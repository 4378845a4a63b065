//! What a listing may ask for: the filters, the page they return, and the paging rules.
//!
//! Listings are newest first, ordered by id (ULIDs sort by creation time) descending. A page's
//! `next_cursor` is the id of its last item; passing it back returns the rows with smaller ids. Time
//! bounds are inclusive at both ends. This module turns filter values into SQL fragments and checks
//! cursors; it must not run queries.

use crate::error::StoreError;
use sentinel_core::{ActionKind, ActionState, Severity, Timestamp};
use serde::Serialize;
use std::net::IpAddr;
use std::str::FromStr;

/// The page size when a filter asks for 0.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page size; larger requests are clamped to it.
pub const MAX_LIMIT: u32 = 1000;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The rows, newest first.
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; `None` when there are no more rows.
    pub next_cursor: Option<String>,
    /// The page stopped at the filter's `max_bytes` rather than its `limit` (only then can
    /// `next_cursor` be set with fewer than `limit` items).
    #[serde(skip)]
    pub by_bytes: bool,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Only alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// Only alerts of exactly this severity.
    pub severity: Option<Severity>,
    /// Only this scenario (`ssh_bruteforce`, …).
    pub scenario: Option<String>,
    /// Only this subject: a key such as `ip:203.0.113.7`, or a bare IP address.
    pub subject: Option<String>,
    /// Only this trace.
    pub trace_id: Option<String>,
    /// Only alerts at or after this time.
    pub since: Option<Timestamp>,
    /// Only alerts at or before this time.
    pub until: Option<Timestamp>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size: 0 means [`DEFAULT_LIMIT`], larger than [`MAX_LIMIT`] is clamped.
    pub limit: u32,
    /// Stop reading rows once their stored bodies add up to more than this (the row that crosses
    /// it is the last one returned); 0: no byte bound. A count alone does not bound memory: a
    /// thousand 1 MB events are 1 GB.
    pub max_bytes: usize,
}

/// Which actions to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionFilter {
    /// Only actions in this state.
    pub state: Option<ActionState>,
    /// Only actions of this kind.
    pub kind: Option<ActionKind>,
    /// Only this subject: a key such as `ip:203.0.113.7`, or a bare IP address.
    pub subject: Option<String>,
    /// Only this trace.
    pub trace_id: Option<String>,
    /// Only actions created at or after this time.
    pub since: Option<Timestamp>,
    /// Only actions created at or before this time.
    pub until: Option<Timestamp>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size: 0 means [`DEFAULT_LIMIT`], larger than [`MAX_LIMIT`] is clamped.
    pub limit: u32,
    /// Stop reading rows once their stored bodies add up to more than this (the row that crosses
    /// it is the last one returned); 0: no byte bound. A count alone does not bound memory: a
    /// thousand 1 MB events are 1 GB.
    pub max_bytes: usize,
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Only this trace.
    pub trace_id: Option<String>,
    /// Only events about this remote address.
    pub src_ip: Option<String>,
    /// Only this kind (`auth_failure`, …).
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events at or before this time.
    pub until: Option<Timestamp>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size: 0 means [`DEFAULT_LIMIT`], larger than [`MAX_LIMIT`] is clamped.
    pub limit: u32,
    /// Stop reading rows once their stored bodies add up to more than this (the row that crosses
    /// it is the last one returned); 0: no byte bound. A count alone does not bound memory: a
    /// thousand 1 MB events are 1 GB.
    pub max_bytes: usize,
}

/// The page size a filter's `limit` stands for.
pub(crate) fn effective_limit(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// Checks a cursor is an id of type `I` and returns it in the canonical text form stored in the table.
pub(crate) fn parse_cursor<I: FromStr + ToString>(
    cursor: Option<&str>,
) -> Result<Option<String>, StoreError> {
    cursor
        .map(|c| {
            c.parse::<I>()
                .map(|id| id.to_string())
                .map_err(|_| StoreError::BadCursor)
        })
        .transpose()
}

/// A subject filter as stored: a bare IP address becomes `ip:<addr>`, anything else is used as given.
pub(crate) fn subject_key(subject: &str) -> String {
    let s = subject.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return format!("ip:{ip}");
    }
    if let Some(ip) = s.strip_prefix("ip:").and_then(|v| v.parse::<IpAddr>().ok()) {
        return format!("ip:{ip}");
    }
    s.to_owned()
}

/// An address filter as stored (canonical text when it parses as an address).
pub(crate) fn ip_text(ip: &str) -> String {
    let s = ip.trim();
    s.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|_| s.to_owned())
}

/// Splits `limit + 1` fetched rows into a page: the extra row only says whether there is more.
pub(crate) fn paginate<T>(
    mut rows: Vec<(String, T)>,
    limit: u32,
) -> (Vec<(String, T)>, Option<String>) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|(id, _)| id.clone());
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_core::AlertId;

    #[test]
    fn limits_are_clamped() {
        assert_eq!(effective_limit(0), DEFAULT_LIMIT);
        assert_eq!(effective_limit(7), 7);
        assert_eq!(effective_limit(5000), MAX_LIMIT);
    }

    #[test]
    fn subjects_are_normalised() {
        assert_eq!(subject_key("203.0.113.7"), "ip:203.0.113.7");
        assert_eq!(subject_key("ip:203.0.113.7"), "ip:203.0.113.7");
        assert_eq!(subject_key("2001:DB8::1"), "ip:2001:db8::1");
        assert_eq!(subject_key("container:web"), "container:web");
    }

    #[test]
    fn cursors_must_be_ids() {
        let id = AlertId::new();
        let text = id.to_string();
        assert_eq!(
            parse_cursor::<AlertId>(Some(&text.to_lowercase()))
                .ok()
                .flatten(),
            Some(text)
        );
        assert!(matches!(
            parse_cursor::<AlertId>(Some("nope")),
            Err(StoreError::BadCursor)
        ));
        assert!(matches!(parse_cursor::<AlertId>(None), Ok(None)));
    }
}
