//! `api.stream`: the limits of the live WebSocket stream `GET /v1/stream` (the dashboard's live feed
//! reads it too).

use crate::reader::{Node, Reader};
use serde::Serialize;
use std::time::Duration;

/// `api.stream`: the live stream's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamConfig {
    /// Most live streams open at once (one more is refused with a 503), 1..=100000.
    pub max_streams: usize,
    /// A frame not sent within this time (the client stopped reading) closes the stream with code
    /// 4008, 100ms..=5m.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// The server pings each stream this often and closes one whose client did not answer the
    /// previous ping, 1s..=1h.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
}

/// Reads `api.stream` (every value range-checked, errors naming the key).
pub(crate) fn api_stream(r: &mut Reader, api: Option<&Node<'_>>) -> Option<StreamConfig> {
    let n = r.get(api, "stream");
    let n = n.as_ref();
    let ms = Duration::from_millis;
    let s = Duration::from_secs;
    let max_streams = r.get(n, "max_streams").and_then(|v| r.int(&v, 1, 100_000));
    let send_timeout = crate::api_edge::within(r, n, "send_timeout", ms(100), s(300));
    let ping_interval = crate::api_edge::within(r, n, "ping_interval", s(1), s(3600));
    Some(StreamConfig {
        max_streams: max_streams?,
        send_timeout: send_timeout?,
        ping_interval: ping_interval?,
    })
}
