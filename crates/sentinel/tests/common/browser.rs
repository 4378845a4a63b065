//! The browser acceptance harness: a network namespace of the test's own, holding a real `sentinel`
//! daemon (enforcing with nftables there, never on the host), chromedriver and headless Chromium,
//! driven with fantoccini.
//!
//! [`in_netns`] runs a test on a thread that moved itself into a new namespace (`setns(2)`) before it
//! made its tokio runtime: the runtime's threads, every socket they open and every process they start
//! (the daemon, chromedriver and the browser) live in that namespace, which has nothing but its own
//! loopback. Fixed ports are therefore free in every test. Every process is killed by a drop guard,
//! and the namespace is deleted after the thread ends, whether the test passed or panicked.
//!
//! [`Browser`] records what must never happen on a dashboard page: a JavaScript dialog, a
//! Content-Security-Policy violation (a listener installed through the DevTools protocol before any
//! page script runs, on every document, plus the browser's console log), or the `window.__pwned`
//! canary that the test's payloads set. Screenshots go to `<target>/browser-screenshots/<test>/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use sentinel_testkit::netns::Netns;
use serde_json::{json, Value};
use std::future::Future;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sentinel");
/// The daemon's API inside the namespace.
pub const API: &str = "127.0.0.1:8080";
/// chromedriver inside the namespace.
const DRIVER_PORT: u16 = 9515;
/// How long anything the test waits for may take (generous: the machine is shared).
pub const SOON: Duration = Duration::from_secs(20);

/// Runs `test` on a thread inside a new network namespace (see the module comment); the namespace is
/// deleted afterwards, and a panic of the test is the panic of the caller.
pub fn in_netns<F, Fut>(hint: &str, test: F)
where
    F: FnOnce(Arc<Netns>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let ns = Arc::new(Netns::new(hint).expect("a network namespace (run as root)"));
    let inner = Arc::clone(&ns);
    let joined = std::thread::spawn(move || {
        let host = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let f = std::fs::File::open(format!("/var/run/netns/{}", inner.name())).unwrap();
        rustix::thread::move_into_link_name_space(
            f.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns into the test's namespace");
        let here = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_ne!(host, here, "still in the host's network namespace");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(test(inner));
    })
    .join();
    drop(ns);
    if let Err(p) = joined {
        std::panic::resume_unwind(p);
    }
}

/// The namespace's nftables ruleset (`nft list ruleset` run there).
pub fn ruleset(ns: &Netns) -> String {
    ns.nft_ruleset().unwrap()
}

/// Whether Sentinel's IPv4 block set in the namespace holds `ip`.
pub fn blocked(ns: &Netns, ip: &str) -> bool {
    let rules = ruleset(ns);
    let Some(start) = rules.find("set blocked_v4") else {
        return false;
    };
    let set = &rules[start..];
    let end = set.find("\n\t}").unwrap_or(set.len());
    set[..end].contains(ip)
}

/// A child process killed (and reaped) on drop.
pub struct Guard(pub Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A real `sentinel run` in the namespace, listening on [`API`].
pub struct Sentinel {
    proc: Guard,
    pub dir: tempfile::TempDir,
    pub admin: String,
    log: PathBuf,
}

impl Sentinel {
    /// Starts the daemon in a fresh directory holding `yml` as `sentinel.yml`, once `prepare` (given
    /// the directory) has made whatever the configuration names.
    pub async fn start(yml: impl FnOnce(&Path) -> String) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sentinel.yml"), yml(dir.path())).unwrap();
        let log = dir.path().join("daemon.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--data-dir", "data", "--listen", API])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn sentinel");
        let mut d = Sentinel {
            proc: Guard(Some(child)),
            dir,
            admin: String::new(),
            log,
        };
        let http = plain_client();
        let deadline = Instant::now() + SOON;
        loop {
            let ok = http
                .get(d.url("/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                break;
            }
            if let Some(s) = d.proc.0.as_mut().unwrap().try_wait().unwrap() {
                panic!("sentinel exited ({s}):\n{}", d.output());
            }
            assert!(Instant::now() < deadline, "never ready:\n{}", d.output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d.admin = std::fs::read_to_string(d.dir.path().join("data/admin.key"))
            .unwrap()
            .trim()
            .to_owned();
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{API}{path}")
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new API key of `role`, made by the admin over REST.
    pub async fn new_key(&self, role: &str) -> String {
        let r = plain_client()
            .post(self.url("/v1/keys"))
            .bearer_auth(&self.admin)
            .json(&json!({ "name": format!("browser-{role}"), "role": role }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        v["key"].as_str().unwrap().to_owned()
    }

    /// `GET /v1/decisions` (live decisions) as the admin.
    pub async fn decisions(&self) -> Vec<Value> {
        let r = plain_client()
            .get(self.url("/v1/decisions"))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        match v {
            Value::Array(a) => a,
            Value::Object(mut m) => match m.remove("items") {
                Some(Value::Array(a)) => a,
                other => panic!("no items: {other:?}"),
            },
            other => panic!("decisions: {other}"),
        }
    }
}

/// An HTTP client that follows no redirects.
pub fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A syslog line of sshd, stamped now.
pub fn sshd_line(host: &str, pid: u32, msg: &str) -> String {
    let ts = sentinel_core::Timestamp::now().to_rfc3339();
    format!("{ts} {host} sshd[{pid}]: {msg}")
}

/// Appends `lines` to the log at `path`.
pub fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
}

/// The configuration of a daemon that tails `log` (sshd format) and blocks for real.
pub fn enforcing_yml(log: &Path) -> String {
    let path = log.display().to_string().replace('\'', "''");
    format!(
        "respond:\n  actuators:\n    block_ip: {{ mode: enforce, max_live: 1000 }}\n\
         sources:\n  - {{ type: file, paths: ['{path}'], format: sshd, poll_interval: 50ms }}\n"
    )
}

/// A DevTools-protocol command through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or("")
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.0, "params": self.1 }).to_string();
        (http::Method::POST, Some(body))
    }
}

/// The browser's console log since the last call (chromedriver's `se/log`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// Installed on every new document before its own scripts: CSP violations are kept in
/// `window.__csp` (scripts run through the DevTools protocol are not subject to the page's CSP).
const CSP_RECORDER: &str = "window.__csp = [];\
document.addEventListener('securitypolicyviolation', function (e) {\
  window.__csp.push(e.effectiveDirective + ' blocked ' + e.blockedURI + ' sample ' + e.sample);\
}, true);";

/// Headless Chromium through chromedriver, in the namespace, with what it saw recorded.
pub struct Browser {
    pub c: Client,
    driver: Guard,
    profile: tempfile::TempDir,
    shots: PathBuf,
    n: u32,
    driver_log: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a browser session; screenshots go under `<target>/browser-screenshots/<test>`.
    pub async fn start(test: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let driver_log = profile.path().join("chromedriver.log");
        let out = std::fs::File::create(&driver_log).unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={DRIVER_PORT}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("chromedriver (Debian's chromium-driver package)");
        let driver = Guard(Some(child));
        let http = plain_client();
        let status = format!("http://127.0.0.1:{DRIVER_PORT}/status");
        let deadline = Instant::now() + SOON;
        loop {
            if let Ok(r) = http.get(&status).send().await {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let data_dir = profile.path().join("profile");
        let caps = json!({
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    format!("--user-data-dir={}", data_dir.display()),
                    "--window-size=1280,900",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--password-store=basic",
                ],
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
            .await
            .expect("a Chromium session");
        c.issue_cmd(Cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": CSP_RECORDER }),
        ))
        .await
        .unwrap();
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("browser-screenshots")
            .join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            c,
            driver,
            profile,
            shots,
            n: 0,
            driver_log,
        }
    }

    /// Opens `path` of the daemon's API.
    pub async fn goto(&self, path: &str) {
        self.c.goto(&format!("http://{API}{path}")).await.unwrap();
    }

    /// The current path (and query).
    pub async fn path(&self) -> String {
        let u = self.c.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        }
    }

    /// Saves a screenshot as `NN-step.png`.
    pub async fn shot(&mut self, step: &str) {
        self.n += 1;
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{step}.png", self.n)), png).unwrap();
    }

    /// Waits for an element matching `css`.
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        self.c
            .wait()
            .at_most(SOON)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` within {SOON:?}: {e}"))
    }

    /// The page's `<h1>`.
    pub async fn h1(&self) -> String {
        self.wait("h1").await.text().await.unwrap()
    }

    /// The text of `<body>` as rendered.
    pub async fn text(&self) -> String {
        self.wait("body").await.text().await.unwrap()
    }

    /// Runs `js` (a function body) in the page and answers its value.
    pub async fn js(&self, js: &str) -> Value {
        self.c.execute(js, vec![]).await.unwrap()
    }

    /// Asserts the page is inert: no dialog opened, no CSP violation, the canary unset.
    pub async fn assert_inert(&self, page: &str) {
        if let Ok(text) = self.c.get_alert_text().await {
            panic!("{page}: a dialog opened: {text:?}");
        }
        let v = self
            .js("return [typeof window.__pwned, window.__csp];")
            .await;
        assert_eq!(v[0], "undefined", "{page}: a payload ran");
        assert!(v[1].is_array(), "{page}: the CSP recorder is missing: {v}");
        assert_eq!(v[1], json!([]), "{page}: CSP violations");
        let log = self.c.issue_cmd(BrowserLog).await.unwrap();
        for entry in log.as_array().into_iter().flatten() {
            let msg = entry["message"].as_str().unwrap_or_default();
            assert!(
                !msg.contains("Content Security Policy"),
                "{page}: a CSP violation in the console: {msg}"
            );
        }
    }

    /// The value of the session cookie the daemon set (HttpOnly: only WebDriver sees it).
    pub async fn session_cookie(&self) -> (String, String) {
        let all = self.c.get_all_cookies().await.unwrap();
        let c = all
            .iter()
            .find(|c| c.name().contains("sentinel_session"))
            .unwrap_or_else(|| panic!("no session cookie in {all:?}"));
        assert_eq!(c.http_only(), Some(true), "the session cookie is HttpOnly");
        (c.name().to_owned(), c.value().to_owned())
    }

    /// Logs in on `/ui/login` with `key`; lands on the overview.
    pub async fn login(&mut self, key: &str) {
        self.goto("/ui/login").await;
        self.wait("form#login").await;
        self.shot("login").await;
        self.c
            .find(Locator::Css("#key"))
            .await
            .unwrap()
            .send_keys(key)
            .await
            .unwrap();
        self.c
            .find(Locator::Css("form#login button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait("form#logout").await;
        assert_eq!(self.path().await, "/ui/");
        self.assert_inert("overview").await;
        self.shot("overview").await;
    }

    /// chromedriver's own log (for a failure message).
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(&self.driver_log).unwrap_or_default()
    }

    /// Ends the session and the browser.
    pub async fn close(self) {
        self.c.clone().close().await.unwrap();
    }
}

impl Drop for Browser {
    /// chromedriver's process group, then any browser process still running on this test's profile.
    fn drop(&mut self) {
        if let Some(c) = &self.driver.0 {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
        }
        let profile = self.profile.path().display().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&profile) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
