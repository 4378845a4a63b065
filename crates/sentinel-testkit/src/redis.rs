//! A real Redis for tests: the `redis-server` binary on a free loopback port, with persistence off
//! (or, from [`RedisServer::start_durable`], an fsynced append-only file), killed and reaped on drop
//! (also when the test panics), and restartable on the same port ([`RedisServer::restart`]).
//!
//! Needs Debian's `redis-server` package (`scripts/test` installs it). Without it
//! [`RedisServer::start`] panics with a message that says so: tests fail loudly, they never skip.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One running `redis-server`, on 127.0.0.1 only.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// Settings beyond the common ones (persistence), kept for [`RedisServer::restart`].
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free 127.0.0.1 port and waits until it answers PING.
    ///
    /// # Panics
    /// When `redis-server` is not installed, or the server does not come up.
    pub fn start() -> RedisServer {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server that writes every command to an append-only file under `dir` before it answers
    /// (`appendfsync always`), so that after [`RedisServer::kill`] and [`RedisServer::restart`] it holds
    /// everything it acknowledged: streams, consumer groups, pending entries.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn start_durable(dir: &Path) -> RedisServer {
        let dir = dir.display().to_string();
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            &dir,
        ])
    }

    /// As [`RedisServer::start`], listening on each of `bind` (127.0.0.1 among them, for [`RedisServer::ping`])
    /// with protected mode off, so that clients in other network namespaces reach it over a bridge.
    /// [`RedisServer::url`] still names 127.0.0.1.
    ///
    /// # Panics
    /// As [`RedisServer::start`], and when an address of `bind` is not on this host.
    pub fn start_on(bind: &[Ipv4Addr]) -> RedisServer {
        Self::start_with(&strs(&bound(bind, &["--save", "", "--appendonly", "no"])))
    }

    /// [`RedisServer::start_durable`] listening on each of `bind`, as [`RedisServer::start_on`].
    ///
    /// # Panics
    /// As [`RedisServer::start_on`].
    pub fn start_durable_on(dir: &Path, bind: &[Ipv4Addr]) -> RedisServer {
        let dir = dir.display().to_string();
        Self::start_with(&strs(&bound(
            bind,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                &dir,
            ],
        )))
    }

    #[allow(clippy::panic)]
    fn start_with(extra: &[&str]) -> RedisServer {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let mut last = String::new();
        // A port found free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = match free_port() {
                Ok(p) => p,
                Err(e) => panic!("no free loopback port for redis-server: {e}"),
            };
            let mut server = RedisServer {
                child: Some(spawn(port, &extra)),
                port,
                extra: extra.clone(),
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// Starts the server again on the same port with the same settings (killing it first if it still
    /// runs), and waits until it answers PING: what a client sees when Redis restarts under it.
    ///
    /// # Panics
    /// When the server does not come back.
    #[allow(clippy::panic)]
    pub fn restart(&mut self) {
        self.kill();
        let mut last = String::new();
        // The port was just released: binding it again may take a moment.
        for _ in 0..20 {
            self.child = Some(spawn(self.port, &self.extra));
            match self.wait_ready() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}: {last}", self.port);
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let until = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut s) = child.stderr.take() {
                        let _ = s.read_to_string(&mut err);
                    }
                    self.child = None;
                    return Err(format!("exited with {status}: {}", err.trim()));
                }
            }
            if self.ping() {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(format!(
                    "no PONG on port {} within {START_TIMEOUT:?}",
                    self.port
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers PING now.
    pub fn ping(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server now (as a crash would) and reaps it; the port then refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `extra` with a `--bind` of 127.0.0.1 and every address in `bind`, and protected mode off (later
/// settings override the common ones).
fn bound(bind: &[Ipv4Addr], extra: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    out.push("--bind".into());
    out.push(Ipv4Addr::LOCALHOST.to_string());
    out.extend(
        bind.iter()
            .filter(|a| !a.is_loopback())
            .map(|a| a.to_string()),
    );
    out.extend(["--protected-mode".into(), "no".into()]);
    out
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `redis-server` on `port` with the common settings and `extra`.
#[allow(clippy::panic)]
fn spawn(port: u16, extra: &[String]) -> Child {
    let spawned = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("redis-server not found: install Debian's redis-server (scripts/test does)")
        }
        Err(e) => panic!("cannot run redis-server: {e}"),
    }
}

fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn starts_answers_and_dies_on_drop() {
        let mut a = RedisServer::start();
        let b = RedisServer::start();
        assert_ne!(a.port(), b.port());
        assert!(a.ping() && b.ping());
        assert_eq!(a.url(), format!("redis://127.0.0.1:{}/", a.port()));
        a.kill();
        assert!(!a.ping());
        let port = b.port();
        drop(b);
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    }

    /// A durable server keeps what it acknowledged across a kill and a restart on the same port.
    #[test]
    fn a_durable_server_restarts_on_its_port_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = RedisServer::start_durable(dir.path());
        let port = r.port();
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nkept\r\n")
            .unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"+OK"));
        r.kill();
        assert!(!r.ping());
        r.restart();
        assert_eq!(r.port(), port);
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        s.write_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"$4\r\nkept\r\n");
    }
}
