//! The supervisor with the real binary: `sentinel supervise` restarts a SIGKILLed child within 2 s
//! and a signed crash notice with the child's last output lines reaches a webhook receiver; a crash
//! loop stops restarting and raises a critical notice; SIGTERM stops the children in reverse order
//! (SIGKILL after the grace for one that ignores SIGTERM) and exits 0; it keeps `sentinel run` itself
//! up; and `sentinel run` with a `supervise:` section lists its children in the heartbeat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{blocking_get_status, command, eventually, Daemon, BIN};
use sentinel_testkit::receivers::WebhookReceiver;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "test-hook-secret-0123456789";

/// A running `sentinel supervise`, its directory (config, data, the pid files children write) and
/// its output. Dropping it kills the supervisor and every process whose pid a child wrote.
struct Supervise {
    child: Child,
    dir: tempfile::TempDir,
    output: Arc<Mutex<String>>,
}

fn capture(r: impl std::io::Read + Send + 'static, buf: Arc<Mutex<String>>) {
    use std::io::BufRead;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
            let mut b = buf.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
}

impl Supervise {
    /// Writes `supervise.yml` (`data_dir` is added; `{dir}` in `yaml` is the test directory) and
    /// starts the supervisor; waits for its first status file.
    fn start(yaml: &str) -> Supervise {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let text = format!("data_dir: {d}/data\n{}", yaml.replace("{dir}", &d));
        std::fs::write(dir.path().join("supervise.yml"), text).unwrap();
        let mut cmd = command(dir.path());
        cmd.args(["supervise", "--config", "supervise.yml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().unwrap(), output.clone());
        capture(child.stderr.take().unwrap(), output.clone());
        let mut s = Supervise { child, dir, output };
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.status().is_none() {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("sentinel supervise exited early ({st}):\n{}", s.output());
            }
            assert!(Instant::now() < deadline, "no status.json:\n{}", s.output());
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// `status.json`, when there.
    fn status(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.path("data/status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The status of child `name`.
    fn child_status(&self, name: &str) -> Option<Value> {
        let s = self.status()?;
        s["children"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
    }

    /// SIGTERM, then the exit status (at most `within`).
    fn terminate(&mut self, within: Duration) -> ExitStatus {
        signal(self.child.id(), "TERM");
        self.wait_exit(within)
    }

    /// The exit status (at most `within`).
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "sentinel supervise did not exit within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Supervise {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        kill_recorded(self.dir.path());
    }
}

/// SIGKILLs every pid written to a `*.pid` file in `dir` (what children record), and the children
/// named in the status file.
fn kill_recorded(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().extension().is_some_and(|x| x == "pid") {
            for pid in std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .split_whitespace()
            {
                signal_quiet(pid.parse().unwrap_or(0), "KILL");
            }
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("data/status.json")) {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            for c in v["children"].as_array().into_iter().flatten() {
                if let Some(p) = c["pid"].as_u64() {
                    signal_quiet(p as u32, "KILL");
                }
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig} {pid}");
}

fn signal_quiet(pid: u32, sig: &str) {
    if pid > 1 {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state is Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The pid a child wrote to `file` (the last line).
fn read_pid(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// The notify section: one signed webhook, crash notices sent at once.
fn notify_yaml(hook: &WebhookReceiver) -> String {
    format!(
        "notify:\n  channels:\n    hook: {{ type: webhook, url: \"{}\", secret: \"{SECRET}\", timeout: 5s }}\n  routes:\n    - {{ kinds: [crash], channels: [hook], group_wait: 0s, dedup_window: 0s }}\n  retry: {{ base: 100ms, cap: 1s, max_attempts: 20 }}\n",
        hook.url()
    )
}

fn poll<T>(
    within: Duration,
    what: &str,
    out: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}:\n{}",
            out()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (a) SIGKILL a child: it is back within 2 s (a new pid), and the crash notice with its last
/// output lines reaches the webhook receiver, its signature verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_child_is_restarted_and_its_crash_is_notified() {
    let hook = WebhookReceiver::start(SECRET).await;
    let yaml = format!(
        "{}children:\n  - name: app\n    process:\n      command: sh\n      args: [\"-c\", \"echo $$ >> {{dir}}/app.pid; echo app-started; echo second-line; exec sleep 1000\"]\n",
        notify_yaml(&hook)
    );
    let sup = tokio::task::block_in_place(|| Supervise::start(&yaml));
    let pid_file = sup.path("app.pid");
    let first = tokio::task::block_in_place(|| {
        poll(
            Duration::from_secs(20),
            "the child's pid",
            || sup.output(),
            || {
                let p = read_pid(&pid_file)?;
                let st = sup.child_status("app")?;
                (st["pid"].as_u64() == Some(u64::from(p)) && st["state"] == "running").then_some(p)
            },
        )
    });
    // Its output lines are read before it is killed.
    tokio::task::block_in_place(|| {
        poll(
            Duration::from_secs(10),
            "the child's output",
            || sup.output(),
            || sup.output().contains("second-line").then_some(()),
        )
    });
    let killed = Instant::now();
    signal(first, "KILL");
    let second = tokio::task::block_in_place(|| {
        poll(
            Duration::from_secs(20),
            "a restart",
            || sup.output(),
            || read_pid(&pid_file).filter(|p| *p != first),
        )
    });
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "restarted after {took:?}, not within 2 s:\n{}",
        sup.output()
    );
    assert!(alive(second) && !alive(first));
    let st = tokio::task::block_in_place(|| {
        poll(
            Duration::from_secs(10),
            "the restart in status.json",
            || sup.output(),
            || {
                let st = sup.child_status("app")?;
                (st["pid"].as_u64() == Some(u64::from(second))).then_some(st)
            },
        )
    });
    assert_eq!(st["restarts"], 1, "{st}");
    assert_eq!(st["last_exit"]["type"], "signal");
    assert_eq!(st["last_exit"]["signal"], 9);

    let notice = eventually(Duration::from_secs(20), || {
        let got = hook.received();
        async move { got.into_iter().find(|d| d.json["kind"] == "crash") }
    })
    .await;
    assert_eq!(
        notice.json["title"], "app exited (signal 9)",
        "{}",
        notice.json
    );
    let body = notice.json["body"].as_str().unwrap();
    assert!(
        body.contains("Last output:\napp-started\nsecond-line"),
        "{body}"
    );
    assert!(notice.signature.starts_with("sha256="));
    assert!(hook.rejected().is_empty(), "{:?}", hook.rejected());
    let mut sup = sup;
    let status = tokio::task::block_in_place(|| sup.terminate(Duration::from_secs(20)));
    assert!(status.success(), "{status}:\n{}", sup.output());
    assert!(!alive(second), "the child outlived the supervisor");
}

/// (b) A child that exits at once: after `crash_max` restarts it is left down, and a critical
/// "is crash-looping" notice arrives.
/// With a route that folds a flapping child's crashes for minutes (`dedup_window: 5m`, as in
/// deploy/supervise.yml), the crash-loop notice is not held back with them: it arrives at once,
/// under its own title.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_loop_notice_is_not_held_back_by_the_crash_dedup_window() {
    let hook = WebhookReceiver::start(SECRET).await;
    let yaml = format!(
        "notify:\n  channels:\n    hook: {{ type: webhook, url: \"{}\", secret: \"{SECRET}\", timeout: 5s }}\n  routes:\n    - {{ kinds: [crash], channels: [hook], group_wait: 0s, dedup_window: 5m }}\n  retry: {{ base: 100ms, cap: 1s, max_attempts: 20 }}\nchildren:\n  - name: flaky\n    process:\n      command: sh\n      args: [\"-c\", \"echo boom-flaky; exit 7\"]\n    restart: {{ base: 100ms, cap: 400ms, crash_max: 3, crash_window: 1m }}\n",
        hook.url()
    );
    let _sup = tokio::task::block_in_place(|| Supervise::start(&yaml));
    let critical = eventually(Duration::from_secs(20), || {
        let got = hook.received();
        async move {
            got.into_iter().find(|d| {
                d.json["severity"]
                    .as_str()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                    == Some("critical")
            })
        }
    })
    .await;
    assert_eq!(
        critical.json["title"], "flaky is crash-looping: stopped restarting after 3 restarts in 1m",
        "{}",
        critical.json
    );
    // The first crash went out at once; the later ones wait out the window (not asserted).
    assert!(hook
        .received()
        .iter()
        .any(|d| d.json["title"] == "flaky exited (code 7)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_stops_restarting_and_raises_a_critical_notice() {
    let hook = WebhookReceiver::start(SECRET).await;
    let yaml = format!(
        "{}children:\n  - name: flaky\n    process:\n      command: sh\n      args: [\"-c\", \"echo boom-flaky; exit 7\"]\n    restart: {{ base: 100ms, cap: 400ms, crash_max: 3, crash_window: 1m }}\n",
        notify_yaml(&hook)
    );
    let sup = tokio::task::block_in_place(|| Supervise::start(&yaml));
    let critical = eventually(Duration::from_secs(20), || {
        let got = hook.received();
        async move {
            got.into_iter().find(|d| {
                d.json["title"]
                    .as_str()
                    .unwrap_or("")
                    .contains("is crash-looping")
            })
        }
    })
    .await;
    assert_eq!(
        critical.json["severity"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("critical"),
        "{}",
        critical.json
    );
    assert_eq!(
        critical.json["title"],
        "flaky is crash-looping: stopped restarting after 3 restarts in 1m"
    );
    assert!(critical.json["body"]
        .as_str()
        .unwrap()
        .contains("boom-flaky"));
    let st = tokio::task::block_in_place(|| {
        poll(
            Duration::from_secs(10),
            "crash_loop in status.json",
            || sup.output(),
            || {
                sup.child_status("flaky")
                    .filter(|s| s["state"] == "crash_loop")
            },
        )
    });
    assert_eq!(st["restarts"], 3, "{st}");
    // No more restarts: a second later it is still down with the same count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = sup.child_status("flaky").unwrap();
    assert_eq!(later["restarts"], 3);
    assert_eq!(later["state"], "crash_loop");
    assert_eq!(sup.output().matches("\"evt\":\"child_started\"").count(), 4);
    // The earlier crashes were notified too, each signed.
    assert!(
        hook.received()
            .iter()
            .filter(|d| d.json["kind"] == "crash")
            .count()
            >= 2
    );
    assert!(hook.rejected().is_empty());
}

/// (c) SIGTERM: children stop in reverse start order, one ignoring SIGTERM is SIGKILLed after its
/// grace, and the supervisor exits 0.
#[test]
fn sigterm_stops_children_in_reverse_order_and_exits_zero() {
    let polite = |name: &str| {
        format!(
            "  - name: {name}\n    process:\n      command: sh\n      args: [\"-c\", \"trap 'echo {name} >> {{dir}}/order; exit 0' TERM; echo $$ > {{dir}}/{name}.pid; while true; do sleep 0.1; done\"]\n"
        )
    };
    let yaml = format!(
        "notify: {{ channels: {{ log: {{ type: log }} }} }}\nstop_grace: 10s\nchildren:\n{}  - name: stubborn\n    process:\n      command: sh\n      args: [\"-c\", \"trap '' TERM; echo $$ > {{dir}}/stubborn.pid; while true; do sleep 0.1; done\"]\n    stop_grace: 1s\n{}",
        polite("first"),
        polite("last")
    );
    let mut sup = Supervise::start(&yaml);
    let pids: Vec<u32> = ["first", "stubborn", "last"]
        .iter()
        .map(|n| {
            let f = sup.path(&format!("{n}.pid"));
            poll(
                Duration::from_secs(20),
                "the pid files",
                || sup.output(),
                || read_pid(&f),
            )
        })
        .collect();
    let started = Instant::now();
    let status = sup.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", sup.output());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the stubborn child's grace was not waited for"
    );
    let order = std::fs::read_to_string(sup.path("order")).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        ["last", "first"],
        "{order}"
    );
    for p in &pids {
        assert!(!alive(*p), "pid {p} outlived the supervisor");
    }
    let out = sup.output();
    let killed: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("\"evt\":\"child_killed\""))
        .collect();
    assert_eq!(killed.len(), 1, "{out}");
    assert!(killed[0].contains("\"child\":\"stubborn\""), "{out}");
    let first_stopped = out
        .lines()
        .position(|l| l.contains("child_stopped") && l.contains("\"child\":\"first\""))
        .unwrap();
    let stubborn_stopped = out
        .lines()
        .position(|l| l.contains("child_stopped") && l.contains("\"child\":\"stubborn\""))
        .unwrap();
    assert!(stubborn_stopped < first_stopped, "{out}");
    let doc = sup.status().unwrap();
    assert_eq!(doc["state"], "stopped");
    assert!(doc["children"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["state"] == "stopped"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (d) The supervisor keeps Sentinel itself up: a SIGKILLed `sentinel run` answers /ready again
/// within 10 s.
#[test]
fn sentinel_itself_is_brought_back_after_sigkill() {
    let port = free_port();
    let yaml = format!(
        "notify: {{ channels: {{ log: {{ type: log }} }} }}\nchildren:\n  - name: sentinel\n    process:\n      command: {BIN}\n      args: [run, --data-dir, \"{{dir}}/sentinel-data\", --listen, \"127.0.0.1:{port}\"]\n      cwd: \"{{dir}}\"\n    probe: {{ http: \"http://127.0.0.1:{port}/ready\", interval: 1s, timeout: 1s, start_period: 30s }}\n"
    );
    let sup = Supervise::start(&yaml);
    let ready = format!("http://127.0.0.1:{port}/ready");
    poll(
        Duration::from_secs(30),
        "sentinel ready",
        || sup.output(),
        || (blocking_get_status(&ready) == Some(200)).then_some(()),
    );
    let first = poll(
        Duration::from_secs(10),
        "the daemon's pid",
        || sup.output(),
        || sup.child_status("sentinel")?["pid"].as_u64(),
    ) as u32;
    let killed = Instant::now();
    signal(first, "KILL");
    poll(
        Duration::from_secs(10),
        "the daemon down",
        || sup.output(),
        || (blocking_get_status(&ready) != Some(200)).then_some(()),
    );
    poll(
        Duration::from_secs(10),
        "sentinel ready again",
        || sup.output(),
        || (blocking_get_status(&ready) == Some(200)).then_some(()),
    );
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(10), "back after {took:?}");
    let st = poll(
        Duration::from_secs(10),
        "the new pid",
        || sup.output(),
        || {
            sup.child_status("sentinel")
                .filter(|s| s["pid"].as_u64().is_some_and(|p| p as u32 != first))
        },
    );
    assert_eq!(st["restarts"], 1, "{st}");
    assert!(!alive(first));
    let new = st["pid"].as_u64().unwrap() as u32;
    let mut sup = sup;
    let status = sup.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", sup.output());
    assert!(!alive(new), "the daemon outlived the supervisor");
    // The daemon was stopped cleanly (SIGTERM), not killed.
    assert!(sup
        .output()
        .contains("\"child\":\"sentinel\",\"evt\":\"child_stopped\""));
}

/// (e) `sentinel run` with a `supervise:` section: the heartbeat lists the child with its state and
/// restarts, a killed child is restarted, and the daemon stops it at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_supervises_and_its_heartbeat_lists_the_children() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "supervise:\n  children:\n    - name: worker\n      process:\n        command: sh\n        args: [\"-c\", \"echo $$ >> {d}/worker.pid; exec sleep 1000\"]\n      restart: {{ base: 100ms }}\n"
        ),
    )
    .unwrap();
    let guard = PidGuard(dir.path().join("worker.pid"));
    let daemon = tokio::task::block_in_place(|| Daemon::start_in(dir, &[]));
    let c = daemon.client();
    let heartbeat = || {
        let c = c.clone();
        let url = daemon.url("/v1/system/heartbeat");
        let key = daemon.key.clone();
        async move {
            let r = c.get(url).header("X-API-Key", key).send().await.ok()?;
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.ok()?;
            v["children"].as_array()?.first().cloned()
        }
    };
    let child = eventually(Duration::from_secs(20), || {
        let h = heartbeat();
        async move {
            h.await
                .filter(|c| c["state"] == "running" && c["pid"].is_u64())
        }
    })
    .await;
    assert_eq!(child["name"], "worker");
    assert_eq!(child["kind"], "process");
    assert_eq!(child["restarts"], 0);
    let first = child["pid"].as_u64().unwrap() as u32;
    assert_eq!(read_pid(&guard.0), Some(first));
    signal(first, "KILL");
    let again = eventually(Duration::from_secs(20), || {
        let h = heartbeat();
        async move {
            h.await
                .filter(|c| c["restarts"] == 1 && c["state"] == "running" && c["pid"] != first)
        }
    })
    .await;
    assert_eq!(again["last_exit"]["signal"], 9, "{again}");
    let second = again["pid"].as_u64().unwrap() as u32;
    let (_dir, out) = tokio::task::block_in_place(|| daemon.stop());
    assert!(!alive(second), "the child outlived the daemon:\n{out}");
    assert!(out.contains("\"evt\":\"supervise_ready\""), "{out}");
}

/// Kills every pid written to the file when dropped.
struct PidGuard(PathBuf);

impl Drop for PidGuard {
    fn drop(&mut self) {
        for pid in std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .split_whitespace()
        {
            signal_quiet(pid.parse().unwrap_or(0), "KILL");
        }
    }
}

/// `--check` prints the effective configuration with the secret masked; a bad file exits 2 listing
/// every problem; `status` answers 0 while the supervisor runs and 1 once it stopped.
#[test]
fn check_and_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.yml"),
        format!(
            "data_dir: {}/data\nnotify:\n  channels:\n    hook: {{ type: webhook, url: \"http://127.0.0.1:9/hook\", secret: \"{SECRET}\" }}\nchildren:\n  - {{ name: a, process: {{ command: sleep, args: [\"1000\"] }} }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = command(dir.path())
        .args(["supervise", "--config", "good.yml", "--check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("name: a") && text.contains("***"), "{text}");
    assert!(!text.contains(SECRET), "{text}");

    std::fs::write(
        dir.path().join("bad.yml"),
        "children:\n  - { name: \"bad name\", process: { command: \"\" } }\n  - { name: b, process: { command: x }, restart: { jitter: 5 } }\n",
    )
    .unwrap();
    let out = command(dir.path())
        .args(["supervise", "--config", "bad.yml", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("problem(s)"), "{err}");
    // A program that is not there is a WARNING (it may be installed later), not a problem.
    std::fs::write(
        dir.path().join("noprog.yml"),
        format!(
            "data_dir: {}/data4\nchildren:\n  - {{ name: a, process: {{ command: /nonexistent/sentinel-test-prog }} }}\n  - {{ name: b, process: {{ command: no-such-prog-sentinel-test }} }}\n  - {{ name: c, process: {{ command: sh }} }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = command(dir.path())
        .args(["supervise", "--config", "noprog.yml", "--check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "WARNING: children[0].process.command: `/nonexistent/sentinel-test-prog` is not a file"
        ),
        "{text}"
    );
    assert!(
        text.contains("WARNING: children[1].process.command: `no-such-prog-sentinel-test` is not found on PATH"),
        "{text}"
    );
    assert!(!text.contains("children[2].process.command"), "{text}");
    assert!(err.contains("children[0].name"), "{err}");
    assert!(err.contains("children[0].process.command"), "{err}");
    assert!(err.contains("children[1].restart.jitter"), "{err}");
    // Running with a bad file is refused the same way.
    let out = command(dir.path())
        .args(["supervise", "--config", "bad.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // What the supervisor refuses at start is a configuration problem too: exit 2.
    std::fs::write(
        dir.path().join("nouser.yml"),
        format!(
            "data_dir: {}/data2\nnotify: {{ channels: {{ log: {{ type: log }} }} }}\nchildren:\n  - {{ name: a, process: {{ command: sleep, args: [\"1000\"], user: no-such-user-sentinel-test }} }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = command(dir.path())
        .args(["supervise", "--config", "nouser.yml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("child \"a\": user"), "{err}");
    // `--check` finds it first, and a channel that cannot be built (a ca_file with no certificate).
    std::fs::write(dir.path().join("nopem.pem"), "not a certificate\n").unwrap();
    std::fs::write(
        dir.path().join("nouser-check.yml"),
        format!(
            "data_dir: {0}/data3\nnotify:\n  channels:\n    mail: {{ type: smtp, host: 127.0.0.1, port: 9, from: a@example.org, to: [b@example.org], ca_file: {0}/nopem.pem }}\n  routes: [{{ channels: [mail] }}]\nchildren:\n  - {{ name: a, process: {{ command: sleep, args: [\"1000\"], user: no-such-user-sentinel-test }} }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = command(dir.path())
        .args(["supervise", "--config", "nouser-check.yml", "--check"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("child \"a\": user"), "{err}");
    let out_text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out_text.contains("children[0].process.command"),
        "{out_text}"
    );
    assert!(
        err.contains("`notify.channels.mail`: cannot be built")
            && err.contains("no PEM certificate"),
        "{err}"
    );

    let status = |dir: &Path| {
        command(dir)
            .args(["supervise", "status", "--config", "good.yml"])
            .output()
            .unwrap()
    };
    let out = status(dir.path());
    assert_eq!(out.status.code(), Some(1), "no supervisor has run yet");
    let mut sup = Supervise::start(
        "notify: { channels: { log: { type: log } } }\nchildren:\n  - { name: a, process: { command: sh, args: [\"-c\", \"echo $$ > {dir}/a.pid; exec sleep 1000\"] } }\n",
    );
    std::fs::write(
        sup.path("good.yml"),
        std::fs::read_to_string(sup.path("supervise.yml")).unwrap(),
    )
    .unwrap();
    let f = sup.path("a.pid");
    let pid = poll(
        Duration::from_secs(20),
        "a's pid",
        || sup.output(),
        || read_pid(&f),
    );
    let out = poll(
        Duration::from_secs(10),
        "status lists a",
        || sup.output(),
        || {
            let out = status(sup.dir.path());
            String::from_utf8_lossy(&out.stdout)
                .contains(&pid.to_string())
                .then_some(out)
        },
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("NAME") && text.contains("running"), "{text}");
    let json = command(sup.dir.path())
        .args(["supervise", "status", "--config", "good.yml", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["alive"], true);
    assert_eq!(v["children"][0]["pid"], pid);
    assert!(sup.terminate(Duration::from_secs(20)).success());
    let out = status(sup.dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));
}

/// Under systemd (`Type=notify`): READY=1 and STATUS once the children are started, WATCHDOG=1
/// at half of WATCHDOG_USEC while it supervises, STOPPING=1 at SIGTERM; the children do not see
/// the notification socket.
#[test]
fn it_tells_systemd_it_is_ready_alive_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    std::fs::write(
        dir.path().join("supervise.yml"),
        format!(
            "data_dir: {d}/data\nnotify: {{ channels: {{ log: {{ type: log }} }} }}\nchildren:\n  - {{ name: one, process: {{ command: sh, args: [\"-c\", \"echo $$ > {d}/one.pid; env > {d}/one.env; exec sleep 1000\"] }} }}\n  - {{ name: two, process: {{ command: sleep, args: [\"1000\"] }} }}\n"
        ),
    )
    .unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["supervise", "--config", "supervise.yml"])
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    capture(child.stdout.take().unwrap(), output.clone());
    capture(child.stderr.take().unwrap(), output.clone());
    let mut sup = Supervise { child, dir, output };
    let mut got: Vec<String> = Vec::new();
    let until = |want: &str, within: Duration, got: &mut Vec<String>| {
        let deadline = Instant::now() + within;
        loop {
            let mut buf = [0u8; 4096];
            if let Ok(n) = listener.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                if got.last().is_some_and(|m| m == want) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {want:?} within {within:?}: {got:?}"
            );
        }
    };
    until("READY=1", Duration::from_secs(20), &mut got);
    until(
        "STATUS=supervising 2 children",
        Duration::from_secs(5),
        &mut got,
    );
    for _ in 0..3 {
        let before = got.len();
        until("WATCHDOG=1", Duration::from_secs(5), &mut got);
        assert!(got.len() > before);
    }
    let env = poll(
        Duration::from_secs(10),
        "one.env",
        || sup.output(),
        || {
            std::fs::read_to_string(sup.path("one.env"))
                .ok()
                .filter(|e| e.contains("PATH="))
        },
    );
    assert!(
        !env.contains("NOTIFY_SOCKET") && !env.contains("WATCHDOG_"),
        "{env}"
    );
    signal(sup.child.id(), "TERM");
    until("STOPPING=1", Duration::from_secs(10), &mut got);
    let status = sup.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", sup.output());
}

/// The standalone supervisor has no API: a crash notice its receiver never took is counted in
/// `status.json` and `supervise status` says so, instead of staying in its outbox unseen.
#[test]
fn undelivered_crash_notices_show_in_the_status() {
    // A port nothing listens on: every attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sup = Supervise::start(&format!(
        "notify:\n  channels:\n    hook: {{ type: webhook, url: \"http://127.0.0.1:{port}/hook\", secret: \"{SECRET}\", timeout: 2s }}\n  routes:\n    - {{ kinds: [crash], channels: [hook], group_wait: 0s, dedup_window: 0s }}\n  retry: {{ base: 100ms, cap: 200ms, max_attempts: 2 }}\nchildren:\n  - name: once\n    process: {{ command: sh, args: [\"-c\", \"echo bye; exit 1\"] }}\n    restart: {{ base: 100ms, crash_max: 1 }}\n"
    ));
    // The crash and the crash loop: two dead letters, once the 5 s refresh has written them.
    let doc = poll(
        Duration::from_secs(30),
        "two dead letters in status.json",
        || sup.output(),
        || sup.status().filter(|s| s["notify"]["outbox_dead"] == 2),
    );
    assert_eq!(doc["notify"]["channels"]["hook"]["dead"], 2, "{doc}");
    let out = command(sup.dir.path())
        .args(["supervise", "status", "--config", "supervise.yml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("notices: 0 sent, 0 waiting in the outbox, 2 dead letter(s)"),
        "{text}"
    );
}
