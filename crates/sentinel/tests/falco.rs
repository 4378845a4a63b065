//! Falco → container isolation, end to end, with the machine's real Docker Engine: a daemon in
//! `policy.mode: enforce` tails a Falco `file_output` (format `falco`); a Falco alert naming a real
//! container (busybox built `FROM scratch`, on a bridge in a documentation range) makes the daemon
//! disconnect it from its network, records the action, and puts it back on the same network with the
//! same address when the TTL runs out. A host event and a line that is not JSON are counted, never
//! acted on.
//!
//! Only `isolate_container` enforces: the nftables kinds stay in observe mode, so the test never touches
//! the host's firewall. The rule is the default one (`isolate_container_threat`) with a TTL of seconds
//! instead of an hour (the default itself is checked in `sentinel-pipeline`'s policy tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Falco's documentation, "Output Channels" → "JSON Output" (falcosecurity/falco-website,
/// `content/en/docs/outputs/channels.md`). The test puts its own container's id, name and the time in.
const TERMINAL_SHELL: &str = r#"{"hostname":"falco-xczjd","output":"13:44:05.478445995: Critical A shell was spawned in a container with an attached terminal (user=root user_loginuid=-1 k8s.ns=default k8s.pod=kubecon container=ee97d9c4186f shell=sh parent=runc cmdline=sh -c clear; (bash || ash || sh) terminal=34816 container_id=ee97d9c4186f image=docker.io/library/alpine)","priority":"Critical","rule":"Terminal shell in container","source":"syscall","tags":["container","mitre_execution","shell"],"time":"2023-05-25T13:44:05.478445995Z", "output_fields": {"container.id":"ee97d9c4186f","container.image.repository":"docker.io/library/alpine","evt.time":1685022245478445995,"k8s.ns.name":"default","k8s.pod.name":"kubecon","proc.cmdline":"sh -c clear; (bash || ash || sh)","proc.name":"sh","proc.pname":"runc","proc.tty":34816,"user.loginuid":-1,"user.name":"root"}}"#;

/// Falco's documentation, "Python Client" (falcosecurity/falco-website,
/// `content/en/docs/grpc/client-python.md`), on one line, its priority raised to `critical`: an event
/// on the host (`container.id` `host`) without a connection.
const HOST_HISTORY: &str = r#"{"time":"2020-03-03T17:50:03.391768+00:00","priority":"critical","source":"syscall","rule":"Delete or rename shell history","output":"18:50:03.391767411: Warning Shell history had been deleted or renamed (user=matt type=unlink command=zsh fd.name=<NA> name=<NA> path=/home/matt/.zsh_history.LOCK oldpath=<NA> host (id=host))","output_fields":{"container.name":"host","user.name":"matt","container.id":"host","fd.name":"<NA>","proc.cmdline":"zsh","evt.arg.path":"/home/matt/.zsh_history.LOCK","evt.arg.name":"<NA>","evt.arg.oldpath":"<NA>","evt.type":"unlink","evt.time":"18:50:03.391767411"},"hostname":"localhost.localdomain"}"#;

/// Falco's text output (`json_output: false`), from the "Output Channels" page.
const TEXT_OUTPUT: &str = "10:20:05.408091526: Warning Sensitive file opened for reading by non-trusted program (user=root command=cat /etc/shadow file=/etc/shadow)";

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Everything the test made in the engine; removed on drop, even when the test fails.
struct Env {
    image: String,
    network: Option<String>,
    containers: Vec<String>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        if let Some(n) = &self.network {
            let _ = docker(&["network", "rm", n]);
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

fn ensure_busybox() {
    if !Path::new("/bin/busybox").exists() {
        let st = Command::new("apt-get")
            .args(["install", "-y", "busybox-static"])
            .status()
            .unwrap();
        assert!(st.success(), "could not install busybox-static");
    }
}

/// A busybox image, a bridge on a documentation range (the first of two /28s that is free: another
/// test may hold the other), `web` on it at a static address (returned), and `peer`.
fn setup() -> (Env, String) {
    ensure_busybox();
    let prefix = format!("snl-falco-{}", std::process::id());
    let mut env = Env {
        image: format!("{prefix}-img"),
        network: None,
        containers: Vec::new(),
    };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n",
    )
    .unwrap();
    docker_ok(&[
        "build",
        "-q",
        "-t",
        &env.image,
        ctx.path().to_str().unwrap(),
    ]);
    let mut errors = Vec::new();
    let mut web_ip = None;
    for (subnet, ip) in [
        ("198.51.100.224/28", "198.51.100.234"),
        ("203.0.113.224/28", "203.0.113.234"),
    ] {
        let out = docker(&[
            "network", "create", "--driver", "bridge", "--subnet", subnet, &prefix,
        ]);
        if out.status.success() {
            env.network = Some(prefix.clone());
            web_ip = Some(ip.to_string());
            break;
        }
        errors.push(format!(
            "{subnet}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let web_ip = web_ip.unwrap_or_else(|| panic!("no bridge: {errors:?}"));
    let (web, peer) = (format!("{prefix}-web"), format!("{prefix}-peer"));
    env.containers.push(web.clone());
    env.containers.push(peer.clone());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &web,
        "--network",
        &prefix,
        "--ip",
        &web_ip,
        &env.image,
    ]);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &peer,
        "--network",
        &prefix,
        &env.image,
    ]);
    (env, web_ip)
}

fn networks(c: &str) -> serde_json::Map<String, Value> {
    let s = docker_ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", c]);
    match serde_json::from_str(&s).unwrap() {
        Value::Object(m) => m,
        other => panic!("unexpected networks {other}"),
    }
}

fn reaches(from: &str, ip: &str) -> bool {
    docker(&["exec", from, "/bin/busybox", "ping", "-c1", "-W1", ip])
        .status
        .success()
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

async fn metrics(d: &Daemon) -> String {
    let r = d
        .client()
        .get(d.url("/metrics"))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The isolate_container actions on `subject`.
async fn isolations(d: &Daemon, subject: &str) -> Vec<Value> {
    let v = get(d, "/v1/actions?kind=isolate_container").await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["spec"]["subject"]["value"] == subject)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_falco_alert_isolates_its_container_until_the_ttl_runs_out() {
    let (env, web_ip) = setup();
    let net = env.network.clone().unwrap();
    let (web, peer) = (env.containers[0].clone(), env.containers[1].clone());
    let web_id = docker_ok(&["inspect", "-f", "{{.Id}}", &web]);
    assert_eq!(networks(&web)[&net]["IPAddress"], web_ip.as_str());
    let peer_ip = networks(&peer)[&net]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reaches(&web, &peer_ip), "web must reach peer first");

    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.json");
    std::fs::write(&events, "").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "policy:\n  mode: enforce\n  rules:\n    \
             - {{ name: isolate_container_threat, scenario: container_runtime_threat, severity: [critical], risk: [high, medium], confidence: [high, medium], actions: [{{kind: isolate_container, ttl: 3s}}] }}\n\
             respond:\n  actuators:\n    block_ip: {{ mode: observe }}\n    rate_limit: {{ mode: observe }}\n    \
             redirect_to_honeypot: {{ mode: observe }}\n    quarantine_file: {{ mode: observe }}\n\
             sources:\n  - {{ type: file, paths: [\"{}\"], format: falco, poll_interval: 50ms }}\n",
            events.display()
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);

    // Falco writes: text output (json_output off), a host event, and the alert about `web`.
    let now = sentinel_core::Timestamp::now().to_rfc3339();
    let alert = TERMINAL_SHELL
        .replace(
            r#""container.id":"ee97d9c4186f""#,
            &format!(
                r#""container.id":"{}","container.name":"{web}""#,
                &web_id[..12]
            ),
        )
        .replace("ee97d9c4186f", &web_id[..12])
        .replace("2023-05-25T13:44:05.478445995Z", &now);
    let host = HOST_HISTORY.replace("2020-03-03T17:50:03.391768+00:00", &now);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&events)
        .unwrap();
    writeln!(f, "{TEXT_OUTPUT}\n{host}\n{alert}").unwrap();
    f.flush().unwrap();

    // Isolated: every network attachment removed, as the actuator does, and `web` cut off for real.
    eventually(Duration::from_secs(20), || async {
        networks(&web).is_empty().then_some(())
    })
    .await;
    assert!(
        !reaches(&web, &peer_ip),
        "web must not reach peer while isolated"
    );
    assert!(
        !networks(&peer).is_empty(),
        "only the named container is touched"
    );

    let alerts = get(&d, "/v1/alerts?scenario=container_runtime_threat").await;
    let items = alerts["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{alerts}");
    assert_eq!(items[0]["subject"]["type"], "container");
    assert_eq!(items[0]["subject"]["value"], web.as_str());
    assert_eq!(items[0]["severity"], "critical");
    assert_eq!(items[0]["detector"], "falco");
    // Investigated without providers, and said so; the plan is the isolation, nothing else.
    let detail = get(
        &d,
        &format!("/v1/alerts/{}", items[0]["id"].as_str().unwrap()),
    )
    .await;
    let flags = detail["investigation"]["uncertainty"].to_string();
    assert!(
        flags.contains(&format!("container:{web} is not an address")),
        "{detail}"
    );
    let plan = &detail["plans"][0];
    assert_eq!(plan["actions"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["actions"][0]["kind"], "isolate_container");
    assert!(
        plan["reason"]
            .as_str()
            .unwrap()
            .starts_with("isolate_container_threat matched severity=critical risk=high"),
        "{plan}"
    );

    let live = isolations(&d, &web).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["mode"], "enforce");
    assert_eq!(live[0]["state"], "applied", "{}", live[0]);
    let token = &live[0]["applied"]["token"];
    assert_eq!(token["networks"][0]["network"], net.as_str(), "{token}");

    // The host event and the text line: counted, never acted on (the host has no network to lose).
    let m = metrics(&d).await;
    for (series, want) in [
        (
            r#"sentinel_falco_events_total{outcome="container_alert"}"#,
            1.0,
        ),
        (
            r#"sentinel_falco_events_total{outcome="host_without_address"}"#,
            1.0,
        ),
        (
            r#"sentinel_log_lines_unparsed_by_reason_total{reason="falco_not_json"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&m, series), Some(want), "{series}:\n{m}");
    }
    let all = get(&d, "/v1/actions").await;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        1,
        "one action in all: {all}"
    );

    // When the TTL runs out, `web` is back on its network with its address, and reaches `peer` again.
    eventually(Duration::from_secs(20), || async {
        networks(&web).contains_key(&net).then_some(())
    })
    .await;
    assert_eq!(
        networks(&web)[&net]["IPAddress"],
        web_ip.as_str(),
        "the same address"
    );
    assert!(reaches(&web, &peer_ip), "web must reach peer after the TTL");
    let done = eventually(Duration::from_secs(10), || async {
        let a = isolations(&d, &web).await;
        (a.len() == 1 && a[0]["state"] == "expired").then_some(a)
    })
    .await;
    assert_eq!(done[0]["spec"]["ttl_secs"], 3);

    d.stop();
}
