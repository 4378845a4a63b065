//! `GET /v1/stream`: the live stream, over a WebSocket.
//!
//! The store is the source of truth: the stream reads what was committed after its cursor
//! ([`sentinel_store::Store::feed_after`], bounded reads), so a client that reconnects with the cursor of
//! the last item it processed misses nothing, and the server holds no backlog in memory. It wakes on
//! each commit of the store writer ([`sentinel_store::Store::commits`]), and at least once a second.
//!
//! Query (each at most once; an unknown parameter, kind or severity, or a malformed cursor, is a 400
//! before the upgrade): `kind` (comma list of `event`, `alert`, `investigation`, `plan`, `action`;
//! default every kind but `event`), `severity` (comma list of `info`, `low`, `medium`, `high`,
//! `critical`: only items tied to an alert of one of them), `scenario` (only items tied to an alert of
//! it), `subject` (an IP or a subject key such as `ip:203.0.113.7`: an event's source address, an
//! alert's subject, an action's subject), `cursor` (resume after it; without one the stream starts at
//! the head, with no backlog).
//!
//! Frames, server to client, JSON text:
//! - first `{"type":"hello","cursor":"st_<audit_seq>_<event_rowid>"}`;
//! - then one `{"type":"item","cursor":"…","kind":"alert","data":{…}}` per record, `data` being the
//!   record as stored (as the REST API serves it). Records noted in the audit trail (alerts,
//!   investigations, plans, actions) come in commit order, events in commit order; an `action`
//!   item is sent at each change of the action and carries its state when it is read.
//!
//! Auth: an API key or JWT (viewer or above) through [`crate::auth::authenticate`], or — browsers
//! cannot set headers on a WebSocket — the dashboard's session cookie on a same-origin request (an
//! `Origin` header naming the host is required; another origin is a 403: no cross-site WebSocket
//! hijacking).
//!
//! The credential is checked again at every wake-up, not only at the handshake: a key revoked or
//! expired, a dashboard session logged out or expired (an open stream counts as use of its session),
//! or a JWT past its `exp` ends the stream with close code 1008, reason "credential no longer valid"
//! (`reason="revoked"`).
//!
//! A cursor ahead of the store's head (one this store never gave out) is a 400; an event position past
//! the head (events pruned since) is read from the head.
//!
//! The client sends nothing but control frames: a text or binary frame closes the stream with 1003
//! (filters go in the query string), a frame over [`MAX_CLIENT_FRAME`] bytes with 1009 (both
//! `reason="protocol"`), and what a client sends never causes a store read.
//!
//! Limits (`api.stream` in the configuration): at most `api.stream.max_streams`
//! ([`crate::serve::EdgeSettings::ws_max_streams`]) streams at once (one more is a 503, counted); a
//! frame that cannot be sent within `api.stream.send_timeout`
//! ([`crate::serve::EdgeSettings::ws_send_timeout`]; a client that stops reading) closes the stream
//! with code 4008, reason "slow client"; the server pings every `api.stream.ping_interval`
//! ([`crate::serve::EdgeSettings::ws_ping_interval`]) and closes a stream whose client did not answer the
//! previous ping. Each end is counted in `sentinel_api_stream_disconnected_total{reason}`
//! (`client_closed`, `slow`, `pong_timeout`, `revoked`, `protocol`, `error`);
//! `sentinel_api_stream_open` is the streams open, `sentinel_api_stream_reads_total` the store reads
//! the streams made.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::StrictQuery;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sentinel_store::{FeedCursor, FeedFilter, FeedKind, Store};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The close code sent to a client that stopped reading.
pub const CLOSE_SLOW: u16 = 4008;
/// Most items read from the store at once (the per-connection bound on what is held).
const READ_BATCH: usize = 256;
/// The fallback wake-up when no commit is signalled.
const TICK: Duration = Duration::from_secs(1);
/// How long the best-effort close of a slow client may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// The largest frame or message a client may send (it sends only pongs and a close, each at most
/// 125 bytes): the server never buffers more than this for a client.
pub const MAX_CLIENT_FRAME: usize = 1024;

const PARAMS: &[&str] = &["kind", "severity", "scenario", "subject", "cursor"];
const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical"];

/// Why a stream ended (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientClosed,
    Slow,
    PongTimeout,
    /// The key, session or token that opened the stream is no longer valid.
    Revoked,
    /// The client sent a text or binary frame.
    Unsupported,
    /// The client sent a frame over [`MAX_CLIENT_FRAME`].
    TooBig,
    Error,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::ClientClosed => "client_closed",
            End::Slow => "slow",
            End::PongTimeout => "pong_timeout",
            End::Revoked => "revoked",
            End::Unsupported | End::TooBig => "protocol",
            End::Error => "error",
        }
    }
}

/// The streams' slots, limits and counters, shared by every stream of a router.
#[derive(Debug)]
pub(crate) struct Hub {
    slots: Arc<Semaphore>,
    max: usize,
    send_timeout: Duration,
    ping_interval: Duration,
    open: Gauge,
    reads: Counter,
    refused: Counter,
    missing: Counter,
    disconnected: Family<Vec<(String, String)>, Counter>,
}

impl Hub {
    /// The limits of `edge`, the counters registered on `metrics`.
    pub(crate) fn new(
        edge: &crate::serve::EdgeSettings,
        metrics: &sentinel_pipeline::metrics::Metrics,
    ) -> Arc<Self> {
        let max = edge.ws_max_streams.max(1);
        let hub = Arc::new(Hub {
            slots: Arc::new(Semaphore::new(max)),
            max,
            send_timeout: edge.ws_send_timeout,
            ping_interval: edge.ws_ping_interval,
            open: Gauge::default(),
            reads: Counter::default(),
            refused: Counter::default(),
            missing: Counter::default(),
            disconnected: Family::default(),
        });
        // Every reason shows from the start (at 0), so a dashboard can rate them.
        for r in [
            End::ClientClosed,
            End::Slow,
            End::PongTimeout,
            End::Revoked,
            End::Unsupported,
            End::Error,
        ] {
            let _ = hub.disconnected.get_or_create(&label(r));
        }
        metrics.register(|r| {
            r.register(
                "sentinel_api_stream_open",
                "Live WebSocket streams (GET /v1/stream) open now.",
                hub.open.clone(),
            );
            r.register(
                "sentinel_api_stream_reads",
                "Store reads made by live streams (on a commit or the once-a-second tick).",
                hub.reads.clone(),
            );
            r.register(
                "sentinel_api_stream_refused",
                "Live streams refused because the most streams at once were open.",
                hub.refused.clone(),
            );
            r.register(
                "sentinel_api_stream_missing_records",
                "Audit rows the live stream skipped because the record they note is not stored.",
                hub.missing.clone(),
            );
            r.register(
                "sentinel_api_stream_disconnected",
                "Live streams ended, by reason (client_closed, slow, pong_timeout, revoked, protocol, error).",
                hub.disconnected.clone(),
            );
        });
        hub
    }

    fn ended(&self, why: End) {
        self.disconnected.get_or_create(&label(why)).inc();
    }
}

fn label(why: End) -> Vec<(String, String)> {
    vec![("reason".to_owned(), why.as_str().to_owned())]
}

/// Whether a request authenticated by the session cookie may open the stream: a browser always
/// sends `Origin` on a WebSocket handshake, and it must name this host or one of `public`
/// ([`crate::ui::same_origin`]).
pub(crate) fn cookie_origin_ok(headers: &HeaderMap, public: &[String]) -> bool {
    headers.contains_key(axum::http::header::ORIGIN) && crate::ui::same_origin(headers, public)
}

/// Marks a stream request authenticated by a dashboard session (the session's cookie token), put
/// there by [`crate::auth::authenticate`].
#[derive(Debug, Clone)]
pub(crate) struct SessionToken(pub(crate) String);

/// Who a stream was opened for, checked again at each wake-up.
#[derive(Debug, Clone)]
struct Holder {
    principal: Principal,
    /// The session's cookie token, when a session opened the stream.
    session: Option<String>,
    /// When the credential stops working by itself (a JWT's `exp`).
    until: Option<SystemTime>,
}

impl Holder {
    fn still_valid(&self, s: &AppState) -> bool {
        if self.until.is_some_and(|t| SystemTime::now() >= t) {
            return false;
        }
        if let Some(token) = &self.session {
            if s.ui.sessions.get(token).is_none() {
                return false;
            }
        }
        s.auth.still_valid(&self.principal)
    }
}

/// What a stream request asks for.
#[derive(Debug, Clone)]
struct Ask {
    filter: FeedFilter,
    cursor: Option<FeedCursor>,
}

fn list(v: Option<&String>) -> Vec<&str> {
    v.map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

fn parse(q: &std::collections::HashMap<String, String>) -> Result<Ask, ApiError> {
    if let Some(k) = crate::extract::first_unknown(q, PARAMS) {
        return Err(ApiError::BadRequest(format!(
            "`{k}`: unknown query parameter (expected one of {})",
            PARAMS.join(", ")
        )));
    }
    let mut kinds = Vec::new();
    for k in list(q.get("kind")) {
        let k: FeedKind = k
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("`kind`: {e}")))?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    if kinds.is_empty() {
        kinds = FeedKind::ALL
            .into_iter()
            .filter(|k| *k != FeedKind::Event)
            .collect();
    }
    let mut severities = Vec::new();
    for s in list(q.get("severity")) {
        if !SEVERITIES.contains(&s) {
            return Err(ApiError::BadRequest(format!(
                "`severity`: unknown severity {s:?} (expected one of {})",
                SEVERITIES.join(", ")
            )));
        }
        severities.push(s.to_owned());
    }
    let text = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let cursor = text("cursor")
        .map(|c| {
            c.parse::<FeedCursor>()
                .map_err(|e| ApiError::BadRequest(format!("`cursor`: {e}")))
        })
        .transpose()?;
    Ok(Ask {
        filter: FeedFilter {
            kinds,
            severities,
            scenario: text("scenario").map(str::to_owned),
            subject: text("subject").map(str::to_owned),
        },
        cursor,
    })
}

/// Opens the live stream (see the module documentation for the frames).
#[utoipa::path(get, path = "/v1/stream", tag = "query",
    params(
        ("kind" = Option<String>, Query, description = "Comma list of event, alert, investigation, plan, action (default: all but event)."),
        ("severity" = Option<String>, Query, description = "Comma list of severities: only items tied to an alert of one of them."),
        ("scenario" = Option<String>, Query, description = "Only items tied to an alert of this scenario."),
        ("subject" = Option<String>, Query, description = "Only this subject: an IP or a key such as `ip:203.0.113.7`."),
        ("cursor" = Option<String>, Query, description = "Resume after this cursor (the `cursor` of the last item processed); without it the stream starts at the head."),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol: a `hello` frame, then one `item` frame per record. Role: viewer (or a same-origin dashboard session)."),
        (status = 400, description = "A bad filter or cursor, or not a WebSocket handshake.", body = crate::routes::openapi::Error),
        (status = 401, description = "No valid key, token or session.", body = crate::routes::openapi::Error),
        (status = 403, description = "A session cookie from another origin.", body = crate::routes::openapi::Error),
        (status = 503, description = "Too many streams at once; retry later.", body = crate::routes::openapi::Error),
    ))]
pub(crate) async fn stream(
    State(s): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<SessionToken>>,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ask = parse(&q)?;
    let ws = ws
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket handshake: {}", e.body_text())))?
        .max_frame_size(MAX_CLIENT_FRAME)
        .max_message_size(MAX_CLIENT_FRAME);
    let session = session.map(|Extension(SessionToken(t))| t);
    let until = match (&session, crate::auth::presented(&headers)) {
        (None, Some(p)) => s.auth.identify_until(p).ok().and_then(|(_, until)| until),
        _ => None,
    };
    let holder = Holder {
        principal,
        session,
        until,
    };
    let Ok(permit) = Arc::clone(&hub.slots).try_acquire_owned() else {
        hub.refused.inc();
        tracing::warn!(
            evt = "stream_refused",
            max = hub.max,
            reason = "too many streams"
        );
        return Err(ApiError::Unavailable(format!(
            "too many live streams at once (at most {}); retry later",
            hub.max
        )));
    };
    let head = s
        .store
        .feed_head()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let cursor = match ask.cursor {
        // Never given out by this store (or the store was replaced): following it would send nothing
        // until the store caught up with it.
        Some(c) if c.audit_seq > head.audit_seq => {
            return Err(ApiError::BadRequest(format!(
                "`cursor`: {c} is ahead of this store (its head is {head}); reconnect without a cursor"
            )));
        }
        // Events past the head were pruned since: what comes next is after the head.
        Some(c) => FeedCursor {
            audit_seq: c.audit_seq,
            event_rowid: c.event_rowid.min(head.event_rowid),
        },
        None => head,
    };
    Ok(ws.on_upgrade(move |socket| run(socket, s, holder, ask.filter, cursor, hub, permit)))
}

/// Keeps the open-streams gauge right however the stream ends.
struct Open(Arc<Hub>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.dec();
    }
}

async fn run(
    mut socket: WebSocket,
    state: AppState,
    holder: Holder,
    filter: FeedFilter,
    cursor: FeedCursor,
    hub: Arc<Hub>,
    _permit: OwnedSemaphorePermit,
) {
    hub.open.inc();
    let _open = Open(Arc::clone(&hub));
    let why = follow(&mut socket, &state, &holder, &filter, cursor, &hub).await;
    hub.ended(why);
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    match why {
        End::Revoked => {
            tracing::info!(evt = "stream_closed", reason = why.as_str(),
                key_id = %holder.principal.key_id, "the credential of a live stream is no longer valid; closed");
            let _ = tokio::time::timeout(
                CLOSE_WAIT,
                socket.send(close(1008, "credential no longer valid")),
            )
            .await;
        }
        End::Unsupported | End::TooBig => {
            tracing::info!(evt = "stream_closed", reason = why.as_str(),
                key_id = %holder.principal.key_id, too_big = why == End::TooBig,
                "a live-stream client sent a frame the stream does not take; closed");
            let c = if why == End::TooBig {
                close(1009, "frame too large")
            } else {
                close(
                    1003,
                    "this stream takes no messages: filter with the query string",
                )
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(c)).await;
        }
        End::Slow => {
            tracing::warn!(
                evt = "stream_closed",
                reason = why.as_str(),
                timeout_ms = hub.send_timeout.as_millis() as u64,
                "a live-stream client stopped reading; closed"
            );
            let close = Message::Close(Some(CloseFrame {
                code: CLOSE_SLOW,
                reason: "slow client".into(),
            }));
            let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(close)).await;
        }
        End::PongTimeout => {
            tracing::info!(evt = "stream_closed", reason = why.as_str());
            let close = Message::Close(Some(CloseFrame {
                code: 1001,
                reason: "no pong".into(),
            }));
            let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(close)).await;
        }
        End::Error => {
            let close = Message::Close(Some(CloseFrame {
                code: 1011,
                reason: "server error".into(),
            }));
            let _ = tokio::time::timeout(CLOSE_WAIT, socket.send(close)).await;
        }
        End::ClientClosed => {
            tracing::debug!(evt = "stream_closed", reason = why.as_str());
        }
    }
}

/// Sends one frame, or gives up after the send timeout (the client stopped reading).
async fn send(socket: &mut WebSocket, hub: &Hub, frame: String) -> Result<(), End> {
    match tokio::time::timeout(hub.send_timeout, socket.send(Message::Text(frame.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::ClientClosed),
        Err(_) => Err(End::Slow),
    }
}

/// Whether a receive error is a client frame over [`MAX_CLIENT_FRAME`].
fn too_big(e: axum::Error) -> bool {
    e.into_inner()
        .downcast_ref::<tungstenite::Error>()
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

async fn follow(
    socket: &mut WebSocket,
    state: &AppState,
    holder: &Holder,
    filter: &FeedFilter,
    mut cursor: FeedCursor,
    hub: &Hub,
) -> End {
    let store: &Store = &state.store;
    let hello = serde_json::json!({"type": "hello", "cursor": cursor.to_string()});
    if let Err(why) = send(socket, hub, hello.to_string()).await {
        return why;
    }
    let mut commits = store.commits();
    let mut commits_open = true;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = tokio::time::Instant::now() + hub.ping_interval;
    let mut ping = tokio::time::interval_at(start, hub.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    // Read the store on this pass: at the start, after a commit, at each tick; never because of what
    // the client sent.
    let mut wake = true;
    loop {
        if wake {
            wake = false;
            if !holder.still_valid(state) {
                return End::Revoked;
            }
            commits.borrow_and_update();
            if let Err(why) = catch_up(socket, store, filter, &mut cursor, hub).await {
                return why;
            }
        }
        tokio::select! {
            m = socket.recv() => match m {
                None | Some(Ok(Message::Close(_))) => return End::ClientClosed,
                Some(Err(e)) => return if too_big(e) { End::TooBig } else { End::ClientClosed },
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                Some(Ok(Message::Text(_) | Message::Binary(_))) => return End::Unsupported,
                // Pings are answered by the protocol.
                Some(Ok(_)) => {}
            },
            r = commits.changed(), if commits_open => {
                // The store is gone: the tick alone wakes the stream from now on.
                if r.is_err() {
                    commits_open = false;
                } else {
                    wake = true;
                }
            }
            _ = tick.tick() => wake = true,
            _ = ping.tick() => {
                if awaiting_pong {
                    return End::PongTimeout;
                }
                awaiting_pong = true;
                match tokio::time::timeout(hub.send_timeout, socket.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return End::ClientClosed,
                    Err(_) => return End::Slow,
                }
            }
        }
    }
}

/// Sends everything committed after `cursor` that `filter` matches, a bounded read at a time,
/// moving `cursor` on.
async fn catch_up(
    socket: &mut WebSocket,
    store: &Store,
    filter: &FeedFilter,
    cursor: &mut FeedCursor,
    hub: &Hub,
) -> Result<(), End> {
    loop {
        hub.reads.inc();
        let page = match store.feed_after(*cursor, filter, READ_BATCH).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(evt = "stream_read_failed", error = %e);
                return Err(End::Error);
            }
        };
        hub.missing.inc_by(page.missing);
        for item in page.items {
            let frame = serde_json::json!({
                "type": "item",
                "cursor": item.cursor.to_string(),
                "kind": item.kind.as_str(),
                "data": item.data,
            });
            send(socket, hub, frame.to_string()).await?;
        }
        *cursor = page.next;
        if !page.more {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn filters_parse_and_bad_ones_are_refused() {
        let a = parse(&q(&[])).unwrap();
        assert!(!a.filter.kinds.contains(&FeedKind::Event));
        assert_eq!(a.filter.kinds.len(), 4);
        let a = parse(&q(&[("kind", "event,alert"), ("severity", "high")])).unwrap();
        assert_eq!(a.filter.kinds, vec![FeedKind::Event, FeedKind::Alert]);
        assert_eq!(a.filter.severities, vec!["high".to_owned()]);
        for bad in [
            ("kind", "alerts"),
            ("severity", "huge"),
            ("cursor", "st_x_1"),
            ("nope", "1"),
        ] {
            assert!(parse(&q(&[bad])).is_err(), "{bad:?}");
        }
    }
}
