//! Our own connection server: the accept loop in front of the router.
//!
//! `axum::serve` has neither a header-read timeout nor a cap on open connections, so anyone who can
//! reach the port could hold every file descriptor of the process with idle sockets (and `/health`
//! with them). This loop serves HTTP/1 with hyper-util and adds, per [`EdgeSettings`]:
//! - a header-read timeout (a request head not complete in time closes the connection; hyper's timer
//!   also runs while a kept-alive connection waits for its next request, so an idle connection lives
//!   at most `min(idle_timeout, header_read_timeout)`);
//! - an idle timeout (no request in flight for that long: closed);
//! - a cap on open connections, below `RLIMIT_NOFILE` (its soft limit minus a reserve for the store,
//!   the audit log, outgoing connections, ...). At the cap the oldest idle connection is closed to make
//!   room; if none is idle, accepting pauses until one closes. Both are counted and logged.
//!
//! With [`serve_tls`], each connection first completes a TLS handshake in its own task (see
//! [`crate::tls`]), under the header-read timeout.
//!
//! It is generic over the listener ([`EdgeListener`]): the same loop serves TCP (the peer address is
//! passed to handlers as axum's `ConnectInfo<SocketAddr>`) and a Unix socket (the peer's credentials
//! as [`PeerCred`]).

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// Limits of the connection server (`api.edge` in the configuration).
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Most open connections; the server uses the lower of this and the open-files soft limit minus
    /// [`EdgeSettings::fd_reserve`].
    pub max_connections: usize,
    /// File descriptors kept free for everything else the daemon opens.
    pub fd_reserve: usize,
    /// A request head (line and headers) must arrive within this time.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// How long open connections may finish their requests once the server stops.
    pub shutdown_grace: Duration,
    /// Least body bytes an NDJSON stream must send per [`EdgeSettings::stream_window`].
    pub stream_min_bytes: u64,
    /// The window over which a stream's rate is measured.
    pub stream_window: Duration,
    /// Most NDJSON streams at once (more are refused with a 503), so streams can never hold every
    /// in-flight slot.
    pub max_streams: usize,
    /// Most live WebSocket streams (`GET /v1/stream`) at once (more are refused with a 503). This and
    /// the two below are `api.stream` in the configuration.
    pub ws_max_streams: usize,
    /// A live-stream frame not sent within this time (the client stopped reading) closes the stream
    /// with code 4008.
    pub ws_send_timeout: Duration,
    /// The server pings each live stream this often; a stream whose client did not answer the
    /// previous ping is closed.
    pub ws_ping_interval: Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            fd_reserve: 128,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(4),
            stream_min_bytes: 1024,
            stream_window: Duration::from_secs(10),
            max_streams: 64,
            ws_max_streams: 64,
            ws_send_timeout: Duration::from_secs(10),
            ws_ping_interval: Duration::from_secs(20),
        }
    }
}

/// How long a new connection that has not sent a request yet is spared from eviction while other
/// idle connections exist.
const NEWCOMER_GRACE: Duration = Duration::from_secs(1);

/// The peer of a Unix-socket connection, in each of its requests' extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer process's user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its process id, where the platform says.
    pub pid: Option<i32>,
}

/// The address a TCP connection reached on this host (its local address), in each of its requests'
/// extensions: what `POST /v1/identity` binds its proof to (see routes/identity.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(pub SocketAddr);

/// Who is at the other end of an accepted connection.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A TCP peer: its address, and the local address it reached (when the kernel said).
    Tcp(SocketAddr, Option<SocketAddr>),
    /// A Unix-socket peer: its credentials (`None` when the kernel would not say).
    Unix(Option<PeerCred>),
}

/// A listener the server can accept connections from.
pub trait EdgeListener: Send + 'static {
    /// An accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Accepts the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, Peer)>> + Send;
}

impl EdgeListener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<(Self::Io, Peer)> {
        let (io, addr) = tokio::net::TcpListener::accept(self).await?;
        // Small answers go out at once instead of waiting for Nagle.
        let _ = io.set_nodelay(true);
        let local = io.local_addr().ok();
        Ok((io, Peer::Tcp(addr, local)))
    }
}

#[cfg(unix)]
impl EdgeListener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&mut self) -> io::Result<(Self::Io, Peer)> {
        let (io, _) = tokio::net::UnixListener::accept(self).await?;
        let cred = io.peer_cred().ok().map(|c| PeerCred {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        });
        Ok((io, Peer::Unix(cred)))
    }
}

/// The server's counters, registered once on the daemon's metrics.
#[derive(Debug, Default)]
struct EdgeMetrics {
    open: Gauge,
    accepted: Counter,
    evicted: Counter,
    refused_share: Counter,
    paused: Counter,
    accept_errors: Counter,
    closed: Family<Vec<(String, String)>, Counter>,
}

impl EdgeMetrics {
    fn closed(&self, reason: &str) {
        self.closed
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }
}

/// One open connection, as the accept loop sees it.
struct Entry {
    /// Requests (with their answer bodies) in flight on it.
    in_flight: usize,
    /// When its last request ended (or it was accepted).
    idle_since: Instant,
    /// When it was accepted.
    accepted: Instant,
    /// Whether a request came on it yet.
    served: bool,
    /// Set when the server asks it to close; `true` once asked.
    close: Arc<Notify>,
    closing: bool,
    /// Where it comes from ([`share_key`]; `None` for a Unix-socket peer).
    from: Option<IpAddr>,
}

/// The address a connection's share of the cap is counted under: IPv4 (an IPv4-mapped IPv6 address
/// as IPv4), IPv6 by its /64 (one host holds a whole /64). Unix-socket peers count under none.
fn share_key(peer: &Peer) -> Option<IpAddr> {
    match peer {
        Peer::Tcp(a, _) => Some(match a.ip().to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        }),
        Peer::Unix(_) => None,
    }
}

/// Whether a newcomer fits under the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Below the cap.
    Now,
    /// At the cap, and past the slack for connections asked to close: wait for one to go.
    Soon,
    /// At the cap with every connection busy: accepting pauses.
    Full,
    /// At the cap, and the newcomer's address already holds more of it than any address with an
    /// idle connection: the newcomer is closed (counted), nobody else's connection is.
    OverShare,
}

/// Why a connection was asked to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseWhy {
    Evicted,
    Idle,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Entry>,
    /// Why each connection asked to close was asked (read by its task).
    why: HashMap<u64, CloseWhy>,
}

/// The connection server's shared state: the table of open connections and the counters. Make one
/// per daemon ([`Edge::new`]) and serve every listener with it: the cap counts every connection.
#[derive(Clone)]
pub struct Edge {
    settings: EdgeSettings,
    metrics: Arc<EdgeMetrics>,
    table: Arc<Mutex<Table>>,
    next_id: Arc<AtomicU64>,
    /// Woken whenever a connection closes (a paused accept loop waits on it).
    closed: Arc<Notify>,
    cap: usize,
}

impl Edge {
    /// The server's state, its metrics registered on `metrics`
    /// (`sentinel_api_connections_open`, `..._accepted_total`, `..._evicted_total`,
    /// `..._closed_total{reason}`, `sentinel_api_accept_paused_total`, `sentinel_api_accept_errors_total`).
    /// The cap is decided here, from the settings and the open-files limit now in force.
    pub fn new(settings: EdgeSettings, metrics: &sentinel_pipeline::metrics::Metrics) -> Self {
        Self::with_prefix(settings, metrics, "sentinel_api")
    }

    /// A second, separate server state whose metrics are named `<prefix>_connections_open`, ... (a
    /// door with a cap of its own, such as the daemon's Unix socket: `sentinel_api_local`), so
    /// its connections neither count against another door's cap nor share its metric names.
    pub fn with_prefix(
        settings: EdgeSettings,
        metrics: &sentinel_pipeline::metrics::Metrics,
        prefix: &str,
    ) -> Self {
        let m = Arc::new(EdgeMetrics::default());
        metrics.register(|r| {
            r.register(
                format!("{prefix}_connections_open"),
                "Connections the API holds open now.",
                m.open.clone(),
            );
            r.register(
                format!("{prefix}_connections_accepted"),
                "Connections accepted by the API.",
                m.accepted.clone(),
            );
            r.register(
                format!("{prefix}_connections_evicted"),
                "Idle connections closed to make room at the connection cap.",
                m.evicted.clone(),
            );
            r.register(
                format!("{prefix}_connections_refused_over_share"),
                "New connections closed at the cap because their address already held more of it than any address with an idle connection.",
                m.refused_share.clone(),
            );
            r.register(
                format!("{prefix}_accept_paused"),
                "Times accepting paused at the connection cap with no idle connection to close.",
                m.paused.clone(),
            );
            r.register(
                format!("{prefix}_accept_errors"),
                "Failed accepts (e.g. out of file descriptors).",
                m.accept_errors.clone(),
            );
            r.register(
                format!("{prefix}_connections_closed"),
                "Connections closed by the server, by reason (header_timeout, idle, evicted, error, tls_handshake).",
                m.closed.clone(),
            );
        });
        let cap = connection_cap(&settings);
        tracing::info!(
            evt = "edge_limits",
            door = prefix,
            max_connections = cap,
            header_read_timeout_ms = settings.header_read_timeout.as_millis() as u64,
            idle_timeout_ms = settings.idle_timeout.as_millis() as u64,
        );
        Self {
            settings,
            metrics: m,
            table: Arc::new(Mutex::new(Table::default())),
            next_id: Arc::new(AtomicU64::new(0)),
            closed: Arc::new(Notify::new()),
            cap,
        }
    }

    /// The cap on open connections in force.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().conns.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more connection: [`Room::Now`] when there is room now, [`Room::Soon`] when
    /// a connection asked to close will make it, [`Room::Full`] when every connection is busy.
    fn room(&self, from: Option<IpAddr>) -> Room {
        let mut t = self.lock();
        let open = t.conns.len();
        // The cap bounds descriptors: a connection asked to close still holds its socket until its
        // task drops it, so it counts until then (a churn of newcomers would otherwise push the open
        // sockets far past the cap, into the reserve kept for the store and logs).
        if open < self.cap {
            return Room::Now;
        }
        let closing = t.conns.values().filter(|e| e.closing).count();
        // Sockets of connections asked to close may overshoot the cap by a bounded slack (a quarter
        // of the reserve), so accepting need not wait for each evicted socket to be closed (under a
        // churn that wait would make a probe queue behind every flooder in the backlog); past the
        // slack, it waits.
        let fits = |open: usize| {
            if open < self.max_sockets() {
                Room::Now
            } else {
                Room::Soon
            }
        };
        // Connections already asked to close will go: one eviction makes room for exactly one
        // newcomer (and an evicted connection is not evicted twice).
        if open - closing < self.cap {
            return fits(open);
        }
        // The oldest idle first, but a connection accepted a moment ago that has not sent its first
        // request yet is spared while any other is idle: under a busy flood every kept-alive
        // connection is idle for an instant between requests, newer than a probe that was accepted
        // a millisecond before, and the probe would be evicted before it could ask.
        //
        // Fair shares first: the victim is an idle connection of the address holding the most
        // connections, and a newcomer may only take the place of a connection whose address holds at
        // least as many as its own (with it). A flood from one address then churns its own
        // connections, never a neighbour's kept-alive one; a newcomer from an address already
        // holding more than any other with an idle connection is refused instead (counted).
        let now = Instant::now();
        let young = |e: &Entry| !e.served && now.duration_since(e.accepted) < NEWCOMER_GRACE;
        let mut held: HashMap<Option<IpAddr>, usize> = HashMap::new();
        for e in t.conns.values().filter(|e| !e.closing) {
            *held.entry(e.from).or_default() += 1;
        }
        let own = held.get(&from).copied().unwrap_or(0) + 1;
        let share = |e: &Entry| {
            // Unix-socket peers (no address) are never someone else's flood.
            if e.from.is_none() && from.is_some() {
                0
            } else {
                held.get(&e.from).copied().unwrap_or(0)
            }
        };
        let idle = |e: &&Entry| e.in_flight == 0 && !e.closing;
        let victim = t
            .conns
            .iter()
            .filter(|(_, e)| idle(e))
            .min_by_key(|(_, e)| {
                (
                    young(e),
                    std::cmp::Reverse(share(e)),
                    e.from != from,
                    e.idle_since,
                )
            })
            .map(|(id, e)| (*id, e.from, share(e)));
        let id = match victim {
            None => return Room::Full,
            // Its own idle connection it may always replace.
            Some((_, victim_from, victim_share))
                if from.is_some() && victim_from != from && victim_share < own =>
            {
                return Room::OverShare
            }
            Some((id, _, _)) => id,
        };
        if let Some(e) = t.conns.get_mut(&id) {
            e.closing = true;
            e.close.notify_one();
        }
        t.why.insert(id, CloseWhy::Evicted);
        drop(t);
        self.metrics.evicted.inc();
        tracing::info!(evt = "connection_evicted", conn = id, open, cap = self.cap);
        fits(open)
    }

    /// Connections with a request in flight now.
    pub fn busy(&self) -> usize {
        self.lock()
            .conns
            .values()
            .filter(|e| e.in_flight > 0)
            .count()
    }

    /// The most sockets the server holds at once: the cap, plus a slack of a quarter of
    /// [`EdgeSettings::fd_reserve`] for connections asked to close that are not gone yet.
    pub fn max_sockets(&self) -> usize {
        self.cap + (self.settings.fd_reserve / 4).max(1)
    }

    /// Asks every connection idle longer than the idle timeout to close.
    fn sweep_idle(&self) {
        let limit = self.settings.idle_timeout;
        let mut t = self.lock();
        let now = Instant::now();
        let mut asked = Vec::new();
        for (id, e) in t.conns.iter_mut() {
            if e.in_flight == 0 && !e.closing && now.duration_since(e.idle_since) >= limit {
                e.closing = true;
                e.close.notify_one();
                asked.push(*id);
            }
        }
        for id in asked {
            t.why.insert(id, CloseWhy::Idle);
        }
    }

    fn register(&self, from: Option<IpAddr>) -> (u64, Arc<Notify>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        self.lock().conns.insert(
            id,
            Entry {
                in_flight: 0,
                idle_since: Instant::now(),
                accepted: Instant::now(),
                served: false,
                close: close.clone(),
                closing: false,
                from,
            },
        );
        self.metrics.open.inc();
        self.metrics.accepted.inc();
        (id, close)
    }

    fn unregister(&self, id: u64) {
        let mut t = self.lock();
        t.conns.remove(&id);
        t.why.remove(&id);
        drop(t);
        self.metrics.open.dec();
        self.closed.notify_waiters();
        self.closed.notify_one();
    }

    fn begin(&self, id: u64) -> InFlight {
        if let Some(e) = self.lock().conns.get_mut(&id) {
            e.in_flight += 1;
            e.served = true;
        }
        InFlight {
            edge: self.clone(),
            id,
        }
    }

    fn in_flight(&self, id: u64) -> usize {
        self.lock().conns.get(&id).map_or(0, |e| e.in_flight)
    }

    fn why(&self, id: u64) -> Option<CloseWhy> {
        self.lock().why.get(&id).copied()
    }
}

/// The cap on open connections: `max_connections`, lowered to the open-files soft limit minus the
/// reserve (at least 1).
fn connection_cap(s: &EdgeSettings) -> usize {
    let nofile = open_files_limit();
    let below = nofile.map_or(usize::MAX, |n| n.saturating_sub(s.fd_reserve).max(1));
    if below < s.max_connections {
        tracing::warn!(
            evt = "connection_cap_lowered",
            configured = s.max_connections,
            cap = below,
            nofile = nofile.unwrap_or(0),
            reserve = s.fd_reserve,
            msg = "api.max_connections is above the open-files limit minus the reserve; raise LimitNOFILE",
        );
    }
    s.max_connections.min(below).max(1)
}

/// The soft `RLIMIT_NOFILE` now in force (`None`: unlimited or unknown).
fn open_files_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        l.current.map(|c| usize::try_from(c).unwrap_or(usize::MAX))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft open-files limit to the hard limit (logged `evt=nofile_raised from= to=`), so the
/// connection cap can sit well above the common 1,024 default. Returns the soft limit now in force.
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let l = getrlimit(Resource::Nofile);
        if l.current == l.maximum {
            return l.current;
        }
        let want = Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        };
        let fmt = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
        match setrlimit(Resource::Nofile, want) {
            Ok(()) => {
                tracing::info!(evt = "nofile_raised", from = %fmt(l.current), to = %fmt(l.maximum));
                l.maximum
            }
            Err(e) => {
                tracing::warn!(evt = "nofile_raise_failed", from = %fmt(l.current), to = %fmt(l.maximum), error = %e);
                l.current
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// A request in flight on a connection: the connection is not idle while it lives (it lives in the
/// answer's body, so an answer being streamed keeps its connection from eviction).
struct InFlight {
    edge: Edge,
    id: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(e) = self.edge.lock().conns.get_mut(&self.id) {
            e.in_flight = e.in_flight.saturating_sub(1);
            e.idle_since = Instant::now();
        }
    }
}

/// An answer body that ends its request's [`InFlight`] when it is dropped (sent or abandoned).
struct Guarded {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets open
/// connections finish their requests for up to [`EdgeSettings::shutdown_grace`], and returns.
pub async fn serve<L: EdgeListener>(
    listener: L,
    router: Router,
    edge: Edge,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_inner(listener, router, edge, None, shutdown).await
}

/// Like [`serve`], over TLS: each connection's handshake runs in its own task under
/// [`EdgeSettings::header_read_timeout`] (a failure is counted by `tls` and closes the connection,
/// `sentinel_api_connections_closed_total{reason="tls_handshake"}`), every answer carries
/// `Strict-Transport-Security`, and the certificate files are watched for changes while it serves.
pub async fn serve_tls<L: EdgeListener>(
    listener: L,
    router: Router,
    edge: Edge,
    tls: crate::tls::Tls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let watch = tls.spawn_watch();
    let r = serve_inner(listener, router, edge, Some(tls), shutdown).await;
    watch.abort();
    r
}

async fn serve_inner<L: EdgeListener>(
    mut listener: L,
    router: Router,
    edge: Edge,
    tls: Option<crate::tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let sweeper = {
        let edge = edge.clone();
        let every = (edge.settings.idle_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                edge.sweep_idle();
            }
        })
    };
    'accept: loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (io, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors, or a connection reset before it was accepted: not fatal.
                edge.metrics.accept_errors.inc();
                tracing::warn!(evt = "accept_failed", error = %e);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        // Room for it: at the cap, the oldest idle connection is closed; with none idle, accepting
        // pauses (this one waits, unserved, and no other is accepted) until one closes. Deciding after
        // the accept keeps a connection accepted a moment ago, not yet sending, from being taken for
        // idle before anyone else needs its place.
        let mut paused = false;
        loop {
            let closed = edge.closed.notified();
            match edge.room(share_key(&peer)) {
                Room::Now => break,
                Room::OverShare => {
                    edge.metrics.refused_share.inc();
                    tracing::debug!(evt = "connection_refused_over_share", peer = ?share_key(&peer), open = edge.open(), cap = edge.cap);
                    drop(io);
                    continue 'accept;
                }
                // An evicted connection closes at once: wait for it (not a pause).
                Room::Soon => {}
                Room::Full if paused => {}
                Room::Full => {
                    paused = true;
                    edge.metrics.paused.inc();
                    tracing::warn!(
                    evt = "accept_paused",
                    open = edge.open(),
                    cap = edge.cap,
                    msg = "connection cap reached with every connection busy; accepting resumes when one closes",
                );
                }
            }
            tokio::select! {
                _ = closed => {}
                // A connection may go idle without closing: look again now and then.
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = &mut shutdown => break 'accept,
            }
        }
        if paused {
            tracing::info!(evt = "accept_resumed", open = edge.open(), cap = edge.cap);
        }
        let (id, close) = edge.register(share_key(&peer));
        tokio::spawn(connection(
            edge.clone(),
            id,
            close,
            io,
            peer,
            router.clone(),
            stop_rx.clone(),
            tls.clone(),
        ));
    }
    drop(listener);
    sweeper.abort();
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + edge.settings.shutdown_grace;
    loop {
        let closed = edge.closed.notified();
        if edge.open() == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, closed).await.is_err() {
            tracing::warn!(evt = "connections_cut_at_stop", open = edge.open());
            break;
        }
    }
    Ok(())
}

/// Serves one connection until it ends, is asked to close, or the server stops (after its TLS
/// handshake, with `tls`).
#[allow(clippy::too_many_arguments)]
async fn connection<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    edge: Edge,
    id: u64,
    close: Arc<Notify>,
    io: I,
    peer: Peer,
    router: Router,
    mut stop: watch::Receiver<bool>,
    tls: Option<crate::tls::Tls>,
) {
    let reason = match tls {
        None => http(&edge, id, &close, io, peer, router, &mut stop, false).await,
        Some(tls) => {
            let handshake = tokio::select! {
                r = tokio::time::timeout(edge.settings.header_read_timeout, tls.accept(io)) => Some(r),
                _ = close.notified() => None,
                _ = stop.wait_for(|s| *s) => None,
            };
            match handshake {
                Some(Ok(Ok(io))) => {
                    http(&edge, id, &close, io, peer, router, &mut stop, true).await
                }
                // Counted (by its reason) in `Tls::accept`.
                Some(Ok(Err(_))) => Some("tls_handshake"),
                Some(Err(_)) => {
                    tls.failed("timeout");
                    Some("tls_handshake")
                }
                // Asked to close (evicted while idle in its handshake, or the server stops).
                None => match edge.why(id) {
                    Some(CloseWhy::Evicted) => Some("evicted"),
                    Some(CloseWhy::Idle) => Some("idle"),
                    None => None,
                },
            }
        }
    };
    if let Some(reason) = reason {
        edge.metrics.closed(reason);
        if reason == "idle" || reason == "tls_handshake" {
            tracing::debug!(evt = "connection_closed", conn = id, reason);
        } else {
            tracing::info!(evt = "connection_closed", conn = id, reason);
        }
    }
    edge.unregister(id);
}

/// Serves HTTP/1.1 on `io` (`hsts`: over TLS, every answer says so); the reason it was closed, if
/// the server closed it.
#[allow(clippy::too_many_arguments)]
async fn http<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    edge: &Edge,
    id: u64,
    close: &Notify,
    io: I,
    peer: Peer,
    router: Router,
    stop: &mut watch::Receiver<bool>,
    hsts: bool,
) -> Option<&'static str> {
    let svc_edge = edge.clone();
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        match peer {
            Peer::Tcp(addr, local) => {
                req.extensions_mut().insert(ConnectInfo(addr));
                if let Some(l) = local {
                    req.extensions_mut().insert(LocalAddr(l));
                }
            }
            Peer::Unix(cred) => {
                if let Some(c) = cred {
                    req.extensions_mut().insert(c);
                }
            }
        }
        let guard = svc_edge.begin(id);
        let router = router.clone();
        async move {
            let Ok(mut resp) = router.oneshot(req.map(Body::new)).await;
            if hsts {
                resp.headers_mut()
                    .entry(axum::http::header::STRICT_TRANSPORT_SECURITY)
                    .or_insert(axum::http::HeaderValue::from_static(crate::tls::HSTS));
            }
            Ok::<_, std::convert::Infallible>(resp.map(|b| {
                Body::new(Guarded {
                    inner: b,
                    _guard: guard,
                })
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(edge.settings.header_read_timeout)
        .keep_alive(true);
    // With upgrades: the live stream (`GET /v1/stream`) is a WebSocket. An upgraded connection leaves
    // this server's accounting; the stream bounds itself (its own cap, send timeout and pings).
    let conn = builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let outcome = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = close.notified() => None,
        _ = stop.wait_for(|s| *s) => None,
    };
    match outcome {
        Some(Ok(())) => None,
        Some(Err(e)) if e.is_timeout() => Some("header_timeout"),
        Some(Err(_)) => Some("error"),
        None => {
            let why = edge.why(id);
            // An evicted connection goes at once, even if a request raced in after it was chosen
            // (it was idle then): the newcomer it makes room for waits on its socket being closed,
            // and a client that never reads its answer would hold both for the whole grace.
            if why != Some(CloseWhy::Evicted) && (edge.in_flight(id) > 0 || why.is_none()) {
                // A request is being served (or the server stops): let it finish, then close.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(edge.settings.shutdown_grace, conn.as_mut()).await;
            }
            match why {
                Some(CloseWhy::Evicted) => Some("evicted"),
                Some(CloseWhy::Idle) => Some("idle"),
                None => None,
            }
        }
    }
}
