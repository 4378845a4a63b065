//! Container isolation against the machine's Docker Engine: busybox containers built `FROM scratch`, a
//! user-defined bridge on a documentation range, isolate, check reachability, revert, check it is all back.
//!
//! The bridges use 198.51.100.0/24 and 203.0.113.0/24, not 192.0.2.0/24: a Docker bridge is a route in the
//! host's own namespace, and the CI host's uplink may itself sit in 192.0.2.0/24.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{ActError, ActionKind, ActionSpec, Actuator, Applied, Subject};
use sentinel_respond::actuators::docker::{DockerConfig, IsolateContainer, IsolationToken};
use sentinel_respond::PlanOnly;
use std::path::Path;
use std::process::{Command, Output};

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

/// Everything a test made in the engine; removed on drop, even when the test panics.
struct Env {
    prefix: String,
    image: String,
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        for n in &self.networks {
            let _ = docker(&["network", "rm", n]);
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

fn ensure_busybox() {
    // One install at a time: tests run in parallel, and two apt-get runs fight over dpkg's lock.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if !Path::new("/bin/busybox").exists() {
        let st = Command::new("apt-get")
            .args(["install", "-y", "busybox-static"])
            .status()
            .unwrap();
        assert!(st.success(), "could not install busybox-static");
    }
}

/// Builds a busybox image, a bridge on `subnet`, and containers `a` (alias `web`, static `a_ip`) and `b`.
fn setup(tag: &str, subnet: &str, a_ip: &str) -> Env {
    ensure_busybox();
    let prefix = format!("snl-test-{}-{tag}", std::process::id());
    let mut env = Env {
        image: format!("{prefix}-img"),
        prefix: prefix.clone(),
        containers: Vec::new(),
        networks: Vec::new(),
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
    env.networks.push(prefix.clone());
    docker_ok(&[
        "network", "create", "--driver", "bridge", "--subnet", subnet, &prefix,
    ]);
    let a = format!("{prefix}-a");
    let b = format!("{prefix}-b");
    env.containers.push(a.clone());
    env.containers.push(b.clone());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &a,
        "--network",
        &prefix,
        "--ip",
        a_ip,
        "--network-alias",
        "web",
        &env.image,
    ]);
    docker_ok(&["run", "-d", "--name", &b, "--network", &prefix, &env.image]);
    env
}

fn networks(c: &str) -> serde_json::Map<String, serde_json::Value> {
    let s = docker_ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", c]);
    match serde_json::from_str(&s).unwrap() {
        serde_json::Value::Object(m) => m,
        other => panic!("unexpected networks {other}"),
    }
}

fn ip_on(c: &str, net: &str) -> String {
    networks(c)[net]["IPAddress"].as_str().unwrap().to_string()
}

fn reaches(from: &str, ip: &str) -> bool {
    docker(&["exec", from, "/bin/busybox", "ping", "-c1", "-W1", ip])
        .status
        .success()
}

fn spec(c: &str, params: serde_json::Value) -> ActionSpec {
    ActionSpec {
        kind: ActionKind::IsolateContainer,
        subject: Subject::Container(c.to_string()),
        ttl_secs: 60,
        params: sentinel_core::ActionParams::parse(ActionKind::IsolateContainer, &params).unwrap(),
    }
}

/// The attachment as it matters for a revert: address, static config, aliases.
fn shape(c: &str, net: &str) -> (String, serde_json::Value, Vec<String>) {
    let n = &networks(c)[net];
    let short = docker_ok(&["inspect", "-f", "{{.Id}}", c])[..12].to_string();
    let mut aliases: Vec<String> = n["Aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .filter(|a| *a != short)
        .collect();
    aliases.sort();
    (
        n["IPAddress"].as_str().unwrap().to_string(),
        n["IPAMConfig"].clone(),
        aliases,
    )
}

#[tokio::test]
async fn isolate_cuts_the_container_off_and_revert_restores_ip_and_aliases() {
    let env = setup("plain", "198.51.100.0/24", "198.51.100.10");
    let (net, a, b) = (&env.prefix, &env.containers[0], &env.containers[1]);
    let b_ip = ip_on(b, net);
    assert!(reaches(a, &b_ip), "a must reach b before isolation");
    let before = shape(a, net);
    assert_eq!(before.0, "198.51.100.10");
    assert!(before.2.contains(&"web".to_string()));

    let act = IsolateContainer::connect(DockerConfig::default())
        .await
        .unwrap();
    // Observe mode: the same actuator, built without negotiating with the engine, may only plan.
    let observe = PlanOnly::new(Box::new(
        IsolateContainer::offline(DockerConfig::default()).unwrap(),
    ));
    let preview = observe
        .plan(&spec(a, serde_json::Value::Null))
        .await
        .unwrap();
    let id = docker_ok(&["inspect", "-f", "{{.Id}}", a]);
    assert_eq!(
        preview.operations,
        [
            format!("GET /containers/{a}/json"),
            format!("POST /networks/{net}/disconnect {{\"Container\":\"{id}\",\"Force\":false}}"),
        ]
    );
    assert!(observe
        .apply(&spec(a, serde_json::Value::Null))
        .await
        .unwrap_err()
        .to_string()
        .contains("no enforcing actuator"));
    assert!(reaches(a, &b_ip), "plan must change nothing");
    // A name that would walk the Engine API's paths is refused before any call.
    for bad in ["x/../../images/y?force=1", "..", "a?b"] {
        match observe.plan(&spec(bad, serde_json::Value::Null)).await {
            Err(ActError::Refused(msg)) => {
                assert!(
                    msg.starts_with("subject: ") && !msg.contains("images"),
                    "{msg}"
                )
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    let applied = act.apply(&spec(a, serde_json::Value::Null)).await.unwrap();
    assert_eq!(
        applied.operations, preview.operations,
        "enforce ran exactly what observe recorded"
    );
    let tok: IsolationToken = serde_json::from_value(applied.token.clone()).unwrap();
    assert_eq!(tok.networks.len(), 1);
    assert_eq!(tok.networks[0].aliases, ["web"]);
    assert_eq!(
        tok.networks[0].ipv4_static.as_deref(),
        Some("198.51.100.10")
    );
    assert!(networks(a).is_empty(), "no network left");
    assert!(!reaches(a, &b_ip), "a must not reach b while isolated");
    assert_eq!(act.observe().await.unwrap(), vec![applied.clone()]);

    // Revert from the serialised token alone, by a fresh actuator (as after a restart).
    let fresh = IsolateContainer::connect(DockerConfig::default())
        .await
        .unwrap();
    let token: Applied = serde_json::from_str(&serde_json::to_string(&applied).unwrap()).unwrap();
    let report = fresh.revert_report(&token).await.unwrap();
    assert_eq!(report.reconnected, [net.as_str()]);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert!(reaches(a, &b_ip), "a must reach b again");
    assert_eq!(
        shape(a, net),
        before,
        "same address, static config and aliases"
    );
    assert!(reaches(b, "web") || reaches(b, "198.51.100.10"));

    // Idempotent: already connected.
    let again = fresh.revert_report(&token).await.unwrap();
    assert_eq!(again.already_connected, [net.as_str()]);
    assert!(again.reconnected.is_empty());
    assert_eq!(shape(a, net), before);
}

#[tokio::test]
async fn quarantine_network_protect_list_and_a_vanished_container() {
    let mut env = setup("qnet", "203.0.113.0/24", "203.0.113.10");
    let qnet = format!("{}-quarantine", env.prefix);
    env.networks.push(qnet.clone());
    let (net, a, b) = (
        env.prefix.clone(),
        env.containers[0].clone(),
        env.containers[1].clone(),
    );
    let b_ip = ip_on(&b, &net);
    let before = shape(&a, &net);

    let act = IsolateContainer::connect(DockerConfig {
        protect: vec![b.clone()],
        ..DockerConfig::default()
    })
    .await
    .unwrap();

    // A protected container is refused, by plan and by apply, and left alone.
    for r in [
        act.plan(&spec(&b, serde_json::Value::Null))
            .await
            .map(|_| ()),
        act.apply(&spec(&b, serde_json::Value::Null))
            .await
            .map(|_| ()),
    ] {
        match r {
            Err(ActError::Refused(msg)) => assert!(msg.contains("protected"), "{msg}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(networks(&b).contains_key(&net));

    let params = serde_json::json!({ "quarantine_network": qnet });
    let observe = PlanOnly::new(Box::new(
        IsolateContainer::offline(DockerConfig {
            protect: vec![b.clone()],
            ..DockerConfig::default()
        })
        .unwrap(),
    ));
    let preview = observe.plan(&spec(&a, params.clone())).await.unwrap();
    assert!(preview
        .operations
        .iter()
        .any(|o| o.contains("/networks/create")));
    assert!(preview
        .operations
        .last()
        .unwrap()
        .starts_with(&format!("POST /networks/{qnet}/connect")));
    let applied = act.apply(&spec(&a, params)).await.unwrap();
    assert_eq!(
        applied.operations, preview.operations,
        "enforce ran exactly what observe recorded"
    );
    let internal = docker_ok(&["network", "inspect", "-f", "{{.Internal}}", &qnet]);
    assert_eq!(internal, "true");
    let now = networks(&a);
    assert_eq!(now.keys().collect::<Vec<_>>(), [&qnet]);
    assert!(
        !reaches(&a, &b_ip),
        "a must not reach b from the quarantine network"
    );

    // Observe finds it through the quarantine network, also from a fresh actuator (partial token).
    assert_eq!(act.observe().await.unwrap(), vec![applied.clone()]);
    let fresh = IsolateContainer::connect(DockerConfig {
        quarantine_network: Some(qnet.clone()),
        ..DockerConfig::default()
    })
    .await
    .unwrap();
    let seen = fresh.observe().await.unwrap();
    assert_eq!(seen.len(), 1);
    let partial: IsolationToken = serde_json::from_value(seen[0].token.clone()).unwrap();
    assert!(partial.partial);

    fresh.revert(&applied).await.unwrap();
    assert_eq!(networks(&a).keys().collect::<Vec<_>>(), [&net]);
    assert_eq!(shape(&a, &net), before);
    assert!(reaches(&a, &b_ip));
    assert!(fresh.observe().await.unwrap().is_empty());

    // Isolate again, then the container disappears: revert is Ok and says so.
    let applied = act
        .apply(&spec(&a, serde_json::json!({ "quarantine_network": qnet })))
        .await
        .unwrap();
    docker_ok(&["rm", "-f", &a]);
    let report = act.revert_report(&applied).await.unwrap();
    assert!(report.container_gone);
    assert!(!report.notes.is_empty());
    act.revert(&applied).await.unwrap();
}
