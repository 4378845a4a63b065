//! End-to-end tests of `sentinel run` as a real process: golden path, auth, bad input, redaction,
//! shutdown draining, configuration errors, health check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, eventually, Daemon};
use serde_json::{json, Value};
use std::time::Duration;

const ATTACK: &str =
    r#"{"src_ip":"203.0.113.7","failed_logins":40,"user_agent":"hydra v9","path":"/login"}"#;

async fn get_json(d: &Daemon, path: &str) -> Value {
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

/// A record written moments ago may still be in the writer's batch: 404 until it lands.
async fn get_json_when_stored(d: &Daemon, path: &str) -> Option<Value> {
    let r = d
        .client()
        .get(d.url(path))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => Some(r.json().await.unwrap()),
        404 => None,
        other => panic!("GET {path}: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn golden_path_keeps_one_trace_id() {
    let d = Daemon::start(&[]);
    assert!(
        d.ready_after < Duration::from_secs(5),
        "ready after {:?}",
        d.ready_after
    );
    let trace = "golden-trace-0001";
    let r = d
        .client()
        .post(d.url("/v1/defend"))
        .bearer_auth(&d.key)
        .header("content-type", "application/json")
        .header("x-trace-id", trace)
        .body(ATTACK)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-trace-id"], trace);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["trace_id"], trace);
    assert_eq!(out["alerted"], true);
    assert_eq!(out["scenario"], "credential_bruteforce");
    assert_eq!(out["severity"], "high");
    let codes: Vec<&str> = out["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["failed_logins", "scanner_agent"]);
    assert_eq!(out["plan"]["mode"], "observe");
    assert_eq!(out["plan"]["actions"][0]["kind"], "block_ip");
    assert_eq!(out["plan"]["trace_id"], trace);
    let alert_id = out["alert_id"].as_str().unwrap().to_owned();

    // Acknowledged means stored: the event, alert, investigation and plan the answer promises are
    // readable at once, with no waiting.
    let now = get_json(&d, &format!("/v1/alerts/{alert_id}")).await;
    assert_eq!(now["investigation"]["alert"]["id"], alert_id.as_str());
    assert_eq!(now["plans"][0]["id"], out["plan"]["id"]);
    let events = get_json(&d, &format!("/v1/events?trace_id={trace}")).await;
    assert_eq!(events["items"][0]["id"], out["event_id"]);

    // The alert, its investigation, its plan and the observe-mode action are all readable, one trace.
    let detail = eventually(Duration::from_secs(5), || async {
        let v = get_json_when_stored(&d, &format!("/v1/alerts/{alert_id}")).await?;
        (v["actions"].as_array().map(|a| a.len()) == Some(1)).then_some(v)
    })
    .await;
    assert_eq!(detail["alert"]["trace_id"], trace);
    assert_eq!(
        detail["alert"]["subject"],
        json!({"type": "ip", "value": "203.0.113.7"})
    );
    assert_eq!(detail["investigation"]["trace_id"], trace);
    assert_eq!(detail["investigation"]["alert"]["id"], alert_id.as_str());
    assert_eq!(detail["plans"][0]["trace_id"], trace);
    assert_eq!(detail["plans"][0]["id"], out["plan"]["id"]);
    let action = &detail["actions"][0];
    assert_eq!(action["trace_id"], trace);
    assert_eq!(action["mode"], "observe");
    assert_eq!(action["state"], "planned");
    assert_eq!(
        action["preview"]["operations"][0],
        "add element inet sentinel blocked_v4 { 203.0.113.7 timeout 14400s }"
    );

    let alerts = get_json(&d, &format!("/v1/alerts?trace_id={trace}")).await;
    assert_eq!(alerts["items"].as_array().unwrap().len(), 1);
    let actions = get_json(&d, "/v1/actions?state=planned&subject=203.0.113.7").await;
    assert_eq!(actions["items"][0]["id"], action["id"]);
    let events = get_json(&d, &format!("/v1/events?trace_id={trace}")).await;
    assert_eq!(events["items"][0]["src_ip"], "203.0.113.7");
    let audit = eventually(Duration::from_secs(5), || async {
        let v = get_json(&d, &format!("/v1/audit?trace_id={trace}")).await;
        (v.as_array().map(|a| a.len()) == Some(5)).then_some(v)
    })
    .await;
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "alert_raised",
            "investigation_concluded",
            "plan_decided",
            "action_changed",
            "notice_sent"
        ]
    );
    // The request's log lines carry the trace too.
    let (_dir, logs) = d.stop();
    let traced: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&format!("\"trace\":\"{trace}\"")))
        .collect();
    for evt in ["alert_raised", "action_recorded", "notice", "http_request"] {
        assert!(
            traced
                .iter()
                .any(|l| l.contains(&format!("\"evt\":\"{evt}\""))),
            "no {evt} line with the trace:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn benign_telemetry_gets_a_score_and_no_plan() {
    let d = Daemon::start(&[]);
    let out: Value = d
        .client()
        .post(d.url("/v1/defend"))
        .header("x-api-key", &d.key)
        .header("content-type", "application/json")
        .body(r#"{"src_ip":"198.51.100.4","failed_logins":1,"path":"/index.html"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(out["alerted"], false);
    assert_eq!(out["score"], 0);
    assert!(out.get("plan").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_is_fail_closed() {
    let d = Daemon::start(&[]);
    let c = d.client();
    let none = c.get(d.url("/v1/version")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let none_body = none.text().await.unwrap();
    let wrong = c
        .get(d.url("/v1/version"))
        .bearer_auth("snl_not-a-real-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.text().await.unwrap(),
        none_body,
        "same body whatever the cause"
    );
    let ok = c
        .get(d.url("/v1/version"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["name"], "sentinel");
    assert_eq!(c.get(d.url("/health")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(d.url("/metrics")).send().await.unwrap().status(), 401);
    let metrics = c
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sentinel_auth_failures_total 3"),
        "{metrics}"
    );
    // The admin key is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.data().join("admin.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(d.key.starts_with("snl_") && d.key.len() >= 47);
    // A restart keeps the key and does not print a new one.
    let key = d.key.clone();
    let (dir, first_out) = d.stop();
    assert_eq!(first_out.matches(&key).count(), 1, "printed once");
    let d2 = Daemon::start_in(dir, &[]);
    assert_eq!(d2.key, key);
    let ok = d2
        .client()
        .get(d2.url("/v1/version"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let (_dir, second_out) = d2.stop();
    assert!(!second_out.contains("created an admin API key"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bypass_works_only_with_the_variable() {
    let d = Daemon::start(&[("SENTINEL_ALLOW_INSECURE_NO_AUTH", "false")]);
    assert_eq!(
        d.client()
            .get(d.url("/v1/version"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    drop(d);
    let d = Daemon::start(&[("SENTINEL_ALLOW_INSECURE_NO_AUTH", "true")]);
    assert_eq!(
        d.client()
            .get(d.url("/v1/version"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (_dir, out) = d.stop();
    assert!(
        out.lines()
            .any(|l| l.contains("\"lvl\":\"warn\"") && l.contains("auth_bypass_on")),
        "a WARNING at start:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_nothing_good_is_lost() {
    let d = Daemon::start(&[("SENTINEL__API__MAX_BODY_BYTES", "65536")]);
    let c = d.client();
    let post = |path: &str, ct: &str, body: String| {
        c.post(d.url(path))
            .bearer_auth(&d.key)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = post("/v1/defend", "application/json", "{\"src_ip\": ".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("line 1 column"), "{msg}");
    let r = post(
        "/v1/defend",
        "application/json",
        r#"{"src_ip":"203.0.113.7","dst_port":"http"}"#.into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.starts_with("`dst_port`"), "{msg}");
    let big = format!(
        r#"{{"src_ip":"203.0.113.7","payload":"{}"}}"#,
        "a".repeat(70_000)
    );
    assert_eq!(
        post("/v1/defend", "application/json", big)
            .await
            .unwrap()
            .status(),
        413
    );
    assert_eq!(
        post("/v1/defend", "text/plain", ATTACK.into())
            .await
            .unwrap()
            .status(),
        415
    );

    // NDJSON: 100 lines, 3 bad; 97 kept, 3 reported by line number.
    let trace = "ndjson-trace";
    let bad_lines = [10usize, 50, 99];
    let body: String = (1..=100)
        .map(|i| {
            if i == 10 {
                "{not json".to_string()
            } else if i == 50 {
                r#"{"src_ip":"999.1.1.1"}"#.to_string()
            } else if i == 99 {
                "[1,2,3]".to_string()
            } else {
                format!(
                    r#"{{"src_ip":"198.51.100.{}","request_rate":{i}}}"#,
                    i % 250
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let r = c
        .post(d.url("/v1/events/stream"))
        .bearer_auth(&d.key)
        .header("content-type", "application/x-ndjson")
        .header("x-trace-id", trace)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rep: Value = r.json().await.unwrap();
    assert_eq!(rep["accepted"], 97);
    assert_eq!(rep["rejected"], 3);
    let lines: Vec<u64> = rep["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, bad_lines.map(|l| l as u64));
    assert!(rep["errors"][1]["error"]
        .as_str()
        .unwrap()
        .contains("src_ip"));
    let stored = eventually(Duration::from_secs(5), || async {
        let v = get_json(&d, &format!("/v1/events?trace_id={trace}&limit=1000")).await;
        let n = v["items"].as_array().unwrap().len();
        (n == 97).then_some(n)
    })
    .await;
    assert_eq!(stored, 97);
    // Still serving.
    let r = post("/v1/defend", "application/json", ATTACK.into())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = c
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sentinel_events_invalid_total 5"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_neither_logs_nor_store() {
    let d = Daemon::start(&[("REDACT_KEYS", "session_ref")]);
    let body = json!({
        "src_ip": "203.0.113.9",
        "failed_logins": 30,
        "password": "Hunter2-Secret-Value",
        "context": {"headers": {"Authorization": "Bearer Tok3n-Secret-Value"}, "session_ref": "Sess-Secret-Value"},
        "list": [{"api_key": "Key-Secret-Value"}]
    });
    let r = d
        .client()
        .post(d.url("/v1/defend"))
        .bearer_auth(&d.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    let alert_id = out["alert_id"].as_str().unwrap().to_owned();
    let detail = eventually(Duration::from_secs(5), || async {
        let v = get_json_when_stored(&d, &format!("/v1/alerts/{alert_id}")).await?;
        (v["plans"].as_array().map(|a| a.len()) == Some(1)).then_some(v)
    })
    .await;
    let ev = &detail["alert"]["evidence"][0]["attrs"];
    assert_eq!(ev["password"], "***");
    assert_eq!(ev["context"]["headers"]["Authorization"], "Bearer ***");
    assert_eq!(ev["context"]["session_ref"], "***");
    assert_eq!(ev["list"][0]["api_key"], "***");
    let (dir, logs) = d.stop();
    let secrets = [
        "Hunter2-Secret-Value",
        "Tok3n-Secret-Value",
        "Sess-Secret-Value",
        "Key-Secret-Value",
    ];
    for s in secrets {
        assert!(!logs.contains(s), "{s} in logs");
    }
    // Every file under the data directory, the audit log's included.
    let mut files = Vec::new();
    let mut dirs = vec![dir.path().join("data")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => dirs.push(path),
                false => files.push(path),
            }
        }
    }
    assert!(files.iter().any(|p| p.ends_with("audit/checkpoints")));
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        for s in secrets {
            let found = bytes.windows(s.len()).any(|w| w == s.as_bytes());
            assert!(!found, "{s} in {}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_every_accepted_event() {
    let mut d = Daemon::start(&[("SENTINEL__STORE__FLUSH_INTERVAL", "2s")]);
    let n = 3000;
    let body: String = (0..n)
        .map(|i| {
            format!(
                r#"{{"src_ip":"198.51.100.{}","failed_logins":{}}}"#,
                i % 200,
                i % 20
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let r = d
        .client()
        .post(d.url("/v1/events/stream"))
        .bearer_auth(&d.key)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["accepted"], n);
    // Stop at once: the events are still in queues or in the writer's unflushed batch.
    let status = d.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", d.output());
    let store = sentinel_store::Store::open(&d.data().join("sentinel.db"))
        .await
        .unwrap();
    assert_eq!(store.count_events().await.unwrap(), n as u64);
    let alerts = store
        .list_alerts(&sentinel_store::AlertFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !alerts.items.is_empty(),
        "the attacks among them raised alerts"
    );
}

#[test]
fn config_problems_are_all_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "api:\n  lisen: 1.2.3.4:80\n  max_body_bytes: lots\npolicy:\n  allowlist: [not-a-cidr]\nbogus: 1\n",
    )
    .unwrap();
    let out = command(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "api.lisen",
        "api.max_body_bytes",
        "policy.allowlist",
        "bogus",
    ] {
        assert!(
            err.contains(&format!("`{path}")),
            "{path} not named in:\n{err}"
        );
    }
    // `run` refuses the same configuration before listening.
    let out = command(dir.path()).arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.lisen"));
    // An invalid value from the environment names its key.
    let out = command(dir.path())
        .args(["config", "check", "--config", "/dev/null"])
        .env("SENTINEL__API__LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`api.listen`"));
}

#[test]
fn config_check_masks_secrets_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        "api:\n  listen: 0.0.0.0:8000\npolicy:\n  mode: enforce\n",
    )
    .unwrap();
    // The bypass is an error off loopback (tests/cli_trust.rs); on loopback it is a warning.
    let out = command(dir.path())
        .args(["config", "check"])
        .env("REDACT_KEYS", "listen")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("0.0.0.0:8000\n"),
        "a key matching REDACT_KEYS is masked:\n{text}"
    );
    assert!(text.contains("***"));
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("WARNING: "))
        .collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(warnings.iter().any(|w| w.contains("not loopback")));
    assert!(warnings.iter().any(|w| w.contains("allowlist")));
    let out = command(dir.path())
        .args(["config", "check", "--listen", "127.0.0.1:8000"])
        .env("SENTINEL_ALLOW_INSECURE_NO_AUTH", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("WARNING: ") && l.contains("allow_insecure_no_auth")));
    // Defaults are safe: no warning.
    let clean = tempfile::tempdir().unwrap();
    let out = command(clean.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("WARNING"));
}

#[test]
fn healthcheck_follows_readiness() {
    let d = Daemon::start(&[]);
    let hc = |dir: &std::path::Path| {
        command(dir)
            .args(["healthcheck", "--data-dir", "data"])
            .status()
            .unwrap()
    };
    assert!(hc(d.dir.path()).success());
    let (dir, _) = d.stop();
    assert_eq!(hc(dir.path()).code(), Some(1));
}

/// What would stop the daemon while starting is found by `config check` first: a `data_dir` that is a
/// file (or under one), and a fail2ban filter that cannot be read, whose cause is said once.
#[test]
fn config_check_finds_what_the_daemon_would_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    for (data_dir, want) in [
        (file.clone(), "exists and is not a directory"),
        (file.join("data"), "is not a directory"),
    ] {
        std::fs::write(
            dir.path().join("sentinel.yml"),
            format!("data_dir: {}\n", data_dir.display()),
        )
        .unwrap();
        let out = command(dir.path())
            .args(["config", "check"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("`data_dir`: {}", data_dir.display()))
                && stderr.contains(want),
            "{stderr}"
        );
        // The daemon refuses it too: `config check` and `run` agree.
        let out = command(dir.path())
            .args(["run", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
    let roots = dir.path().join("uploads");
    std::fs::create_dir(&roots).unwrap();
    let data = dir.path().join("data");
    for (yaml, want) in [
        (
            "sources:\n  - { type: syslog, udp: \"192.0.2.1:5514\" }\n".to_owned(),
            "`sources[0].udp`: 192.0.2.1 is not an address of this host".to_owned(),
        ),
        (
            format!(
                "respond:\n  quarantine_dir: {}\n  quarantine_roots: [{}]\n  actuators:\n    quarantine_file: {{ mode: enforce, max_live: 10 }}\n",
                file.join("q").display(),
                roots.display()
            ),
            format!("`respond.quarantine_dir`: {}", file.join("q").display()),
        ),
    ] {
        std::fs::write(
            dir.path().join("sentinel.yml"),
            format!("data_dir: {}\n{yaml}", data.display()),
        )
        .unwrap();
        let out = command(dir.path())
            .args(["config", "check"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}\n{stderr}");
        assert!(stderr.contains(&want), "{want}\n{stderr}");
        let out = command(dir.path())
            .args(["run", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{yaml}");
    }
    let missing = dir.path().join("missing.conf");
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "data_dir: {}\nsources:\n  - {{ type: file, paths: [/var/log/syslog], fail2ban_filter: {} }}\n",
            dir.path().join("data").display(),
            missing.display()
        ),
    )
    .unwrap();
    let out = command(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

/// A problem with a source on `/var/log/auth.log`, or with a filter named like fail2ban's stock
/// `nginx-http-auth`, is printed, not masked as if `auth…:` were a secret key.
#[test]
fn config_check_problems_on_auth_files_are_not_masked() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nginx-http-auth.conf");
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "data_dir: {}\nsources:\n  - {{ type: file, paths: [/var/log/auth.log], fail2ban_filter: {} }}\n",
            dir.path().join("data").display(),
            missing.display()
        ),
    )
    .unwrap();
    let out = command(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("***"), "{stderr}");
    assert!(
        stderr.contains("sources[0] file `/var/log/auth.log`")
            && stderr.contains(&format!(
                "`{}`: cannot read: No such file",
                missing.display()
            )),
        "{stderr}"
    );
}

/// `--env-file` names a file that must exist: a typo is an error, not a layer skipped silently (only the
/// default `./.env` is optional).
#[test]
fn a_missing_env_file_given_on_the_command_line_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["config", "check", "--env-file", "prod.env"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`prod.env`: cannot read"), "{stderr}");
    let out = command(dir.path())
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
