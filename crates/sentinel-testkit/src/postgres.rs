//! A real PostgreSQL for tests: a throw-away cluster (`initdb` in a temp dir) served by `postgres` on a
//! free 127.0.0.1 port, with one database made for the test, killed, reaped and deleted on drop (also
//! when the test panics).
//!
//! Needs Debian's `postgresql` package (`scripts/test` installs it; its own service is never started).
//! The binaries are taken from the highest `/usr/lib/postgresql/<version>/bin` (Debian keeps them off
//! `PATH`), else from `PATH`. PostgreSQL refuses to run as root, and CI runs tests as root: then the
//! cluster is made and run as the `postgres` system user (the package creates it), with the temp dir
//! handed to that user. Without the binaries or that user [`PostgresServer::start`] panics with a
//! message that says so: tests fail loudly, they never skip. The cluster trusts every local
//! connection and, unless made with [`PostgresServer::start_synced`] (for benchmarks), syncs nothing
//! to disk (`fsync=off`): it lives only as long as the test.

use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a fresh server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The database made for the test.
pub const DATABASE: &str = "sentinel";
/// The superuser of the cluster (and the role the test connects as).
const SUPERUSER: &str = "postgres";

/// One running `postgres`, on 127.0.0.1 only, with its cluster in a temp dir.
#[derive(Debug)]
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    run_as: Option<RunAs>,
    /// Whether the server syncs to disk (off for tests).
    fsync: bool,
    /// Declared last: deleted after the server is killed.
    dir: tempfile::TempDir,
}

/// The unprivileged user the cluster runs as when the test runs as root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl PostgresServer {
    /// Makes a cluster, starts a server on a free 127.0.0.1 port, waits until it accepts connections
    /// and creates the database [`DATABASE`].
    ///
    /// # Panics
    /// When PostgreSQL is not installed, the `postgres` user is missing while running as root, or the
    /// server does not come up.
    pub fn start() -> PostgresServer {
        Self::start_syncing(false)
    }

    /// As [`PostgresServer::start`], with PostgreSQL's own durability (`fsync` on, a flushed WAL
    /// per commit): what a benchmark should measure.
    ///
    /// # Panics
    /// As [`PostgresServer::start`].
    pub fn start_synced() -> PostgresServer {
        Self::start_syncing(true)
    }

    #[allow(clippy::panic)]
    fn start_syncing(fsync: bool) -> PostgresServer {
        match Self::try_start(fsync) {
            Ok(s) => s,
            Err(e) => panic!("PostgreSQL for tests: {e}"),
        }
    }

    fn try_start(fsync: bool) -> Result<PostgresServer, String> {
        let bin = bin_dir().ok_or_else(|| {
            "initdb/postgres not found in /usr/lib/postgresql/*/bin nor on PATH: \
             install Debian's postgresql package (scripts/test does)"
                .to_owned()
        })?;
        let run_as = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("sentinel-pg-")
            .tempdir()
            .map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        for d in [&data, &sock] {
            fs::create_dir(d).map_err(|e| format!("cannot make {}: {e}", d.display()))?;
        }
        if let Some(u) = run_as {
            for d in [dir.path(), &data, &sock] {
                std::os::unix::fs::chown(d, Some(u.uid), Some(u.gid))
                    .map_err(|e| format!("cannot hand {} to postgres: {e}", d.display()))?;
            }
        }
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", data.display()))?;
        let out = command(&bin, "initdb", run_as)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .args(["--no-sync", "--no-instructions"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error("initdb", &e))?;
        check("initdb", &out).map_err(|e| match run_as {
            Some(_) => format!(
                "{e} (initdb runs as the postgres user, who must be able to reach {}: \
                 is TMPDIR a directory only root may enter?)",
                data.display()
            ),
            None => e,
        })?;

        let mut server = PostgresServer {
            child: None,
            port: 0,
            bin,
            run_as,
            fsync,
            dir,
        };
        let mut last = String::new();
        // A port found free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
            match server.spawn_on(port) {
                Ok(()) => {
                    server.create_database()?;
                    return Ok(server);
                }
                Err(e) => last = e,
            }
        }
        Err(format!("postgres did not start: {last}"))
    }

    fn spawn_on(&mut self, port: u16) -> Result<(), String> {
        let log_path = self.dir.path().join(format!("postgres-{port}.log"));
        let log = fs::File::create(&log_path).map_err(|e| format!("cannot make the log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot share the log: {e}"))?;
        let durability: &[&str] = if self.fsync {
            &[]
        } else {
            &["-c", "fsync=off", "-c", "full_page_writes=off"]
        };
        let child = command(&self.bin, "postgres", self.run_as)
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(self.dir.path().join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(durability)
            .args(["-c", "max_connections=40", "-c", "shared_buffers=16MB"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| spawn_error("postgres", &e))?;
        self.child = Some(child);
        self.port = port;
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(e) => {
                self.kill();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                Err(format!("{e}; log: {}", log.trim()))
            }
        }
    }

    /// Waits until `postmaster.pid` says `ready` and the port takes a TCP connection.
    fn wait_ready(&mut self) -> Result<(), String> {
        let until = Instant::now() + START_TIMEOUT;
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}"));
                }
            }
            let ready = fs::read_to_string(&pid_file)
                .map(|s| s.lines().last().is_some_and(|l| l.trim() == "ready"))
                .unwrap_or(false);
            if ready && self.accepts() {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(format!(
                    "not accepting connections on port {} within {START_TIMEOUT:?}",
                    self.port
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_database(&self) -> Result<(), String> {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, DATABASE])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error("createdb", &e))?;
        check("createdb", &out)
    }

    /// Whether the port takes a TCP connection now.
    pub fn accepts(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/sentinel`: the test's database.
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The directory holding the cluster (`data/`), its socket (`sock/`) and the server's log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server again on the same port and cluster after [`PostgresServer::kill`] (it
    /// recovers from its WAL, as after a crash), and waits until it accepts connections.
    ///
    /// # Panics
    /// When it does not come back.
    #[allow(clippy::panic)]
    pub fn restart(&mut self) {
        self.kill();
        let until = Instant::now() + START_TIMEOUT;
        loop {
            // The killed server's backends may hold its shared memory for a moment: try again.
            match self.spawn_on(self.port) {
                Ok(()) => return,
                Err(e) if Instant::now() >= until => panic!("postgres did not restart: {e}"),
                Err(_) => thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Kills the server now (as a crash would) and reaps it; the port then refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // The server's backends exit when the postmaster dies (they watch it); the temp dir goes next.
        self.kill();
    }
}

/// The directory holding `initdb` and `postgres`: the highest Debian version, else the one on PATH.
fn bin_dir() -> Option<PathBuf> {
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
    })
}

/// `None` when the test is not root; else the `postgres` user from /etc/passwd.
fn run_as() -> Result<Option<RunAs>, String> {
    let me = fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .map_err(|e| format!("cannot tell who runs the test: {e}"))?;
    if me != 0 {
        return Ok(None);
    }
    let passwd =
        fs::read_to_string("/etc/passwd").map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() > 3 && f[0] == "postgres" {
                Some(RunAs {
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                })
            } else {
                None
            }
        })
        .map(Some)
        .ok_or_else(|| {
            "running as root and there is no `postgres` user to run PostgreSQL as \
             (Debian's postgresql package creates it)"
                .to_owned()
        })
}

/// `bin/<name>`, as the `postgres` user when the test is root.
fn command(bin: &Path, name: &str, run_as: Option<RunAs>) -> Command {
    let mut c = Command::new(bin.join(name));
    // A directory every user may enter: the `postgres` user may not read the test's own.
    c.current_dir("/");
    if let Some(u) = run_as {
        c.uid(u.uid).gid(u.gid);
    }
    c
}

fn spawn_error(name: &str, e: &std::io::Error) -> String {
    if e.kind() == ErrorKind::NotFound {
        format!("{name} not found: install Debian's postgresql package (scripts/test does)")
    } else {
        format!("cannot run {name}: {e}")
    }
}

fn check(name: &str, out: &Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    // The error is on stderr; stdout (initdb's progress) only when stderr is empty.
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let said = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    Err(format!("{name} failed ({}): {said}", out.status))
}

fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_a_database_and_dies_on_drop() {
        let mut a = PostgresServer::start();
        let b = PostgresServer::start();
        assert_ne!(a.port(), b.port());
        assert!(a.accepts() && b.accepts());
        assert_eq!(
            a.url(),
            format!("postgres://postgres@127.0.0.1:{}/sentinel", a.port())
        );
        // The database exists: psql connects to it and runs a query.
        let out = Command::new(a.bin.join("psql"))
            .args([&a.url(), "-tAc", "SELECT current_database()"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), DATABASE);
        a.kill();
        assert!(!a.accepts());
        // Back on the same port, with the same cluster (the database is still there).
        a.restart();
        let out = Command::new(a.bin.join("psql"))
            .args([&a.url(), "-tAc", "SELECT 1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (port, dir) = (b.port(), b.dir().to_owned());
        drop(b);
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
        assert!(!dir.exists(), "the cluster's directory is deleted");
    }
}
