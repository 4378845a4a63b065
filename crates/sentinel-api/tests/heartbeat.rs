//! `GET /v1/system/heartbeat` against a real server on 127.0.0.1: it needs a key, answers the process's
//! facts and hooks, and its task count returns to its baseline after a burst of concurrent requests —
//! slow ones, ones whose client goes away mid-request, ones whose client task is aborted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_api::{AppState, SystemInfo};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The router served on 127.0.0.1:0 until the test ends.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(state: AppState) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = sentinel_api::router(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { addr, task }
}

/// One HTTP/1.1 request on its own connection; the status and the body.
async fn request(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn heartbeat(addr: SocketAddr, key: &str) -> Value {
    let (status, body) = request(
        addr,
        &format!("GET /v1/system/heartbeat HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_heartbeat_needs_a_key_and_answers_the_process_facts() {
    let h = harness().await;
    let children = json!([{"name": "web", "state": "healthy", "restarts": 0}]);
    let hooked = children.clone();
    let state = AppState {
        system: SystemInfo {
            children: Some(Arc::new(move || hooked.clone())),
            notify: Some(Arc::new(|| json!({"outbox_pending": 3, "dead": 1}))),
            ..SystemInfo::default()
        },
        ..h.state.clone()
    };
    let server = serve(state).await;
    let (status, body) = request(
        server.addr,
        "GET /v1/system/heartbeat HTTP/1.1\r\nHost: t\r\n",
        "",
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("uptime"), "{body}");
    let (status, _) = request(
        server.addr,
        "GET /v1/system/heartbeat HTTP/1.1\r\nHost: t\r\nX-API-Key: wrong\r\n",
        "",
    )
    .await;
    assert_eq!(status, 401);

    let v = heartbeat(server.addr, &h.viewer_key).await;
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["pid"], std::process::id());
    assert_eq!(v["ready"], false);
    assert!(v["uptime_secs"].as_u64().is_some(), "{v}");
    assert!(
        sentinel_core::Timestamp::parse_rfc3339(v["started_at"].as_str().unwrap()).is_ok(),
        "{v}"
    );
    // The heartbeat itself is the one request in flight.
    assert_eq!(v["tasks"]["active"], 1, "{v}");
    assert_eq!(v["tasks"]["by_kind"]["http_request"], 1, "{v}");
    assert_eq!(
        v["tasks"]["started"].as_u64().unwrap(),
        v["tasks"]["finished"].as_u64().unwrap() + 1,
        "{v}"
    );
    assert_eq!(v["queues"]["intake"]["capacity"], 1024, "{v}");
    assert_eq!(v["queues"]["intake"]["depth"], 0, "{v}");
    assert_eq!(v["queues"]["store_writer"], Value::Null, "{v}");
    assert_eq!(v["queues"]["notify"]["outbox_pending"], 3, "{v}");
    assert_eq!(v["children"], children, "{v}");

    // Without hooks: no children, no notify queue.
    let plain = serve(h.state.clone()).await;
    let v = heartbeat(plain.addr, &h.admin_key).await;
    assert_eq!(v["children"], json!([]), "{v}");
    assert_eq!(v["queues"]["notify"], Value::Null, "{v}");
}

/// 2,000 concurrent requests: quick reads, `/v1/defend` calls that wait for a pipeline that never
/// answers (until the defend timeout), bodies cut off by the client closing the connection, and
/// client tasks aborted mid-request. While they run the heartbeat shows them; afterwards its count
/// is back to the baseline (the heartbeat itself) and every request started has finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_task_count_converges_after_a_burst_of_requests_some_cancelled() {
    let mut setup = Setup::default();
    setup.settings.defend_timeout = Duration::from_secs(2);
    setup.settings.request_timeout = Duration::from_secs(5);
    let h = harness_with(setup).await;
    // The pipeline end of the intake queue is held and never read: defend calls wait.
    let server = serve(h.state.clone()).await;
    let addr = server.addr;
    let baseline = heartbeat(addr, &h.viewer_key).await;
    assert_eq!(baseline["tasks"]["active"], 1, "{baseline}");

    let key = h.admin_key.clone();
    let mut clients = Vec::new();
    let mut to_abort = Vec::new();
    for i in 0..2_000u32 {
        let key = key.clone();
        let task = tokio::spawn(async move {
            match i % 5 {
                // A quick read.
                0 => {
                    let (status, body) = request(
                        addr,
                        &format!("GET /v1/version HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n"),
                        "",
                    )
                    .await;
                    assert!(status == 200 || status == 503, "{status} {body}");
                }
                // A slow one: defend waits for a plan that never comes.
                1 | 2 => {
                    let (status, body) = request(
                        addr,
                        &format!(
                            "POST /v1/defend HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n\
                             Content-Type: application/json\r\n"
                        ),
                        r#"{"src_ip":"203.0.113.7","failed_logins":3}"#,
                    )
                    .await;
                    // 504/503 (timed out or shed), 429 (queue full).
                    assert!(status >= 400, "{status} {body}");
                }
                // The client promises a body, sends part of it, and hangs up.
                3 => {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let head = format!(
                        "POST /v1/events HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n\
                         Content-Type: application/json\r\nContent-Length: 900\r\n\r\n[{{\"src_ip\":"
                    );
                    s.write_all(head.as_bytes()).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    drop(s);
                }
                // Sends a defend call and waits; this client task is aborted meanwhile.
                _ => {
                    let _ = request(
                        addr,
                        &format!(
                            "POST /v1/defend HTTP/1.1\r\nHost: t\r\nX-API-Key: {key}\r\n\
                             Content-Type: application/json\r\n"
                        ),
                        r#"{"src_ip":"203.0.113.9"}"#,
                    )
                    .await;
                }
            }
        });
        if i % 5 == 4 {
            to_abort.push(task);
        } else {
            clients.push(task);
        }
    }
    // While the slow ones wait, the heartbeat counts them.
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while peak < 50 && Instant::now() < deadline {
        let v = heartbeat(addr, &h.viewer_key).await;
        peak = peak.max(v["tasks"]["by_kind"]["http_request"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        peak >= 50,
        "the heartbeat never saw the burst (peak {peak})"
    );
    for t in &to_abort {
        t.abort();
    }
    for t in clients {
        t.await.unwrap();
    }
    for t in to_abort {
        let _ = t.await;
    }
    // Back to the baseline: only the heartbeat itself, every request started has finished.
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let v = heartbeat(addr, &h.viewer_key).await;
        if v["tasks"]["active"] == 1 || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(last["tasks"]["active"], 1, "did not converge: {last}");
    assert_eq!(last["tasks"]["by_kind"]["http_request"], 1, "{last}");
    let started = last["tasks"]["started"].as_u64().unwrap();
    assert_eq!(
        started,
        last["tasks"]["finished"].as_u64().unwrap() + 1,
        "{last}"
    );
    // The 1,200 quick reads and defend calls all got an answer, so all were counted (the cut-off and
    // aborted ones were too when the server had read their head).
    assert!(started >= 1_200, "{last}");
    // The tracker seen through /metrics agrees.
    assert_eq!(h.state.metrics.tasks.active(), 0);
}
