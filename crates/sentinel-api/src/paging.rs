//! Every list answer is a page bounded twice: by a count (`limit`, 1..=[`MAX_LIMIT`], default
//! [`DEFAULT_LIMIT`]) and by bytes (`api.max_page_bytes`, [`DEFAULT_MAX_PAGE_BYTES`]). A count alone
//! does not bound an answer (a thousand 1 MB events are a 1 GB answer), so the page stops before the
//! item that would take it over its byte budget. A page holds at least one item, so a client always
//! moves on; an item larger than the whole budget is never answered whole: it stands in the page as a
//! marker `{"elided": true, "cursor": …, "bytes": N, "reason": …}` (its record stays readable on its
//! own route where there is one).
//!
//! The answer is `{"items": [...], "next_cursor": "<cursor>"|null, "truncated_by": "count"|"bytes"|null}`
//! (the shape `Page` always had, plus why it stopped): pass `next_cursor` back as `cursor` for the next
//! page; `null` means the listing is complete. A cursor names its kind (`al_…` for alerts, `ev_…` for
//! events, …): an event id given as an alert cursor is a 400, not a silently different listing.
//!
//! Each page cut short by bytes and each elided item is counted
//! (`sentinel_api_pages_truncated_total{by}`, `sentinel_api_page_items_elided_total`).

use crate::error::ApiError;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sentinel_pipeline::metrics::Metrics;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Items per page when the request names no `limit`.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` a request may name.
pub(crate) const MAX_LIMIT: usize = 1000;
/// The default byte budget of one answer (`api.max_page_bytes`).
pub const DEFAULT_MAX_PAGE_BYTES: usize = 1 << 20;
/// The smallest byte budget allowed: room for the envelope and a marker.
pub const MIN_PAGE_BYTES: usize = 4096;
/// Bytes kept for the envelope around the items (`{"items":[`, the cursor, `truncated_by`, extra
/// fields such as `size`).
const ENVELOPE: usize = 512;

/// What kind of record a cursor points into. Its prefix is part of the cursor text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorKind {
    /// `GET /v1/alerts`.
    Alert,
    /// `GET /v1/actions`.
    Action,
    /// `GET /v1/events`.
    Event,
    /// `GET /v1/decisions`.
    Decision,
    /// `GET /v1/audit?trace_id=`.
    AuditRow,
    /// `GET /v1/notify/dead-letters`.
    DeadLetter,
    /// `GET /v1/keys` (the identity routes).
    #[allow(dead_code)]
    Key,
}

const KINDS: [CursorKind; 7] = [
    CursorKind::Alert,
    CursorKind::Action,
    CursorKind::Event,
    CursorKind::Decision,
    CursorKind::AuditRow,
    CursorKind::DeadLetter,
    CursorKind::Key,
];

impl CursorKind {
    fn prefix(self) -> &'static str {
        match self {
            CursorKind::Alert => "al_",
            CursorKind::Action => "ac_",
            CursorKind::Event => "ev_",
            CursorKind::Decision => "dc_",
            CursorKind::AuditRow => "au_",
            CursorKind::DeadLetter => "dl_",
            CursorKind::Key => "ky_",
        }
    }

    fn name(self) -> &'static str {
        match self {
            CursorKind::Alert => "alert",
            CursorKind::Action => "action",
            CursorKind::Event => "event",
            CursorKind::Decision => "decision",
            CursorKind::AuditRow => "audit record",
            CursorKind::DeadLetter => "dead letter",
            CursorKind::Key => "key",
        }
    }

    /// The cursor text for a position (an id, a seq) in this kind of listing.
    pub(crate) fn encode(self, position: &str) -> String {
        format!("{}{position}", self.prefix())
    }

    /// The position a cursor names, checked to be of this kind; `param` is the query parameter's name
    /// for the error. Another kind's cursor, or none at all, is a 400 saying which it is.
    pub(crate) fn decode(self, param: &str, cursor: &str) -> Result<String, ApiError> {
        if let Some(rest) = cursor.strip_prefix(self.prefix()) {
            if !rest.is_empty() && rest.len() <= 256 {
                return Ok(rest.to_owned());
            }
        }
        Err(
            // Its own prefix with an empty or over-long position is a forgery, not another kind.
            match KINDS
                .iter()
                .find(|k| **k != self && cursor.starts_with(k.prefix()))
            {
                Some(other) => ApiError::BadRequest(format!(
                    "`{param}`: a cursor of {} listing, not of {} listing",
                    article(other.name()),
                    article(self.name())
                )),
                None => ApiError::BadRequest(format!(
                    "`{param}`: not a cursor this API gave out (pass back `next_cursor` as given)"
                )),
            },
        )
    }
}

fn article(name: &str) -> String {
    let an = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if an { "an" } else { "a" })
}

/// Why a page stopped before the end of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TruncatedBy {
    /// It holds `limit` items.
    Count,
    /// The next item would have taken it over the byte budget.
    Bytes,
}

/// The page's `limit` from a query parameter's value: 1..=[`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub(crate) fn limit_param(value: Option<&str>) -> Result<usize, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "`limit`: must be between 1 and {MAX_LIMIT}"
            ))),
        },
    }
}

/// Builds one page answer under a count and a byte budget.
///
/// Offer items in listing order with [`Page::push`] until it answers `false` (the page is full; that
/// item is not in it) or the source runs out; then [`Page::finish`] with whether the source had more.
/// Items are serialised as they come, so the answer never holds more than the budget (the source
/// should itself stop fetching near the budget: see the store's `max_bytes`).
#[derive(Debug)]
pub(crate) struct Page {
    kind: CursorKind,
    limit: usize,
    budget: usize,
    buf: Vec<u8>,
    count: usize,
    last: Option<String>,
    stopped: Option<TruncatedBy>,
}

impl Page {
    /// A page of at most `limit` items and `max_bytes` bytes of answer (at least [`MIN_PAGE_BYTES`]).
    pub(crate) fn new(kind: CursorKind, limit: usize, max_bytes: usize) -> Self {
        let budget = max_bytes.max(MIN_PAGE_BYTES).saturating_sub(ENVELOPE);
        Self {
            kind,
            limit: limit.max(1),
            budget,
            buf: Vec::with_capacity(budget.min(64 * 1024)),
            count: 0,
            last: None,
            stopped: None,
        }
    }

    /// Items in the page so far.
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Offers the next item, at `position` in the listing (what its cursor names). `false`: the page
    /// is full and the item is not in it; stop offering.
    pub(crate) fn push<T: Serialize>(
        &mut self,
        position: &str,
        item: &T,
    ) -> Result<bool, ApiError> {
        if self.stopped.is_some() {
            return Ok(false);
        }
        if self.count >= self.limit {
            self.stopped = Some(TruncatedBy::Count);
            return Ok(false);
        }
        let bytes = serde_json::to_vec(item)
            .map_err(|e| ApiError::Internal(format!("serialising a page item: {e}")))?;
        let cost = bytes.len() + 1;
        if self.buf.len() + cost > self.budget {
            if self.count > 0 {
                self.stopped = Some(TruncatedBy::Bytes);
                return Ok(false);
            }
            // The first item alone is over the budget: a marker stands in for it, so the client moves
            // past it instead of asking for it again and again.
            let marker = serde_json::json!({
                "elided": true,
                "cursor": self.kind.encode(position),
                "bytes": bytes.len(),
                "reason": "the item is larger than the answer's byte budget (api.max_page_bytes)",
            });
            ELIDED.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                evt = "page_item_elided",
                kind = self.kind.name(),
                position,
                bytes = bytes.len(),
                budget = self.budget,
            );
            let m = serde_json::to_vec(&marker)
                .map_err(|e| ApiError::Internal(format!("serialising a marker: {e}")))?;
            self.buf.extend_from_slice(&m);
        } else {
            if self.count > 0 {
                self.buf.push(b',');
            }
            self.buf.extend_from_slice(&bytes);
        }
        self.count += 1;
        self.last = Some(position.to_owned());
        Ok(true)
    }

    /// The answer. `more`: the source had items after the last one offered (`Some(why)` says what
    /// stopped the source: its own count, or its byte bound).
    pub(crate) fn finish(self, more: Option<TruncatedBy>) -> Response {
        let why = self.stopped.or(more);
        let next = match (why, &self.last) {
            (Some(_), Some(last)) => Some(self.kind.encode(last)),
            _ => None,
        };
        let why = next.as_ref().and(why);
        if why == Some(TruncatedBy::Bytes) {
            TRUNCATED_BYTES.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                evt = "page_truncated_by_bytes",
                kind = self.kind.name(),
                items = self.count,
                bytes = self.buf.len(),
            );
        }
        let mut out = Vec::with_capacity(self.buf.len() + ENVELOPE);
        out.extend_from_slice(b"{\"items\":[");
        out.extend_from_slice(&self.buf);
        out.extend_from_slice(b"],\"next_cursor\":");
        // Serialising a string, an enum or a small value cannot fail; `null` if it somehow did.
        out.extend_from_slice(&serde_json::to_vec(&next).unwrap_or_else(|_| b"null".to_vec()));
        out.extend_from_slice(b",\"truncated_by\":");
        out.extend_from_slice(&serde_json::to_vec(&why).unwrap_or_else(|_| b"null".to_vec()));
        out.push(b'}');
        ([(header::CONTENT_TYPE, "application/json")], out).into_response()
    }
}

/// Offers `items` (position, item) to a new page and answers it; `more` as in [`Page::finish`].
pub(crate) fn answer<T: Serialize>(
    page: Page,
    items: impl IntoIterator<Item = (String, T)>,
    more: Option<TruncatedBy>,
) -> Result<Response, ApiError> {
    let mut page = page;
    let mut more = more;
    for (pos, item) in items {
        if !page.push(&pos, &item)? {
            // The page's own reason wins (`finish` reads it); the source's no longer matters.
            more = None;
            break;
        }
    }
    Ok(page.finish(more))
}

/// The leading items that fit `max_bytes` of answer, as JSON values, for answers paged by a number
/// (`from`) rather than a cursor: at least one, an item over the whole budget replaced by
/// `marker(item, its size)`. Returns the values and whether the budget cut the list short.
pub(crate) fn fit<T: Serialize>(
    items: impl IntoIterator<Item = T>,
    max_bytes: usize,
    marker: impl Fn(&T, usize) -> serde_json::Value,
) -> Result<(Vec<serde_json::Value>, bool), ApiError> {
    let budget = max_bytes.max(MIN_PAGE_BYTES).saturating_sub(ENVELOPE);
    let mut used = 0usize;
    let mut out = Vec::new();
    for item in items {
        let v = serde_json::to_value(&item)
            .map_err(|e| ApiError::Internal(format!("serialising a page item: {e}")))?;
        let size = serde_json::to_vec(&v).map_or(usize::MAX, |b| b.len()) + 1;
        if used + size > budget {
            if !out.is_empty() {
                TRUNCATED_BYTES.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    evt = "page_truncated_by_bytes",
                    items = out.len(),
                    bytes = used
                );
                return Ok((out, true));
            }
            ELIDED.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(evt = "page_item_elided", bytes = size, budget);
            let m = marker(&item, size - 1);
            used += serde_json::to_vec(&m).map_or(0, |b| b.len()) + 1;
            out.push(m);
            continue;
        }
        used += size;
        out.push(v);
    }
    Ok((out, false))
}

static TRUNCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static ELIDED: AtomicU64 = AtomicU64::new(0);

/// The registries the paging counters are in already (one per [`Metrics`]; several in tests).
static REGISTERED: Mutex<Vec<Weak<Metrics>>> = Mutex::new(Vec::new());

/// Registers the paging counters on `metrics` (once per registry, however many routers use it).
pub(crate) fn register_metrics(metrics: &Arc<Metrics>) {
    let mut done = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    done.retain(|w| w.strong_count() > 0);
    if done.iter().any(|w| w.as_ptr() == Arc::as_ptr(metrics)) {
        return;
    }
    done.push(Arc::downgrade(metrics));
    metrics.register(|r| r.register_collector(Box::new(PagingCounters)));
}

/// `sentinel_api_pages_truncated_total{by="bytes"}` and `sentinel_api_page_items_elided_total`.
#[derive(Debug)]
struct PagingCounters;

impl prometheus_client::collector::Collector for PagingCounters {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        let c = prometheus_client::metrics::counter::ConstCounter::new(
            TRUNCATED_BYTES.load(Ordering::Relaxed),
        );
        let mut e = encoder.encode_descriptor(
            "sentinel_api_pages_truncated",
            "List answers cut short by their byte budget (api.max_page_bytes) before their count.",
            None,
            c.metric_type(),
        )?;
        c.encode(e.encode_family(&[("by", "bytes")])?)?;
        let c =
            prometheus_client::metrics::counter::ConstCounter::new(ELIDED.load(Ordering::Relaxed));
        c.encode(encoder.encode_descriptor(
            "sentinel_api_page_items_elided",
            "Items larger than a whole answer's byte budget, answered as a marker instead.",
            None,
            c.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cursors_name_their_kind() {
        let c = CursorKind::Alert.encode("01J0000000000000000000000A");
        assert_eq!(
            CursorKind::Alert.decode("cursor", &c).unwrap(),
            "01J0000000000000000000000A"
        );
        let e = CursorKind::Alert
            .decode(
                "cursor",
                &CursorKind::Event.encode("01J0000000000000000000000A"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("an event listing"), "{e}");
        let e = CursorKind::Alert
            .decode("cursor", "01J0000000000000000000000A")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a cursor"), "{e}");
        assert!(CursorKind::Alert.decode("cursor", "al_").is_err());
    }

    fn body(r: Response) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let b = rt
            .block_on(http_body_util::BodyExt::collect(r.into_body()))
            .unwrap()
            .to_bytes();
        serde_json::from_slice(&b).unwrap()
    }

    #[test]
    fn a_page_stops_at_its_count_or_its_bytes() {
        let items = (0..10).map(|i| (i.to_string(), "x".repeat(1000)));
        let v = body(answer(Page::new(CursorKind::Event, 3, 1 << 20), items, None).unwrap());
        assert_eq!(v["items"].as_array().unwrap().len(), 3);
        assert_eq!(v["next_cursor"], "ev_2");
        assert_eq!(v["truncated_by"], "count");

        let items = (0..10).map(|i| (i.to_string(), "x".repeat(1000)));
        let v = body(answer(Page::new(CursorKind::Event, 100, 4096), items, None).unwrap());
        let n = v["items"].as_array().unwrap().len();
        assert!((2..=4).contains(&n), "{n}");
        assert_eq!(v["truncated_by"], "bytes");
        assert_eq!(v["next_cursor"], format!("ev_{}", n - 1));

        let items = (0..2).map(|i| (i.to_string(), "x".repeat(10)));
        let v = body(answer(Page::new(CursorKind::Event, 100, 4096), items, None).unwrap());
        assert_eq!(
            (v["next_cursor"].clone(), v["truncated_by"].clone()),
            (serde_json::Value::Null, serde_json::Value::Null)
        );
    }

    #[test]
    fn an_item_over_the_budget_is_elided_never_answered_whole() {
        let before = ELIDED.load(Ordering::Relaxed);
        let items = vec![
            ("a".to_string(), "x".repeat(10_000)),
            ("b".to_string(), "y".to_string()),
        ];
        let v = body(answer(Page::new(CursorKind::Event, 100, 4096), items, None).unwrap());
        assert_eq!(v["items"][0]["elided"], true);
        assert_eq!(v["items"][0]["cursor"], "ev_a");
        assert_eq!(v["items"][0]["bytes"], 10_002);
        assert_eq!(v["items"][1], "y");
        assert_eq!(v["next_cursor"], serde_json::Value::Null);
        assert!(ELIDED.load(Ordering::Relaxed) > before);
    }
}
