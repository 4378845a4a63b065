//! The systemd notification protocol (`sd_notify(3)`), without libsystemd and without `unsafe`.
//!
//! A service started with `Type=notify` tells systemd it is ready (`READY=1`), what it is doing
//! (`STATUS=…`), that it is shutting down (`STOPPING=1`), and — with `WatchdogSec=` set — that it is
//! still alive (`WATCHDOG=1`), by datagrams on the Unix socket named in `$NOTIFY_SOCKET` (a filesystem
//! path, or an abstract name written `@name`). Without that variable every call here is a no-op:
//! [`SdNotify::from_env`] answers `None`.
//!
//! The watchdog ([`SdNotify::spawn_watchdog`]) pings at half of `$WATCHDOG_USEC` only while a health
//! check passes, so a daemon that is alive but wedged stops pinging and systemd restarts it. This
//! module owns the protocol only; what "healthy" means is the caller's.

use std::future::Future;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A socket file.
    Path(PathBuf),
    /// A Linux abstract socket name (without the leading `@`).
    Abstract(Vec<u8>),
}

/// A handle on systemd's notification socket. Clones share the socket.
#[derive(Debug, Clone)]
pub struct SdNotify {
    socket: Arc<UnixDatagram>,
    target: Target,
    watchdog: Option<Duration>,
}

impl SdNotify {
    /// The socket named in `$NOTIFY_SOCKET`, with the watchdog interval of `$WATCHDOG_USEC` (when
    /// `$WATCHDOG_PID` is unset or names this process). `None` when the variable is unset or empty (not
    /// started by systemd, or without `Type=notify`); an unusable value is logged and also gives `None`.
    pub fn from_env() -> Option<SdNotify> {
        let socket = std::env::var("NOTIFY_SOCKET").ok()?;
        if socket.is_empty() {
            return None;
        }
        let watchdog = watchdog_interval_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        match SdNotify::new(&socket, watchdog) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::error!(
                    evt = "sd_notify_unusable",
                    socket = %socket,
                    error = %e,
                    "NOTIFY_SOCKET is set but cannot be used: systemd will not hear from this service"
                );
                None
            }
        }
    }

    /// A handle on `socket` (a path, or `@name` for an abstract socket) with this watchdog interval.
    pub fn new(socket: &str, watchdog: Option<Duration>) -> io::Result<SdNotify> {
        let target = if let Some(name) = socket.strip_prefix('@') {
            Target::Abstract(name.as_bytes().to_vec())
        } else if socket.starts_with('/') {
            Target::Path(PathBuf::from(socket))
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported NOTIFY_SOCKET {socket:?} (neither a path nor @abstract)"),
            ));
        };
        let sock = UnixDatagram::unbound()?;
        // A full socket buffer must not stall the async runtime: the send fails (and is logged) instead.
        sock.set_nonblocking(true)?;
        Ok(SdNotify {
            socket: Arc::new(sock),
            target,
            watchdog,
        })
    }

    /// Sends one notification (`KEY=value` lines).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sent = match &self.target {
            Target::Path(p) => self.socket.send_to(state.as_bytes(), p)?,
            Target::Abstract(name) => {
                let addr = SocketAddr::from_abstract_name(name)?;
                self.socket.send_to_addr(state.as_bytes(), &addr)?
            }
        };
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", state.len()),
            ));
        }
        Ok(())
    }

    /// `READY=1`: start-up is complete.
    pub fn ready(&self) -> io::Result<()> {
        self.notify("READY=1")
    }

    /// `STATUS=…`: a one-line description shown by `systemctl status` (line breaks become spaces).
    pub fn status(&self, status: &str) -> io::Result<()> {
        self.notify(&format!("STATUS={}", status.replace(['\n', '\r'], " ")))
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }

    /// `WATCHDOG=1`: still alive.
    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    /// The watchdog interval systemd expects pings within (`$WATCHDOG_USEC`), if it enforces one.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Pings the watchdog at half its interval, each time only if `healthy()` answers true: a process
    /// that is up but wedged stops pinging, and systemd restarts it. A withheld ping and a failed send
    /// are logged (`sd_watchdog_withheld`, `sd_notify_failed`). `None` (nothing spawned) when systemd
    /// enforces no watchdog. Runs until the returned task is aborted.
    pub fn spawn_watchdog<F, Fut>(&self, mut healthy: F) -> Option<tokio::task::JoinHandle<()>>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let every = self.watchdog? / 2;
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut withheld = false;
            loop {
                tick.tick().await;
                if healthy().await {
                    if withheld {
                        tracing::info!(evt = "sd_watchdog_resumed");
                        withheld = false;
                    }
                    if let Err(e) = this.watchdog() {
                        tracing::error!(evt = "sd_notify_failed", state = "WATCHDOG=1", error = %e);
                    }
                } else if !withheld {
                    withheld = true;
                    tracing::error!(
                        evt = "sd_watchdog_withheld",
                        "the health check failed: watchdog pings stop until it passes (systemd \
                         restarts the service if this lasts past WatchdogSec)"
                    );
                }
            }
        }))
    }
}

/// The watchdog interval from `WATCHDOG_USEC` and `WATCHDOG_PID` as systemd sets them: `None` when the
/// interval is unset, zero or not a number, or when the PID is set and is not `our_pid` (the variables
/// were meant for another process, e.g. inherited from a parent).
pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    our_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(our_pid) {
            return None;
        }
    }
    match usec?.trim().parse::<u64>() {
        Ok(0) | Err(_) => None,
        Ok(us) => Some(Duration::from_micros(us)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    /// The next datagram within `wait`, as text.
    fn recv(l: &UnixDatagram, wait: Duration) -> Option<String> {
        l.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        match l.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                None
            }
            Err(e) => panic!("recv: {e}"),
        }
    }

    #[test]
    fn notifications_reach_a_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = SdNotify::new(path.to_str().unwrap(), None).unwrap();
        n.ready().unwrap();
        n.status("listening on 127.0.0.1:1\nsecond line").unwrap();
        n.watchdog().unwrap();
        n.stopping().unwrap();
        let got: Vec<String> = (0..4)
            .map(|_| recv(&listener, Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "READY=1",
                "STATUS=listening on 127.0.0.1:1 second line",
                "WATCHDOG=1",
                "STOPPING=1"
            ]
        );
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn notifications_reach_an_abstract_socket() {
        let name = format!("sentinel-sdnotify-test-{}-{}", std::process::id(), unique());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let n = SdNotify::new(&format!("@{name}"), Some(Duration::from_secs(4))).unwrap();
        n.ready().unwrap();
        assert_eq!(
            recv(&listener, Duration::from_secs(5)).as_deref(),
            Some("READY=1")
        );
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(4)));
    }

    fn unique() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    #[test]
    fn a_bad_socket_is_refused_and_a_missing_listener_is_an_error() {
        assert!(SdNotify::new("vsock:2:1234", None).is_err());
        let dir = tempfile::tempdir().unwrap();
        let n = SdNotify::new(dir.path().join("absent.sock").to_str().unwrap(), None).unwrap();
        assert!(n.ready().is_err());
    }

    #[test]
    fn the_watchdog_interval_follows_systemds_variables() {
        let us = Some("2000000");
        assert_eq!(
            watchdog_interval_from(us, None, 42),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval_from(us, Some("42"), 42),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_interval_from(us, Some("41"), 42), None);
        assert_eq!(watchdog_interval_from(us, Some("x"), 42), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 42), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 42), None);
        assert_eq!(watchdog_interval_from(None, Some("42"), 42), None);
    }

    /// Pings come at about half the interval while healthy, stop while not, and resume.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watchdog_pings_only_while_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = SdNotify::new(path.to_str().unwrap(), Some(Duration::from_millis(400))).unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        let task = n
            .spawn_watchdog(move || {
                let ok = h.load(Ordering::SeqCst);
                async move { ok }
            })
            .unwrap();
        let listener = tokio::task::spawn_blocking(move || {
            for _ in 0..3 {
                assert_eq!(
                    recv(&listener, Duration::from_secs(10)).as_deref(),
                    Some("WATCHDOG=1")
                );
            }
            listener
        })
        .await
        .unwrap();
        healthy.store(false, Ordering::SeqCst);
        // A ping already decided may still arrive; after that, none for a second (five intervals).
        let listener = tokio::task::spawn_blocking(move || {
            let _ = recv(&listener, Duration::from_millis(300));
            while recv(&listener, Duration::from_millis(50)).is_some() {}
            let quiet = Instant::now();
            assert_eq!(recv(&listener, Duration::from_secs(1)), None);
            assert!(quiet.elapsed() >= Duration::from_millis(900));
            listener
        })
        .await
        .unwrap();
        healthy.store(true, Ordering::SeqCst);
        let listener = tokio::task::spawn_blocking(move || {
            assert_eq!(
                recv(&listener, Duration::from_secs(10)).as_deref(),
                Some("WATCHDOG=1")
            );
            listener
        })
        .await
        .unwrap();
        task.abort();
        drop(listener);
        // No watchdog interval: nothing to spawn.
        let none = SdNotify::new(path.to_str().unwrap(), None).unwrap();
        assert!(none.spawn_watchdog(|| async { true }).is_none());
    }
}
