//! Log sources in the running daemon: lines appended to a tailed file, and syslog messages over UDP,
//! become scenario alerts that flow through investigation, plan and action, with their lines as
//! (redacted) evidence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

fn now_rfc3339() -> String {
    sentinel_core::Timestamp::now().to_rfc3339()
}

async fn alerts(d: &Daemon, query: &str) -> Option<Value> {
    let r = d
        .client()
        .get(d.url(&format!("/v1/alerts?{query}")))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    (!v["items"].as_array().unwrap().is_empty()).then_some(v)
}

#[tokio::test(flavor = "multi_thread")]
async fn tailed_ssh_failures_become_an_alert_with_evidence_and_a_plan() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "sources:\n  - {{ type: file, paths: [\"{}\"], format: sshd, poll_interval: 50ms }}\n",
            log.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    // Benign lines and one mistyped password from another source: no alert.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "{} srv sshd[100]: Accepted publickey for deploy from 192.0.2.10 port 50000 ssh2: ED25519 SHA256:x", now_rfc3339()).unwrap();
    writeln!(
        f,
        "{} srv sshd[101]: Failed password for deploy from 192.0.2.10 port 50001 ssh2",
        now_rfc3339()
    )
    .unwrap();
    for i in 0..8 {
        writeln!(
            f,
            "{} srv sshd[{}]: Failed password for invalid user admin{i} from 203.0.113.66 port {} ssh2",
            now_rfc3339(),
            200 + i,
            40000 + i
        )
        .unwrap();
    }
    f.flush().unwrap();
    let found = eventually(Duration::from_secs(10), || {
        alerts(&d, "scenario=ssh_bruteforce")
    })
    .await;
    let alert = &found["items"][0];
    assert_eq!(alert["subject"]["value"], "203.0.113.66");
    assert_eq!(alert["detector"], "scenario");
    assert_eq!(alert["severity"], "high");
    let evidence = alert["evidence"].as_array().unwrap();
    assert!(!evidence.is_empty());
    assert!(evidence.iter().all(|e| e["attrs"]["line"]
        .as_str()
        .unwrap()
        .contains("203.0.113.66")));
    let id = alert["id"].as_str().unwrap().to_owned();
    let detail = eventually(Duration::from_secs(5), || async {
        let r = d
            .client()
            .get(d.url(&format!("/v1/alerts/{id}")))
            .bearer_auth(&d.key)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        (v["actions"].as_array().map(|a| !a.is_empty()) == Some(true)).then_some(v)
    })
    .await;
    assert_eq!(detail["plans"][0]["actions"][0]["kind"], "block_ip");
    assert_eq!(detail["actions"][0]["state"], "planned");
    assert_eq!(detail["actions"][0]["trace_id"], alert["trace_id"]);
    // The benign source raised nothing.
    assert!(alerts(&d, "subject=192.0.2.10").await.is_none());
    let metrics = d
        .client()
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sentinel_log_lines_parsed_total 10"),
        "{metrics}"
    );
    let (_dir, _) = d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn syslog_over_udp_feeds_the_scenarios() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!("sources:\n  - {{ type: syslog, udp: \"127.0.0.1:{port}\", format: auto }}\n"),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..8 {
        let msg = format!(
            "<38>1 {} mail dovecot - - - imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<u{i}>, method=PLAIN, rip=198.51.100.23, lip=192.0.2.1, session=<abc{i}>",
            now_rfc3339()
        );
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
    }
    let found = eventually(Duration::from_secs(10), || {
        alerts(&d, "scenario=mail_auth_bruteforce")
    })
    .await;
    assert_eq!(found["items"][0]["subject"]["value"], "198.51.100.23");
    let (_dir, _) = d.stop();
}
