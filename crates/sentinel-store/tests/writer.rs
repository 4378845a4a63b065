//! The batched writer: completeness under load, back pressure, and recovery from a failing batch.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use common::*;
use sentinel_store::{AckGroup, AckSummary, Record, TryWriteError, WriterOptions};
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
    // The writer counts a batch just after its commit returns: wait for both, or a reader can see
    // the row a moment before the count moves.
    while store.count_events().await.unwrap() == 0 || writer.stats().records == 0 {
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

#[tokio::test]
async fn acknowledged_records_are_settled_after_their_commit_and_failures_name_the_item() {
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
    // A flush interval far longer than the test: acknowledged records must not wait for it.
    let (writer, task) = store.writer(WriterOptions {
        queue_capacity: 64,
        batch_size: 64,
        flush_interval: Duration::from_secs(3600),
    });
    let group = AckGroup::new();
    for n in 0..10u64 {
        let mut ev = event(7_000 + n as i64, "192.0.2.7", "flow", "t-acked");
        if n == 6 {
            ev.source = "poison".into();
        }
        writer.write_acked(ev.into(), group.token(n)).await.unwrap();
    }
    let summary = tokio::time::timeout(Duration::from_secs(10), group.settled())
        .await
        .expect("acknowledged records are committed without waiting for the flush interval");
    assert_eq!(
        summary,
        AckSummary {
            outstanding: 0,
            committed: 9,
            failed: 1
        }
    );
    let failures = group.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].item, 6);
    assert_eq!(failures[0].error, "the store could not write it");
    // Settled means committed: a fresh connection sees them.
    assert_eq!(store.count_events().await.unwrap(), 9);
    let sizes = writer.monitor().batch_sizes();
    assert_eq!(sizes.sum, 9, "{sizes:?}");
    assert_eq!(sizes.count, writer.stats().batches, "{sizes:?}");
    assert_eq!(
        sizes.buckets.last().map(|b| b.1),
        Some(sizes.count),
        "cumulative buckets end at the count: {sizes:?}"
    );
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.dropped, 1, "{stats:?}");
}

#[tokio::test]
async fn a_commit_that_fails_settles_its_token_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (writer, task) = store.writer(WriterOptions::default());
    let other = writer.clone();
    drop(writer);
    // Close the store under the writer: its next commit fails, and the token says so.
    store.close().await;
    let group = AckGroup::new();
    other
        .write_acked(
            event(1, "192.0.2.8", "flow", "t-closed").into(),
            group.token(3),
        )
        .await
        .unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(10), group.settled())
        .await
        .unwrap();
    assert_eq!((summary.committed, summary.failed), (0, 1));
    assert_eq!(group.failures()[0].item, 3);
    drop(other);
    task.finish().await.unwrap();
}

#[tokio::test]
async fn concurrent_acknowledged_writers_share_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (writer, task) = store.writer(WriterOptions {
        queue_capacity: 4096,
        batch_size: 256,
        flush_interval: Duration::from_millis(50),
    });
    let mut clients = Vec::new();
    for c in 0..32i64 {
        let writer = writer.clone();
        clients.push(tokio::spawn(async move {
            for n in 0..50i64 {
                let group = AckGroup::new();
                let ev = event(10_000 + c * 100 + n, "192.0.2.9", "flow", "t-group");
                writer.write_acked(ev.into(), group.token(0)).await.unwrap();
                assert_eq!(group.settled().await.committed, 1);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    drop(writer);
    let stats = task.finish().await.unwrap();
    assert_eq!(stats.records, 32 * 50);
    assert_eq!(store.count_events().await.unwrap(), 32 * 50);
    // 32 clients each waiting on their own commit: at least some commits carry several of them.
    assert!(stats.largest_batch > 1, "{stats:?}");
    assert!(stats.batches < stats.records, "{stats:?}");
}

#[tokio::test]
async fn close_commits_what_is_queued_without_waiting_for_every_clone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (writer, task) = store.writer(WriterOptions {
        flush_interval: Duration::from_secs(30),
        ..WriterOptions::default()
    });
    for i in 0..5 {
        writer
            .write(event(i, "192.0.2.9", "flow", "t-close").into())
            .await
            .unwrap();
    }
    // Let the writer take them and start waiting for its batch to fill (30 s): close must cut that short.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // `writer` is still held: `finish` would wait for it; `close` does not.
    let stats = tokio::time::timeout(Duration::from_secs(10), task.close())
        .await
        .expect("close waited for a clone still held")
        .unwrap();
    assert_eq!(stats.records, 5, "{stats:?}");
    assert_eq!(store.count_events().await.unwrap(), 5);
    // A clone that outlived the writer is told so, and its token settles as failed.
    let group = AckGroup::new();
    let late = writer
        .write_acked(
            event(9, "192.0.2.9", "flow", "t-late").into(),
            group.token(0),
        )
        .await;
    assert!(
        matches!(late, Err(sentinel_store::StoreError::Closed)),
        "{late:?}"
    );
    assert_eq!(group.settled().await.failed, 1);
}

/// Records a person waits on commit at once, one transaction each as they come; records of a
/// patient group (a bus message acknowledged once they are stored) wait for a fuller batch, as
/// records nobody waits on do, and are still all acknowledged.
#[tokio::test]
async fn patient_acknowledgements_keep_group_commit() {
    for patient in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let (writer, task) = store.writer(WriterOptions {
            queue_capacity: 1024,
            batch_size: 256,
            flush_interval: Duration::from_millis(200),
        });
        let mut groups = Vec::new();
        for n in 0..20 {
            let group = if patient {
                AckGroup::patient()
            } else {
                AckGroup::new()
            };
            let ev = event(2_000_000 + n, "192.0.2.45", "flow", "t-patient");
            writer
                .write_acked(Record::Event(ev), group.token(0))
                .await
                .unwrap();
            groups.push(group);
            // Spaced out, as bus messages arrive.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for g in &groups {
            let s = g.settled().await;
            assert_eq!((s.committed, s.failed), (1, 0));
        }
        drop(writer);
        let stats = task.finish().await.unwrap();
        assert_eq!(stats.records, 20);
        if patient {
            assert!(stats.batches <= 2, "grouped: {stats:?}");
        } else {
            assert!(stats.batches >= 10, "committed as they came: {stats:?}");
        }
    }
}
