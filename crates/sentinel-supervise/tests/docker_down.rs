//! The Docker engine unreachable (`DOCKER_HOST` pointing at a socket that does not exist): the
//! container child shows the connection error in its status, one notice says the container is not
//! watched, nothing panics, and stop() returns. Its own test binary: it sets `DOCKER_HOST` for the
//! whole process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sentinel_supervise::config::{ChildConfig, ContainerTarget, SuperviseConfig, Target};
use sentinel_supervise::{ChildState, LastExit, Supervisor};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_docker_engine_is_a_clear_error_and_one_notice() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("no-docker.sock");
    std::env::set_var("DOCKER_HOST", format!("unix://{}", sock.display()));
    let c = ChildConfig {
        name: "web".into(),
        target: Target::Container(ContainerTarget::Name("sentinel-test-web".into())),
        probe: None,
        restart: fast_policy(100),
        stop_grace: Some(Duration::from_secs(2)),
    };
    let (rec, n) = recorder();
    let sup = Supervisor::start(
        SuperviseConfig {
            children: vec![c],
            stop_grace: Duration::from_secs(2),
            output_lines: 5,
        },
        n,
    )
    .await
    .unwrap();
    let s = sup.status();
    let st = child(&s, "web");
    assert_eq!(st.state, ChildState::Stopped, "{st:?}");
    let Some(LastExit::StartFailed { error }) = &st.last_exit else {
        panic!("{st:?}")
    };
    assert!(error.contains("docker"), "{error}");
    let notices = until(Duration::from_secs(10), || {
        let n = rec.notices();
        (!n.is_empty()).then_some(n)
    })
    .await
    .expect("a notice that the container is not watched");
    assert_eq!(notices[0].title, "web: the Docker engine is unreachable");
    assert!(
        notices[0].body.contains("not watched"),
        "{}",
        notices[0].body
    );
    // Another retry (every 5 s) does not send another notice.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(rec.notices().len(), 1, "{:?}", rec.notices());
    tokio::time::timeout(Duration::from_secs(10), sup.stop())
        .await
        .expect("stop() returns");
}
