//! Supervised containers against the machine's Docker Engine: a busybox image built `FROM scratch` in
//! the test (no registry, no pull) whose HEALTHCHECK a file inside the container controls. Every
//! container and the image are removed on drop, even when a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sentinel_core::{NoticeKind, Severity};
use sentinel_supervise::config::{Check, ChildConfig, ContainerTarget, SuperviseConfig, Target};
use sentinel_supervise::{ChildState, LastExit, Supervisor};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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

/// The image and containers a test made; removed on drop.
struct Env {
    image: String,
    containers: Vec<String>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        let _ = docker(&["rmi", "-f", &self.image]);
    }
}

static N: AtomicU32 = AtomicU32::new(0);

fn unique(what: &str) -> String {
    format!(
        "sentinel-test-sup-{}-{what}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Builds the busybox image: healthy unless `/tmp/sick` exists; prints a line, then sleeps.
fn image() -> Env {
    assert!(
        Path::new("/bin/busybox").exists(),
        "install busybox-static (/bin/busybox)"
    );
    let env = Env {
        image: unique("img"),
        containers: Vec::new(),
    };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD [\"/bin/busybox\",\"test\",\"!\",\"-e\",\"/tmp/sick\"]\n\
         CMD [\"/bin/busybox\",\"sh\",\"-c\",\"echo container up; trap 'exit 0' TERM; while true; do /bin/busybox sleep 1; done\"]\n",
    )
    .unwrap();
    docker_ok(&[
        "build",
        "-q",
        "-t",
        &env.image,
        ctx.path().to_str().unwrap(),
    ]);
    env
}

/// Runs a container from the image (`/tmp` a fresh tmpfs at each start).
fn run(env: &mut Env, labels: &[&str]) -> String {
    let name = unique("c");
    env.containers.push(name.clone());
    let mut args = vec!["run", "-d", "--name", &name, "--tmpfs", "/tmp"];
    for l in labels {
        args.push("--label");
        args.push(l);
    }
    args.push(&env.image);
    docker_ok(&args);
    name
}

fn started_at(c: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", c])
}

fn running(c: &str) -> bool {
    docker_ok(&["inspect", "-f", "{{.State.Running}}", c]) == "true"
}

fn container_child(name: &str, target: ContainerTarget) -> ChildConfig {
    ChildConfig {
        name: name.into(),
        target: Target::Container(target),
        probe: None,
        restart: fast_policy(200),
        stop_grace: Some(Duration::from_secs(1)),
    }
}

fn cfg(children: Vec<ChildConfig>) -> SuperviseConfig {
    SuperviseConfig {
        children,
        stop_grace: Duration::from_secs(2),
        output_lines: 5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_is_restarted_and_a_notice_sent() {
    let mut env = image();
    let c = run(&mut env, &[]);
    let mut web = container_child("web", ContainerTarget::Name(c.clone()));
    let mut p = probe(Check::DockerHealth);
    p.interval = Duration::from_millis(250);
    p.failure_threshold = 1;
    web.probe = Some(p);
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![web]), n).await.unwrap();
    until(Duration::from_secs(20), || {
        let s = sup.status();
        let w = s.iter().find(|x| x.name == "web")?;
        (w.state == ChildState::Healthy).then_some(())
    })
    .await
    .expect("healthy");
    let s = sup.status();
    let w = child(&s, "web");
    assert_eq!(w.kind, "container");
    assert!(w.container_id.is_some());
    assert!(w.pid.is_some());
    let before = started_at(&c);
    docker_ok(&["exec", &c, "/bin/busybox", "touch", "/tmp/sick"]);
    let t0 = Instant::now();
    until(Duration::from_secs(10), || {
        (started_at(&c) != before && running(&c)).then_some(())
    })
    .await
    .expect("restarted within 10 s");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let notice = until(Duration::from_secs(5), || {
        rec.notices()
            .into_iter()
            .find(|n| n.title == "web is unhealthy")
    })
    .await
    .expect("unhealthy notice");
    assert_eq!(notice.kind, NoticeKind::Crash);
    assert_eq!(notice.severity, Severity::High);
    assert_eq!(notice.key.as_deref(), Some("crash:web"));
    assert!(
        notice.body.contains("docker health status unhealthy"),
        "{}",
        notice.body
    );
    assert!(notice.body.contains("container up"), "{}", notice.body);
    // Healthy again takes the image's own health check a few more seconds after the restart (not
    // the acceptance bound, which is the restart itself): generous on a loaded machine.
    let st = until(Duration::from_secs(30), || {
        let s = sup.status();
        let w = child(&s, "web").clone();
        (w.restarts == 1 && w.state == ChildState::Healthy).then_some(w)
    })
    .await
    .expect("healthy again after the restart (fresh /tmp)");
    assert!(matches!(st.last_exit, Some(LastExit::Unhealthy { .. })));
    sup.stop().await;
    assert!(!running(&c), "stop ran docker stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_containers_found_by_label_are_started_again() {
    let mut env = image();
    let label = format!("sentinel.test.sup={}", unique("l"));
    let a = run(&mut env, &[&label]);
    let b = run(&mut env, &[&label]);
    let child_cfg = container_child("pool", ContainerTarget::Label(label.clone()));
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![child_cfg]), n).await.unwrap();
    let (na, nb) = (format!("pool/{a}"), format!("pool/{b}"));
    until(Duration::from_secs(15), || {
        let s = sup.status();
        let up = |n: &str| {
            s.iter()
                .any(|x| x.name == n && x.state == ChildState::Running)
        };
        (up(&na) && up(&nb)).then_some(())
    })
    .await
    .expect("both watched");
    let before = started_at(&a);
    docker_ok(&["kill", &a]);
    until(Duration::from_secs(10), || {
        (started_at(&a) != before && running(&a)).then_some(())
    })
    .await
    .expect("started again within 10 s");
    let notice = until(Duration::from_secs(5), || {
        rec.notices()
            .into_iter()
            .find(|n| n.title == format!("{na} exited (signal 9)"))
    })
    .await
    .expect("crash notice");
    assert!(notice.body.contains("container up"), "{}", notice.body);
    assert_eq!(notice.key.as_deref(), Some(format!("crash:{na}").as_str()));
    until(Duration::from_secs(10), || {
        let s = sup.status();
        (child(&s, &na).restarts == 1 && child(&s, &nb).restarts == 0).then_some(())
    })
    .await
    .expect("restart counted on the killed one only");
    sup.stop().await;
    assert!(!running(&a) && !running(&b), "stop ran docker stop on both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_container_shows_as_stopped_with_the_reason() {
    let name = unique("missing");
    let child_cfg = container_child("ghost", ContainerTarget::Name(name.clone()));
    let (rec, n) = recorder();
    let sup = Supervisor::start(cfg(vec![child_cfg]), n).await.unwrap();
    let s = sup.status();
    let g = child(&s, "ghost");
    assert_eq!(g.state, ChildState::Stopped);
    assert_eq!(
        g.last_exit,
        Some(LastExit::StartFailed {
            error: format!("no container named {name:?}")
        })
    );
    sup.stop().await;
    assert!(rec.notices().is_empty());
}
