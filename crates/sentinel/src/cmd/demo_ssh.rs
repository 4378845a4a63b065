//! `demo-target --kind tcp`: an ssh-like login service speaking a line protocol, and the auth.log
//! lines Debian's sshd would write for what it sees.
//!
//! On connect it sends an OpenSSH banner, then asks `login: ` and `password: `. A wrong pair is
//! answered `Permission denied` (at most [`MAX_TRIES`] per connection) and logged as sshd logs it
//! (`Failed password for root from IP port N ssh2`; for an unknown user `Invalid user X from IP port N`
//! and `Failed password for invalid user X …`); the right pair is answered `Welcome`, logged as
//! `Accepted password for …`, and the connection closes. Known users are `root` and `--user`.
//!
//! Bounded: connections over the cap are closed at once (counted), a line longer than [`MAX_LINE`]
//! closes the connection, each line must arrive within the idle timeout, and a connection lives at
//! most four idle timeouts.

use super::demo_target::{AppendLog, Limits};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The banner sent on connect (Debian 12's OpenSSH).
pub const BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";
/// Login attempts per connection.
pub const MAX_TRIES: u32 = 3;
/// Longest line read (bytes, without the newline).
pub const MAX_LINE: usize = 256;

/// The login service's state.
pub struct Login {
    name: String,
    user: String,
    password: String,
    log: Option<Arc<AppendLog>>,
    connections: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Login {
    /// The service named `name` (the host name in its log lines), accepting `user` / `password`.
    pub fn new(name: String, user: String, password: String, log: Option<Arc<AppendLog>>) -> Login {
        Login {
            name,
            user,
            password,
            log,
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    fn auth_log(&self, pid: u32, message: &str) {
        if let Some(log) = &self.log {
            log.line(&sshd_line(
                OffsetDateTime::now_utc(),
                &self.name,
                pid,
                message,
            ));
        }
    }
}

/// Serves connections on `listener` until `shutdown` completes; open sessions get one second to end.
pub async fn serve(
    listener: TcpListener,
    login: Login,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let login = Arc::new(login);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut sessions = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while sessions.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or reset before accepted: not fatal.
                    tracing::warn!(evt = "accept_failed", error = %e);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = &mut shutdown => break,
                    }
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let n = login.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(evt = "connection_refused_at_cap", peer = %peer, refused = n, cap = limits.max_connections);
            }
            drop(stream);
            continue;
        };
        let login = login.clone();
        sessions.spawn(async move {
            let _slot = slot;
            session(&login, stream, peer, limits).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    sessions.abort_all();
    tracing::info!(
        evt = "demo_target_stopped",
        connections = login.connections.load(Ordering::Relaxed),
        refused_at_cap = login.refused.load(Ordering::Relaxed),
        failed_logins = login.failed.load(Ordering::Relaxed),
    );
    Ok(())
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Welcome,
    TooManyTries,
    Closed,
    IdleTimeout,
    LineTooLong,
    NotThisProtocol,
}

async fn session(login: &Login, stream: TcpStream, peer: SocketAddr, limits: Limits) {
    let n = login.connections.fetch_add(1, Ordering::Relaxed) + 1;
    // sshd forks a process per connection: a different pid on each one's lines.
    let pid = 1000 + (std::process::id().wrapping_add(n as u32) % 4_000_000);
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(1024, read);
    let lifetime = limits.idle.saturating_mul(4);
    let end = match tokio::time::timeout(
        lifetime,
        dialogue(login, &mut read, &mut write, peer, pid, limits.idle),
    )
    .await
    {
        Ok(Ok(end)) => end,
        Ok(Err(e)) => {
            tracing::debug!(evt = "session_error", peer = %peer, error = %e);
            End::Closed
        }
        Err(_) => End::IdleTimeout,
    };
    let goodbye = match end {
        End::IdleTimeout => Some("Timeout, closing\r\n"),
        End::LineTooLong => Some("Line too long, closing\r\n"),
        _ => None,
    };
    if let Some(g) = goodbye {
        let _ = tokio::time::timeout(Duration::from_secs(1), write.write_all(g.as_bytes())).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), write.shutdown()).await;
    tracing::info!(evt = "session_end", peer = %peer, end = ?end);
}

async fn dialogue<R, W>(
    login: &Login,
    read: &mut R,
    write: &mut W,
    peer: SocketAddr,
    pid: u32,
    idle: Duration,
) -> io::Result<End>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let from = format!("from {} port {}", peer.ip(), peer.port());
    send(write, &format!("{BANNER}\r\n"), idle).await?;
    let mut last_invalid: Option<Vec<u8>> = None;
    for attempt in 1..=MAX_TRIES {
        send(write, "login: ", idle).await?;
        let user = match read_line(read, idle).await? {
            Line::Text(l) => l,
            Line::Eof => return Ok(End::Closed),
            Line::Timeout => return Ok(End::IdleTimeout),
            Line::TooLong => return Ok(End::LineTooLong),
        };
        if attempt == 1 && user.starts_with(b"SSH-") {
            // A real SSH client: this service only plays one in its logs.
            send(
                write,
                "Protocol mismatch: this service speaks login/password lines, not SSH.\r\n",
                idle,
            )
            .await?;
            return Ok(End::NotThisProtocol);
        }
        send(write, "password: ", idle).await?;
        let pass = match read_line(read, idle).await? {
            Line::Text(l) => l,
            Line::Eof => return Ok(End::Closed),
            Line::Timeout => return Ok(End::IdleTimeout),
            Line::TooLong => return Ok(End::LineTooLong),
        };
        let shown = vis(&user);
        if user == login.user.as_bytes() && pass == login.password.as_bytes() {
            login.auth_log(pid, &format!("Accepted password for {shown} {from} ssh2"));
            tracing::info!(evt = "login", ok = true, user = %shown, peer = %peer);
            send(write, "Welcome\r\n", idle).await?;
            return Ok(End::Welcome);
        }
        let known = user == b"root" || user == login.user.as_bytes();
        if known {
            login.auth_log(pid, &format!("Failed password for {shown} {from} ssh2"));
        } else {
            if last_invalid.as_deref() != Some(user.as_slice()) {
                login.auth_log(pid, &format!("Invalid user {shown} {from}"));
            }
            login.auth_log(
                pid,
                &format!("Failed password for invalid user {shown} {from} ssh2"),
            );
            last_invalid = Some(user);
        }
        let failed = login.failed.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(evt = "login", ok = false, user = %shown, peer = %peer, failed);
        send(write, "Permission denied\r\n", idle).await?;
    }
    send(write, "Too many authentication failures\r\n", idle).await?;
    Ok(End::TooManyTries)
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, text: &str, idle: Duration) -> io::Result<()> {
    match tokio::time::timeout(idle, w.write_all(text.as_bytes())).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client does not read",
        )),
    }
}

/// One line read from the client.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// The line without its `\n` (and `\r`).
    Text(Vec<u8>),
    /// The client closed (a partial last line is dropped).
    Eof,
    /// The line did not complete within the idle timeout.
    Timeout,
    /// More than [`MAX_LINE`] bytes without a newline.
    TooLong,
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, idle: Duration) -> io::Result<Line> {
    let deadline = Instant::now() + idle;
    let mut line = Vec::new();
    loop {
        let buf = match tokio::time::timeout_at(deadline, r.fill_buf()).await {
            Ok(b) => b?,
            Err(_) => return Ok(Line::Timeout),
        };
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        r.consume(if done { take + 1 } else { take });
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Text(line));
        }
    }
}

/// `b` as OpenSSH logs client text (`strnvis` with `VIS_SAFE|VIS_OCTAL`): printable ASCII as is
/// (a backslash doubled), everything else as `\ooo`.
pub fn vis(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(c)),
            _ => out.push_str(&format!("\\{c:03o}")),
        }
    }
    out
}

/// A line as sshd writes it to Debian's /var/log/auth.log through rsyslog's traditional format:
/// `Dec  1 10:00:00 HOST sshd[PID]: MESSAGE`, the time in UTC.
pub fn sshd_line(at: OffsetDateTime, host: &str, pid: u32, message: &str) -> String {
    let fmt = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
    );
    let when = at
        .to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "Jan  1 00:00:00".into());
    format!("{when} {host} sshd[{pid}]: {message}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_ingest::{LogKind, ParseCtx};

    #[test]
    fn sshd_lines_are_read_by_sentinels_sshd_parser() {
        let at = OffsetDateTime::from_unix_timestamp(1_796_119_200).unwrap();
        let line = sshd_line(
            at,
            "ssh1",
            4242,
            "Failed password for root from 203.0.113.7 port 40022 ssh2",
        );
        assert_eq!(
            line,
            "Dec  1 10:00:00 ssh1 sshd[4242]: Failed password for root from 203.0.113.7 port 40022 ssh2"
        );
        let parser = sentinel_ingest::parse::by_name("sshd").unwrap();
        let ctx = ParseCtx::default();
        let p = parser.parse(&line, &ctx).unwrap();
        assert_eq!(p.kind, LogKind::AuthFailure);
        assert_eq!(p.src_ip, Some("203.0.113.7".parse().unwrap()));
        for (msg, kind) in [
            (
                "Invalid user a\\001b from 203.0.113.7 port 1",
                LogKind::InvalidUser,
            ),
            (
                "Failed password for invalid user x y from 203.0.113.7 port 1 ssh2",
                LogKind::InvalidUser,
            ),
            (
                "Accepted password for admin from 203.0.113.7 port 1 ssh2",
                LogKind::AuthSuccess,
            ),
        ] {
            let p = parser.parse(&sshd_line(at, "ssh1", 1, msg), &ctx).unwrap();
            assert_eq!(p.kind, kind, "{msg}");
            assert_eq!(p.src_ip, Some("203.0.113.7".parse().unwrap()), "{msg}");
        }
    }

    #[test]
    fn vis_escapes_like_openssh() {
        assert_eq!(vis(b"root"), "root");
        assert_eq!(vis(b"a b\\c"), "a b\\\\c");
        assert_eq!(vis(b"\x01\n\xff"), "\\001\\012\\377");
    }

    #[tokio::test]
    async fn read_line_is_bounded() {
        let idle = Duration::from_millis(200);
        let mut r = BufReader::new(&b"root\r\nsecond"[..]);
        assert_eq!(
            read_line(&mut r, idle).await.unwrap(),
            Line::Text(b"root".to_vec())
        );
        assert_eq!(read_line(&mut r, idle).await.unwrap(), Line::Eof);
        let long = vec![b'a'; MAX_LINE + 1];
        let mut r = BufReader::with_capacity(16, &long[..]);
        assert_eq!(read_line(&mut r, idle).await.unwrap(), Line::TooLong);
        let exact = [vec![b'a'; MAX_LINE], b"\n".to_vec()].concat();
        let mut r = BufReader::with_capacity(16, &exact[..]);
        assert_eq!(
            read_line(&mut r, idle).await.unwrap(),
            Line::Text(vec![b'a'; MAX_LINE])
        );
        let (client, server) = tokio::io::duplex(64);
        let mut r = BufReader::new(server);
        assert_eq!(read_line(&mut r, idle).await.unwrap(), Line::Timeout);
        drop(client);
    }
}
