//! The syslog receiver: UDP datagrams and TCP streams (RFC 6587 octet counting or newline-delimited).
//!
//! Every message becomes one [`RawLine`] whose text is the whole message; parsing the header is the
//! parsers' job. Bounded: messages are cut to `max_message_bytes`, TCP connections are capped (extra ones
//! are closed at once and counted), and a full output queue makes the receiver wait.

mod framing;

use crate::source::{bump, send_or_stop, LineTx, RawLine, SourceError, SourceMetrics};
use framing::{datagram, Frame, Framer};
use sentinel_core::Timestamp;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Where to listen and the limits.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// UDP bind address (`0.0.0.0:514`), if any.
    pub udp: Option<SocketAddr>,
    /// TCP bind address, if any.
    pub tcp: Option<SocketAddr>,
    /// Longer messages are cut to this many bytes and counted.
    pub max_message_bytes: usize,
    /// Open TCP connections allowed at once.
    pub max_connections: usize,
    /// Senders accepted; datagrams and connections from anyone else are dropped and counted (anyone who
    /// can send lines can make Sentinel act on forged ones). Empty accepts every sender.
    pub allowed_peers: Vec<ipnet::IpNet>,
    /// A TCP connection that sends nothing for this long is closed.
    pub idle_timeout: std::time::Duration,
}

impl SyslogConfig {
    fn allows(&self, peer: std::net::IpAddr) -> bool {
        let peer = match peer {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(std::net::IpAddr::V4)
                .unwrap_or(peer),
            v4 => v4,
        };
        self.allowed_peers.is_empty() || self.allowed_peers.iter().any(|n| n.contains(&peer))
    }
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            udp: None,
            tcp: None,
            max_message_bytes: 8192,
            max_connections: 256,
            allowed_peers: Vec::new(),
            idle_timeout: std::time::Duration::from_secs(300),
        }
    }
}

/// Bound syslog listeners, ready to run.
#[derive(Debug)]
pub struct SyslogReceiver {
    cfg: SyslogConfig,
    metrics: Arc<SourceMetrics>,
    udp: Option<(UdpSocket, Arc<str>)>,
    tcp: Option<(TcpListener, Arc<str>)>,
}

impl SyslogReceiver {
    /// Binds the configured listeners (port 0 picks a free port; see [`Self::udp_addr`]).
    pub async fn bind(cfg: SyslogConfig, metrics: Arc<SourceMetrics>) -> Result<Self, SourceError> {
        let io = |what: &str, a: SocketAddr, e: std::io::Error| {
            SourceError::Io(format!("syslog {what} bind {a}: {e}"))
        };
        let udp = match cfg.udp {
            Some(a) => {
                let s = UdpSocket::bind(a).await.map_err(|e| io("udp", a, e))?;
                let local = s.local_addr().map_err(|e| io("udp", a, e))?;
                Some((s, Arc::from(format!("syslog:udp:{local}"))))
            }
            None => None,
        };
        let tcp = match cfg.tcp {
            Some(a) => {
                let l = TcpListener::bind(a).await.map_err(|e| io("tcp", a, e))?;
                let local = l.local_addr().map_err(|e| io("tcp", a, e))?;
                Some((l, Arc::from(format!("syslog:tcp:{local}"))))
            }
            None => None,
        };
        Ok(Self {
            cfg,
            metrics,
            udp,
            tcp,
        })
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|(s, _)| s.local_addr().ok())
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Receives until `shutdown` completes (open connections are closed) or `out` is closed.
    pub async fn run(
        self,
        out: LineTx,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), SourceError> {
        let Self {
            cfg,
            metrics,
            udp,
            tcp,
        } = self;
        tokio::pin!(shutdown);
        let udp_loop = async {
            match udp {
                Some((sock, origin)) => udp_loop(sock, origin, &cfg, &metrics, &out).await,
                None => std::future::pending().await,
            }
        };
        let tcp_loop = async {
            match tcp {
                Some((l, origin)) => tcp_loop(l, origin, &cfg, &metrics, &out).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.as_mut() => Ok(()),
            r = udp_loop => r,
            r = tcp_loop => r,
        }
    }
}

fn count(metrics: &SourceMetrics, f: &Frame) {
    bump(&metrics.lines_read, 1);
    if f.cut {
        bump(&metrics.lines_too_long, 1);
    }
    if f.lossy {
        bump(&metrics.lines_invalid_utf8, 1);
    }
}

async fn udp_loop(
    sock: UdpSocket,
    origin: Arc<str>,
    cfg: &SyslogConfig,
    metrics: &SourceMetrics,
    out: &LineTx,
) -> Result<(), SourceError> {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match sock.recv_from(&mut buf).await {
            Ok((n, peer)) if cfg.allows(peer.ip()) => n,
            Ok((_, peer)) => {
                bump(&metrics.peers_refused, 1);
                tracing::debug!(%peer, "syslog datagram from a sender not in allowed_peers dropped");
                continue;
            }
            Err(e) => {
                bump(&metrics.errors, 1);
                tracing::debug!(error = %e, "syslog udp receive failed");
                continue;
            }
        };
        bump(&metrics.bytes_read, n as u64);
        let f = datagram(&buf[..n], cfg.max_message_bytes);
        if f.text.is_empty() {
            continue;
        }
        count(metrics, &f);
        let line = RawLine {
            text: f.text,
            origin: origin.clone(),
            received: Timestamp::now(),
            ts_hint: None,
        };
        out.send(line)
            .await
            .map_err(|_| SourceError::Closed(sentinel_core::SinkClosed))?;
    }
}

async fn tcp_loop(
    listener: TcpListener,
    origin: Arc<str>,
    cfg: &SyslogConfig,
    metrics: &Arc<SourceMetrics>,
    out: &LineTx,
) -> Result<(), SourceError> {
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    // Dropping the set (at shutdown) aborts every connection task.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        bump(&metrics.errors, 1);
                        tracing::debug!(error = %e, "syslog tcp accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if !cfg.allows(peer.ip()) {
                    bump(&metrics.peers_refused, 1);
                    tracing::debug!(%peer, "syslog connection from a sender not in allowed_peers refused");
                    drop(stream);
                    continue;
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    bump(&metrics.connections_refused, 1);
                    tracing::debug!(%peer, "syslog tcp connection refused: limit reached");
                    drop(stream);
                    continue;
                };
                let (origin, metrics, out, max, idle) =
                    (origin.clone(), metrics.clone(), out.clone(), cfg.max_message_bytes, cfg.idle_timeout);
                conns.spawn(async move {
                    let r = connection(stream, origin, max, idle, &metrics, &out).await;
                    drop(permit);
                    r
                });
            }
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Ok(Err(e)) = done {
                    return Err(e);
                }
            }
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    origin: Arc<str>,
    max: usize,
    idle: std::time::Duration,
    metrics: &SourceMetrics,
    out: &LineTx,
) -> Result<(), SourceError> {
    let mut framer = Framer::new(max);
    let mut buf = vec![0u8; 16 * 1024];
    let mut frames = Vec::new();
    let mut never = std::pin::pin!(std::future::pending::<()>());
    loop {
        let n = match tokio::time::timeout(idle, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(n)) => n,
            Err(_) => return Ok(()), // idle: close, freeing the slot
        };
        bump(&metrics.bytes_read, n as u64);
        let framed = framer.feed(&buf[..n], &mut frames);
        let received = Timestamp::now();
        for f in frames.drain(..) {
            count(metrics, &f);
            let line = RawLine {
                text: f.text,
                origin: origin.clone(),
                received,
                ts_hint: None,
            };
            send_or_stop(out, line, &mut never).await?;
        }
        if framed.is_err() {
            bump(&metrics.errors, 1);
            tracing::debug!("syslog tcp framing broken; closing connection");
            return Ok(());
        }
    }
}

#[async_trait::async_trait]
impl sentinel_core::Source for SyslogReceiver {
    fn kind(&self) -> &'static str {
        "syslog"
    }

    async fn run(
        self: Box<Self>,
        out: sentinel_core::LineTx,
        shutdown: sentinel_core::Shutdown,
    ) -> Result<(), SourceError> {
        SyslogReceiver::run(*self, out, shutdown).await
    }
}
