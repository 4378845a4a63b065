//! Manual decisions through the CLI and the API, in the default observe mode: added, listed, previewed
//! with the exact operation (the real actuator's own dry run), refused on the allowlist (and recorded),
//! deleted, and expired on time. Malformed values are 400s naming the field, and nothing is recorded.
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
        out.contains("add element inet sentinel blocked_net_v6 { 2001:db8::/64 timeout 3600s }"),
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

async fn post(d: &Daemon, body: Value) -> (u16, String) {
    let r = d
        .client()
        .post(d.url("/v1/decisions"))
        .bearer_auth(&d.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn recorded_actions(d: &Daemon) -> usize {
    let v: Value = d
        .client()
        .get(d.url("/v1/actions"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().len()
}

/// Each value that once became a live planned action, or reached the preview or the Docker API path
/// verbatim, is now a 400 naming the field, without the raw value; nothing is recorded or live.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_decisions_are_refused_naming_the_field() {
    let d = Daemon::start(&[]);
    let cases = [
        (
            json!({"ip": "203.0.113.7", "duration": "1h", "params": {"cidr": "127.0.0.0/8 "}}),
            "`params.cidr`",
        ),
        (
            json!({"ip": "203.0.113.7", "duration": "1h", "params": {"cidr": "203.0.113.0/24 } ; flush ruleset ; add element inet sentinel blocked_v4 { 192.0.2.1"}}),
            "`params.cidr`",
        ),
        (
            json!({"ip": "203.0.113.7", "kind": "redirect_to_honeypot", "duration": "1h", "params": {"honeypot": "192.0.2.30:2222 ; flush ruleset"}}),
            "`params.honeypot`",
        ),
        (
            json!({"ip": "128.0.0.7", "duration": "1h", "params": {"cidr": "128.0.0.0/1"}}),
            "`params.cidr`",
        ),
        (json!({"ip": "128.0.0.0/1", "duration": "1h"}), "`ip`"),
        (
            json!({"container": "x/../../images/y?force=1", "duration": "1h"}),
            "`container`",
        ),
        (
            json!({"ip": "203.0.113.7", "kind": "rate_limit", "duration": "1h", "params": {"rate_per_sec": -1}}),
            "`params.rate_per_sec`",
        ),
        (
            json!({"ip": "203.0.113.7", "kind": "rate_limit", "duration": "1h", "params": {"rate_per_sec": 0}}),
            "`params.rate_per_sec`",
        ),
        (json!({"file": "/root/.bashrc", "duration": "1h"}), "`file`"),
        (
            json!({"ip": "203.0.113.7", "duration": "500years"}),
            "`duration`",
        ),
        (
            json!({"ip": "203.0.113.7", "duration": "1h", "params": {"password": "hunter2-secret"}}),
            "`params`",
        ),
    ];
    for (body, field) in cases {
        let (status, text) = post(&d, body.clone()).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(field), "{body}: want {field} in {text}");
        for raw in ["flush ruleset", "images/y", "hunter2", "127.0.0.0/8 "] {
            assert!(
                !text.contains(raw),
                "{body}: the raw value is echoed: {text}"
            );
        }
        // A dry run is refused the same way.
        let mut dry = body.clone();
        dry["dry_run"] = json!(true);
        assert_eq!(post(&d, dry).await.0, 400);
    }
    let (_, text) = post(&d, json!({"file": "/root/.bashrc", "duration": "1h"})).await;
    assert!(text.contains("respond.quarantine_roots"), "{text}");
    let (_, text) = post(&d, json!({"ip": "203.0.113.7", "duration": "500years"})).await;
    assert!(text.contains("policy.max_ttl"), "{text}");

    // The CLI runs the same parse and says the same thing, before sending anything.
    let (ok, _, err) = cli(
        &d,
        &[
            "add",
            "--container",
            "x/../../images/y?force=1",
            "--duration",
            "1h",
        ],
    );
    assert!(
        !ok && err.contains("`container`") && !err.contains("images/y"),
        "{err}"
    );
    let (ok, _, err) = cli(&d, &["add", "--ip", "128.0.0.0/1", "--duration", "1h"]);
    assert!(!ok && err.contains("`ip`"), "{err}");

    let (ok, out, _) = cli(&d, &["list", "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
    assert_eq!(recorded_actions(&d).await, 0, "nothing recorded");
    let (_dir, _) = d.stop();
}

/// With a tighter `policy.max_ttl` and a quarantine root: a longer duration and a file outside the root
/// are 400s; a file inside is previewed with the quarantine actuator's own dry run.
#[tokio::test(flavor = "multi_thread")]
async fn limits_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    std::fs::create_dir(&uploads).unwrap();
    let shell = uploads.join("shell.php");
    std::fs::write(&shell, "<?php ?>").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "policy:\n  max_ttl: 1d\nrespond:\n  quarantine_roots: [{}]\n",
            uploads.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let (status, text) = post(&d, json!({"ip": "203.0.113.7", "duration": "25h"})).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("`duration`") && text.contains("policy.max_ttl"),
        "{text}"
    );
    assert_eq!(
        post(&d, json!({"ip": "203.0.113.7", "duration": "1d"}))
            .await
            .0,
        201
    );
    for f in [
        "/etc/hosts".to_string(),
        format!("{}/../sentinel.yml", uploads.display()),
    ] {
        let (status, text) = post(&d, json!({"file": f, "duration": "1h"})).await;
        assert_eq!(status, 400, "{f}: {text}");
        assert!(text.contains("`file`"), "{f}: {text}");
    }
    let (status, text) = post(
        &d,
        json!({"file": shell.display().to_string(), "duration": "1h", "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let rec: Value = serde_json::from_str(&text).unwrap();
    let canonical = std::fs::canonicalize(&shell).unwrap();
    assert_eq!(
        rec["preview"]["operations"][0],
        format!(
            "sha256 {}; record path, mode, uid/gid, size, mtime",
            canonical.display()
        )
    );
    assert!(shell.exists(), "a dry run moves nothing");
    let (_dir, _) = d.stop();
}

/// Hostile values of every parameter of every kind, and of the subject and duration: each is a 400 that
/// names its field (never a 5xx), never echoes the value, and nothing is recorded. Includes values the
/// typed parser once let through to nftables (a honeypot with a zone id, repeated or overlapping ports,
/// an IPv4-mapped subject that a v6 set never matches) and ranges holding an allowlisted address.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_values_are_400s_naming_the_field() {
    let d = Daemon::start(&[]);
    let long = "a".repeat(1024);
    let ip = |v: Value| json!({"ip": v, "duration": "1h"});
    let with = |kind: &str, subject: &str, params: Value| json!({"ip": subject, "kind": kind, "duration": "1h", "params": params});
    let rate = |p: Value| with("rate_limit", "203.0.113.7", p);
    let redirect = |p: Value| with("redirect_to_honeypot", "203.0.113.7", p);
    let mut cases: Vec<(Value, &str)> = vec![
        (ip(json!(" 203.0.113.7")), "`ip`"),
        (ip(json!("203.0.113.7\n")), "`ip`"),
        (ip(json!("٢٠٣.0.113.7")), "`ip`"),
        (ip(json!("0xcb.0.113.7")), "`ip`"),
        (ip(json!("fe80::1%eth0")), "`ip`"),
        (ip(json!(3405803783u64)), "`ip`"),
        (ip(json!(["203.0.113.7"])), "`ip`"),
        (ip(json!("::ffff:127.0.0.1")), "`ip`"),
        (ip(json!("::ffff:0:0/96")), "`ip`"),
        (ip(json!("0.0.0.0")), "`ip`"),
        (ip(json!("::")), "`ip`"),
        (ip(json!("224.0.0.1")), "`ip`"),
        (ip(json!("255.255.255.255")), "`ip`"),
        (ip(json!("0.0.0.0/7")), "`ip`"),
        (ip(json!("::/15")), "`ip`"),
        (ip(json!("127.0.0.0/8")), "allowlist"),
        (ip(json!("::/16")), "`ip`"),
        (
            json!({"ip": "::2", "duration": "1h", "params": {"cidr": "::/16"}}),
            "overlaps the allowlist",
        ),
        (ip(json!(long.clone())), "`ip`"),
        (
            json!({"ip": "2001:db8::1", "duration": "1h", "params": {"cidr": "::/16"}}),
            "`params.cidr`",
        ),
        (
            json!({"ip": "203.0.113.7", "duration": "1h", "params": {"cidr": ["203.0.113.0/24"]}}),
            "`params.cidr`",
        ),
        (
            json!({"ip": "203.0.113.7", "duration": "1h", "params": {"cidr": "203.0.113.0/24\u{0}"}}),
            "`params.cidr`",
        ),
        (
            json!({"ip": "203.0.113.7", "duration": "1h", "params": [1]}),
            "`params`",
        ),
        (rate(json!({"rate_per_sec": "10"})), "`params.rate_per_sec`"),
        (rate(json!({"rate_per_sec": 10.0})), "`params.rate_per_sec`"),
        (rate(json!({"rate_per_sec": 1e3})), "`params.rate_per_sec`"),
        (
            rate(json!({"rate_per_sec": 4294967296u64})),
            "`params.rate_per_sec`",
        ),
        (
            rate(json!({"rate_per_sec": u64::MAX})),
            "`params.rate_per_sec`",
        ),
        (rate(json!({"rate_per_sec": -0.0})), "`params.rate_per_sec`"),
        (rate(json!({"rate_per_sec": true})), "`params.rate_per_sec`"),
        (rate(json!({"rate_per_sec": [10]})), "`params.rate_per_sec`"),
        (rate(json!({"burst": 0})), "`params.burst`"),
        (
            rate(json!({"rate_per_sec": 10, "rate_bytes_per_sec": 10})),
            "`params.rate_bytes_per_sec`",
        ),
        (rate(json!({"burst_bytes": 10})), "`params.burst_bytes`"),
        (rate(json!({"action_id": "a b"})), "`params.action_id`"),
        (
            rate(json!({"action_id": long.clone()})),
            "`params.action_id`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": [0]})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": [65536]})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": ["10-1"]})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": ["1-65535 "]})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": ["٢٢-٢٣"]})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": "22"})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": [22.0]})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": [22, 22]})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": ["20-30", 25]})),
            "`params.ports`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:2222", "ports": []})),
            "`params.ports`",
        ),
        (redirect(json!({"ports": [22]})), "`params.honeypot`"),
        (
            redirect(json!({"honeypot": "0.0.0.0:22"})),
            "`params.honeypot`",
        ),
        (
            redirect(json!({"honeypot": "224.0.0.1:22"})),
            "`params.honeypot`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30"})),
            "`params.honeypot`",
        ),
        (
            redirect(json!({"honeypot": "192.0.2.30:0"})),
            "`params.honeypot`",
        ),
        (
            redirect(json!({"honeypot": "[2001:db8::30]:22"})),
            "`params.honeypot`",
        ),
        (
            with(
                "redirect_to_honeypot",
                "2001:db8::7",
                json!({"honeypot": "[fe80::1%2]:2222"}),
            ),
            "`params.honeypot`",
        ),
        (
            with(
                "redirect_to_honeypot",
                "2001:db8::7",
                json!({"honeypot": "[::ffff:192.0.2.30]:2222"}),
            ),
            "`params.honeypot`",
        ),
        (
            json!({"container": "web", "duration": "1h", "params": {"quarantine_network": "../x"}}),
            "`params.quarantine_network`",
        ),
        (
            json!({"container": "kind", "kind": "drop_all", "duration": "1h"}),
            "`kind`",
        ),
        (json!({"ip": "203.0.113.7", "duration": "0s"}), "`duration`"),
        (
            json!({"ip": "203.0.113.7", "duration": "-1h"}),
            "`duration`",
        ),
        (json!({"ip": "203.0.113.7", "duration": 3600}), "`duration`"),
        (
            json!({"ip": "203.0.113.7", "duration": "99999999999999y"}),
            "`duration`",
        ),
    ];
    for c in [
        "%2e%2e",
        "..",
        "a..b",
        ".hidden",
        "ünï",
        "web/../x",
        "",
        long.as_str(),
    ] {
        cases.push((json!({"container": c, "duration": "1h"}), "`container`"));
    }
    for f in [
        "/srv/root/../etc",
        "/srv/x/",
        "/srv//x",
        "/srv/x\u{0}y",
        "relative/x",
        "/srv/./x",
    ] {
        cases.push((json!({"file": f, "duration": "1h"}), "`file`"));
    }
    for (body, field) in &cases {
        for dry_run in [false, true] {
            let mut b = body.clone();
            b["dry_run"] = json!(dry_run);
            let (status, text) = post(&d, b).await;
            assert_eq!(status, 400, "{body}: {text}");
            assert!(text.contains(field), "{body}: want {field} in {text}");
            assert!(!text.contains(&long), "{body}: echoed");
            assert!(!text.contains("%2e") && !text.contains("ünï"), "{text}");
        }
    }
    // Duplicate keys: the last one is the one parsed, checked and acted on.
    let r = d
        .client()
        .post(d.url("/v1/decisions"))
        .bearer_auth(&d.key)
        .header("Content-Type", "application/json")
        .body(r#"{"ip":"203.0.113.7","ip":"127.0.0.1","duration":"1h"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("`ip`"));

    // An IPv4-mapped address is the IPv4 address: planned on the v4 set, which nftables matches.
    let (status, text) = post(
        &d,
        json!({"ip": "::ffff:203.0.113.9", "duration": "1h", "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let rec: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rec["spec"]["subject"]["value"], "203.0.113.9");
    assert_eq!(
        rec["preview"]["operations"][0],
        "add element inet sentinel blocked_v4 { 203.0.113.9 timeout 3600s }"
    );

    // The CLI refuses the same way, and `policy.max_ttl` holds there too.
    let (ok, _, err) = cli(&d, &["add", "--ip", "::ffff:127.0.0.1", "--duration", "1h"]);
    assert!(!ok && err.contains("`ip`"), "{err}");
    let (ok, _, err) = cli(&d, &["add", "--ip", "203.0.113.7", "--duration", "31d"]);
    assert!(
        !ok && err.contains("`duration`") && err.contains("policy.max_ttl"),
        "{err}"
    );
    // Refusals past parsing (the allowlist, an actuator's own check) are recorded as refused with
    // their reason; nothing is recorded planned or applied.
    let v: Value = d
        .client()
        .get(d.url("/v1/actions"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for a in v["items"].as_array().unwrap() {
        assert_eq!(a["state"], "refused", "{a}");
        assert!(a["error"].as_str().is_some(), "{a}");
    }
    let (ok, out, _) = cli(&d, &["list", "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
    let (_dir, _) = d.stop();
}

/// Enforcing `quarantine_file` on the default, relative data directory (`--data-dir data`) starts (its
/// quarantine directory is made absolute), and a file reached through a link out of the root, a
/// directory link, or a `..` path is a 400 naming `file`; a real file in the root is quarantined and
/// restored.
#[tokio::test(flavor = "multi_thread")]
async fn quarantine_enforces_on_a_relative_data_dir_and_refuses_links_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("uploads");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f"), "secret").unwrap();
    std::fs::write(root.join("shell.php"), "<?php ?>").unwrap();
    std::os::unix::fs::symlink(outside.join("f"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("dirlink")).unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "respond:\n  quarantine_roots: [{}]\n  actuators:\n    quarantine_file: {{ mode: enforce }}\n",
            root.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    for f in [
        root.join("link").display().to_string(),
        root.join("dirlink/f").display().to_string(),
        format!("{}/../outside/f", root.display()),
        format!("{}/", root.join("shell.php").display()),
    ] {
        for dry_run in [true, false] {
            let (status, text) =
                post(&d, json!({"file": f, "duration": "1h", "dry_run": dry_run})).await;
            assert_eq!(status, 400, "{f}: {text}");
            assert!(text.contains("`file`"), "{f}: {text}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(outside.join("f")).unwrap(),
        "secret"
    );
    let shell = root.join("shell.php");
    let (status, text) = post(
        &d,
        json!({"file": shell.display().to_string(), "duration": "1h"}),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let rec: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rec["state"], "applied", "{text}");
    assert!(!shell.exists(), "moved into quarantine");
    let (ok, _, err) = cli(&d, &["delete", "--all"]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&shell).unwrap(), "<?php ?>");
    let (_dir, _) = d.stop();
}

/// A database from before parameters were typed: an action whose params are free JSON
/// (`{"anything":1}`) and a plan with a rate on a block. After the upgrade the daemon starts, and
/// `GET /v1/actions`, the action by id and the plan's alert still answer, with the params as stored.
#[tokio::test(flavor = "multi_thread")]
async fn records_with_untyped_params_survive_an_upgrade() {
    let d = Daemon::start(&[]);
    let (status, text) = post(
        &d,
        json!({"ip": "203.0.113.44", "duration": "1h", "reason": "old"}),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let rec: Value = serde_json::from_str(&text).unwrap();
    let id = rec["id"].as_str().unwrap().to_string();
    let data = d.data();
    let (dir, _) = d.stop();

    let db = data.join("sentinel.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let n = sqlx::query(
        "UPDATE actions SET body = json_set(body, '$.spec.params', json('{\"anything\":1}'))",
    )
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(n, 1);
    sqlx::query(
        "UPDATE plans SET body = json_set(body, '$.actions[0].params', json('{\"rate_per_sec\":10}'))",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let d = Daemon::start_in(dir, &[]);
    let get = |path: String| {
        let c = d.client();
        let url = d.url(&path);
        let key = d.key.clone();
        async move {
            let r = c.get(url).bearer_auth(key).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, text) = get("/v1/actions".into()).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["items"][0]["id"], id.as_str(), "{text}");
    assert_eq!(v["items"][0]["spec"]["params"], json!({"anything": 1}));
    let (status, text) = get(format!("/v1/actions/{id}")).await;
    assert_eq!(status, 200, "{text}");
    let (ok, out, err) = cli(&d, &["list"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("ID"), "{out}");
    let (_dir, _) = d.stop();
}

/// Observe-mode decisions (the default mode) are still listed after a restart, and one that expired
/// while the daemon was down is marked expired instead of staying "planned" for ever.
#[tokio::test(flavor = "multi_thread")]
async fn observe_decisions_survive_a_restart() {
    let d = Daemon::start(&[]);
    let (status, text) = post(&d, json!({"ip": "203.0.113.61", "duration": "1h"})).await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = post(&d, json!({"ip": "203.0.113.62", "duration": "1s"})).await;
    assert_eq!(status, 201, "{text}");
    let (dir, _) = d.stop();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let d = Daemon::start_in(dir, &[]);
    let (ok, out, err) = cli(&d, &["list", "--json"]);
    assert!(ok, "{err}");
    let live: Value = serde_json::from_str(&out).unwrap();
    let subjects: Vec<&str> = live
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["spec"]["subject"]["value"].as_str())
        .collect();
    assert_eq!(subjects, ["203.0.113.61"], "{out}");
    let mut expired = Value::Null;
    for _ in 0..50 {
        expired = d
            .client()
            .get(d.url("/v1/actions?state=expired"))
            .bearer_auth(&d.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !expired["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        expired["items"][0]["spec"]["subject"]["value"], "203.0.113.62",
        "{expired}"
    );
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

/// An `api.addr` that does not hold an address is named as the problem, not silently replaced by the
/// configured `listen` (which could be another daemon, or none).
#[test]
fn a_corrupt_api_addr_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("api.addr"), "garbage\n").unwrap();
    for args in [
        &["decisions", "--api-key", "k", "list"][..],
        &["healthcheck"][..],
    ] {
        let out = command(dir.path())
            .args(args)
            .args(["--data-dir", data.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{}: not an address",
                data.join("api.addr").display()
            )),
            "{args:?}: {stderr}"
        );
    }
}
