//! The daemon's local door: the API served on a Unix socket `<data_dir>/api.sock`, and the
//! per-install identity `<data_dir>/server.id`.
//!
//! Why a socket: over TCP, whoever holds the port the CLI dials (a stale `api.addr` after a crash,
//! the default `127.0.0.1:8000` with the daemon down) would receive the admin key. A socket in the
//! private data directory (0700) is reachable only by the daemon's user and root, its file is
//! owned by the daemon, and the kernel tells each side who the other is (`SO_PEERCRED`): the daemon
//! serves only root and its own user (anyone else is refused, counted in
//! `sentinel_api_local_peers_refused_total` and logged `evt=local_peer_refused`), and the CLI checks
//! the same of the daemon before it sends a key (`cmd/client.rs`). A local liveness probe
//! (`sentinel healthcheck`) also uses it, so it never competes with a flood on the TCP port.
//!
//! The same router is served on both doors, by the same connection server (`sentinel_api::serve`,
//! with the header-read and idle timeouts of the TCP port and a small cap of its own, see [`edge`]);
//! a request over the socket passes the same authentication (the CLI still sends its key) and the
//! same limit per key, so the socket widens nothing.

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use sentinel_api::serve::{Edge, EdgeListener, EdgeSettings, Peer, PeerCred};
use sentinel_api::ServerId;
use sentinel_pipeline::metrics::Metrics;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

/// The API's Unix socket in the data directory.
pub const SOCKET_FILE: &str = "api.sock";
/// The per-install identity secret in the data directory (see `POST /v1/identity`).
pub const SERVER_ID_FILE: &str = "server.id";

/// Whether a peer with `uid` may use the daemon run by `daemon_uid`: root, or the daemon's own user.
pub fn peer_allowed(uid: u32, daemon_uid: u32) -> bool {
    uid == 0 || uid == daemon_uid
}

/// This install's identity secret, created (0600) on first start. A file that exists but does not
/// hold one stops start-up: replacing it would make every CLI that read the old one distrust us.
pub fn server_id(data_dir: &Path) -> anyhow::Result<ServerId> {
    let path = data_dir.join(SERVER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => ServerId::parse(&text).with_context(|| {
            format!(
                "{} does not hold a server identity (64 hex characters); remove it to make a new one",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = ServerId::generate_text();
            crate::private::write_private(&path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(evt = "server_id_created", path = %path.display());
            ServerId::parse(&text).context("the new server identity does not parse")
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Binds `<data_dir>/api.sock` (mode 0600). A socket left by a daemon that died is replaced; one a
/// live daemon still answers on stops start-up (two daemons on one data directory); a path that is
/// not a socket is never removed.
pub async fn bind(data_dir: &Path) -> anyhow::Result<(UnixListener, PathBuf)> {
    let path = data_dir.join(SOCKET_FILE);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(&path).await.is_ok() {
                anyhow::bail!(
                    "{} is served by a running daemon: another Sentinel uses this data directory",
                    path.display()
                );
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove the stale {}", path.display()))?;
            tracing::info!(evt = "stale_socket_removed", path = %path.display());
        }
        Ok(_) => anyhow::bail!(
            "{} exists and is not a socket: remove it (Sentinel will not)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    Ok((listener, path))
}

/// A Unix listener that hands the connection server only the connections of allowed peers (see
/// [`peer_allowed`]), with their credentials.
pub struct PeerChecked {
    inner: UnixListener,
    daemon_uid: u32,
    refused: Counter,
}

impl PeerChecked {
    /// Wraps `inner`; refusals are counted in `sentinel_api_local_peers_refused_total`.
    pub fn new(inner: UnixListener, metrics: &Metrics) -> Self {
        let refused = Counter::default();
        let c = refused.clone();
        metrics.register(move |r| {
            r.register(
                "sentinel_api_local_peers_refused",
                "Connections to the API's Unix socket refused: the peer was neither root nor the daemon's user (or its credentials could not be read)",
                c,
            )
        });
        Self {
            inner,
            daemon_uid: rustix::process::geteuid().as_raw(),
            refused,
        }
    }
}

impl EdgeListener for PeerChecked {
    type Io = UnixStream;

    async fn accept(&mut self) -> std::io::Result<(Self::Io, Peer)> {
        loop {
            // An accept error goes back to the server's loop, which counts, logs and retries it.
            let (stream, _) = self.inner.accept().await?;
            match stream.peer_cred() {
                Ok(cred) if peer_allowed(cred.uid(), self.daemon_uid) => {
                    let peer = PeerCred {
                        uid: cred.uid(),
                        gid: cred.gid(),
                        pid: cred.pid(),
                    };
                    return Ok((stream, Peer::Unix(Some(peer))));
                }
                Ok(cred) => {
                    self.refused.inc();
                    tracing::warn!(
                        evt = "local_peer_refused",
                        uid = cred.uid(),
                        gid = cred.gid(),
                        pid = ?cred.pid(),
                        daemon_uid = self.daemon_uid,
                        reason = "neither root nor the daemon's user",
                    );
                }
                Err(e) => {
                    self.refused.inc();
                    tracing::warn!(evt = "local_peer_refused", error = %e, reason = "no peer credentials");
                }
            }
            // Dropping the stream closes it: the peer reads nothing. A refused peer never takes a
            // place under the socket's connection cap.
        }
    }
}

/// Most connections the socket holds open at once. Its users are the CLI (one connection per
/// command) and local probes, so a few dozen is plenty; see [`edge`] for why it has a cap of its own.
pub const MAX_LOCAL_CONNECTIONS: usize = 32;

/// The socket's connection server: the same accept loop as the TCP port (`sentinel_api::serve`),
/// with the TCP edge's header-read and idle timeouts but a cap of its own
/// ([`MAX_LOCAL_CONNECTIONS`]) and its own metrics (`sentinel_api_local_connections_open`,
/// `sentinel_api_local_connections_closed_total{reason}`, `sentinel_api_local_accept_paused_total`, ...).
///
/// Why not share the TCP port's cap: a flood of connections on the port holds every place there, and
/// the CLI and `sentinel healthcheck` use the socket precisely so they can still connect then (their
/// requests still share the router's in-flight cap, which `/health` and `/ready` are outside). Why a cap
/// and timeouts at all, when only root and the daemon's user get past the peer check (and they can
/// stop the daemon anyway): a client of theirs that hangs or dies half-way through a request — a
/// stuck script, a killed CLI whose socket lingers — must not hold a descriptor forever, nor, piling
/// up, take the descriptors the store and the TCP port need.
pub fn edge(tcp: &EdgeSettings, metrics: &Metrics) -> Edge {
    let settings = EdgeSettings {
        max_connections: MAX_LOCAL_CONNECTIONS,
        ..tcp.clone()
    };
    Edge::with_prefix(settings, metrics, "sentinel_api_local")
}

/// The API served on the Unix socket, until [`LocalServer::stop`].
pub struct LocalServer {
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
    path: PathBuf,
}

impl LocalServer {
    /// Serves `app` on `listener` (bound at `path`) with the connection server `edge` (see [`edge`]):
    /// each request carries its peer's [`PeerCred`] in its extensions.
    pub fn start(listener: PeerChecked, path: PathBuf, app: axum::Router, edge: Edge) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sentinel_api::serve::serve(listener, app, edge, async {
            let _ = stopped.await;
        }));
        tracing::info!(evt = "local_socket_ready", path = %path.display());
        Self { task, stop, path }
    }

    /// Stops accepting, gives requests in flight a bounded time, and removes the socket file.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        let mut task = self.task;
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(evt = "local_server_error", error = %e),
            Ok(Err(e)) => tracing::error!(evt = "local_server_failed", error = %e),
            Err(_) => {
                tracing::warn!(
                    evt = "local_server_drain_timeout",
                    note = "aborting the requests still open"
                );
                abort.abort();
                let _ = task.await;
            }
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(evt = "local_socket_remove_failed", path = %self.path.display(), error = %e);
        }
    }
}

/// The uid owning `path` (for the CLI's check of the socket file and the data directory).
pub fn owner(path: &Path) -> std::io::Result<u32> {
    std::fs::symlink_metadata(path).map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_daemons_user_are_served() {
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(65534, 0));
    }
}
