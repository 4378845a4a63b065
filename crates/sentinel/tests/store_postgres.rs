//! `sentinel run` on a PostgreSQL store (`store.url`, here through `SENTINEL__STORE__URL`), against a
//! real PostgreSQL server the test starts: the golden path answers and stores in that database (and
//! no SQLite file is made); what the daemon acknowledged survives a SIGKILL and a restart; the URL's
//! password never reaches the daemon's output; a store that cannot be reached stops the start with
//! an error naming the masked URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, eventually, Daemon};
use sentinel_store::{AlertFilter, EventFilter, Store};
use sentinel_testkit::postgres::PostgresServer;
use serde_json::{json, Value};
use std::time::Duration;

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

/// The server's URL with a password in it (the test cluster trusts local connections, so any
/// password is accepted; it stands for a real one that must never be shown).
fn url_with_password(pg: &PostgresServer) -> String {
    let url = pg.url();
    let rest = url.strip_prefix("postgres://").unwrap();
    let (user, host) = rest
        .split_once('@')
        .expect("the test server's URL names its user");
    let user = user.split(':').next().unwrap();
    format!("postgres://{user}:hunter2-secret@{host}")
}

async fn post(d: &Daemon, path: &str, body: String) -> reqwest::Response {
    d.client()
        .post(d.url(path))
        .bearer_auth(&d.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_runs_on_postgresql_and_keeps_what_it_acknowledged() {
    let pg = PostgresServer::start();
    let url = url_with_password(&pg);
    let env = [("SENTINEL__STORE__URL", url.as_str())];
    let d = Daemon::start(&env);
    assert!(
        d.output().contains(r#""backend":"postgresql""#),
        "the log says which store: {}",
        d.output()
    );

    // The golden path: the answer's alert and plan are in PostgreSQL, not in a SQLite file.
    let r = post(&d, "/v1/defend", ATTACK.into()).await;
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["alerted"], true);
    let alert_id = out["alert_id"].as_str().unwrap().to_owned();
    assert!(
        !d.data().join("sentinel.db").exists(),
        "no SQLite store is made when store.url names PostgreSQL"
    );
    let direct = Store::open_url(&pg.url()).await.unwrap();
    let alerts = direct.list_alerts(&AlertFilter::default()).await.unwrap();
    assert!(
        alerts.items.iter().any(|a| a.id.to_string() == alert_id),
        "the alert {alert_id} is in PostgreSQL"
    );

    // A second daemon on the same database is refused, naming the one that holds it.
    let other = tempfile::tempdir().unwrap();
    let out = command(other.path())
        .args(["run", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .env("SENTINEL__STORE__URL", &url)
        .env("SENTINEL__NODE", "intruder-1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a second daemon started on the same database"
    );
    assert!(
        text.contains("the database is in use by `sentinel daemon "),
        "{text}"
    );
    assert!(!text.contains("hunter2-secret"), "{text}");

    // Acknowledged events survive a SIGKILL: three rounds of posting, killing, restarting.
    let mut dir = d.kill();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        let d = Daemon::start_in(dir, &env);
        for i in 0..20 {
            let marker = format!("pg-kill-r{round}-{i}");
            let ev = json!([{"kind": "pg-kill", "target": marker, "src_ip": "198.51.100.9"}]);
            let r = post(&d, "/v1/events", ev.to_string()).await;
            assert_eq!(r.status(), 200, "POST /v1/events");
            acked.push(marker);
        }
        assert!(
            !d.output().contains("hunter2-secret"),
            "the password reached the daemon's output:\n{}",
            d.output()
        );
        dir = d.kill();
    }
    let d = Daemon::start_in(dir, &env);
    let stored = eventually(Duration::from_secs(10), || async {
        let page = direct
            .list_events(&EventFilter {
                limit: 1000,
                ..EventFilter::default()
            })
            .await
            .ok()?;
        let targets: Vec<String> = page
            .items
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .filter_map(|v| v["target"].as_str().map(str::to_owned))
            .collect();
        acked.iter().all(|m| targets.contains(m)).then_some(targets)
    })
    .await;
    assert!(stored.len() >= acked.len());
    drop(d);
    direct.close().await;
}

#[test]
fn an_unreachable_store_stops_the_start_with_the_url_masked() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on (found free, then released), on loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url =
        format!("postgres://sentinel:hunter2-secret@127.0.0.1:{port}/sentinel?connect_timeout=2");
    let out = command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .env("SENTINEL__STORE__URL", &url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "started without its store:\n{text}");
    assert!(text.contains("cannot open the store"), "{text}");
    assert!(text.contains("postgres://***@127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2-secret"), "{text}");
}
