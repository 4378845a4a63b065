//! SIGTERM during a slow NDJSON stream: the stream is answered, not cut. A client trickling lines when
//! Sentinel begins to stop gets a `503` whose report says how many lines were stored and after which
//! line nothing was read; the daemon then drains without hitting its request deadline, and a restart
//! finds exactly the lines the answer acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const KIND: &str = "drain-trickle";

fn chunk(s: &mut TcpStream, data: &str) {
    write!(s, "{:x}\r\n{data}\r\n", data.len()).unwrap();
    s.flush().unwrap();
}

async fn stored(d: &Daemon) -> Vec<String> {
    let r = d
        .client()
        .get(d.url(&format!("/v1/events?kind={KIND}&limit=100")))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    let mut targets: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap_or_default().to_owned())
        .collect();
    targets.sort();
    targets
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_answers_a_trickling_stream_with_what_it_stored() {
    let mut d = Daemon::start(&[]);
    let host = d.base.strip_prefix("http://").unwrap().to_owned();
    let mut s = TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/events/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
        d.key
    )
    .unwrap();
    // Five whole lines, one chunk each, then half of a sixth.
    for i in 1..=5 {
        chunk(
            &mut s,
            &format!(
                "{{\"kind\":\"{KIND}\",\"src_ip\":\"198.51.100.{i}\",\"target\":\"line-{i}\"}}\n"
            ),
        );
    }
    chunk(&mut s, &format!("{{\"kind\":\"{KIND}\",\"target\":\"li"));
    // The five are read (and, being acknowledged work, committed at once) while the stream stays open.
    let want: Vec<String> = (1..=5).map(|i| format!("line-{i}")).collect();
    eventually(Duration::from_secs(10), || async {
        (stored(&d).await == want).then_some(())
    })
    .await;

    // SIGTERM while the client is still sending: read the answer on the same connection.
    let reader = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    let status = d.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}:\n{}", d.output());
    let answer = reader.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "the stream was cut without an answer:\n{answer:?}\n{}",
        d.output()
    );
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let json_start = body.find('{').unwrap();
    let json_end = body.rfind('}').unwrap();
    let v: Value = serde_json::from_str(&body[json_start..=json_end]).unwrap();
    assert_eq!(v["report"]["accepted"], 5, "{v}");
    assert_eq!(v["report"]["rejected"], 0, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lines after line 5 were not read"),
        "{v}"
    );
    // Nothing was left for the drain deadline to cut.
    let out = d.output();
    assert!(!out.contains("server_drain_timeout"), "{out}");

    // What was acknowledged is what a restart finds.
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    drop(d);
    let d = Daemon::start_in(dir, &[]);
    assert_eq!(stored(&d).await, want);
    let _ = d.stop();
}

/// A client that sends its request headers slowly (one line every 300 ms, never finishing) keeps its
/// connection past the drain deadline, and the server cannot abort it: Sentinel still stops, after
/// committing what it acknowledged, instead of waiting for that client forever.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_does_not_wait_for_a_client_that_never_finishes_its_headers() {
    let mut d = Daemon::start(&[]);
    let r = d
        .client()
        .post(d.url("/v1/events"))
        .bearer_auth(&d.key)
        .json(&serde_json::json!([{"kind": KIND, "target": "before-stop"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let host = d.base.strip_prefix("http://").unwrap().to_owned();
    let mut s = TcpStream::connect(&host).unwrap();
    write!(s, "POST /v1/events HTTP/1.1\r\nHost: {host}\r\n").unwrap();
    let slow = std::thread::spawn(move || {
        for i in 0..400 {
            std::thread::sleep(Duration::from_millis(300));
            if write!(s, "X-Slow-{i}: still coming\r\n").is_err() {
                return;
            }
        }
    });
    let status = d.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}:\n{}", d.output());
    let out = d.output();
    assert!(out.contains("\"evt\":\"stopped\""), "{out}");
    slow.join().unwrap();

    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    drop(d);
    let d = Daemon::start_in(dir, &[]);
    assert_eq!(stored(&d).await, ["before-stop"]);
    let _ = d.stop();
}
