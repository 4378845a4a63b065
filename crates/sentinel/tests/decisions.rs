//! Manual decisions through the CLI and the API, in the default observe mode: added, listed, previewed
//! with the exact operation, refused on the allowlist (and recorded), deleted, and expired on time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, eventually, Daemon};
use serde_json::{json, Value};
use std::time::Duration;

fn cli(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = command(d.dir.path())
        .args(["decisions"])
        .args(args)
        .args(["--data-dir", "data"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_round_trip_through_cli_and_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "policy:\n  allowlist: [192.0.2.0/24]\n",
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);

    let (ok, out, err) = cli(
        &d,
        &[
            "add",
            "--ip",
            "203.0.113.7",
            "--duration",
            "4h",
            "--reason",
            "manual test",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with("block_ip 203.0.113.7 planned (observe mode)"),
        "{out}"
    );

    let (ok, out, _) = cli(
        &d,
        &[
            "add",
            "--ip",
            "2001:db8::/64",
            "--duration",
            "1h",
            "--dry-run",
        ],
    );
    assert!(ok);
    assert!(
        out.contains(
            "nft add element inet sentinel blocked_net_v6 { 2001:db8::/64 timeout 3600s }"
        ),
        "{out}"
    );

    let (ok, _, err) = cli(&d, &["add", "--ip", "192.0.2.5", "--duration", "1h"]);
    assert!(!ok);
    assert!(err.contains("allowlist (192.0.2.0/24)"), "{err}");

    let (ok, out, _) = cli(&d, &["list", "--json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&out).unwrap();
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 1, "dry runs and refusals are not live: {out}");
    assert_eq!(items[0]["spec"]["subject"]["value"], "203.0.113.7");
    assert_eq!(items[0]["mode"], "observe");
    let (ok, table, _) = cli(&d, &["list"]);
    assert!(ok && table.contains("203.0.113.7") && table.starts_with("ID"));

    // The refusal is recorded in the store.
    let refused = eventually(Duration::from_secs(5), || async {
        let v: Value = d
            .client()
            .get(d.url("/v1/actions?state=refused"))
            .bearer_auth(&d.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (!v["items"].as_array().unwrap().is_empty()).then_some(v)
    })
    .await;
    assert_eq!(refused["items"][0]["spec"]["subject"]["value"], "192.0.2.5");
    assert!(refused["items"][0]["error"]
        .as_str()
        .unwrap()
        .contains("allowlist"));

    let (ok, out, _) = cli(&d, &["delete", "--ip", "203.0.113.7"]);
    assert!(ok);
    assert_eq!(out.trim(), "1 decision(s) deleted");
    let (_, out, _) = cli(&d, &["list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));

    // API: a short decision expires by itself and its record says so.
    let r = d
        .client()
        .post(d.url("/v1/decisions"))
        .bearer_auth(&d.key)
        .json(&json!({"ip": "198.51.100.77", "duration": "1s", "reason": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rec = eventually(Duration::from_secs(5), || async {
        let r = d
            .client()
            .get(d.url(&format!("/v1/actions/{id}")))
            .bearer_auth(&d.key)
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            return None;
        }
        let v: Value = r.json().await.unwrap();
        (v["state"] == "expired").then_some(v)
    })
    .await;
    assert_eq!(rec["spec"]["ttl_secs"], 1);
    // Bad requests name the field; no key is 401.
    let r = d
        .client()
        .post(d.url("/v1/decisions"))
        .bearer_auth(&d.key)
        .json(&json!({"ip": "nope", "duration": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("`ip`"));
    let r = d
        .client()
        .post(d.url("/v1/decisions"))
        .bearer_auth(&d.key)
        .json(&json!({"ip": "203.0.113.1", "duration": "soon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = d.client().get(d.url("/v1/decisions")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (_dir, _) = d.stop();
}

/// A manual decision's answer is sent only once its records are committed: with a long flush interval
/// (records nobody waits for sit in the writer's queue that long), the action is readable through the
/// API the moment `201` (or the delete's `200`) arrives, and so is the audit record of the operator.
#[tokio::test(flavor = "multi_thread")]
async fn a_decision_is_answered_only_once_its_records_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "policy:\n  allowlist: [192.0.2.0/24]\nstore:\n  flush_interval: 4s\n",
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let get = |path: String| {
        let c = d.client();
        let url = d.url(&path);
        let key = d.key.clone();
        async move {
            let r = c.get(url).bearer_auth(key).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for round in 0..3 {
        let r = d
            .client()
            .post(d.url("/v1/decisions"))
            .bearer_auth(&d.key)
            .json(&json!({"ip": format!("203.0.113.{}", 40 + round), "duration": "1h", "reason": "durable"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let trace = r.headers()["x-trace-id"].to_str().unwrap().to_owned();
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, rec) = get(format!("/v1/actions/{id}")).await;
        assert_eq!(
            status, 200,
            "round {round}: the 201 came before the action was stored"
        );
        assert_eq!(rec["state"], "planned", "{rec}");
        let (status, audit) = get(format!("/v1/audit?trace_id={trace}")).await;
        assert_eq!(status, 200);
        assert!(
            audit.to_string().contains("manual decision: durable"),
            "round {round}: the operator's audit record is not stored yet: {audit}"
        );

        let r = d
            .client()
            .delete(d.url(&format!("/v1/decisions?id={id}")))
            .bearer_auth(&d.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.json::<Value>().await.unwrap().as_array().unwrap().len(),
            1
        );
        let (_, rec) = get(format!("/v1/actions/{id}")).await;
        assert_eq!(
            rec["state"], "reverted",
            "round {round}: the delete answered before the reverted state was stored: {rec}"
        );
    }
    let (_dir, _) = d.stop();
}
