//! The batched writer: a bounded queue in front of one task that commits records in transactions.
//!
//! Producers hold cheap [`StoreWriter`] clones; a full queue makes [`StoreWriter::write`] wait (back
//! pressure) and [`StoreWriter::try_write`] hand the record back. The task takes up to `batch_size`
//! records, or whatever arrived within `flush_interval` of the first, and commits them in one
//! transaction, so a crash never leaves half a batch. A failed batch is logged, counted and retried one
//! record at a time so one bad record does not lose the rest. This module must not read.

use crate::error::{StoreError, TryWriteError};
use crate::record::{persist_same_kind, Record};
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How the writer queues and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Records that may wait in the queue before writers are made to wait (at least 1).
    pub queue_capacity: usize,
    /// Most records committed in one transaction (at least 1).
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill before it is committed anyway.
    pub flush_interval: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            batch_size: 256,
            flush_interval: Duration::from_millis(100),
        }
    }
}

/// What the writer has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records committed.
    pub records: u64,
    /// Transactions committed (batches, plus single-record retries after a failed batch).
    pub batches: u64,
    /// Batches that failed and were retried record by record.
    pub failed_batches: u64,
    /// Records that failed even on their own and were dropped (each is logged).
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    batches: AtomicU64,
    failed_batches: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WriterStats {
        WriterStats {
            records: self.records.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Queues records for the writer task; clone freely.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Record>,
    counters: Arc<Counters>,
}

impl StoreWriter {
    /// Queues a record, waiting while the queue is full; fails with [`StoreError::Closed`] when the
    /// writer task has stopped.
    pub async fn write(&self, r: Record) -> Result<(), StoreError> {
        self.tx.send(r).await.map_err(|_| StoreError::Closed)
    }

    /// Queues a record if there is room now; otherwise hands it back.
    #[allow(clippy::result_large_err)] // The record is handed back by value, as tokio's `try_send` does.
    pub fn try_write(&self, r: Record) -> Result<(), TryWriteError> {
        self.tx.try_send(r).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) => TryWriteError::Full(r),
            mpsc::error::TrySendError::Closed(r) => TryWriteError::Closed(r),
        })
    }

    /// Live counters of the writer task.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    /// Records waiting in the queue right now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// The running writer task.
#[derive(Debug)]
pub struct WriterTask {
    handle: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl WriterTask {
    /// Waits until every [`StoreWriter`] clone is dropped and everything queued is committed, then
    /// returns the final counts.
    pub async fn finish(self) -> Result<WriterStats, StoreError> {
        self.handle
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(self.counters.snapshot())
    }
}

pub(crate) fn spawn(store: Store, opts: WriterOptions) -> (StoreWriter, WriterTask) {
    let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
    let counters = Arc::new(Counters::default());
    let handle = tokio::spawn(run(store, rx, opts, Arc::clone(&counters)));
    (
        StoreWriter {
            tx,
            counters: Arc::clone(&counters),
        },
        WriterTask { handle, counters },
    )
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<Record>,
    opts: WriterOptions,
    counters: Arc<Counters>,
) {
    let batch_size = opts.batch_size.max(1);
    let mut batch: Vec<Record> = Vec::with_capacity(batch_size);
    loop {
        if rx.recv_many(&mut batch, batch_size).await == 0 {
            break; // every sender dropped and the queue is empty
        }
        let deadline = Instant::now() + opts.flush_interval;
        let mut closed = false;
        while batch.len() < batch_size {
            let room = batch_size - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break, // flush interval elapsed
            }
        }
        commit(&store, &batch, &counters).await;
        batch.clear();
        if closed {
            break;
        }
    }
    tracing::debug!(stats = ?counters.snapshot(), "store writer stopped");
}

async fn write_batch(store: &Store, batch: &[Record]) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    // One multi-row statement per kind (order within a kind kept; kinds are independent tables).
    let mut groups: [Vec<&Record>; 6] = Default::default();
    for record in batch {
        groups[kind_index(record)].push(record);
    }
    for group in &groups {
        persist_same_kind(&mut tx, group).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn kind_index(r: &Record) -> usize {
    match r {
        Record::Event(_) => 0,
        Record::Alert(_) => 1,
        Record::Investigation(_) => 2,
        Record::Plan(_) => 3,
        Record::Action(_) => 4,
        Record::Audit(_) => 5,
    }
}

async fn commit(store: &Store, batch: &[Record], counters: &Counters) {
    match write_batch(store, batch).await {
        Ok(()) => {
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters
                .records
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        Err(error) => {
            tracing::error!(%error, records = batch.len(), "store batch failed; retrying records one by one");
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            for record in batch {
                match write_batch(store, std::slice::from_ref(record)).await {
                    Ok(()) => {
                        counters.batches.fetch_add(1, Ordering::Relaxed);
                        counters.records.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        tracing::error!(%error, table = record.table(), "store record dropped");
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}
