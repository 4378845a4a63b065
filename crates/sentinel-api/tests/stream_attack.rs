//! The live stream `GET /v1/stream` attacked over real sockets (the real router served by the crate's
//! own server on 127.0.0.1, a real SQLite store, a real WebSocket client): a credential that stops
//! being valid while its stream is open (logout, revoked key), frames a client should never send
//! (text, binary, oversized), a ping flood that must not turn into store reads, cursors this store
//! never gave out, a key in the query string, cookies from other origins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
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
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(20);

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

/// Reads until the server closes: the close code and reason. Panics on an item (nothing may be sent
/// once the credential is gone) or when no close comes.
async fn closed_with(ws: &mut Ws) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the server closes the stream")
            .expect("a close frame before the end");
        match m {
            Ok(Message::Close(Some(c))) => return (u16::from(c.code), c.reason.to_string()),
            Ok(Message::Close(None)) => panic!("closed without a code"),
            Ok(Message::Text(t)) => panic!("a frame after the credential ended: {t}"),
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

fn session_for(s: &Served, key_id: &str) -> String {
    let (token, _) = s.h.state.ui.sessions.open(
        Principal {
            key_id: key_id.into(),
            name: "viewer".into(),
            role: Role::Viewer,
        },
        None,
    );
    token
}

#[tokio::test]
async fn a_logout_ends_a_stream_its_session_opened() {
    let s = start().await;
    let token = session_for(&s, "k-viewer");
    let cookie = format!("{}={token}", s.h.state.ui.sessions.settings().cookie_name());
    let mut ws = connect(
        &s,
        "",
        &[("cookie", cookie), ("origin", format!("http://{}", s.addr))],
    )
    .await
    .unwrap();
    hello(&mut ws).await;
    // What `POST /ui/logout` does on the server.
    assert!(s.h.state.ui.sessions.close(&token));
    raise(
        &s,
        &alert("after_logout", Severity::High, "203.0.113.7", "x".into()),
    )
    .await;
    let (code, reason) = closed_with(&mut ws).await;
    assert_eq!(code, 1008, "{reason}");
    until("the end counted", || {
        sample(
            &s,
            "sentinel_api_stream_disconnected_total",
            "{reason=\"revoked\"}",
        ) == 1.0
    })
    .await;
    gauge_back_to_zero(&s).await;
}

#[tokio::test]
async fn a_revoked_key_ends_its_open_streams() {
    let s = start().await;
    let mut ws = connect(&s, "", &key(&s)).await.unwrap();
    hello(&mut ws).await;
    // The admin's stream goes on.
    let admin = vec![("x-api-key", s.h.admin_key.clone())];
    let mut other = connect(&s, "", &admin).await.unwrap();
    hello(&mut other).await;
    assert!(s.h.state.auth.revoke("k-viewer"));
    let a = alert("after_revoke", Severity::High, "203.0.113.7", "x".into());
    raise(&s, &a).await;
    let (code, _) = closed_with(&mut ws).await;
    assert_eq!(code, 1008);
    assert_eq!(ids(&items(&mut other, 1).await), vec![a.id.to_string()]);
    // And the revoked key cannot open another.
    assert_eq!(refused_status(connect(&s, "", &key(&s)).await), 401);
    drop(other);
    gauge_back_to_zero(&s).await;
}

#[tokio::test]
async fn an_oversized_frame_is_refused_with_1009_and_counted() {
    let s = start().await;
    let mut ws = connect(&s, "", &key(&s)).await.unwrap();
    hello(&mut ws).await;
    // 1 MiB: the server must not buffer it (the default limit would take 64 MiB per stream).
    ws.send(Message::Binary(vec![0u8; 1 << 20].into()))
        .await
        .unwrap();
    let (code, _) = closed_with(&mut ws).await;
    assert_eq!(code, u16::from(CloseCode::Size));
    until("the end counted", || {
        sample(
            &s,
            "sentinel_api_stream_disconnected_total",
            "{reason=\"protocol\"}",
        ) == 1.0
    })
    .await;
    gauge_back_to_zero(&s).await;
}

#[tokio::test]
async fn a_subscribe_message_is_refused_with_1003_saying_why() {
    let s = start().await;
    let mut ws = connect(&s, "", &key(&s)).await.unwrap();
    hello(&mut ws).await;
    ws.send(Message::Text(
        r#"{"type":"subscribe","kind":"event"}"#.into(),
    ))
    .await
    .unwrap();
    let (code, reason) = closed_with(&mut ws).await;
    assert_eq!(code, u16::from(CloseCode::Unsupported));
    assert!(reason.contains("query string"), "{reason}");
    until("the end counted", || {
        sample(
            &s,
            "sentinel_api_stream_disconnected_total",
            "{reason=\"protocol\"}",
        ) == 1.0
    })
    .await;
}

#[tokio::test]
async fn a_ping_flood_causes_no_store_reads() {
    let s = start().await;
    let mut ws = connect(&s, "", &key(&s)).await.unwrap();
    hello(&mut ws).await;
    let before = sample(&s, "sentinel_api_stream_reads_total", "");
    assert!(before >= 1.0, "the first read is counted");
    const PINGS: usize = 500;
    for i in 0..PINGS {
        ws.send(Message::Ping(i.to_string().into_bytes().into()))
            .await
            .unwrap();
    }
    // Every ping answered: the server has seen them all.
    let mut pongs = 0;
    while pongs < PINGS {
        let m = tokio::time::timeout(SOON, ws.next())
            .await
            .expect("pongs")
            .unwrap()
            .unwrap();
        if let Message::Pong(_) = m {
            pongs += 1;
        }
    }
    let reads = sample(&s, "sentinel_api_stream_reads_total", "") - before;
    // Only the once-a-second tick reads while nothing is committed, however fast the pings come.
    assert!(
        reads < (PINGS / 5) as f64,
        "{reads} store reads for {PINGS} pings"
    );
    drop(ws);
    gauge_back_to_zero(&s).await;
}

#[tokio::test]
async fn a_cursor_this_store_never_gave_out_is_refused() {
    let s = start().await;
    let a = alert("seed", Severity::High, "203.0.113.7", "x".into());
    raise(&s, &a).await;
    until("the writes committed", || s.writer.stats().records >= 2).await;
    let head = s.h.store.feed_head().await.unwrap();
    // Ahead of the audit trail: following it would send nothing until the store caught up.
    let ahead = format!("?cursor=st_{}_0", head.audit_seq + 1_000_000);
    assert_eq!(refused_status(connect(&s, &ahead, &key(&s)).await), 400);
    let huge = format!("?cursor=st_{}_{}", i64::MAX, i64::MAX);
    assert_eq!(refused_status(connect(&s, &huge, &key(&s)).await), 400);
    let overflow = "?cursor=st_99999999999999999999_1";
    assert_eq!(refused_status(connect(&s, overflow, &key(&s)).await), 400);
    // An event position past the head (events pruned since) resumes from the head, and what is
    // stored next arrives.
    let past = format!("?kind=event&cursor=st_{}_{}", head.audit_seq, 1_000_000);
    let mut ws = connect(&s, &past, &key(&s)).await.unwrap();
    assert_eq!(
        hello(&mut ws).await,
        format!("st_{}_{}", head.audit_seq, head.event_rowid)
    );
    let e = event("198.51.100.9");
    store_event(&s, &e).await;
    assert_eq!(ids(&items(&mut ws, 1).await), vec![e.id.to_string()]);
    // From the very beginning: everything stored so far, in order.
    let mut ws0 = connect(&s, "?kind=alert&cursor=st_0_0", &key(&s))
        .await
        .unwrap();
    hello(&mut ws0).await;
    assert_eq!(ids(&items(&mut ws0, 1).await), vec![a.id.to_string()]);
    drop((ws, ws0));
    gauge_back_to_zero(&s).await;
}

#[tokio::test]
async fn a_key_in_the_query_string_is_no_credential() {
    let s = start().await;
    for q in [
        format!("?key={}", s.h.viewer_key),
        format!("?api_key={}", s.h.viewer_key),
        format!("?access_token={}", s.h.viewer_key),
    ] {
        assert_eq!(refused_status(connect(&s, &q, &[]).await), 401, "{q}");
    }
    // With a key in the header too, the unknown parameter is still refused.
    let q = format!("?key={}", s.h.viewer_key);
    assert_eq!(refused_status(connect(&s, &q, &key(&s)).await), 400);
}

#[tokio::test]
async fn a_session_cookie_from_any_other_origin_is_refused() {
    let s = start().await;
    let token = session_for(&s, "k-viewer");
    let cookie = format!("{}={token}", s.h.state.ui.sessions.settings().cookie_name());
    let same = format!("http://{}", s.addr);
    for (origin, site) in [
        ("null", None),
        ("http://evil.example", None),
        (same.as_str(), Some("cross-site")),
        (same.as_str(), Some("same-site")),
        (&format!("https://{}.evil.example", s.addr.ip()), None),
        (&format!("http://{}", s.addr.ip()), None),
    ] {
        let mut h = vec![("cookie", cookie.clone()), ("origin", origin.to_owned())];
        if let Some(site) = site {
            h.push(("sec-fetch-site", site.to_owned()));
        }
        assert_eq!(
            refused_status(connect(&s, "", &h).await),
            403,
            "{origin} {site:?}"
        );
    }
    assert!(
        sample(&s, "sentinel_api_stream_open", "") == 0.0,
        "none was opened"
    );
}
