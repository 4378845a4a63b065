//! A real `sentinel run` process in a temporary data directory, with its output captured.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sentinel");

pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub key: String,
    pub output: Arc<Mutex<String>>,
    pub ready_after: Duration,
}

/// A command for the binary with a clean environment (no SENTINEL_* from the caller) run in `dir`.
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    c
}

fn capture(r: impl std::io::Read + Send + 'static, buf: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let mut b = buf.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
}

/// The child while it starts: killed if the start fails (a panic), so no daemon outlives its test.
struct KillOnPanic(Option<std::process::Child>);

impl KillOnPanic {
    fn take(&mut self) -> std::process::Child {
        self.0.take().unwrap()
    }
}

impl std::ops::Deref for KillOnPanic {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for KillOnPanic {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().unwrap()
    }
}

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    pub fn start(env: &[(&str, &str)]) -> Daemon {
        Self::start_in(tempfile::tempdir().unwrap(), env)
    }

    pub fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Daemon {
        Self::start_at(dir, env, "127.0.0.1:0", None)
    }

    /// As [`Daemon::start_in`], with the API on `listen`, and inside the network namespace `netns`
    /// when one is given (`ip netns exec` execs the daemon: the child's pid is the daemon's). The API
    /// address must be reachable from the test's namespace.
    pub fn start_at(
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        listen: &str,
        netns: Option<&str>,
    ) -> Daemon {
        let started = Instant::now();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN])
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .current_dir(dir.path());
                c
            }
            None => command(dir.path()),
        };
        cmd.args(["run", "--data-dir", "data", "--listen", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // A daemon killed earlier in this directory leaves its address behind: not this one's.
        let _ = std::fs::remove_file(dir.path().join("data/api.addr"));
        let mut child = KillOnPanic(Some(cmd.spawn().expect("spawn sentinel")));
        let output = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().unwrap(), output.clone());
        capture(child.stderr.take().unwrap(), output.clone());
        let addr_file = dir.path().join("data/api.addr");
        let deadline = started + Duration::from_secs(20);
        let base = loop {
            if let Ok(s) = std::fs::read_to_string(&addr_file) {
                if s.ends_with('\n') {
                    break format!("http://{}", s.trim());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sentinel exited early ({status}):\n{}",
                    output.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no api.addr:\n{}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let ready_after = loop {
            let ok = blocking_get_status(&format!("{base}/ready")) == Some(200);
            if ok {
                break started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "never ready:\n{}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let key = std::fs::read_to_string(dir.path().join("data/admin.key"))
            .map(|k| k.trim().to_owned())
            .unwrap_or_default();
        Daemon {
            child: child.take(),
            dir,
            base,
            key,
            output,
            ready_after,
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Sends SIGTERM and waits (at most `within`) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the capture threads read the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "sentinel did not exit within {within:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon (SIGKILL: no draining) and hands back its data directory.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Stops the daemon and hands back its data directory.
    pub fn stop(mut self) -> (tempfile::TempDir, String) {
        let s = self.terminate(Duration::from_secs(10));
        assert!(s.success(), "exit status {s}:\n{}", self.output());
        let out = self.output();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, out)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET over a TCP socket, returning the status code (no async runtime needed).
pub fn blocking_get_status(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// Polls `f` until it returns Some, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
