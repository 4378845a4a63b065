//! Notifications through the real daemon: a webhook receiver that is down while notices are queued
//! and while the daemon restarts still gets every message exactly once (by delivery id) once it is
//! up; an attack wave of one scenario from many addresses is one message with a count; a Matrix
//! channel with a wrong token dead-letters its message, which the API lists and requeues; an alert
//! reaches an SMTP server over STARTTLS; an error-level log line becomes an `error` notice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use sentinel_testkit::receivers::{MatrixFake, WebhookReceiver};
use sentinel_testkit::smtp::{SmtpOptions, SmtpSink};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const SECRET: &str = "hook-secret-for-tests";
const WAIT: Duration = Duration::from_secs(20);

/// A data directory with `sentinel.yml` holding `notify` (YAML, indented under `notify:`).
fn dir_with(notify: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!("notify:\n{notify}\n{extra}"),
    )
    .unwrap();
    dir
}

fn start(dir: tempfile::TempDir) -> Daemon {
    tokio::task::block_in_place(|| Daemon::start_in(dir, &[]))
}

fn stop(d: Daemon) -> (tempfile::TempDir, String) {
    tokio::task::block_in_place(|| d.stop())
}

async fn post(d: &Daemon, path: &str, body: Value) -> (u16, Value) {
    let r = d
        .client()
        .post(d.url(path))
        .bearer_auth(&d.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(d: &Daemon, path: &str) -> Value {
    let r = d
        .client()
        .get(d.url(path))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.unwrap()
}

/// An alerting `/v1/defend` call from `ip` (a documentation address, in the JSON only).
async fn attack(d: &Daemon, ip: &str) {
    let (status, body) = post(
        d,
        "/v1/defend",
        json!({"src_ip": ip, "failed_logins": 40, "user_agent": "hydra v9", "path": "/login"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn accepted(d: &Daemon) -> u64 {
    get(d, "/v1/notify").await["accepted"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_down_across_a_restart_gets_every_notice_exactly_once() {
    let hook = WebhookReceiver::start(SECRET).await;
    hook.set_down(true);
    let dir = dir_with(
        &format!(
            "  channels:\n    hook: {{type: webhook, url: \"{}\", secret: \"{SECRET}\"}}\n  \
             routes:\n    - {{kinds: [manual, alert, action_applied, action_failed], channels: [hook], group_wait: 0s}}\n  \
             retry: {{base: 200ms, factor: 2, cap: 1s, max_attempts: 1000}}",
            hook.url()
        ),
        "",
    );
    let d = start(dir);
    let titles: Vec<String> = (0..5).map(|i| format!("manual notice {i}")).collect();
    for t in &titles {
        let (status, body) = post(
            &d,
            "/v1/notify",
            json!({"title": t, "body": "from the test"}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], true);
        assert_eq!(body["channels"], json!(["hook"]));
    }
    attack(&d, "203.0.113.9").await;
    // Five manual notices and the alert's: all on disk before the stop.
    eventually(WAIT, || async { (accepted(&d).await >= 6).then_some(()) }).await;
    // The receiver is down: attempts come and fail.
    eventually(WAIT, || async {
        (!hook.attempts().is_empty()).then_some(())
    })
    .await;
    let (dir, out) = stop(d);
    assert!(hook.received().is_empty());
    assert!(out.contains("\"evt\":\"stopped\""), "{out}");

    let d = start(dir);
    hook.set_down(false);
    let got = eventually(WAIT, || async {
        let r = hook.received();
        (r.len() >= 6).then_some(r)
    })
    .await;
    // Give a duplicate a chance to show up, then check exactly-once by delivery id.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = hook.received();
    assert_eq!(got_after.len(), got.len(), "no new delivery after the six");
    let ids: BTreeSet<String> = got_after.iter().map(|r| r.delivery_id.clone()).collect();
    assert_eq!(ids.len(), 6, "six unique deliveries: {ids:?}");
    for a in hook.attempts() {
        let id = a
            .header("x-sentinel-delivery")
            .unwrap_or_default()
            .to_owned();
        assert!(
            ids.contains(&id),
            "an attempt's delivery {id} was never received"
        );
    }
    assert!(
        hook.rejected().is_empty(),
        "signatures: {:?}",
        hook.rejected()
    );
    let got_titles: BTreeSet<String> = got_after
        .iter()
        .map(|r| r.json["title"].as_str().unwrap().to_owned())
        .collect();
    for t in &titles {
        assert!(got_titles.contains(t), "{t} missing from {got_titles:?}");
    }
    assert!(
        got_after
            .iter()
            .any(|r| r.json["title"].as_str().unwrap().contains("alert")),
        "{got_titles:?}"
    );
    // The heartbeat and the metrics say the outbox is empty.
    eventually(WAIT, || async {
        let hb = get(&d, "/v1/system/heartbeat").await;
        (hb["queues"]["notify"]["outbox_pending"] == 0).then_some(())
    })
    .await;
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
        metrics.contains("sentinel_notify_delivered_total{channel=\"hook\"} 6"),
        "{metrics}"
    );
    assert!(metrics.contains("sentinel_notify_outbox_pending{channel=\"hook\"} 0"));
    stop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attack_wave_of_one_scenario_is_one_message_with_a_count() {
    let hook = WebhookReceiver::start(SECRET).await;
    let dir = dir_with(
        &format!(
            "  channels:\n    hook: {{type: webhook, url: \"{}\", secret: \"{SECRET}\"}}\n  \
             routes:\n    - {{kinds: [alert, action_applied, action_failed], channels: [hook], group_wait: 8s}}",
            hook.url()
        ),
        "",
    );
    let d = start(dir);
    const WAVE: u64 = 12;
    let mut calls = Vec::new();
    for i in 0..WAVE {
        let ip = format!("198.51.100.{}", i + 1);
        let (url, key, c) = (d.url("/v1/defend"), d.key.clone(), d.client());
        calls.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .bearer_auth(key)
                .json(&json!({"src_ip": ip, "failed_logins": 40, "user_agent": "hydra v9", "path": "/login"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    let got = eventually(WAIT, || async {
        let r = hook.received();
        (!r.is_empty()).then_some(r)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = hook.received();
    assert_eq!(
        all.len(),
        1,
        "one message for the wave: {:?}",
        all.iter().map(|r| &r.json).collect::<Vec<_>>()
    );
    assert_eq!(got[0].json["count"], WAVE, "{}", got[0].json);
    let stats = get(&d, "/v1/notify").await;
    assert_eq!(stats["folded"], WAVE - 1, "{stats}");
    stop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_matrix_channel_with_a_wrong_token_dead_letters_and_retry_requeues() {
    let room = "!ops:example.org";
    let mx = MatrixFake::start(room, "the-right-token").await;
    let dir = dir_with(
        &format!(
            "  channels:\n    chat: {{type: matrix, homeserver: \"{}\", room: \"{room}\", access_token: \"a-wrong-token\"}}\n  \
             routes:\n    - {{kinds: [manual], channels: [chat], group_wait: 0s}}\n  \
             retry: {{base: 100ms, cap: 1s, max_attempts: 3}}",
            mx.homeserver()
        ),
        "",
    );
    let d = start(dir);
    let (status, body) = post(
        &d,
        "/v1/notify",
        json!({"title": "to the room", "severity": "high"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let dead = eventually(WAIT, || async {
        let v = get(&d, "/v1/notify/dead-letters").await;
        v["items"].as_array().filter(|a| !a.is_empty()).cloned()
    })
    .await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let id = dead[0]["delivery_id"].as_str().unwrap().to_owned();
    assert_eq!(dead[0]["channel"], "chat");
    assert_eq!(dead[0]["message"]["title"], "to the room");
    assert!(!dead[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("a-wrong-token"));
    // 401 is permanent: one attempt, no retry.
    assert_eq!(mx.attempts().len(), 1);
    assert!(mx.received().is_empty());
    let stats = get(&d, "/v1/notify").await;
    assert_eq!(stats["dead"], 1, "{stats}");
    assert_eq!(stats["outbox_dead"], 1, "{stats}");

    // An unknown id is a 404; the real one is queued again, and dies again (one more attempt).
    let (status, _) = post(
        &d,
        "/v1/notify/dead-letters/no-such-delivery/retry",
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = post(
        &d,
        &format!("/v1/notify/dead-letters/{id}/retry"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    eventually(WAIT, || async { (mx.attempts().len() >= 2).then_some(()) }).await;
    let stats = eventually(WAIT, || async {
        let s = get(&d, "/v1/notify").await;
        (s["dead"] == 2).then_some(s)
    })
    .await;
    assert_eq!(stats["channels"]["chat"]["attempts_failed"], 2, "{stats}");
    let again = get(&d, "/v1/notify/dead-letters").await;
    assert_eq!(again["items"][0]["delivery_id"], id.as_str(), "{again}");
    let txns: BTreeSet<String> = mx
        .attempts()
        .iter()
        .map(|a| a.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        txns.len(),
        1,
        "the retry keeps the delivery id as txn id: {txns:?}"
    );
    // The operator's actions are in the audit trail.
    let audit = get(&d, "/v1/audit/records?limit=1000").await;
    let text = audit.to_string();
    assert!(text.contains("requeued dead letter"), "{text}");
    assert!(text.contains("to the room"), "{text}");
    stop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_reaches_an_smtp_server_over_starttls() {
    let sink = SmtpSink::start(SmtpOptions::default()).await;
    let dir = dir_with(
        &format!(
            "  channels:\n    mail: {{type: smtp, host: localhost, port: {}, security: starttls, from: sentinel@example.org, to: [ops@example.org], ca_file: \"{}\"}}\n  \
             routes:\n    - {{kinds: [alert, action_applied, action_failed], channels: [mail], group_wait: 0s}}",
            sink.port(),
            sink.ca_file().display()
        ),
        "",
    );
    let d = start(dir);
    attack(&d, "192.0.2.77").await;
    let mail = eventually(WAIT, || async { sink.received().into_iter().next() }).await;
    assert!(mail.tls, "STARTTLS");
    assert_eq!(mail.rcpt_to, vec!["ops@example.org".to_owned()]);
    let subject = mail.subject.clone().unwrap();
    assert!(subject.starts_with("[Sentinel] "), "{subject}");
    assert!(subject.contains("alert"), "{subject}");
    assert!(mail.body.contains("192.0.2.77"), "{}", mail.body);
    assert!(mail.body.contains("delivery: "), "{}", mail.body);
    stop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_error_log_line_becomes_an_error_notice() {
    let hook = WebhookReceiver::start(SECRET).await;
    let feed_dir = tempfile::tempdir().unwrap();
    let feed = feed_dir.path().join("bad.netset");
    std::fs::write(&feed, "this is not an address\n").unwrap();
    let dir = dir_with(
        &format!(
            "  channels:\n    hook: {{type: webhook, url: \"{}\", secret: \"{SECRET}\"}}\n  \
             routes:\n    - {{kinds: [error], channels: [hook], group_wait: 0s}}",
            hook.url()
        ),
        &format!(
            "intel:\n  feeds:\n    - {{name: bad, path: \"{}\", format: list, verdict: malicious, score: 90}}\n",
            feed.display()
        ),
    );
    let d = start(dir);
    let got = eventually(WAIT, || async {
        hook.received()
            .into_iter()
            .find(|r| r.json["title"] == "error: intel_feed_failed")
    })
    .await;
    assert_eq!(got.json["kind"], "error");
    assert_eq!(got.json["severity"], "high");
    assert!(
        got.json["body"].as_str().unwrap().contains("bad.netset"),
        "{}",
        got.json
    );
    stop(d);
}

/// Runs `sentinel notify ARGS` in `dir` (its `sentinel.yml`, data in `dir/data`).
fn cli(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = common::command(dir)
        .args(["notify", "--data-dir", "data"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_tests_a_channel_and_talks_to_the_daemon() {
    let hook = WebhookReceiver::start(SECRET).await;
    let dir = dir_with(
        &format!(
            "  channels:\n    hook: {{type: webhook, url: \"{}\", secret: \"{SECRET}\"}}\n    \
             quiet: {{type: log}}\n  \
             routes:\n    - {{kinds: [manual], channels: [hook], group_wait: 0s}}",
            hook.url()
        ),
        "",
    );
    let path = dir.path().to_path_buf();
    // `notify test` needs no daemon: one signed message, or exit 1 with the channel's reason.
    let (ok, out, err) = tokio::task::block_in_place(|| cli(&path, &["test", "--channel", "hook"]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("test message sent"), "{out}");
    assert_eq!(hook.received().len(), 1);
    assert_eq!(hook.received()[0].json["kind"], "test");
    hook.set_down(true);
    let (ok, _, err) = tokio::task::block_in_place(|| cli(&path, &["test", "--channel", "hook"]));
    assert!(!ok);
    assert!(err.contains("503"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
    // A log channel's test line goes to a JSON log, not the terminal: the answer says where.
    let (ok, out, err) =
        tokio::task::block_in_place(|| cli(&path, &["test", "--channel", "quiet"]));
    assert!(ok && out.contains("not to this terminal"), "{out}{err}");
    let (ok, _, err) = tokio::task::block_in_place(|| cli(&path, &["test", "--channel", "nope"]));
    assert!(!ok && err.contains("no channel \"nope\""), "{err}");
    hook.set_down(false);

    let d = start(dir);
    let (ok, out, err) = tokio::task::block_in_place(|| {
        cli(
            &path,
            &["send", "--title", "from the cli", "--severity", "high"],
        )
    });
    assert!(ok, "{out}{err}");
    assert!(out.contains("queued for hook"), "{out}");
    eventually(WAIT, || async {
        hook.received()
            .into_iter()
            .find(|r| r.json["title"] == "from the cli")
    })
    .await;
    let (ok, out, err) = tokio::task::block_in_place(|| cli(&path, &["status", "--json"]));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["accepted"], 1, "{v}");
    let (ok, out, _) = tokio::task::block_in_place(|| cli(&path, &["dead-letters", "--json"]));
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["items"], json!([]));
    let (ok, out, _) = tokio::task::block_in_place(|| cli(&path, &["dead-letters"]));
    assert!(ok && out.contains("no dead letters"), "{out}");
    let (ok, _, err) = tokio::task::block_in_place(|| cli(&path, &["retry", "no-such-delivery"]));
    assert!(
        !ok && err.contains("no dead letter has delivery id \"no-such-delivery\""),
        "{err}"
    );
    let (ok, _, err) = tokio::task::block_in_place(|| cli(&path, &["send", "--title", ""]));
    assert!(!ok && err.contains("`title`"), "{err}");
    let big = "x".repeat(16 * 1024 + 1);
    let (ok, _, err) =
        tokio::task::block_in_place(|| cli(&path, &["send", "--title", "t", "--body", &big]));
    assert!(!ok && err.contains("`body`"), "{err}");
    stop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiries_and_audit_checkpoints_are_notices() {
    let hook = WebhookReceiver::start(SECRET).await;
    let dir = dir_with(
        &format!(
            "  channels:\n    hook: {{type: webhook, url: \"{}\", secret: \"{SECRET}\"}}\n  \
             routes:\n    - {{kinds: [action_reverted, action_failed, audit_checkpoint], channels: [hook], group_wait: 0s, dedup_window: 0s}}",
            hook.url()
        ),
        "audit:\n  checkpoint_every: 1\n",
    );
    let d = start(dir);
    let (status, body) = post(
        &d,
        "/v1/decisions",
        json!({"ip": "203.0.113.44", "duration": "1s", "reason": "test expiry"}),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let reverted = eventually(WAIT, || async {
        hook.received()
            .into_iter()
            .find(|r| r.json["kind"] == "action_reverted")
    })
    .await;
    assert_eq!(reverted.json["severity"], "info");
    assert!(
        reverted.json["body"]
            .as_str()
            .unwrap()
            .contains("203.0.113.44"),
        "{}",
        reverted.json
    );
    let cp = eventually(WAIT, || async {
        hook.received()
            .into_iter()
            .find(|r| r.json["kind"] == "audit_checkpoint")
    })
    .await;
    let body = cp.json["body"].as_str().unwrap();
    assert!(body.starts_with("size: "), "{body}");
    assert!(body.contains("root: "), "{body}");
    // The signed note: origin line, size, root, time, blank line, signature line(s).
    assert!(body.contains("\n\u{2014} "), "{body}");
    stop(d);
}

/// `config check` refuses a channel that validates but cannot be built (a `ca_file` holding no
/// certificate), as the daemon would at start, and warns about supervised children whose crash
/// notices no route takes.
#[test]
fn config_check_builds_the_channels_and_warns_about_unrouted_crashes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nopem.pem"), "not a certificate\n").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "notify:\n  channels:\n    mail: {{type: smtp, host: 127.0.0.1, port: 9, from: a@example.org, to: [b@example.org], ca_file: {}/nopem.pem}}\n  routes: [{{kinds: [alert], channels: [mail]}}]\nsupervise:\n  children: [{{name: a, process: {{command: /bin/true}}}}]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = common::command(dir.path())
        .args(["config", "check", "--data-dir", "data"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("`notify.channels.mail`: cannot be built") && stderr.contains("no PEM"),
        "{stderr}"
    );
    assert!(
        stdout.contains(
            "WARNING: 1 supervised child(ren) but no notify.routes entry takes kind `crash`"
        ),
        "{stdout}"
    );
}
