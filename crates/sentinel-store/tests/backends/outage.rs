//! PostgreSQL going away under the writer: the batch in flight waits for the server to come back and
//! is committed then, so an outage shorter than the writer's patience loses nothing and fails nothing;
//! what was acknowledged before the crash is still there after it. A server gone for good fails the
//! batch whole once the writer gives up, each record saying why.

use crate::case::*;
use crate::common::*;
use sentinel_store::{AckGroup, EventFilter, Store, WriterOptions};
use sentinel_testkit::postgres::PostgresServer;
use std::time::Duration;

#[tokio::test]
async fn postgres_restart_under_the_writer_loses_and_fails_nothing() {
    let mut server = PostgresServer::start();
    let store = Store::open_url(&server.url()).await.unwrap();
    let (writer, task) = store.writer(WriterOptions::default());
    let before = AckGroup::new();
    let e1 = event(T0, "192.0.2.50", "flow", "t-outage");
    writer
        .write_acked(e1.clone().into(), before.token(0))
        .await
        .unwrap();
    assert_eq!(before.settled().await.committed, 1);

    // The server crashes; a record written meanwhile is neither acknowledged nor failed.
    server.kill();
    let during = AckGroup::new();
    let e2 = event(T0 + 1, "192.0.2.50", "flow", "t-outage");
    writer
        .write_acked(e2.clone().into(), during.token(0))
        .await
        .unwrap();
    // Down for longer than the pool waits for a connection (10 s), so the writer's first try fails
    // and only its own patience saves the batch.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let waiting = during.summary();
    assert_eq!(
        (waiting.outstanding, waiting.committed, waiting.failed),
        (1, 0, 0)
    );

    // Back (recovering from its WAL): the record is committed, then acknowledged.
    server.restart();
    let done = tokio::time::timeout(Duration::from_secs(40), during.settled())
        .await
        .expect("settled once the server is back");
    assert_eq!(
        (done.committed, done.failed),
        (1, 0),
        "{:?}",
        during.failures()
    );
    let f = EventFilter {
        trace_id: Some("t-outage".into()),
        ..Default::default()
    };
    let items = store.list_events(&f).await.unwrap().items;
    assert_eq!(items, vec![e2, e1]);
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!(
        (stats.records, stats.failed_batches, stats.dropped),
        (2, 0, 0)
    );
    store.close().await;
}

#[tokio::test]
async fn postgres_gone_for_good_fails_the_batch_whole() {
    let mut server = PostgresServer::start();
    let store = Store::open_url(&server.url()).await.unwrap();
    let (writer, task) = store.writer(WriterOptions::default());
    server.kill();
    let group = AckGroup::new();
    for n in 0..3 {
        let ev = event(T0 + n, "192.0.2.51", "flow", "t-gone");
        writer
            .write_acked(ev.into(), group.token(n as u64))
            .await
            .unwrap();
    }
    // After the writer's patience (30 s, plus the pool's last wait), every record is failed, each
    // saying why, and the writer goes on.
    let done = tokio::time::timeout(Duration::from_secs(120), group.settled())
        .await
        .expect("settled once the writer gives up");
    assert_eq!((done.committed, done.failed), (0, 3));
    let failures = group.failures();
    assert!(
        failures
            .iter()
            .all(|f| f.error.contains("could not be reached")),
        "{failures:?}"
    );
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!((stats.records, stats.dropped), (0, 3), "{stats:?}");
}
