//! `api.edge`: the limits of the API's connection server and of its NDJSON streams.

use crate::reader::{Node, Reader};
use serde::Serialize;
use std::time::Duration;

/// `api.edge`: the connection server's limits (the cap on open connections is `api.max_connections`,
/// lowered to the open-files limit minus `fd_reserve`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EdgeConfig {
    /// A request head must arrive within this time, 100ms..=5m.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed, 100ms..=1h.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// File descriptors kept free for everything but API connections, 16..=100000.
    pub fd_reserve: usize,
    /// Least body bytes an NDJSON stream sends per `stream_window`, 1..=1GiB.
    pub stream_min_bytes: u64,
    /// The window the stream's rate is measured over, 1s..=10m.
    #[serde(with = "humantime_serde")]
    pub stream_window: Duration,
    /// Most NDJSON streams at once, 1..=100000.
    pub max_streams: usize,
}

/// Reads `api.edge` (every value range-checked, errors naming the key).
pub(crate) fn api_edge(r: &mut Reader, api: Option<&Node<'_>>) -> Option<EdgeConfig> {
    let n = r.get(api, "edge");
    let n = n.as_ref();
    let ms = Duration::from_millis;
    let s = Duration::from_secs;
    let header_read_timeout = within(r, n, "header_read_timeout", ms(100), s(300));
    let idle_timeout = within(r, n, "idle_timeout", ms(100), s(3600));
    let stream_window = within(r, n, "stream_window", s(1), s(600));
    let fd_reserve = r.get(n, "fd_reserve").and_then(|v| r.int(&v, 16, 100_000));
    let stream_min_bytes = r
        .get(n, "stream_min_bytes")
        .and_then(|v| r.int(&v, 1, 1 << 30));
    let max_streams = r.get(n, "max_streams").and_then(|v| r.int(&v, 1, 100_000));
    Some(EdgeConfig {
        header_read_timeout: header_read_timeout?,
        idle_timeout: idle_timeout?,
        fd_reserve: fd_reserve?,
        stream_min_bytes: stream_min_bytes?,
        stream_window: stream_window?,
        max_streams: max_streams?,
    })
}

/// The duration `key` of `n`, within `min..=max`.
pub(crate) fn within(
    r: &mut Reader,
    n: Option<&Node<'_>>,
    key: &str,
    min: Duration,
    max: Duration,
) -> Option<Duration> {
    let node = r.get(n, key)?;
    let d = r.duration(&node)?;
    if d < min || d > max {
        r.fail(
            &node.path,
            format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        );
        return None;
    }
    Some(d)
}
