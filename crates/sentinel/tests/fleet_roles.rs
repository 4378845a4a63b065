//! `sentinel run --role …`: the pipeline split into processes joined by a real Redis bus (sensor →
//! investigator → responder, each its own daemon with its own store), the same roles in one process
//! on the in-process bus, and the roles a memory bus cannot join refused before anything starts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, eventually, Daemon};
use sentinel_testkit::redis::RedisServer;
use serde_json::Value;
use std::time::Duration;

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

async fn post(d: &Daemon, path: &str, body: &str) -> reqwest::Response {
    d.client()
        .post(d.url(path))
        .bearer_auth(&d.key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn get(d: &Daemon, path: &str) -> Value {
    let r = d
        .client()
        .get(d.url(path))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

async fn metric(d: &Daemon, line_start: &str) -> Option<f64> {
    let text = d
        .client()
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_processes_on_redis_detect_investigate_and_act() {
    let redis = RedisServer::start();
    let bus = redis.url();
    let with = |role: &'static str, node: &'static str| {
        vec![
            ("BUS", bus.clone()),
            ("SENTINEL_ROLE", role.to_owned()),
            ("SENTINEL__NODE", node.to_owned()),
        ]
    };
    let start = |env: Vec<(&'static str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Daemon::start(&env)
    };
    let responder = start(with("responder", "edge-1"));
    let investigator = start(with("investigator", "intel-1"));
    let sensor = start(with("sensor", "web-1"));
    assert!(
        sensor.output().contains(r#""evt":"roles_started""#),
        "{}",
        sensor.output()
    );

    assert!(
        sensor.output().contains("fleet.secret is not set"),
        "an unsigned bus is warned about: {}",
        sensor.output()
    );
    let r = post(&sensor, "/v1/events", &format!("[{ATTACK}]")).await;
    assert_eq!(r.status(), 200);

    // The alert is recorded by the sensor, the plan by the investigator, the action by the responder.
    let alerts = eventually(Duration::from_secs(15), || async {
        let a = get(&sensor, "/v1/alerts").await;
        (a["items"].as_array()?.len() == 1).then_some(a)
    })
    .await;
    let alert_id = alerts["items"][0]["id"].as_str().unwrap().to_owned();
    let decisions = eventually(Duration::from_secs(15), || async {
        let d = get(&responder, "/v1/decisions").await;
        (!d["items"].as_array()?.is_empty()).then_some(d)
    })
    .await;
    let item = &decisions["items"][0];
    assert_eq!(
        item["spec"]["subject"]["value"], "203.0.113.7",
        "{decisions}"
    );
    assert_eq!(item["alert_id"], alert_id.as_str(), "the sensor's alert");
    assert_eq!(
        decisions["items"].as_array().unwrap().len(),
        1,
        "one action"
    );
    // The investigator took the alert once and acknowledged it once its plan was on the bus.
    let taken = eventually(Duration::from_secs(10), || async {
        metric(
            &investigator,
            r#"sentinel_bus_link_messages_total{role="investigator",outcome="acked"}"#,
        )
        .await
        .filter(|v| *v >= 1.0)
    })
    .await;
    assert_eq!(taken, 1.0);

    // Each role's links counted what crossed the bus.
    let published = metric(
        &sensor,
        r#"sentinel_bus_link_messages_total{role="sensor",outcome="published"}"#,
    )
    .await;
    assert_eq!(published, Some(1.0));
    let acked = eventually(Duration::from_secs(10), || async {
        metric(
            &responder,
            r#"sentinel_bus_link_messages_total{role="responder",outcome="acked"}"#,
        )
        .await
        .filter(|v| *v >= 1.0)
    })
    .await;
    assert_eq!(acked, 1.0);
    assert_eq!(
        metric(&investigator, "sentinel_bus_published_total").await,
        Some(2.0),
        "the investigator's bus wrote the investigation and the plan"
    );

    // A sensor-less node refuses events: they belong to a sensor.
    let r = post(&investigator, "/v1/events", &format!("[{ATTACK}]")).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("takes no events (roles: investigator)"),
        "{body}"
    );
    let r = post(&investigator, "/v1/defend", ATTACK).await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("send them to a sensor"));

    for mut d in [sensor, investigator, responder] {
        let s = d.terminate(Duration::from_secs(15));
        assert!(s.success(), "{}", d.output());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_roles_run_together_on_the_in_process_bus() {
    let d = Daemon::start(&[("SENTINEL_ROLE", "sensor,investigator,responder,api")]);
    assert!(
        !d.output().contains(r#""evt":"roles_started""#),
        "every role on memory is the embedded pipeline"
    );
    let d2 = Daemon::start(&[("SENTINEL_ROLE", "sensor,investigator,responder")]);
    assert!(
        d2.output().contains(r#""evt":"roles_started""#),
        "{}",
        d2.output()
    );
    let r = post(&d2, "/v1/defend", ATTACK).await;
    assert_eq!(r.status(), 200);
    let decisions = eventually(Duration::from_secs(10), || async {
        let v = get(&d2, "/v1/decisions").await;
        (!v["items"].as_array()?.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(
        decisions["items"][0]["spec"]["subject"]["value"],
        "203.0.113.7"
    );
    drop(d);
}

#[test]
fn roles_a_memory_bus_cannot_join_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args([
            "run",
            "--data-dir",
            "data",
            "--listen",
            "127.0.0.1:0",
            "--role",
            "sensor",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bus: redis"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
    let out = command(dir.path())
        .args(["run", "--role", "sensor,collector"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role `collector`"));
}

/// Two responders apply the same global block; when it expires each reverts its own copy, and the
/// `action_reverted` notice is sent once (the first to take the expiry lease in Redis). The fleet
/// shows in `sentinel cluster status` while it runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_global_decision_expires_on_every_responder_and_is_notified_once() {
    use sentinel_testkit::receivers::WebhookReceiver;
    const SECRET: &str = "fleet-expiry-hook-secret";
    let redis = RedisServer::start();
    let hook = WebhookReceiver::start(SECRET).await;
    let yaml = format!(
        "policy:\n  rules:\n    - {{ severity: [critical, high], risk: [low, medium, high], confidence: [low, medium, high], actions: [{{kind: block_ip, ttl: 2s}}] }}\n\
         notify:\n  channels:\n    hook: {{type: webhook, url: \"{}\", secret: \"{SECRET}\"}}\n  \
         routes:\n    - {{kinds: [action_reverted], channels: [hook], group_wait: 0s}}\n",
        hook.url()
    );
    let bus = redis.url();
    let start = |role: &str, node: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sentinel.yml"), &yaml).unwrap();
        Daemon::start_in(
            dir,
            &[
                ("BUS", bus.as_str()),
                ("SENTINEL_ROLE", role),
                ("SENTINEL__NODE", node),
                ("SENTINEL__FLEET__HEARTBEAT", "1s"),
                ("SENTINEL__AUDIT__CHECKPOINT_INTERVAL", "1s"),
            ],
        )
    };
    let edges = [start("responder", "edge-1"), start("responder", "edge-2")];
    let brain = start("investigator,sensor", "brain-1");
    let api = start("api", "api-1");

    // The fleet as an operator sees it.
    let conf = brain.dir.path().join("sentinel.yml");
    let status = eventually(Duration::from_secs(10), || {
        let conf = conf.clone();
        let bus = bus.clone();
        async move {
            let out = command(std::path::Path::new("/"))
                .env("BUS", &bus)
                .args(["cluster", "status", "--json", "--config"])
                .arg(&conf)
                .output()
                .unwrap();
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let alive = v["nodes"]
                .as_array()?
                .iter()
                .filter(|n| n["state"] == "alive")
                .count();
            (alive == 4).then_some(v)
        }
    })
    .await;
    let nodes = status["nodes"].to_string();
    assert!(
        nodes.contains("edge-1") && nodes.contains("edge-2") && nodes.contains("brain-1"),
        "{status}"
    );

    let r = post(&brain, "/v1/events", &format!("[{ATTACK}]")).await;
    assert_eq!(r.status(), 200);
    // Both responders hold the decision, then revert it on expiry.
    for e in &edges {
        let d = eventually(Duration::from_secs(15), || async {
            let v = get(e, "/v1/actions").await;
            let items = v["items"].as_array()?.clone();
            (items.len() == 1 && items[0]["state"] == "expired").then_some(items)
        })
        .await;
        assert_eq!(d[0]["spec"]["subject"]["value"], "203.0.113.7");
    }
    let reverted = eventually(Duration::from_secs(15), || async {
        let r = hook.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    // Give a second notice time to arrive: there must be none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = hook.received();
    assert_eq!(
        all.len(),
        1,
        "one action_reverted notice for the fleet: {:?}",
        all.iter().map(|d| d.json.clone()).collect::<Vec<_>>()
    );
    assert!(reverted[0].json.to_string().contains("203.0.113.7"));
    // The API node holds the fleet's picture: the sensor's alert, the investigator's investigation
    // and plan, and both responders' actions, as they are now (expired).
    let picture = eventually(Duration::from_secs(15), || async {
        let actions = get(&api, "/v1/actions").await;
        let items = actions["items"].as_array()?.clone();
        let expired = items.iter().filter(|a| a["state"] == "expired").count();
        (expired == 2).then_some(items)
    })
    .await;
    assert!(picture
        .iter()
        .all(|a| a["spec"]["subject"]["value"] == "203.0.113.7"));
    let alerts = get(&api, "/v1/alerts").await;
    assert_eq!(alerts["items"].as_array().unwrap().len(), 1, "{alerts}");
    let alert_id = alerts["items"][0]["id"].as_str().unwrap().to_owned();
    let one = get(&api, &format!("/v1/alerts/{alert_id}")).await;
    assert!(
        !one["investigation"].is_null(),
        "the alert's investigation: {one}"
    );
    assert_eq!(one["plans"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one["actions"].as_array().map(Vec::len), Some(2), "{one}");
    let skipped = edges
        .iter()
        .filter(|e| e.output().contains(r#""evt":"expiry_notice_skipped""#))
        .count();
    assert_eq!(skipped, 1, "the other responder stayed silent");

    // Each node's audit checkpoints are collected in Redis; the brain's log verifies against its
    // collected checkpoint after it stops.
    let out_dir = tempfile::tempdir().unwrap();
    let collected = eventually(Duration::from_secs(15), || {
        let conf = conf.clone();
        let bus = bus.clone();
        let out = out_dir.path().to_owned();
        async move {
            let o = command(std::path::Path::new("/"))
                .env("BUS", &bus)
                .args(["cluster", "checkpoints", "--config"])
                .arg(&conf)
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            (o.status.success()
                && ["brain-1", "edge-1", "edge-2"]
                    .iter()
                    .all(|n| text.contains(n)))
            .then_some(text)
        }
    })
    .await;
    assert!(collected.contains("brain-1.checkpoint"), "{collected}");
    let mut brain = brain;
    assert!(brain.terminate(Duration::from_secs(15)).success());
    let v = command(brain.dir.path())
        .args(["audit", "verify", "--data-dir", "data", "--checkpoint"])
        .arg(out_dir.path().join("brain-1.checkpoint"))
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    // The API node's store and audit log agree (every collected record was noted in its log).
    let mut api = api;
    assert!(api.terminate(Duration::from_secs(15)).success());
    let v = command(api.dir.path())
        .args(["audit", "verify", "--data-dir", "data", "--store"])
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    // Another node's checkpoint does not verify the brain's log.
    let v = command(brain.dir.path())
        .args(["audit", "verify", "--data-dir", "data", "--checkpoint"])
        .arg(out_dir.path().join("edge-1.checkpoint"))
        .output()
        .unwrap();
    assert!(!v.status.success());
}

/// With `fleet.secret` every message is signed: a plan written straight into Redis by someone
/// without the key, and a genuine plan read by a responder holding another key, are refused
/// (counted as forged, never applied); the fleet's own plans go through.
#[tokio::test(flavor = "multi_thread")]
async fn with_a_fleet_secret_forged_plans_are_refused() {
    let redis = RedisServer::start();
    let bus = redis.url();
    let start = |role: &str, node: &str, secret: &str| {
        Daemon::start(&[
            ("BUS", bus.as_str()),
            ("SENTINEL_ROLE", role),
            ("SENTINEL__NODE", node),
            ("SENTINEL__FLEET__SECRET", secret),
        ])
    };
    const KEY: &str = "0123456789abcdef-fleet-key";
    let good = start("responder", "edge-1", KEY);
    let wrong = start("responder", "edge-2", "another-key-0123456789");
    let brain = start("sensor,investigator", "brain-1", KEY);
    assert!(
        !brain.output().contains("fleet.secret is not set"),
        "no warning with a key"
    );

    // A forged plan, unsigned, straight into the stream.
    let forged = serde_json::json!({"v": 1, "kind": "plan", "body": {"notice_key": "x", "plan": {
        "id": "01J0000000000000000000000B", "ts": "2026-12-01T03:00:00.000Z",
        "alert_id": "01J0000000000000000000000C", "investigation_id": "01J0000000000000000000000D",
        "mode": "enforce", "severity": "high", "risk_band": "high", "confidence_band": "high",
        "actions": [{"kind": "block_ip", "subject": {"type": "ip", "value": "198.51.100.66"}, "ttl_secs": 600}],
        "reason": "forged", "trace_id": "t-forged"}}});
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "XADD",
            "sentinel:plans",
            "*",
            "p",
        ])
        .arg(forged.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = post(&brain, "/v1/events", &format!("[{ATTACK}]")).await;
    assert_eq!(r.status(), 200);

    let applied = eventually(Duration::from_secs(15), || async {
        let v = get(&good, "/v1/decisions").await;
        let items = v["items"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(applied.len(), 1, "only the genuine plan: {applied:?}");
    assert_eq!(applied[0]["spec"]["subject"]["value"], "203.0.113.7");
    const FORGED: &str = r#"sentinel_bus_link_messages_total{role="responder",outcome="forged"}"#;
    let f = eventually(Duration::from_secs(10), || async {
        metric(&good, FORGED).await.filter(|v| *v >= 1.0)
    })
    .await;
    assert_eq!(f, 1.0, "the forged plan");
    let f = eventually(Duration::from_secs(10), || async {
        metric(&wrong, FORGED).await.filter(|v| *v >= 2.0)
    })
    .await;
    assert_eq!(
        f, 2.0,
        "the forged plan and the one signed with another key"
    );
    let none = get(&wrong, "/v1/decisions").await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "{none}");
    assert!(wrong.output().contains(r#""evt":"bus_message_forged""#));
}

/// A fleet brought up sensor first: the alert a sensor published before any investigator ever ran
/// is investigated once the first one starts (the shared group `investigators` reads from the
/// oldest entry), and its plan reaches a responder started meanwhile. Before, the group was made at
/// the end of the stream and that alert was never investigated.
#[tokio::test(flavor = "multi_thread")]
async fn an_alert_published_before_any_investigator_ran_is_investigated() {
    let redis = RedisServer::start();
    let bus = redis.url();
    let with = |role: &'static str, node: &'static str| {
        vec![
            ("BUS", bus.clone()),
            ("SENTINEL_ROLE", role.to_owned()),
            ("SENTINEL__NODE", node.to_owned()),
        ]
    };
    let start = |env: Vec<(&'static str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Daemon::start(&env)
    };
    let sensor = start(with("sensor", "web-1"));
    let r = post(&sensor, "/v1/events", &format!("[{ATTACK}]")).await;
    assert_eq!(r.status(), 200);
    eventually(Duration::from_secs(10), || async {
        metric(
            &sensor,
            r#"sentinel_bus_link_messages_total{role="sensor",outcome="published"}"#,
        )
        .await
        .filter(|v| *v >= 1.0)
    })
    .await;
    let responder = start(with("responder", "edge-1"));
    let investigator = start(with("investigator", "intel-1"));
    let decisions = eventually(Duration::from_secs(20), || async {
        let d = get(&responder, "/v1/decisions").await;
        (!d["items"].as_array()?.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(
        decisions["items"][0]["spec"]["subject"]["value"], "203.0.113.7",
        "{decisions}"
    );
    for mut d in [sensor, investigator, responder] {
        let s = d.terminate(Duration::from_secs(15));
        assert!(s.success(), "{}", d.output());
    }
}

/// An investigator in `policy.mode: enforce` and a responder left in observe (the default): the
/// responder's own mode holds, so its action is recorded as planned in observe mode. Before, the
/// plan's mode won: the responder tried to enforce without an enforcing actuator, recorded the
/// action as failed and sent an `action_failed` notice for every plan.
#[tokio::test(flavor = "multi_thread")]
async fn a_responder_in_observe_mode_observes_an_enforce_plan() {
    let redis = RedisServer::start();
    let bus = redis.url();
    let env = |role: &str, node: &str, mode: &str| -> Vec<(String, String)> {
        vec![
            ("BUS".into(), bus.clone()),
            ("SENTINEL_ROLE".into(), role.into()),
            ("SENTINEL__NODE".into(), node.into()),
            ("SENTINEL__POLICY__MODE".into(), mode.into()),
        ]
    };
    let start = |env: Vec<(String, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Daemon::start(&env)
    };
    let responder = start(env("responder", "edge-1", "observe"));
    let investigator = start(env("investigator", "intel-1", "enforce"));
    let sensor = start(env("sensor", "web-1", "observe"));
    let r = post(&sensor, "/v1/events", &format!("[{ATTACK}]")).await;
    assert_eq!(r.status(), 200);
    let decisions = eventually(Duration::from_secs(20), || async {
        let d = get(&responder, "/v1/decisions").await;
        (!d["items"].as_array()?.is_empty()).then_some(d)
    })
    .await;
    let item = &decisions["items"][0];
    assert_eq!(item["mode"], "observe", "{decisions}");
    assert_eq!(item["state"], "planned", "{decisions}");
    for mut d in [sensor, investigator, responder] {
        let s = d.terminate(Duration::from_secs(15));
        assert!(s.success(), "{}", d.output());
    }
}
