//! What the audit trail costs the recorder: records through `LogAudit` (the Merkle log, fsynced, and
//! the store's index of it), on the queued path (the stages) and the committed path (operators' answers,
//! one at a time and from many tasks at once), and the start-up index catch-up (the scan of a complete
//! index, and re-adding a whole index from the log). Run:
//! `cargo bench -p sentinel-pipeline --bench audit_index`.
//!
//! A plain timing harness: one run per figure, files under the target directory (a real disk, not a
//! tmpfs), the store with its default settings.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sentinel_audit::{AuditSettings, Log};
use sentinel_core::{AuditKind, AuditLog, AuditRecord, Timestamp, TraceId};
use sentinel_pipeline::metrics::Metrics;
use sentinel_pipeline::recorder::{catch_up_index, LogAudit};
use sentinel_store::{Store, WriterOptions};
use sqlx::Connection;
use std::sync::Arc;
use std::time::Instant;

const QUEUED: u64 = 200_000;
const SEQUENTIAL: u64 = 500;
const TASKS: u64 = 64;
const PER_TASK: u64 = 200;

fn record(i: u64, trace: &TraceId) -> AuditRecord {
    AuditRecord {
        ts: Timestamp::now(),
        kind: AuditKind::AlertRaised,
        subject_id: format!("01JALERT{i:018}"),
        trace_id: trace.clone(),
        summary: format!("ssh_bruteforce high score 80 on 203.0.113.{}", i % 250),
        content_hash: Some(format!("{:064x}", i)),
    }
}

fn rate(what: &str, n: u64, secs: f64) {
    println!(
        "{what:<44} {n:>7} records  {:>9.0} records/s  {:>8.1} µs/record",
        n as f64 / secs,
        secs / n as f64 * 1e6
    );
}

async fn bench() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = dir.path().join("s.db");
    let store = Store::open(&db).await.unwrap();
    let (writer, task) = store.writer(WriterOptions::default());
    let metrics = Arc::new(Metrics::default());
    let (log, log_task) = Log::open(AuditSettings::new(
        dir.path().join("audit"),
        "sentinel/bench",
    ))
    .await
    .unwrap();
    let (audit, index) = LogAudit::start(log.clone(), writer.clone(), metrics.clone());
    let trace = TraceId::new();

    // Queued: submitted as the stages do, timed until the last index row is written.
    let t = Instant::now();
    for i in 0..QUEUED {
        audit.append_queued(record(i, &trace)).await.unwrap();
    }
    drop(audit);
    let submitted = t.elapsed().as_secs_f64();
    let indexed = index.close().await;
    assert_eq!(indexed, QUEUED);
    rate("queued: submitted", QUEUED, submitted);
    rate(
        "queued: durable in the log and indexed",
        QUEUED,
        t.elapsed().as_secs_f64(),
    );

    // Committed, one at a time: each waits for the log's fsync and the index row's commit.
    let (audit, index) = LogAudit::start(log.clone(), writer.clone(), metrics.clone());
    let t = Instant::now();
    for i in 0..SEQUENTIAL {
        audit.append(record(i, &trace)).await.unwrap();
    }
    rate(
        "committed: one caller",
        SEQUENTIAL,
        t.elapsed().as_secs_f64(),
    );

    // Committed, from many tasks at once (group commit in both the log and the store).
    let audit = Arc::new(audit);
    let t = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|k| {
            let audit = audit.clone();
            let trace = trace.clone();
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    audit
                        .append(record(k * PER_TASK + i, &trace))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for h in tasks {
        h.await.unwrap();
    }
    rate(
        &format!("committed: {TASKS} callers"),
        TASKS * PER_TASK,
        t.elapsed().as_secs_f64(),
    );
    drop(audit);
    index.close().await;
    drop(writer);
    task.finish().await.unwrap();
    let size = log.size();
    assert_eq!(size, QUEUED + SEQUENTIAL + TASKS * PER_TASK);

    // Start-up catch-up over a complete index: the scan only.
    let t = Instant::now();
    let done = catch_up_index(&log, &store).await.unwrap();
    assert_eq!(done.added, 0);
    rate(
        "catch-up: scan of a complete index",
        size,
        t.elapsed().as_secs_f64(),
    );

    // The whole index lost: every row added again from the log.
    let mut conn = sqlx::SqliteConnection::connect(db.to_str().unwrap())
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let t = Instant::now();
    let done = catch_up_index(&log, &store).await.unwrap();
    assert_eq!(done.added, size);
    rate(
        "catch-up: every row re-added from the log",
        size,
        t.elapsed().as_secs_f64(),
    );
    log_task.finish().await.unwrap();
    store.close().await;
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}
