//! The live stream `GET /v1/stream` over real sockets: the real router served by the crate's own
//! server on 127.0.0.1, a real SQLite store in a temp dir written through the real store writer, and a
//! real WebSocket client (tokio-tungstenite). Auth (key, session cookie only from the same origin),
//! filters, resuming from a cursor with nothing lost or repeated, a client that stops reading closed
//! with 4008 and counted, and the open-streams gauge back at 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use futures::StreamExt;
use sentinel_api::auth::{Principal, Role};
use sentinel_api::serve::{serve, Edge, EdgeSettings};
use sentinel_api::ApiSettings;
use sentinel_core::{
    Alert, AlertId, AuditKind, AuditRecord, Event, Reason, Severity, Subject, Timestamp, TraceId,
};
use sentinel_store::{AuditRow, Record, StoreWriter, WriterOptions};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(20);
/// How long a stream is watched to show that nothing more comes.
const QUIET: Duration = Duration::from_millis(1500);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Served {
    h: Harness,
    addr: SocketAddr,
    writer: StoreWriter,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_with(edge: EdgeSettings) -> Served {
    let mut setup = Setup::default();
    setup.settings = ApiSettings {
        edge,
        ..setup.settings
    };
    let h = harness_with(setup).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let e = Edge::new(h.state.settings.edge.clone(), &h.state.metrics);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = h.app.clone();
    tokio::spawn(async move {
        serve(listener, app, e, async {
            let _ = rx.await;
        })
        .await
    });
    let (writer, _task) = h.store.writer(WriterOptions {
        flush_interval: Duration::from_millis(5),
        ..WriterOptions::default()
    });
    Served {
        h,
        addr,
        writer,
        _stop: tx,
    }
}

async fn start() -> Served {
    start_with(EdgeSettings::default()).await
}

fn alert(scenario: &str, severity: Severity, ip: &str, detail: String) -> Alert {
    Alert {
        id: AlertId::new(),
        ts: Timestamp::now(),
        detector: "test".into(),
        scenario: scenario.into(),
        severity,
        score: 50,
        confidence: 0.9,
        subject: Subject::Ip(ip.parse().unwrap()),
        reasons: vec![Reason {
            code: "test".into(),
            detail,
            weight: 50,
        }],
        evidence: vec![],
        trace_id: TraceId::new(),
    }
}

fn event(ip: &str) -> Event {
    Event {
        src_ip: Some(ip.parse().unwrap()),
        ..filler_event()
    }
}

/// Stores an alert as the recorder does: the record first, then the audit row noting it.
async fn raise(s: &Served, a: &Alert) {
    s.writer.write(Record::Alert(a.clone())).await.unwrap();
    let note = AuditRecord {
        ts: a.ts,
        kind: AuditKind::AlertRaised,
        subject_id: a.id.to_string(),
        trace_id: a.trace_id.clone(),
        summary: format!("alert {}", a.scenario),
        content_hash: None,
    };
    s.writer
        .write(Record::Audit(AuditRow::unlogged(note)))
        .await
        .unwrap();
}

async fn store_event(s: &Served, e: &Event) {
    s.writer.write(Record::Event(e.clone())).await.unwrap();
}

fn url(s: &Served, query: &str) -> String {
    format!("ws://{}/v1/stream{query}", s.addr)
}

async fn connect(
    s: &Served,
    query: &str,
    headers: &[(&'static str, String)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url(s, query).into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    connect_req(req).await
}

async fn connect_req(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

fn key(s: &Served) -> Vec<(&'static str, String)> {
    vec![("x-api-key", s.h.viewer_key.clone())]
}

/// The HTTP status a refused handshake got.
fn refused_status(r: Result<Ws, tokio_tungstenite::tungstenite::Error>) -> u16 {
    match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("not an HTTP refusal: {e}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

/// The next JSON text frame (pings and pongs skipped), or `None` when nothing comes within `wait`.
async fn next_frame(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match m.unwrap() {
            Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

async fn hello(ws: &mut Ws) -> String {
    let f = next_frame(ws, SOON).await.expect("a hello frame");
    assert_eq!(f["type"], "hello", "{f}");
    f["cursor"].as_str().unwrap().to_owned()
}

/// The next `n` items.
async fn items(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        let f = next_frame(ws, SOON)
            .await
            .unwrap_or_else(|| panic!("only {} of {n} items came: {out:?}", out.len()));
        assert_eq!(f["type"], "item", "{f}");
        out.push(f);
    }
    out
}

/// Asserts nothing more comes for a while.
async fn quiet(ws: &mut Ws) {
    if let Some(f) = next_frame(ws, QUIET).await {
        panic!("an unexpected frame: {f}");
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["data"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A sample of `name` with exactly `labels` (e.g. `{reason="slow"}`, or `""`).
fn sample(s: &Served, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{labels} ");
    s.h.state
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < SOON, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gauge_back_to_zero(s: &Served) {
    until("the open-streams gauge back at 0", || {
        sample(s, "sentinel_api_stream_open", "") == 0.0
    })
    .await;
}

#[tokio::test]
async fn a_key_is_required_and_a_viewer_key_is_accepted() {
    let s = start().await;
    assert_eq!(refused_status(connect(&s, "", &[]).await), 401);
    let bad = vec![("x-api-key", "snl_not-a-key".to_owned())];
    assert_eq!(refused_status(connect(&s, "", &bad).await), 401);
    let mut ws = connect(&s, "", &key(&s)).await.unwrap();
    let cursor = hello(&mut ws).await;
    assert!(cursor.starts_with("st_"), "{cursor}");
    let a = alert("ssh_bruteforce", Severity::High, "203.0.113.7", "x".into());
    raise(&s, &a).await;
    let got = items(&mut ws, 1).await;
    assert_eq!(got[0]["kind"], "alert");
    assert_eq!(got[0]["data"]["id"], a.id.to_string());
    assert_eq!(got[0]["data"]["scenario"], "ssh_bruteforce");
    ws.close(None).await.unwrap();
    gauge_back_to_zero(&s).await;
    assert!(
        sample(
            &s,
            "sentinel_api_stream_disconnected_total",
            "{reason=\"client_closed\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn a_session_cookie_opens_the_stream_only_from_the_same_origin() {
    let s = start().await;
    let (token, _) = s.h.state.ui.sessions.open(
        Principal {
            key_id: "k-viewer".into(),
            name: "viewer".into(),
            role: Role::Viewer,
        },
        None,
    );
    let cookie = format!("{}={token}", s.h.state.ui.sessions.settings().cookie_name());
    let same = format!("http://{}", s.addr);
    // Same origin: accepted.
    let mut ws = connect(
        &s,
        "",
        &[("cookie", cookie.clone()), ("origin", same.clone())],
    )
    .await
    .unwrap();
    hello(&mut ws).await;
    ws.close(None).await.unwrap();
    // Another site's page: refused (cross-site WebSocket hijacking).
    let evil = vec![
        ("cookie", cookie.clone()),
        ("origin", "http://evil.example".to_owned()),
    ];
    assert_eq!(refused_status(connect(&s, "", &evil).await), 403);
    // No Origin at all: a browser always sends one; refused too.
    assert_eq!(
        refused_status(connect(&s, "", &[("cookie", cookie.clone())]).await),
        403
    );
    // A closed or unknown session is no credential.
    let unknown = vec![
        ("cookie", "sentinel_session=nope".to_owned()),
        ("origin", same.clone()),
    ];
    assert_eq!(refused_status(connect(&s, "", &unknown).await), 401);
    // The cookie opens only the stream: every other /v1 route stays key-only.
    let r = reqwest::Client::new()
        .get(format!("http://{}/v1/alerts", s.addr))
        .header("cookie", cookie)
        .header("origin", same)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    gauge_back_to_zero(&s).await;
}

#[tokio::test]
async fn bad_filters_and_cursors_are_refused_before_the_upgrade() {
    let s = start().await;
    for q in [
        "?kind=alerts",
        "?severity=huge",
        "?cursor=st_1",
        "?cursor=nope",
        "?unknown=1",
        "?kind=alert&kind=event",
    ] {
        assert_eq!(refused_status(connect(&s, q, &key(&s)).await), 400, "{q}");
    }
    // A plain GET (no handshake) is a 400 too, and says why.
    let r = reqwest::Client::new()
        .get(format!("http://{}/v1/stream", s.addr))
        .header("x-api-key", &s.h.viewer_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(sample(&s, "sentinel_api_stream_open", ""), 0.0);
}

#[tokio::test]
async fn each_filter_sends_what_matches_and_nothing_else() {
    let s = start().await;
    let k = key(&s);
    let mut by_sev = connect(&s, "?severity=high,critical", &k).await.unwrap();
    let mut by_scenario = connect(&s, "?scenario=port_scan", &k).await.unwrap();
    let mut by_subject = connect(&s, "?subject=203.0.113.7&kind=event,alert", &k)
        .await
        .unwrap();
    let mut events_only = connect(&s, "?kind=event", &k).await.unwrap();
    let mut default = connect(&s, "", &k).await.unwrap();
    for ws in [
        &mut by_sev,
        &mut by_scenario,
        &mut by_subject,
        &mut events_only,
        &mut default,
    ] {
        hello(ws).await;
    }
    let low9 = alert("ssh_bruteforce", Severity::Low, "198.51.100.9", "a".into());
    let high9 = alert("port_scan", Severity::High, "198.51.100.9", "b".into());
    let low7 = alert("ssh_bruteforce", Severity::Low, "203.0.113.7", "c".into());
    let crit7 = alert("http_attack", Severity::Critical, "203.0.113.7", "d".into());
    let ev9 = event("198.51.100.9");
    let ev7 = event("203.0.113.7");
    store_event(&s, &ev9).await;
    for a in [&low9, &high9, &low7, &crit7] {
        raise(&s, a).await;
    }
    store_event(&s, &ev7).await;

    let got = items(&mut by_sev, 2).await;
    assert_eq!(ids(&got), vec![high9.id.to_string(), crit7.id.to_string()]);
    quiet(&mut by_sev).await;

    let got = items(&mut by_scenario, 1).await;
    assert_eq!(ids(&got), vec![high9.id.to_string()]);
    quiet(&mut by_scenario).await;

    let mut got = ids(&items(&mut by_subject, 3).await);
    got.sort();
    let mut want = vec![
        low7.id.to_string(),
        crit7.id.to_string(),
        ev7.id.to_string(),
    ];
    want.sort();
    assert_eq!(got, want);
    quiet(&mut by_subject).await;

    let got = items(&mut events_only, 2).await;
    assert!(got.iter().all(|i| i["kind"] == "event"));
    assert_eq!(ids(&got), vec![ev9.id.to_string(), ev7.id.to_string()]);
    quiet(&mut events_only).await;

    // The default: every alert, no event.
    let got = items(&mut default, 4).await;
    assert!(got.iter().all(|i| i["kind"] == "alert"));
    assert_eq!(
        ids(&got),
        [&low9, &high9, &low7, &crit7]
            .iter()
            .map(|a| a.id.to_string())
            .collect::<Vec<_>>()
    );
    quiet(&mut default).await;

    for ws in [by_sev, by_scenario, by_subject, events_only, default] {
        drop(ws);
    }
    gauge_back_to_zero(&s).await;
}

#[tokio::test]
async fn a_reconnect_with_its_cursor_gets_exactly_what_it_missed() {
    let s = start().await;
    let k = key(&s);
    let mut ws = connect(&s, "?kind=alert", &k).await.unwrap();
    hello(&mut ws).await;
    let first: Vec<Alert> = (0..3)
        .map(|i| {
            alert(
                "ssh_bruteforce",
                Severity::High,
                "203.0.113.7",
                format!("first {i}"),
            )
        })
        .collect();
    for a in &first {
        raise(&s, a).await;
    }
    let got = items(&mut ws, 3).await;
    assert_eq!(
        ids(&got),
        first.iter().map(|a| a.id.to_string()).collect::<Vec<_>>()
    );
    let last = got[2]["cursor"].as_str().unwrap().to_owned();
    ws.close(None).await.unwrap();
    drop(ws);

    let missed: Vec<Alert> = (0..4)
        .map(|i| {
            alert(
                "ssh_bruteforce",
                Severity::High,
                "203.0.113.7",
                format!("missed {i}"),
            )
        })
        .collect();
    for a in &missed {
        raise(&s, a).await;
    }
    // Let every write commit before the reconnect: it must come from the replay, not live.
    until("the writes committed", || {
        s.writer.stats().records >= 2 * (first.len() + missed.len()) as u64
    })
    .await;

    let mut ws = connect(&s, &format!("?kind=alert&cursor={last}"), &k)
        .await
        .unwrap();
    assert_eq!(hello(&mut ws).await, last);
    let got = items(&mut ws, 4).await;
    assert_eq!(
        ids(&got),
        missed.iter().map(|a| a.id.to_string()).collect::<Vec<_>>()
    );
    quiet(&mut ws).await;
    // And it goes on live.
    let live = alert(
        "ssh_bruteforce",
        Severity::High,
        "203.0.113.7",
        "live".into(),
    );
    raise(&s, &live).await;
    assert_eq!(ids(&items(&mut ws, 1).await), vec![live.id.to_string()]);
    drop(ws);
    gauge_back_to_zero(&s).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_within_the_bound_and_counted() {
    let send_timeout = Duration::from_secs(1);
    let s = start_with(EdgeSettings {
        ws_send_timeout: send_timeout,
        ..EdgeSettings::default()
    })
    .await;
    // A raw client: the handshake, then it never reads again.
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "GET /v1/stream HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-Key: {}\r\n\r\n",
        s.addr, s.h.viewer_key
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        raw.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    until("the stream open", || {
        sample(&s, "sentinel_api_stream_open", "") == 1.0
    })
    .await;

    // Far more than the socket buffers hold: 400 alerts of 64 KiB each.
    let big = "x".repeat(64 * 1024);
    let written = Instant::now();
    for i in 0..400 {
        let a = alert("flood", Severity::High, "203.0.113.7", format!("{i} {big}"));
        raise(&s, &a).await;
    }
    until("the slow client counted", || {
        sample(
            &s,
            "sentinel_api_stream_disconnected_total",
            "{reason=\"slow\"}",
        ) == 1.0
    })
    .await;
    let took = written.elapsed();
    // Within the bound: writing the records plus the send timeout, on a loaded machine (generous).
    assert!(took < SOON, "closed after {took:?}");
    gauge_back_to_zero(&s).await;
    // The server dropped the connection: reading what was buffered ends at end of stream or reset.
    let mut buf = vec![0u8; 1 << 16];
    let end = tokio::time::timeout(SOON, async {
        loop {
            match raw.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the connection was not closed");
    assert_eq!(
        sample(
            &s,
            "sentinel_api_stream_disconnected_total",
            "{reason=\"client_closed\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn streams_past_the_cap_are_refused_and_counted() {
    let s = start_with(EdgeSettings {
        ws_max_streams: 1,
        ..EdgeSettings::default()
    })
    .await;
    let mut one = connect(&s, "", &key(&s)).await.unwrap();
    hello(&mut one).await;
    assert_eq!(refused_status(connect(&s, "", &key(&s)).await), 503);
    assert_eq!(sample(&s, "sentinel_api_stream_refused_total", ""), 1.0);
    one.close(None).await.unwrap();
    drop(one);
    gauge_back_to_zero(&s).await;
    // The slot is free again.
    let mut two = connect(&s, "", &key(&s)).await.unwrap();
    hello(&mut two).await;
}

/// The dashboard's live feed: the page carries a real stream cursor (`ol#feed[data-resume]`), and a
/// stream opened from it — as live.js does, with the session cookie from the same origin — sends
/// exactly what was committed after the page was read: not what the page shows, nothing missed.
#[tokio::test]
async fn the_live_page_cursor_resumes_exactly_after_what_it_shows() {
    let s = start().await;
    let shown = alert(
        "ssh_bruteforce",
        Severity::High,
        "203.0.113.7",
        "old".into(),
    );
    raise(&s, &shown).await;
    until("the first alert committed", || {
        s.writer.stats().records >= 2
    })
    .await;

    let (token, _) = s.h.state.ui.sessions.open(
        Principal {
            key_id: "k-viewer".into(),
            name: "viewer".into(),
            role: Role::Viewer,
        },
        None,
    );
    let cookie = format!("{}={token}", s.h.state.ui.sessions.settings().cookie_name());
    let page = reqwest::Client::new()
        .get(format!("http://{}/ui/live", s.addr))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("data-id=\"{}\"", shown.id)),
        "the page shows the alert already stored:\n{html}"
    );
    let resume = html
        .split("data-resume=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no data-resume on the feed:\n{html}"))
        .to_owned();
    assert!(
        resume.parse::<sentinel_store::FeedCursor>().is_ok(),
        "not a stream cursor: {resume}"
    );

    // Committed after the page was rendered, before the socket opens.
    let after = alert(
        "port_scan",
        Severity::Critical,
        "198.51.100.9",
        "new".into(),
    );
    raise(&s, &after).await;
    until("the second alert committed", || {
        s.writer.stats().records >= 4
    })
    .await;

    let mut ws = connect(
        &s,
        &format!("?kind=alert,action&cursor={resume}"),
        &[("cookie", cookie), ("origin", format!("http://{}", s.addr))],
    )
    .await
    .unwrap();
    assert_eq!(hello(&mut ws).await, resume);
    let got = items(&mut ws, 1).await;
    assert_eq!(ids(&got), vec![after.id.to_string()]);
    quiet(&mut ws).await;
    drop(ws);
    gauge_back_to_zero(&s).await;
}
