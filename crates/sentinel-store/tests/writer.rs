//! The batched writer: completeness under load, back pressure, and recovery from a failing batch.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_store::{Record, TryWriteError, WriterOptions};
use sqlx::Connection;
use std::time::Duration;

#[tokio::test]
async fn ten_thousand_records_arrive_complete_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (writer, task) = store.writer(WriterOptions {
        queue_capacity: 1024,
        batch_size: 256,
        flush_interval: Duration::from_millis(20),
    });
    let mut producers = Vec::new();
    for p in 0..4 {
        let writer = writer.clone();
        producers.push(tokio::spawn(async move {
            for n in 0..2_500 {
                let ts = 1_000_000 + p * 10_000 + n;
                let ev = event(ts, "192.0.2.44", "flow", "t-bulk");
                writer.write(Record::Event(ev)).await.unwrap();
            }
        }));
    }
    drop(writer);
    for p in producers {
        p.await.unwrap();
    }
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.records, 10_000);
    assert_eq!(stats.failed_batches, 0);
    assert_eq!(stats.dropped, 0);
    assert!(stats.batches < stats.records, "{stats:?}");
    assert!(stats.batches >= 10_000 / 256, "{stats:?}");
    assert_eq!(store.count_events().await.unwrap(), 10_000);
}

#[tokio::test]
async fn one_bad_record_does_not_lose_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let path = dir.path().join("nested/dir/sentinel.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.source = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned record'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let (writer, task) = store.writer(WriterOptions {
        queue_capacity: 64,
        batch_size: 64,
        flush_interval: Duration::from_millis(200),
    });
    for n in 0..10 {
        let mut ev = event(5_000 + n, "192.0.2.5", "flow", "t-poison");
        if n == 4 {
            ev.source = "poison".into();
        }
        writer.write(ev.into()).await.unwrap();
    }
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.failed_batches, 1, "{stats:?}");
    assert_eq!(stats.records, 9, "{stats:?}");
    assert_eq!(stats.dropped, 1, "{stats:?}");
    assert_eq!(store.count_events().await.unwrap(), 9);
}

#[tokio::test]
async fn a_full_queue_refuses_try_write_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let path = dir.path().join("nested/dir/sentinel.db");
    // Hold SQLite's write lock so the writer task blocks on its first commit.
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();

    let (writer, task) = store.writer(WriterOptions {
        queue_capacity: 2,
        batch_size: 1,
        flush_interval: Duration::from_millis(1),
    });
    let ev = |n: i64| Record::Event(event(7_000 + n, "192.0.2.7", "flow", "t-full"));
    writer.write(ev(0)).await.unwrap();
    // Let the task take the first record and block on the lock.
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer.try_write(ev(1)).unwrap();
    writer.try_write(ev(2)).unwrap();
    let full = writer.try_write(ev(3));
    let back = match full {
        Err(TryWriteError::Full(r)) => r,
        other => panic!("expected Full, got {other:?}"),
    };
    assert_eq!(writer.queued(), 2);
    assert_eq!(writer.stats().records, 0);

    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    writer.write(back).await.unwrap();
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.records, 4, "{stats:?}");
    assert_eq!(store.count_events().await.unwrap(), 4);
}

#[tokio::test]
async fn a_lone_record_is_committed_after_the_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (writer, task) = store.writer(WriterOptions {
        queue_capacity: 16,
        batch_size: 256,
        flush_interval: Duration::from_millis(10),
    });
    writer
        .write(event(9_000, "192.0.2.9", "flow", "t-lone").into())
        .await
        .unwrap();
    let mut waited = 0;
    while store.count_events().await.unwrap() == 0 {
        assert!(
            waited < 200,
            "record not committed while the writer is open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(writer.stats().records, 1);
    assert_eq!(writer.stats().batches, 1);
    drop(writer);
    assert_eq!(task.finish().await.unwrap().records, 1);
}
