//! The egress proxy (`sentinel egress-proxy`): an HTTP `CONNECT` proxy for a network whose only way
//! out it is. It tunnels to the allowed `host:port` pairs only ([`policy`]), for the allowed client
//! networks only, resolving the host itself at connect time and refusing a name that leads to an
//! internal address unless that literal is allowed (no DNS rebinding to the inside). Everything else
//! gets a status and a log line: 403 (destination or client not allowed), 405 (any other method: no
//! plain-HTTP forwarding), 400 (a head that is not HTTP or over 8 KiB), 502/504 (the destination
//! cannot be reached), 503 (connection cap). `GET /ready` answers 200 with the counts. Connections,
//! head size, handshake and idle time are bounded.
//!
//! It must not forward anything but tunnels, look inside them, or connect before the policy said yes.

pub mod head;
pub mod policy;

use head::{HeadError, Request};
use policy::{Destination, Host, Policy};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// How long a refused client's leftover bytes are read and dropped after the answer (so the answer
/// is not lost to a reset), and how many at most.
const DRAIN: (Duration, usize) = (Duration::from_secs(1), 64 * 1024);
/// The relay's buffer, per direction.
const RELAY_BUF: usize = 16 * 1024;

/// Resolves `host` for a connection to `port`: the one place the proxy resolves names (tokio's
/// `lookup_host`, the system resolver; a pure-Rust resolver can take its place here).
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host, port)).await?.collect())
}

/// The proxy's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Destinations and clients.
    pub policy: Policy,
    /// Client connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// From accepting a connection to the tunnel being up (head, resolution, connect).
    pub handshake_timeout: Duration,
    /// A tunnel with no byte either way for this long is closed.
    pub idle_timeout: Duration,
}

/// Connections by outcome, since start.
#[derive(Debug, Default)]
pub struct Counts {
    allowed: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    /// `(allowed, refused, failed)`: tunnels made; connections refused (client, destination,
    /// method, bad head, busy); connections that failed (no head in time, resolution or connect).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.allowed.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    fn json(&self) -> String {
        let (a, r, f) = self.get();
        format!("{{\"ready\":true,\"allowed\":{a},\"refused\":{r},\"failed\":{f}}}\n")
    }
}

struct Shared {
    settings: Settings,
    counts: Arc<Counts>,
    permits: Arc<Semaphore>,
    /// When a busy refusal was last logged, and the refusals since (a flood is logged at most once
    /// a second, each line with the refusals it stands for).
    busy_logged: Mutex<(Option<Instant>, u64)>,
}

/// A bound proxy, not yet serving.
pub struct EgressProxy {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl EgressProxy {
    /// Binds the listening socket.
    pub async fn bind(settings: Settings) -> io::Result<EgressProxy> {
        let listener = TcpListener::bind(settings.listen).await?;
        let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
        Ok(EgressProxy {
            listener,
            shared: Arc::new(Shared {
                settings,
                counts: Arc::new(Counts::default()),
                permits,
                busy_logged: Mutex::new((None, 0)),
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The counts, live.
    pub fn counts(&self) -> Arc<Counts> {
        self.shared.counts.clone()
    }

    /// Serves until `shutdown` completes; open tunnels end with the runtime.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: wait rather than spin.
                        tracing::error!(evt = "egress_accept_failed", error = %e);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let shared = self.shared.clone();
            let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
                busy(&shared, &stream, peer);
                continue;
            };
            tokio::spawn(async move {
                connection(&shared, stream, peer).await;
                drop(permit);
            });
        }
    }
}

/// The connection cap is reached: 503 without waiting (no task is spawned), and the socket closed.
fn busy(shared: &Shared, stream: &TcpStream, peer: SocketAddr) {
    shared.counts.refused.fetch_add(1, Ordering::Relaxed);
    let _ = stream.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let mut logged = shared.busy_logged.lock().unwrap_or_else(|p| p.into_inner());
    logged.1 += 1;
    if logged
        .0
        .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
    {
        tracing::warn!(
            evt = "egress_refused",
            reason = "connection limit reached",
            client = %peer,
            max_connections = shared.settings.max_connections,
            refusals = logged.1,
        );
        *logged = (Some(Instant::now()), 0);
    }
}

/// One client connection, from accept to close.
async fn connection(shared: &Shared, mut client: TcpStream, peer: SocketAddr) {
    let counts = &shared.counts;
    if !shared.settings.policy.client_allowed(peer.ip()) {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(evt = "egress_refused", reason = "client not allowed", client = %peer);
        answer(&mut client, 403, "Forbidden", "client not allowed\n").await;
        return;
    }
    let deadline = tokio::time::Instant::now() + shared.settings.handshake_timeout;
    let mut buf = Vec::with_capacity(head::MAX_HEAD);
    let read = tokio::time::timeout_at(deadline, head::read(&mut client, &mut buf)).await;
    let (request, len) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e @ (HeadError::TooLarge | HeadError::Malformed(_)))) => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(evt = "egress_refused", reason = %e, client = %peer);
            answer(&mut client, 400, "Bad Request", &format!("{e}\n")).await;
            return;
        }
        Ok(Err(e)) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(evt = "egress_failed", reason = %e, client = %peer);
            return;
        }
        Err(_) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(evt = "egress_failed", reason = "no complete request head in time", client = %peer);
            answer(
                &mut client,
                408,
                "Request Timeout",
                "no complete request in time\n",
            )
            .await;
            return;
        }
    };
    match request {
        Request::Ready => answer(&mut client, 200, "OK", &counts.json()).await,
        Request::Other(method) => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(evt = "egress_refused", reason = "not a CONNECT request", method, client = %peer);
            answer(
                &mut client,
                405,
                "Method Not Allowed",
                "only CONNECT to an allowed host:port (no plain-HTTP forwarding)\n",
            )
            .await;
        }
        Request::Connect(dest) => {
            let early = buf.split_off(len);
            tunnel(shared, client, peer, dest, early, deadline).await;
        }
    }
}

/// A CONNECT: checked, resolved, connected, then relayed.
async fn tunnel(
    shared: &Shared,
    mut client: TcpStream,
    peer: SocketAddr,
    dest: Destination,
    early: Vec<u8>,
    deadline: tokio::time::Instant,
) {
    let counts = &shared.counts;
    let policy = &shared.settings.policy;
    if !policy.destination_allowed(&dest) {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(evt = "egress_refused", reason = "destination not allowed", host = %dest, client = %peer);
        answer(&mut client, 403, "Forbidden", "destination not allowed\n").await;
        return;
    }
    let resolved = match &dest.host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, dest.port)]),
        Host::Name(name) => match tokio::time::timeout_at(deadline, resolve(name, dest.port)).await
        {
            Ok(r) => r.map_err(|e| format!("cannot resolve: {e}")),
            Err(_) => Err("resolution timed out".into()),
        },
    };
    let addrs = match resolved {
        Ok(a) if !a.is_empty() => a,
        other => {
            let why = other
                .err()
                .unwrap_or_else(|| "resolves to no address".into());
            counts.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(evt = "egress_failed", reason = %why, host = %dest, client = %peer);
            answer(
                &mut client,
                502,
                "Bad Gateway",
                "destination cannot be resolved\n",
            )
            .await;
            return;
        }
    };
    let (permitted, internal): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .into_iter()
        .partition(|a| policy.address_permitted(a.ip(), a.port()));
    if permitted.is_empty() {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        let shown: Vec<String> = internal.iter().map(|a| a.ip().to_string()).collect();
        tracing::warn!(
            evt = "egress_refused",
            reason = "resolves to an internal address whose literal is not allowed",
            host = %dest,
            addresses = shown.join(","),
            client = %peer,
        );
        answer(
            &mut client,
            403,
            "Forbidden",
            "destination resolves to an internal address\n",
        )
        .await;
        return;
    }
    let mut upstream = None;
    let mut last_error = String::from("connect timed out");
    for addr in &permitted {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                upstream = Some((s, *addr));
                break;
            }
            Ok(Err(e)) => last_error = format!("{addr}: {e}"),
            Err(_) => {
                last_error = format!("{addr}: connect timed out");
                break;
            }
        }
    }
    let Some((mut upstream, addr)) = upstream else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(evt = "egress_failed", reason = %last_error, host = %dest, client = %peer);
        let timed_out = tokio::time::Instant::now() >= deadline;
        let (code, text) = if timed_out {
            (504, "Gateway Timeout")
        } else {
            (502, "Bad Gateway")
        };
        answer(&mut client, code, text, "destination cannot be reached\n").await;
        return;
    };
    let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let idle = shared.settings.idle_timeout;
    if !matches!(
        timeout(idle, client.write_all(established)).await,
        Ok(Ok(()))
    ) {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(evt = "egress_failed", reason = "client went away", host = %dest, client = %peer);
        return;
    }
    if !early.is_empty() && !matches!(timeout(idle, upstream.write_all(&early)).await, Ok(Ok(()))) {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(evt = "egress_failed", reason = "destination went away", host = %dest, client = %peer);
        return;
    }
    counts.allowed.fetch_add(1, Ordering::Relaxed);
    tracing::info!(evt = "egress_tunnel", host = %dest, address = %addr, client = %peer);
    let started = Instant::now();
    let (sent, received, end) = relay(&mut client, &mut upstream, idle).await;
    tracing::info!(
        evt = "egress_closed",
        host = %dest,
        client = %peer,
        bytes_sent = sent + early.len() as u64,
        bytes_received = received,
        seconds = started.elapsed().as_secs(),
        end,
    );
}

/// Copies both ways until both sides have closed, one fails, or nothing moves for `idle`. Returns
/// the bytes sent upstream, received from it, and why it ended.
async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    idle: Duration,
) -> (u64, u64, &'static str) {
    enum Step {
        Up(io::Result<usize>),
        Down(io::Result<usize>),
    }
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let mut up = vec![0u8; RELAY_BUF];
    let mut down = vec![0u8; RELAY_BUF];
    let (mut client_open, mut upstream_open) = (true, true);
    let (mut sent, mut received) = (0u64, 0u64);
    while client_open || upstream_open {
        let step = timeout(idle, async {
            tokio::select! {
                r = cr.read(&mut up), if client_open => Step::Up(r),
                r = ur.read(&mut down), if upstream_open => Step::Down(r),
            }
        })
        .await;
        let moved = match step {
            Err(_) => return (sent, received, "idle"),
            Ok(Step::Up(Ok(0))) => {
                client_open = false;
                timeout(idle, uw.shutdown()).await
            }
            Ok(Step::Down(Ok(0))) => {
                upstream_open = false;
                timeout(idle, cw.shutdown()).await
            }
            Ok(Step::Up(Ok(n))) => {
                sent += n as u64;
                timeout(idle, uw.write_all(&up[..n])).await
            }
            Ok(Step::Down(Ok(n))) => {
                received += n as u64;
                timeout(idle, cw.write_all(&down[..n])).await
            }
            Ok(Step::Up(Err(_)) | Step::Down(Err(_))) => return (sent, received, "reset"),
        };
        match moved {
            Ok(Ok(())) => {}
            // The other side is gone: after a half-close that is the normal end.
            Ok(Err(_)) if !(client_open && upstream_open) => break,
            Ok(Err(_)) => return (sent, received, "reset"),
            Err(_) => return (sent, received, "idle"),
        }
    }
    (sent, received, "closed")
}

/// Answers with `code` and a short text body, then closes: the write side first, then whatever the
/// client still sends is read and dropped for a moment (bounded), so the answer is not lost to a reset.
async fn answer(stream: &mut TcpStream, code: u16, reason: &str, body: &str) {
    let content_type = if body.starts_with('{') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let allow = if code == 405 {
        "Allow: CONNECT\r\n"
    } else {
        ""
    };
    let text = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let (time, most) = DRAIN;
    let wrote = timeout(time, async {
        stream.write_all(text.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(wrote, Ok(Ok(()))) {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    let _ = timeout(time, async {
        while drained < most {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The client networks, for the start-up line (`any` when every client is served).
pub fn describe_clients(policy: &Policy) -> String {
    if policy.clients().is_empty() {
        return "any".into();
    }
    let nets: Vec<String> = policy.clients().iter().map(|n| n.to_string()).collect();
    nets.join(",")
}
