//! The batched writer: a bounded queue in front of one task that commits records in transactions.
//!
//! Producers hold cheap [`StoreWriter`] clones; a full queue makes [`StoreWriter::write`] wait (back
//! pressure) and [`StoreWriter::try_write`] hand the record back. A record queued with an [`AckToken`]
//! ([`StoreWriter::write_acked`]) has its token settled after the transaction holding it commits, or
//! fails, so a caller can answer "stored" only when it is.
//!
//! Group commit: the task takes everything queued (up to `batch_size`) and commits it in one
//! transaction, so a crash never leaves half a batch and many requests share one commit; batches grow
//! by themselves under load, while the previous commit runs. Only when nobody waits for an
//! acknowledgement does a batch wait up to `flush_interval` to fill. While the database cannot be
//! reached (a PostgreSQL restart), a batch is tried again for a while before it fails whole. Any
//! other failed batch is logged, counted and retried one record at a time so one bad record does not
//! lose the rest. The sizes of committed batches are kept in a histogram ([`WriterMonitor`]). The same
//! writer runs on SQLite and PostgreSQL (its statements go through `backend::Tx`). This module must
//! not read.

use crate::ack::AckToken;
use crate::backend::Tx;
use crate::error::{StoreError, TryWriteError};
use crate::persist::persist_same_kind;
use crate::record::{AuditRow, Record};
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
    /// Longest a record nobody waits for waits for its batch to fill before it is committed anyway.
    /// A batch holding an acknowledged record is committed as soon as it is taken.
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
    /// The most records committed in one transaction.
    pub largest_batch: u64,
}

/// Upper bounds of the batch-size histogram's buckets (records per committed transaction).
pub const BATCH_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

/// Sizes of committed transactions, as a cumulative histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSizes {
    /// `(upper bound, transactions of at most that many records)`, for each of [`BATCH_BUCKETS`].
    pub buckets: Vec<(u64, u64)>,
    /// Transactions committed.
    pub count: u64,
    /// Records committed.
    pub sum: u64,
    /// The largest transaction.
    pub max: u64,
}

#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    batches: AtomicU64,
    failed_batches: AtomicU64,
    dropped: AtomicU64,
    largest_batch: AtomicU64,
    // One more than the bounds: the last slot holds batches above every bound.
    by_size: [AtomicU64; BATCH_BUCKETS.len() + 1],
}

impl Counters {
    fn snapshot(&self) -> WriterStats {
        WriterStats {
            records: self.records.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
        }
    }

    fn committed(&self, records: usize) {
        let n = records as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(n, Ordering::Relaxed);
        self.largest_batch.fetch_max(n, Ordering::Relaxed);
        let slot = BATCH_BUCKETS
            .iter()
            .position(|b| n <= *b)
            .unwrap_or(BATCH_BUCKETS.len());
        self.by_size[slot].fetch_add(1, Ordering::Relaxed);
    }

    fn batch_sizes(&self) -> BatchSizes {
        let mut cumulative = 0;
        let buckets = BATCH_BUCKETS
            .iter()
            .zip(&self.by_size)
            .map(|(bound, c)| {
                cumulative += c.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        BatchSizes {
            buckets,
            count: self.batches.load(Ordering::Relaxed),
            sum: self.records.load(Ordering::Relaxed),
            max: self.largest_batch.load(Ordering::Relaxed),
        }
    }
}

/// A read-only view of the writer's counters that does not keep the writer open (for metrics).
#[derive(Debug, Clone)]
pub struct WriterMonitor {
    counters: Arc<Counters>,
}

impl WriterMonitor {
    /// Live counters of the writer task.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    /// Sizes of the transactions committed so far.
    pub fn batch_sizes(&self) -> BatchSizes {
        self.counters.batch_sizes()
    }
}

/// A record in the queue, with the token to settle once it is stored.
#[derive(Debug)]
struct Queued {
    record: Record,
    ack: Option<AckToken>,
}

impl Queued {
    /// Someone waits on this record now: commit without waiting for a fuller batch.
    fn urgent(&self) -> bool {
        self.ack.as_ref().is_some_and(AckToken::urgent)
    }
}

/// Queues records for the writer task; clone freely.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Queued>,
    counters: Arc<Counters>,
}

impl StoreWriter {
    /// Queues a record, waiting while the queue is full; fails with [`StoreError::Closed`] when the
    /// writer task has stopped.
    pub async fn write(&self, r: Record) -> Result<(), StoreError> {
        self.tx
            .send(Queued {
                record: r,
                ack: None,
            })
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Queues a record whose `ack` is settled once the transaction holding it commits (or fails).
    /// Waits while the queue is full. When the writer has stopped, the token is settled as failed and
    /// [`StoreError::Closed`] returned.
    pub async fn write_acked(&self, r: Record, ack: AckToken) -> Result<(), StoreError> {
        match self
            .tx
            .send(Queued {
                record: r,
                ack: Some(ack),
            })
            .await
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(q)) => {
                if let Some(t) = q.ack {
                    t.failed("the store writer is closed");
                }
                Err(StoreError::Closed)
            }
        }
    }

    /// Queues a record if there is room now; otherwise hands it back.
    #[allow(clippy::result_large_err)] // The record is handed back by value, as tokio's `try_send` does.
    pub fn try_write(&self, r: Record) -> Result<(), TryWriteError> {
        self.tx
            .try_send(Queued {
                record: r,
                ack: None,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(q) => TryWriteError::Full(q.record),
                mpsc::error::TrySendError::Closed(q) => TryWriteError::Closed(q.record),
            })
    }

    /// Live counters of the writer task.
    pub fn stats(&self) -> WriterStats {
        self.counters.snapshot()
    }

    /// A view of the counters that does not keep the writer open.
    pub fn monitor(&self) -> WriterMonitor {
        WriterMonitor {
            counters: Arc::clone(&self.counters),
        }
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
    close: Arc<tokio::sync::Notify>,
}

impl WriterTask {
    /// Closes the queue (a [`StoreWriter`] clone still held somewhere then gets
    /// [`StoreError::Closed`], and an acknowledged record it sends is settled as failed), commits
    /// everything already queued, and returns the final counts. Unlike [`WriterTask::finish`], it
    /// does not wait for every clone to be dropped.
    pub async fn close(self) -> Result<WriterStats, StoreError> {
        self.close.notify_one();
        self.finish().await
    }

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
    let close = Arc::new(tokio::sync::Notify::new());
    let handle = tokio::spawn(run(
        store,
        rx,
        opts,
        Arc::clone(&counters),
        Arc::clone(&close),
    ));
    (
        StoreWriter {
            tx,
            counters: Arc::clone(&counters),
        },
        WriterTask {
            handle,
            counters,
            close,
        },
    )
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<Queued>,
    opts: WriterOptions,
    counters: Arc<Counters>,
    close: Arc<tokio::sync::Notify>,
) {
    let batch_size = opts.batch_size.max(1);
    let mut batch: Vec<Queued> = Vec::with_capacity(batch_size);
    let mut closing = false;
    loop {
        // Everything queued now, up to a batch: what arrived during the last commit rides together.
        let got = if closing {
            rx.recv_many(&mut batch, batch_size).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, batch_size) => n,
                _ = close.notified() => {
                    // No new records; what is queued is still received and committed.
                    rx.close();
                    closing = true;
                    continue;
                }
            }
        };
        if got == 0 {
            break; // every sender dropped (or the queue closed) and the queue is empty
        }
        let mut closed = false;
        // Nobody waits on these records: let the batch fill a little to save transactions, but stop
        // as soon as someone does.
        if !batch.iter().any(Queued::urgent) {
            let deadline = Instant::now() + opts.flush_interval;
            while batch.len() < batch_size {
                let before = batch.len();
                let room = batch_size - before;
                let got = if closing {
                    tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await
                } else {
                    tokio::select! {
                        r = tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)) => r,
                        _ = close.notified() => {
                            // Closing: commit what is here now rather than at the end of the interval.
                            rx.close();
                            closing = true;
                            break;
                        }
                    }
                };
                match got {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(_) => {
                        if batch[before..].iter().any(Queued::urgent) {
                            break;
                        }
                    }
                    Err(_) => break, // flush interval elapsed
                }
            }
        }
        commit(&store, &mut batch, &counters).await;
        if closed {
            break;
        }
    }
    tracing::debug!(stats = ?counters.snapshot(), "store writer stopped");
}

/// Stores `batch` in one transaction; `Ok` only once it has committed. On PostgreSQL the transaction
/// holds the feed lock ([`Tx::begin_in_feed_order`]) so batches of every writer commit in the order of
/// their row ids.
async fn write_batch(store: &Store, batch: &[&Record]) -> Result<(), StoreError> {
    let mut tx = Tx::begin_in_feed_order(store).await?;
    // One multi-row statement per kind (order within a kind kept; kinds are independent tables).
    let mut groups: [Vec<&Record>; 6] = Default::default();
    for record in batch {
        groups[kind_index(record)].push(record);
    }
    for group in &groups {
        persist_same_kind(&mut tx, group).await?;
    }
    // The overview's counts, in the same transaction (alerts and actions are counted by triggers).
    crate::rollup::add_events(&mut tx, &groups[0]).await?;
    tx.commit().await?;
    store.committed();
    Ok(())
}

impl Store {
    /// Adds audit index rows in one transaction, beside the batched writer: catching the index up
    /// from the audit log at start-up. A row whose log seq is already indexed is kept as it is, so
    /// adding a range again is harmless. Returns how many rows were added.
    pub async fn insert_audit_index_batch(&self, rows: &[AuditRow]) -> Result<u64, StoreError> {
        let records: Vec<Record> = rows.iter().cloned().map(Record::Audit).collect();
        let refs: Vec<&Record> = records.iter().collect();
        let mut tx = Tx::begin_in_feed_order(self).await?;
        let added = persist_same_kind(&mut tx, &refs).await?;
        tx.commit().await?;
        self.committed();
        Ok(added)
    }
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

/// How long the writer keeps trying a batch while the database cannot be reached (a PostgreSQL
/// restart, a network blip) before it fails the batch as it would any other failure.
const OUTAGE_WAIT: Duration = Duration::from_secs(30);
/// The first pause between those tries; it doubles up to [`OUTAGE_MAX_PAUSE`].
const OUTAGE_FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between those tries.
const OUTAGE_MAX_PAUSE: Duration = Duration::from_secs(2);

/// Writes `batch`, trying again with growing pauses for up to [`OUTAGE_WAIT`] while the database
/// cannot be reached. Meanwhile nothing is taken from the queue, so producers feel back pressure
/// rather than losing records.
async fn write_through_outage(store: &Store, batch: &[&Record]) -> Result<(), StoreError> {
    let until = Instant::now() + OUTAGE_WAIT;
    let mut pause = OUTAGE_FIRST_PAUSE;
    loop {
        match write_batch(store, batch).await {
            Err(error) if error.is_unreachable() && Instant::now() + pause < until => {
                tracing::warn!(%error, records = batch.len(), retry_in = ?pause, "store unreachable; trying the batch again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(OUTAGE_MAX_PAUSE);
            }
            result => return result,
        }
    }
}

/// Commits `batch` (emptying it) and settles its tokens.
async fn commit(store: &Store, batch: &mut Vec<Queued>, counters: &Counters) {
    let records: Vec<&Record> = batch.iter().map(|q| &q.record).collect();
    let result = write_through_outage(store, &records).await;
    drop(records);
    match result {
        Ok(()) => {
            counters.committed(batch.len());
            for q in batch.drain(..) {
                if let Some(t) = q.ack {
                    t.committed();
                }
            }
        }
        Err(error) if error.is_unreachable() => {
            // Still unreachable after the writer's patience: trying each record alone would wait
            // as long again per record. The batch fails whole.
            tracing::error!(%error, records = batch.len(), "store unreachable; batch dropped");
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            for q in batch.drain(..) {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = q.ack {
                    t.failed("the store could not be reached");
                }
            }
        }
        Err(error) => {
            tracing::error!(%error, records = batch.len(), "store batch failed; retrying records one by one");
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            for q in batch.drain(..) {
                match write_batch(store, &[&q.record]).await {
                    Ok(()) => {
                        counters.committed(1);
                        if let Some(t) = q.ack {
                            t.committed();
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, table = q.record.table(), "store record dropped");
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        if let Some(t) = q.ack {
                            t.failed("the store could not write it");
                        }
                    }
                }
            }
        }
    }
}
