//! `demo-target --kind http`: a tiny web application with a login form, served by the API's own
//! hardened connection server ([`sentinel_api::serve`]: connection cap, header-read and idle timeouts),
//! and the nginx "combined" access log it writes for Sentinel to read.
//!
//! With `--exploitable` it answers a ThinkPHP CVE-2018-20062 request (the markers of Sentinel's own
//! built-in list `thinkphp_rce`) as a vulnerable server would, and appends to `--falco-log` the alert
//! a runtime-security agent (Falco, `file_output` with `json_output: true`) would have written for the
//! shell that request starts. Nothing is ever executed: the answer is a fixed text.

use super::demo_target::{nginx_escape, percent_decode, AppendLog, Limits};
use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Request targets longer than this are answered 414 (nginx's default `large_client_header_buffers`).
const MAX_TARGET: usize = 8 * 1024;
/// Largest login form read.
const MAX_FORM: usize = 4 * 1024;
/// Longest User-Agent or Referer written to the access log.
const MAX_HEADER_LOGGED: usize = 1024;
/// The Falco rule the simulated compromise raises.
const FALCO_RULE: &str = "Terminal shell in container";
/// The account the simulated web server runs as.
const WEB_USER: &str = "svcuser";
const WEB_UID: u32 = 1000;

/// The web application's state.
pub struct Web {
    name: String,
    user: String,
    password: String,
    log: Option<Arc<AppendLog>>,
    falco: Option<Arc<AppendLog>>,
    /// The built-in `thinkphp_rce` markers, lower case (empty without `--exploitable`).
    markers: Vec<String>,
    logins_failed: AtomicU64,
    exploited: AtomicU64,
}

impl Web {
    /// The application named `name`; `falco` set makes it exploitable.
    pub fn new(
        name: String,
        user: String,
        password: String,
        log: Option<Arc<AppendLog>>,
        falco: Option<Arc<AppendLog>>,
    ) -> Web {
        let markers = match falco {
            Some(_) => sentinel_detect::scenario::data::list("thinkphp_rce")
                .unwrap_or_default()
                .into_iter()
                .map(str::to_ascii_lowercase)
                .collect(),
            None => Vec::new(),
        };
        Web {
            name,
            user,
            password,
            log,
            falco,
            markers,
            logins_failed: AtomicU64::new(0),
            exploited: AtomicU64::new(0),
        }
    }
}

/// Serves the application on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    web: Web,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if web.falco.is_some() && web.markers.is_empty() {
        anyhow::bail!(
            "the built-in list thinkphp_rce is missing: --exploitable would match nothing"
        );
    }
    let log = web.log.clone();
    serve_http(listener, router(Arc::new(web), log), limits, shutdown).await
}

/// Serves `router` with the API's connection server under `limits`.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = sentinel_pipeline::metrics::Metrics::new();
    let settings = sentinel_api::serve::EdgeSettings {
        max_connections: limits.max_connections,
        header_read_timeout: limits.idle,
        idle_timeout: limits.idle,
        shutdown_grace: Duration::from_secs(1),
        ..Default::default()
    };
    let edge = sentinel_api::serve::Edge::with_prefix(settings, &metrics, "sentinel_demo");
    sentinel_api::serve::serve(listener, router, edge, shutdown).await?;
    tracing::info!(evt = "demo_target_stopped");
    Ok(())
}

/// The routes, with the access log (when there is one) around them.
pub fn router(web: Arc<Web>, log: Option<Arc<AppendLog>>) -> Router {
    let app = Router::new()
        .route("/ready", get(|| async { "ready" }))
        .route("/", get(index))
        .route("/login", post(login))
        .fallback(fallback)
        .with_state(web);
    with_access_log(app, log)
}

/// `router` with every request appended to `log` as an nginx combined line, and request targets
/// over [`MAX_TARGET`] answered 414.
pub fn with_access_log(router: Router, log: Option<Arc<AppendLog>>) -> Router {
    let router = router.layer(middleware::from_fn(refuse_long_target));
    match log {
        Some(log) => router.layer(middleware::from_fn_with_state(log, access_log)),
        None => router,
    }
}

async fn refuse_long_target(req: Request, next: Next) -> Response {
    if req.uri().to_string().len() > MAX_TARGET {
        return (StatusCode::URI_TOO_LONG, "request target too long\n").into_response();
    }
    next.run(req).await
}

/// The client's address as the access log writes it (an IPv4-mapped IPv6 address as IPv4).
pub fn peer_ip(req_ext: &axum::http::Extensions) -> Option<IpAddr> {
    req_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())
}

async fn access_log(State(log): State<Arc<AppendLog>>, req: Request, next: Next) -> Response {
    let peer = peer_ip(req.extensions());
    let request = format!("{} {} {:?}", req.method(), req.uri(), req.version());
    let referer = header_bytes(req.headers(), header::REFERER);
    let agent = header_bytes(req.headers(), header::USER_AGENT);
    let resp = next.run(req).await;
    let bytes = resp.body().size_hint().exact().unwrap_or(0);
    log.line(&combined_line(
        peer,
        OffsetDateTime::now_utc(),
        request.as_bytes(),
        resp.status().as_u16(),
        bytes,
        referer.as_deref(),
        agent.as_deref(),
    ));
    resp
}

/// An address for the JSON log (`-` when unknown).
pub fn shown_ip(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
}

fn header_bytes(h: &HeaderMap, name: header::HeaderName) -> Option<Vec<u8>> {
    h.get(name).map(|v| v.as_bytes().to_vec())
}

/// One line of nginx's `combined` format:
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"
/// "$http_user_agent"`, the time in UTC.
pub fn combined_line(
    peer: Option<IpAddr>,
    at: OffsetDateTime,
    request: &[u8],
    status: u16,
    bytes: u64,
    referer: Option<&[u8]>,
    agent: Option<&[u8]>,
) -> String {
    let fmt = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    let when = at
        .to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "01/Jan/1970:00:00:00 +0000".into());
    let quoted = |v: Option<&[u8]>| match v {
        Some(v) if !v.is_empty() => nginx_escape(v, MAX_HEADER_LOGGED),
        _ => "-".to_owned(),
    };
    format!(
        "{} - - [{when}] \"{}\" {status} {bytes} \"{}\" \"{}\"",
        peer.map_or_else(|| "0.0.0.0".to_owned(), |p| p.to_string()),
        nginx_escape(request, MAX_TARGET + 32),
        quoted(referer),
        quoted(agent),
    )
}

async fn index(State(web): State<Arc<Web>>) -> Html<String> {
    let name = html_escape(&web.name);
    Html(format!(
        "<!doctype html>\n<html><head><title>{name}</title></head><body>\n<h1>{name}</h1>\n\
         <p>Sentinel demonstration target.</p>\n<form method=\"post\" action=\"/login\">\n\
         <input name=\"user\" placeholder=\"user\"> <input name=\"pass\" type=\"password\" \
         placeholder=\"password\"> <button>Log in</button>\n</form>\n</body></html>\n"
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn login(State(web): State<Arc<Web>>, req: Request) -> Response {
    let peer = peer_ip(req.extensions());
    let body = match read_body(req.into_body(), MAX_FORM).await {
        Ok(b) => b,
        Err(status) => return (status, "bad request\n").into_response(),
    };
    let text = String::from_utf8_lossy(&body);
    let (mut user, mut pass) = (None, None);
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(k, true).as_str() {
            "user" => user = Some(percent_decode(v, true)),
            "pass" => pass = Some(percent_decode(v, true)),
            _ => {}
        }
    }
    let user = user.unwrap_or_default();
    let ok = user == web.user && pass.as_deref() == Some(web.password.as_str());
    let shown: String = user.chars().take(64).collect();
    if ok {
        tracing::info!(evt = "login", ok = true, user = %shown, peer = %shown_ip(peer));
        (
            StatusCode::OK,
            format!("welcome, {}\n", html_escape(&shown)),
        )
            .into_response()
    } else {
        let failed = web.logins_failed.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(evt = "login", ok = false, user = %shown, peer = %shown_ip(peer), failed);
        (StatusCode::UNAUTHORIZED, "login failed\n").into_response()
    }
}

/// The request body, at most `max` bytes, arriving within 10 seconds (413 when larger, 408 when slower).
pub async fn read_body(body: Body, max: usize) -> Result<axum::body::Bytes, StatusCode> {
    match tokio::time::timeout(Duration::from_secs(10), axum::body::to_bytes(body, max)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
    }
}

async fn fallback(State(web): State<Arc<Web>>, req: Request) -> Response {
    let target = req.uri().to_string();
    if web.falco.is_some() && thinkphp_exploit(&target, &web.markers) {
        return exploited(&web, &target, peer_ip(req.extensions()));
    }
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Whether `target` (path and query as sent) carries one of `markers` (lower case) once decoded as
/// Sentinel's scenario decodes it: percent-decoding (twice, for double encoding) and nginx's `\x5C`.
pub fn thinkphp_exploit(target: &str, markers: &[String]) -> bool {
    let once = percent_decode(target, false);
    let twice = percent_decode(&once, false);
    let text = twice
        .replace("\\x5C", "\\")
        .replace("\\x5c", "\\")
        .to_ascii_lowercase();
    markers.iter().any(|m| text.contains(m.as_str()))
}

/// The shell command the request asks for (`vars[1][]=…`), as the exploit's `system()` would run it.
pub fn exploit_command(target: &str) -> String {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let cmd = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        matches!(percent_decode(k, true).as_str(), "vars[1][]" | "vars[1][0]")
            .then(|| percent_decode(v, true))
    });
    let cmd: String = cmd
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "id".to_owned())
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!("sh -c {cmd}")
}

fn exploited(web: &Web, target: &str, peer: Option<IpAddr>) -> Response {
    let n = web.exploited.fetch_add(1, Ordering::Relaxed) + 1;
    let cmdline = exploit_command(target);
    let host = super::demo_target::host_name();
    let line = falco_alert(
        OffsetDateTime::now_utc(),
        &host,
        &web.name,
        &container_id(&host),
        &cmdline,
        peer,
    );
    if let Some(falco) = &web.falco {
        falco.line(&line);
    }
    tracing::warn!(evt = "simulated_compromise", peer = %shown_ip(peer), cmdline = %cmdline, count = n);
    // What `system('id')` would have printed; nothing was run.
    let body = if cmdline == "sh -c id" {
        format!(
            "uid={WEB_UID}({WEB_USER}) gid={WEB_UID}({WEB_USER}) groups={WEB_UID}({WEB_USER})\n"
        )
    } else {
        String::new()
    };
    (StatusCode::OK, body).into_response()
}

/// One alert as Falco writes it with `json_output: true` to `file_output` (top-level `hostname`,
/// `output`, `priority`, `rule`, `source`, `tags`, `time` with nanoseconds, and `output_fields`; the
/// `output` text starts with the event's time and the priority, as with `time_format_iso_8601: false`).
pub fn falco_alert(
    at: OffsetDateTime,
    host: &str,
    container_name: &str,
    container_id: &str,
    cmdline: &str,
    peer: Option<IpAddr>,
) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let rfc = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    let clock = time::macros::format_description!("[hour]:[minute]:[second].[subsecond digits:9]");
    let time = at.format(&rfc).unwrap_or_default();
    let clock = at.format(&clock).unwrap_or_default();
    let output = format!(
        "{clock}: Critical A shell was spawned in a container with an attached terminal \
         (evt_type=execve user={WEB_USER} user_uid={WEB_UID} user_loginuid=-1 process=sh \
         proc_exepath=/bin/sh parent=php-fpm command={cmdline} terminal=34816 \
         container_id={container_id} container_name={container_name})"
    );
    json!({
        "hostname": host,
        "output": output,
        "priority": "Critical",
        "rule": FALCO_RULE,
        "source": "syscall",
        "tags": ["container", "mitre_execution", "shell"],
        "time": time,
        "output_fields": {
            "container.id": container_id,
            "container.name": container_name,
            "evt.time": i64::try_from(at.unix_timestamp_nanos()).unwrap_or(0),
            "evt.type": "execve",
            "fd.rip": peer.map(|p| p.to_string()),
            "proc.cmdline": cmdline,
            "proc.exepath": "/bin/sh",
            "proc.name": "sh",
            "proc.pname": "php-fpm",
            "proc.tty": 34816,
            "user.loginuid": -1,
            "user.name": WEB_USER,
            "user.uid": WEB_UID,
        },
    })
    .to_string()
}

/// The container's short id (12 hex digits) as Falco reports it: from `/proc/self/cgroup` (cgroup
/// v1), else `/proc/self/mountinfo` (cgroup v2: Docker bind-mounts `…/containers/<id>/hostname`),
/// else the host name when it is one (Docker's default), else the host name as it is.
pub fn container_id(host: &str) -> String {
    ["/proc/self/cgroup", "/proc/self/mountinfo"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|text| long_hex_id(&text).map(|id| id[..12].to_owned()))
        .unwrap_or_else(|| host.chars().take(12).collect())
}

/// The first run of exactly 64 hex digits in `text` (a container's full id).
fn long_hex_id(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let mut start = 0;
    while start < b.len() {
        if !b[start].is_ascii_hexdigit() {
            start += 1;
            continue;
        }
        let end = b[start..]
            .iter()
            .position(|c| !c.is_ascii_hexdigit())
            .map_or(b.len(), |n| start + n);
        if end - start == 64 {
            return text.get(start..end);
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sentinel_ingest::{LogKind, ParseCtx};

    fn markers() -> Vec<String> {
        sentinel_detect::scenario::data::list("thinkphp_rce")
            .unwrap()
            .into_iter()
            .map(str::to_ascii_lowercase)
            .collect()
    }

    #[test]
    fn a_combined_line_is_read_by_sentinels_access_parser() {
        let at = OffsetDateTime::from_unix_timestamp(1_796_119_200).unwrap();
        let line = combined_line(
            Some("203.0.113.7".parse().unwrap()),
            at,
            b"POST /login HTTP/1.1",
            401,
            12,
            None,
            Some(b"curl/8 \"x\""),
        );
        assert_eq!(
            line,
            "203.0.113.7 - - [01/Dec/2026:10:00:00 +0000] \"POST /login HTTP/1.1\" 401 12 \"-\" \"curl/8 \\x22x\\x22\""
        );
        let p = sentinel_ingest::parse::by_name("nginx")
            .unwrap()
            .parse(&line, &ParseCtx::default())
            .unwrap();
        assert_eq!(p.kind, LogKind::HttpRequest);
        assert_eq!(p.src_ip, Some("203.0.113.7".parse().unwrap()));
        let f = |k: &str| {
            p.fields
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(f("method").as_deref(), Some("POST"));
        assert_eq!(f("status").as_deref(), Some("401"));
        assert_eq!(f("path").as_deref(), Some("/login"));
    }

    #[test]
    fn the_thinkphp_shapes_are_recognised_and_others_are_not() {
        let m = markers();
        for t in [
            "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=system&vars[1][]=id",
            "/index.php?s=/Index/%5Cthink%5Capp/invokefunction&function=call_user_func_array&vars%5B0%5D=system&vars%5B1%5D%5B%5D=id",
            "/index.php?s=%255Cthink%255Capp/invokefunction&function=call_user_func_array&vars[0]=md5",
            "/?s=index/\\think\\Container/invokefunction&function=call_user_func_array&vars[0]=system",
        ] {
            assert!(thinkphp_exploit(t, &m), "{t}");
        }
        for t in [
            "/",
            "/index.php?s=/Index/think/app",
            "/login?function=call_user_func_array",
        ] {
            assert!(!thinkphp_exploit(t, &m), "{t}");
        }
        assert!(!thinkphp_exploit(
            "/index.php?s=\\think\\app/invokefunction&function=call_user_func_array&vars",
            &[]
        ));
    }

    #[test]
    fn the_command_comes_from_the_request_and_is_bounded() {
        assert_eq!(
            exploit_command("/index.php?s=x&vars[0]=system&vars%5B1%5D%5B%5D=id"),
            "sh -c id"
        );
        assert_eq!(
            exploit_command("/index.php?s=x&vars[1][]=uname+-a"),
            "sh -c uname -a"
        );
        assert_eq!(exploit_command("/index.php?s=x"), "sh -c id");
        assert_eq!(exploit_command("/?vars[1][]=a%0Ab"), "sh -c a?b");
        assert_eq!(
            exploit_command(&format!("/?vars[1][]={}", "x".repeat(1000))).len(),
            206
        );
    }

    #[test]
    fn the_falco_alert_has_falcos_shape() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_796_119_200_123_456_789).unwrap();
        let line = falco_alert(
            at,
            "0123456789ab",
            "web1",
            "0123456789ab",
            "sh -c id",
            Some("203.0.113.7".parse().unwrap()),
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2026-12-01T10:00:00.123456789Z");
        assert_eq!(v["rule"], FALCO_RULE);
        assert_eq!(v["priority"], "Critical");
        assert_eq!(v["source"], "syscall");
        assert_eq!(v["hostname"], "0123456789ab");
        assert!(v["output"]
            .as_str()
            .unwrap()
            .starts_with("10:00:00.123456789: Critical A shell was spawned"));
        assert!(v["output"]
            .as_str()
            .unwrap()
            .contains("container_name=web1"));
        let f = &v["output_fields"];
        assert_eq!(f["container.name"], "web1");
        assert_eq!(f["container.id"], "0123456789ab");
        assert_eq!(f["proc.cmdline"], "sh -c id");
        assert_eq!(f["user.name"], "svcuser");
        assert_eq!(f["fd.rip"], "203.0.113.7");
        assert_eq!(f["evt.time"], 1_796_119_200_123_456_789_i64);
        assert_eq!(v["tags"], json!(["container", "mitre_execution", "shell"]));
    }

    #[test]
    fn a_container_id_is_found_in_cgroup_and_mountinfo_text() {
        let id = "4f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
        assert_eq!(long_hex_id(&format!("12:pids:/docker/{id}\n")), Some(id));
        assert_eq!(
            long_hex_id(&format!(
                "612 600 0:30 /docker/containers/{id}/hostname /etc/hostname rw\n"
            )),
            Some(id)
        );
        assert_eq!(long_hex_id("0::/\n"), None);
        assert_eq!(long_hex_id(&format!("{id}0")), None);
    }
}
