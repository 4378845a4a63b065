//! Kill test: what Sentinel acknowledged, a restart finds.
//!
//! A real `sentinel run` child is put under concurrent load on `/v1/events` (JSON arrays),
//! `/v1/events/stream` (NDJSON) and `/v1/defend`, then killed with SIGKILL at a random moment, many
//! times over the same data directory. Every client records exactly which events were acknowledged
//! (each carries a unique marker in `target`). After each kill, `PRAGMA integrity_check` must say ok;
//! after each restart, every acknowledged event must be found through `GET /v1/events`, and every
//! alert a `/v1/defend` answer promised must be found with its investigation and plan.
//!
//! One round in five runs with `store.sync: full`, the others with `normal`. The seed is printed (and `SENTINEL_KILL_SEED` replays it); `SENTINEL_KILL_ROUNDS` changes the
//! number of rounds (at least 50 by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_ROUNDS: usize = 50;
const DEFEND_TIMEOUT: (&str, &str) = ("SENTINEL__PIPELINE__DEFEND_TIMEOUT", "5s");

/// What one round's clients were told was stored.
#[derive(Default)]
struct Acked {
    /// Markers of acknowledged events.
    events: Vec<String>,
    /// `(alert id, plan id)` of `/v1/defend` answers that raised an alert.
    alerts: Vec<(String, String)>,
    /// Answers by route and status, for the log.
    answers: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone)]
struct Target {
    base: String,
    key: String,
    round: usize,
    client: reqwest::Client,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
}

impl Target {
    fn kind(&self) -> String {
        format!("kill-r{}", self.round)
    }

    fn count(&self, route: &str, status: u16) {
        *self
            .acked
            .lock()
            .unwrap()
            .answers
            .entry(format!("{route} {status}"))
            .or_default() += 1;
    }

    fn event(&self, marker: &str, n: u64) -> Value {
        json!({
            "kind": self.kind(),
            "target": marker,
            "src_ip": format!("198.51.100.{}", 1 + n % 250),
            "request_rate": n % 50,
        })
    }
}

/// Which items of a report were acknowledged: those handed over (`accepted` plus the ones listed as
/// errors, all at the front for a partial answer) minus the ones listed as errors.
fn acknowledged(report: &Value, sent: usize, numbering: &str, first: usize) -> Vec<usize> {
    let errored: HashSet<usize> = report["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e[numbering].as_u64())
                .map(|n| n as usize - first)
                .collect()
        })
        .unwrap_or_default();
    let accepted = report["accepted"].as_u64().unwrap_or(0) as usize;
    let handed = (accepted + errored.len()).min(sent);
    let ok: Vec<usize> = (0..handed).filter(|i| !errored.contains(i)).collect();
    assert_eq!(
        ok.len(),
        accepted,
        "accepted must count exactly the items kept: {report}"
    );
    ok
}

/// `POST /v1/events` (`stream` false) or `/v1/events/stream` (`stream` true) in a loop until the
/// daemon is gone.
async fn events_client(t: Target, id: usize, stream: bool, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let route = if stream { "stream" } else { "events" };
    let mut seq = 0u64;
    while !t.stop.load(Ordering::Relaxed) {
        let n = rng.gen_range(10..if stream { 200 } else { 60 });
        let markers: Vec<String> = (0..n)
            .map(|i| format!("m{}-{route}{id}-{seq}-{i}", t.round))
            .collect();
        let items: Vec<Value> = markers
            .iter()
            .enumerate()
            .map(|(i, m)| t.event(m, seq + i as u64))
            .collect();
        seq += 1;
        let req = if stream {
            let body: String = items.iter().map(|v| format!("{v}\n")).collect();
            t.client
                .post(format!("{}/v1/events/stream", t.base))
                .header("content-type", "application/x-ndjson")
                .body(body)
        } else {
            t.client
                .post(format!("{}/v1/events", t.base))
                .header("content-type", "application/json")
                .body(Value::Array(items).to_string())
        };
        let resp = match req.bearer_auth(&t.key).send().await {
            Ok(r) => r,
            Err(_) => break, // killed
        };
        let status = resp.status().as_u16();
        let Ok(body) = resp.json::<Value>().await else {
            break; // killed while answering: nothing acknowledged
        };
        t.count(route, status);
        let report = match status {
            200 => &body,
            429 => &body["report"],
            _ => continue, // 503: nothing acknowledged
        };
        let (numbering, first) = if stream { ("line", 1) } else { ("index", 0) };
        let ok = acknowledged(report, markers.len(), numbering, first);
        let mut a = t.acked.lock().unwrap();
        a.events.extend(ok.into_iter().map(|i| markers[i].clone()));
    }
}

/// `POST /v1/defend` in a loop until the daemon is gone; one in three is an attack that raises an
/// alert (so an investigation and a plan are promised too).
async fn defend_client(t: Target, id: usize) {
    let mut seq = 0u64;
    while !t.stop.load(Ordering::Relaxed) {
        let marker = format!("m{}-defend{id}-{seq}", t.round);
        let mut ev = t.event(&marker, seq);
        if seq.is_multiple_of(3) {
            ev["failed_logins"] = json!(40);
            ev["src_ip"] = json!(format!("203.0.113.{}", 1 + (seq + id as u64 * 7) % 250));
        }
        seq += 1;
        let resp = match t
            .client
            .post(format!("{}/v1/defend", t.base))
            .bearer_auth(&t.key)
            .header("content-type", "application/json")
            .body(ev.to_string())
            .send()
            .await
        {
            Ok(r) => r,
            Err(_) => break,
        };
        let status = resp.status().as_u16();
        let Ok(body) = resp.json::<Value>().await else {
            break;
        };
        t.count("defend", status);
        if status != 200 {
            continue;
        }
        let mut a = t.acked.lock().unwrap();
        a.events.push(marker);
        if let (Some(alert), Some(plan)) = (body["alert_id"].as_str(), body["plan"]["id"].as_str())
        {
            a.alerts.push((alert.to_owned(), plan.to_owned()));
        }
    }
}

/// Every `target` stored with `kind`, through the API, page by page.
async fn stored_markers(d: &Daemon, kind: &str) -> HashSet<String> {
    let client = d.client();
    let mut found = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/events?kind={kind}&limit=1000", d.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = client.get(&url).bearer_auth(&d.key).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let page: Value = r.json().await.unwrap();
        for ev in page["items"].as_array().unwrap() {
            found.insert(ev["target"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return found,
        }
    }
}

/// `PRAGMA integrity_check` on the database the killed daemon left.
async fn integrity(db: &std::path::Path) -> String {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows.join("; ")
}

/// Checks round `round`'s acknowledgements against the restarted daemon; returns what is missing.
async fn verify(d: &Daemon, round: usize, acked: &Acked) -> (Vec<String>, Vec<String>) {
    let found = stored_markers(d, &format!("kill-r{round}")).await;
    let lost: Vec<String> = acked
        .events
        .iter()
        .filter(|m| !found.contains(*m))
        .cloned()
        .collect();
    let client = d.client();
    let mut missing = Vec::new();
    for (alert, plan) in &acked.alerts {
        let r = client
            .get(format!("{}/v1/alerts/{alert}", d.base))
            .bearer_auth(&d.key)
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            missing.push(format!("alert {alert}: {}", r.status()));
            continue;
        }
        let detail: Value = r.json().await.unwrap();
        if detail["investigation"].is_null() {
            missing.push(format!("investigation of alert {alert}"));
        }
        let plans = detail["plans"].as_array().cloned().unwrap_or_default();
        if !plans.iter().any(|p| p["id"] == plan.as_str()) {
            missing.push(format!("plan {plan} of alert {alert}"));
        }
    }
    (lost, missing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_sigkill() {
    let seed: u64 = std::env::var("SENTINEL_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let rounds: usize = std::env::var("SENTINEL_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    println!("kill test: seed {seed} (SENTINEL_KILL_SEED={seed} replays it), {rounds} rounds");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let mut dir = tempfile::tempdir().unwrap();
    let mut previous: Option<(usize, Acked)> = None;
    let (mut total_acked, mut total_lost, mut total_alerts) = (0usize, 0usize, 0usize);
    let mut failures: Vec<String> = Vec::new();
    for round in 0..=rounds {
        // A killed daemon leaves its address file behind: the new one must write its own.
        let _ = std::fs::remove_file(dir.path().join("data/api.addr"));
        // One round in five runs with `store.sync: full`; the others with the default (normal).
        let sync = if round % 5 == 4 { "full" } else { "normal" };
        let mut d = Daemon::start_in(dir, &[DEFEND_TIMEOUT, ("SENTINEL__STORE__SYNC", sync)]);
        if let Some((r, acked)) = previous.take() {
            let (lost, missing) = verify(&d, r, &acked).await;
            println!(
                "round {r}: {} events and {} alerts acknowledged, {} events lost, {} records missing; answers {:?}",
                acked.events.len(),
                acked.alerts.len(),
                lost.len(),
                missing.len(),
                acked.answers
            );
            total_acked += acked.events.len();
            total_alerts += acked.alerts.len();
            total_lost += lost.len();
            if !lost.is_empty() {
                failures.push(format!(
                    "round {r}: {} acknowledged events lost, e.g. {:?}",
                    lost.len(),
                    &lost[..lost.len().min(3)]
                ));
            }
            if !missing.is_empty() {
                failures.push(format!(
                    "round {r}: {} promised records missing, e.g. {:?}",
                    missing.len(),
                    &missing[..missing.len().min(3)]
                ));
            }
        }
        if round == rounds {
            let (back, _) = d.stop();
            dir = back;
            break;
        }

        let target = Target {
            base: d.base.clone(),
            key: d.key.clone(),
            round,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            stop: Arc::new(AtomicBool::new(false)),
            acked: Arc::new(Mutex::new(Acked::default())),
        };
        let mut clients = Vec::new();
        for id in 0..2 {
            clients.push(tokio::spawn(events_client(
                target.clone(),
                id,
                false,
                rng.gen(),
            )));
            clients.push(tokio::spawn(events_client(
                target.clone(),
                id,
                true,
                rng.gen(),
            )));
        }
        for id in 0..4 {
            clients.push(tokio::spawn(defend_client(target.clone(), id)));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..1200))).await;
        d.child.kill().unwrap(); // SIGKILL
        d.child.wait().unwrap();
        target.stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
        let check = integrity(&d.data().join("sentinel.db")).await;
        if check != "ok" {
            failures.push(format!("round {round}: integrity_check: {check}"));
        }
        dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        drop(d);
        let acked = Arc::try_unwrap(target.acked)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap();
        previous = Some((round, acked));
    }
    drop(dir);
    println!(
        "kill test: {rounds} rounds in {:?}: {total_acked} events and {total_alerts} alerts acknowledged, \
         {total_lost} acknowledged events lost",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "seed {seed}: {total_lost} of {total_acked} acknowledged events lost\n{}",
        failures.join("\n")
    );
    assert!(
        total_acked >= rounds * 10 && total_alerts > 0,
        "seed {seed}: too little was acknowledged to prove anything ({total_acked} events, {total_alerts} alerts)"
    );
}
