//! The running log: [`Log::open`] recovers the files after a crash and starts the single writer
//! (see [`crate::writer`]); appends are acknowledged once durable, with group commit; reads and proofs
//! are answered from the files while it runs.
//!
//! Recovery on open:
//! - the checkpoints file's torn tail is truncated (`evt=audit_checkpoints_tail_truncated`), the latest
//!   checkpoint's signature is checked with the key;
//! - the segments from the one holding the latest checkpoint's size onward are scanned: a torn tail of
//!   the last segment (a partial frame, or bad bytes with no good record after them) is truncated and
//!   logged (`evt=audit_tail_truncated`, `bytes`, `records`); a bad frame or a sequence gap with good
//!   records after it, or in a sealed segment, is an error naming the segment, byte offset and seq;
//! - the latest checkpoint may not cover more records than survived (an error: signed records are
//!   missing);
//! - the stored-hashes file is derived: it is cut back to the latest checkpoint and rebuilt from the
//!   records after it, and the recomputed root at the checkpoint's size must equal the signed one.
//!
//! An append whose batch failed to become durable may still be found after a reopen (its bytes can
//! reach the disk after the failed `fsync`): the log promises that acknowledged records survive, not
//! that failed ones vanish.

use crate::files::{self, HashFile, ScanEnd, SegmentIndex};
use crate::format::{self, LogEntry};
use crate::keyfile;
use crate::merkle::{self, CompactRange, Hash};
use crate::note::{SignedCheckpoint, Verifier};
use crate::writer::{refuse, CheckpointSlot, Checkpointer, Req, Writer};
use async_trait::async_trait;
use sentinel_core::{AuditRecord, Receipt, Timestamp};
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// How the log is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The audit directory (`<data>/audit`).
    pub dir: PathBuf,
    /// The log's name, also its key's name (`sentinel/<host>`).
    pub origin: String,
    /// Sign a checkpoint after this many new records.
    pub checkpoint_every: u64,
    /// Sign a checkpoint this long after the last one, if records were added.
    pub checkpoint_interval: Duration,
    /// Start a new segment when the active one would grow past this many bytes.
    pub segment_bytes: u64,
    /// How many appends may wait for the writer.
    pub queue: usize,
    /// The most appends one `fsync` commits.
    pub max_batch: usize,
}

impl AuditSettings {
    /// The defaults for a log in `dir` named `origin`.
    pub fn new(dir: impl Into<PathBuf>, origin: impl Into<String>) -> Self {
        AuditSettings {
            dir: dir.into(),
            origin: origin.into(),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            segment_bytes: 64 << 20,
            queue: 65536,
            max_batch: 8192,
        }
    }
}

/// Why the log refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The settings cannot work.
    #[error("audit settings: {0}")]
    Settings(String),
    /// A file could not be read, created or written at open or for a read.
    #[error("audit log {path}: {why}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        why: String,
    },
    /// The signing key could not be used.
    #[error(transparent)]
    Key(#[from] keyfile::KeyError),
    /// Damage that is not a torn tail: the log will not open over it (nothing is truncated).
    #[error("audit log damaged: {file} at byte {offset} (record {seq}): {why}")]
    Corrupt {
        /// The file.
        file: String,
        /// Where the damage starts.
        offset: u64,
        /// The record (or checkpoint size) expected there.
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// The records do not match what a signed checkpoint says about them.
    #[error("audit log does not match its signed checkpoint: {0}")]
    Mismatch(String),
    /// Writing or syncing a batch failed; every append of it failed.
    #[error("audit write failed: {0}")]
    Write(String),
    /// An earlier write failed; the log takes no appends until it is reopened.
    #[error("audit log refuses appends after a failed write; reopen it")]
    Poisoned,
    /// The log was finished or its writer is gone.
    #[error("audit log is closed")]
    Closed,
    /// A record or tree size past what is committed.
    #[error("{what} is past the committed size {size}")]
    OutOfRange {
        /// What was asked for.
        what: String,
        /// The committed size.
        size: u64,
    },
    /// A record in a segment that was archived (compressed or moved).
    #[error("record {seq} is in archived segment {segment}")]
    Archived {
        /// The record.
        seq: u64,
        /// The segment's file name.
        segment: String,
    },
}

impl From<LogError> for sentinel_core::AuditError {
    fn from(e: LogError) -> Self {
        sentinel_core::AuditError::Storage(e.to_string())
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LogError + '_ {
    move |e| LogError::Io {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// An acknowledged append: its position and leaf hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number (its index in the tree).
    pub seq: u64,
    /// SHA-256(0x00 ‖ payload).
    pub leaf: Hash,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    /// Its sequence number.
    pub seq: u64,
    /// The record.
    pub entry: LogEntry,
    /// Its leaf hash.
    pub leaf: Hash,
}

/// What the log has done, for metrics.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Appends acknowledged.
    pub appends: AtomicU64,
    /// Batches committed (one group commit each).
    pub batches: AtomicU64,
    /// `fsync`/`fdatasync` calls made.
    pub fsyncs: AtomicU64,
    /// Bytes written to segments and the hashes file.
    pub bytes: AtomicU64,
    /// Checkpoints signed and stored.
    pub checkpoints: AtomicU64,
    /// Appends (and checkpoints) that failed.
    pub failures: AtomicU64,
}

/// A copy of [`LogStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Appends acknowledged.
    pub appends: u64,
    /// Batches committed.
    pub batches: u64,
    /// `fsync` calls.
    pub fsyncs: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Checkpoints stored.
    pub checkpoints: u64,
    /// Failures.
    pub failures: u64,
}

impl LogStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            appends: self.appends.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// One segment as readers see it.
#[derive(Debug)]
pub(crate) struct SegInfo {
    pub first: u64,
    /// Records durable in it.
    pub records: u64,
    /// Bytes durable in it.
    pub bytes: u64,
    /// Sparse `(seq, offset)` pairs.
    pub entries: Vec<(u64, u64)>,
    /// Open for reading; `None` when archived.
    pub file: Option<Arc<File>>,
    pub path: PathBuf,
}

/// What the writer and the readers share.
pub(crate) struct Shared {
    pub seg_dir: PathBuf,
    /// Records committed (durable and acknowledged or about to be).
    pub committed: AtomicU64,
    pub segments: RwLock<Vec<SegInfo>>,
    pub hashes: HashFile,
    /// `(size, offset, frame length)` of every stored checkpoint, by size.
    pub checkpoint_index: RwLock<Vec<(u64, u64, u32)>>,
    pub checkpoints_file: File,
    pub checkpoints_path: PathBuf,
    pub verifier: Verifier,
    pub latest: watch::Sender<SignedCheckpoint>,
    pub stats: LogStats,
    pub poisoned: AtomicBool,
}

/// The running audit log. Cheap to clone; every clone feeds the same writer.
#[derive(Clone)]
pub struct Log {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Req>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.seg_dir)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

/// The writer thread: [`LogTask::finish`] commits what is queued, signs a last checkpoint and joins it.
#[derive(Debug)]
pub struct LogTask {
    tx: mpsc::Sender<Req>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogTask {
    /// Commits what is queued, signs a final checkpoint, and waits for the writer to stop. Appends
    /// made after it are refused ([`LogError::Closed`]).
    pub async fn finish(mut self) -> Result<SignedCheckpoint, LogError> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Req::Finish(reply)).await;
        let out = match sent {
            Ok(()) => rx.await.unwrap_or(Err(LogError::Closed)),
            Err(_) => Err(LogError::Closed),
        };
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        out
    }
}

/// An append that is queued; await it for its acknowledgement.
#[derive(Debug)]
pub struct PendingAppend {
    rx: oneshot::Receiver<Result<Appended, LogError>>,
}

impl Future for PendingAppend {
    type Output = Result<Appended, LogError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(LogError::Closed)))
    }
}

impl Log {
    /// Opens (creating on first use) and recovers the log in `s.dir`, and starts its writer.
    pub async fn open(s: AuditSettings) -> Result<(Log, LogTask), LogError> {
        if s.queue == 0 || s.max_batch == 0 || s.checkpoint_every == 0 {
            return Err(LogError::Settings(
                "queue, max_batch and checkpoint_every must be at least 1".into(),
            ));
        }
        if s.segment_bytes < 4096 {
            return Err(LogError::Settings(format!(
                "segment_bytes {} is under 4096",
                s.segment_bytes
            )));
        }
        let (writer, shared) = tokio::task::spawn_blocking(move || recover(&s))
            .await
            .map_err(|e| LogError::Io {
                path: "audit log".into(),
                why: format!("recovery task failed: {e}"),
            })??;
        let queue = writer.1;
        let writer = writer.0;
        let (tx, rx) = mpsc::channel(queue);
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| LogError::Io {
                path: "audit writer thread".into(),
                why: e.to_string(),
            })?;
        Ok((
            Log {
                shared,
                tx: tx.clone(),
            },
            LogTask {
                tx,
                thread: Some(thread),
            },
        ))
    }

    /// Whether the log refuses appends because a write failed ([`LogError::Poisoned`]): nothing is
    /// recorded until it is reopened (the daemon restarted), so the node is not ready.
    pub fn refuses_appends(&self) -> bool {
        self.shared.poisoned.load(Ordering::SeqCst)
    }

    /// Appends a record; answers once it is durable.
    pub async fn append(&self, e: AuditRecord) -> Result<Appended, LogError> {
        self.submit(e).await?.await
    }

    /// Queues a record (waiting while the queue is full); the answer completes once it is durable.
    pub async fn submit(&self, e: AuditRecord) -> Result<PendingAppend, LogError> {
        if self.shared.poisoned.load(Ordering::SeqCst) {
            self.shared.stats.failures.fetch_add(1, Ordering::Relaxed);
            return Err(LogError::Poisoned);
        }
        let (reply, rx) = oneshot::channel();
        match self.tx.send(Req::Append(e, reply)).await {
            Ok(()) => Ok(PendingAppend { rx }),
            Err(mpsc::error::SendError(r)) => {
                refuse(r, LogError::Closed);
                Err(LogError::Closed)
            }
        }
    }

    /// How many records are committed (durable).
    pub fn size(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    /// The latest signed checkpoint.
    pub fn latest_checkpoint(&self) -> SignedCheckpoint {
        self.shared.latest.borrow().clone()
    }

    /// Follows new checkpoints.
    pub fn subscribe_checkpoints(&self) -> watch::Receiver<SignedCheckpoint> {
        self.shared.latest.subscribe()
    }

    /// Signs a checkpoint of everything committed now (answers the latest when it already covers
    /// everything).
    pub async fn checkpoint_now(&self) -> Result<SignedCheckpoint, LogError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Req::Checkpoint(reply))
            .await
            .map_err(|_| LogError::Closed)?;
        rx.await.unwrap_or(Err(LogError::Closed))
    }

    /// The counters.
    pub fn stats(&self) -> &LogStats {
        &self.shared.stats
    }

    /// The verifier key of the log's checkpoints (`<name>+<id>+<key>`).
    pub fn verifier_key(&self) -> String {
        self.shared.verifier.to_text()
    }

    fn read_checkpoint(&self, offset: u64, len: u32) -> Result<SignedCheckpoint, LogError> {
        let path = &self.shared.checkpoints_path;
        let mut buf = vec![0u8; len as usize];
        self.shared
            .checkpoints_file
            .read_exact_at(&mut buf, offset)
            .map_err(io(path))?;
        let corrupt = |why: String| LogError::Corrupt {
            file: path.display().to_string(),
            offset,
            seq: 0,
            why,
        };
        let f = format::decode_frame(&buf, 0)
            .map_err(|e| corrupt(e.to_string()))?
            .ok_or_else(|| corrupt("empty frame".into()))?;
        let text = std::str::from_utf8(f.payload).map_err(|e| corrupt(e.to_string()))?;
        self.shared
            .verifier
            .verify(text)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Up to `limit` stored checkpoints with size ≥ `from_size`, by size.
    pub fn checkpoints(
        &self,
        from_size: u64,
        limit: usize,
    ) -> Result<Vec<SignedCheckpoint>, LogError> {
        let picked: Vec<(u64, u64, u32)> = {
            let idx = self
                .shared
                .checkpoint_index
                .read()
                .unwrap_or_else(|e| e.into_inner());
            let at = idx.partition_point(|c| c.0 < from_size);
            idx[at..].iter().take(limit).copied().collect()
        };
        picked
            .into_iter()
            .map(|(_, off, len)| self.read_checkpoint(off, len))
            .collect()
    }

    /// The stored checkpoint of exactly `size` records, if one was signed.
    pub fn checkpoint_at(&self, size: u64) -> Result<Option<SignedCheckpoint>, LogError> {
        let found = {
            let idx = self
                .shared
                .checkpoint_index
                .read()
                .unwrap_or_else(|e| e.into_inner());
            idx.binary_search_by_key(&size, |c| c.0)
                .ok()
                .map(|i| idx[i])
        };
        found
            .map(|(_, off, len)| self.read_checkpoint(off, len))
            .transpose()
    }

    /// Up to `limit` committed records from `from_seq` on.
    pub fn read(&self, from_seq: u64, limit: usize) -> Result<Vec<StoredEntry>, LogError> {
        let size = self.size();
        if from_seq > size {
            return Err(LogError::OutOfRange {
                what: format!("record {from_seq}"),
                size,
            });
        }
        let end = size.min(from_seq.saturating_add(limit as u64));
        let mut out = Vec::with_capacity((end - from_seq) as usize);
        let mut seq = from_seq;
        while seq < end {
            let (file, path, start, seg_end, bytes) = {
                let segs = self
                    .shared
                    .segments
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                let i = segs.partition_point(|s| s.first <= seq);
                let Some(s) = i.checked_sub(1).and_then(|i| segs.get(i)) else {
                    return Err(LogError::Archived {
                        seq,
                        segment: "(before the first segment)".into(),
                    });
                };
                let Some(file) = s.file.clone() else {
                    return Err(LogError::Archived {
                        seq,
                        segment: s
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    });
                };
                let j = s.entries.partition_point(|e| e.0 <= seq);
                let start = j
                    .checked_sub(1)
                    .and_then(|j| s.entries.get(j))
                    .copied()
                    .unwrap_or((s.first, format::HEADER_LEN as u64));
                (file, s.path.clone(), start, s.first + s.records, s.bytes)
            };
            let stop = end.min(seg_end);
            read_frames(&file, &path, start, bytes, seq, stop, &mut out)?;
            if stop <= seq {
                break;
            }
            seq = stop;
        }
        Ok(out)
    }

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        let committed = self.size();
        match size > committed {
            true => Err(LogError::OutOfRange {
                what: format!("tree size {size}"),
                size: committed,
            }),
            false => Ok(()),
        }
    }

    /// The inclusion proof of record `seq` in the tree of `size` records.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        if seq >= size {
            return Err(LogError::OutOfRange {
                what: format!("record {seq}"),
                size,
            });
        }
        merkle::inclusion_proof(seq, size, &self.shared.hashes).map_err(|e| self.hash_err(e))
    }

    /// The consistency proof from the tree of `old` records to the tree of `new` records.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(new)?;
        if old > new {
            return Err(LogError::OutOfRange {
                what: format!("tree size {old}"),
                size: new,
            });
        }
        merkle::consistency_proof(old, new, &self.shared.hashes).map_err(|e| self.hash_err(e))
    }

    /// The root hash of the tree of `size` records.
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        self.check_size(size)?;
        merkle::tree_hash(size, &self.shared.hashes).map_err(|e| self.hash_err(e))
    }

    fn hash_err(&self, e: merkle::MerkleError) -> LogError {
        LogError::Io {
            path: self.shared.seg_dir.display().to_string(),
            why: e.to_string(),
        }
    }
}

/// Decodes records `[seq, stop)` of a segment, starting at the frame of `start` (≤ seq), reading at
/// most `bytes` (its durable length).
fn read_frames(
    file: &File,
    path: &Path,
    start: (u64, u64),
    bytes: u64,
    seq: u64,
    stop: u64,
    out: &mut Vec<StoredEntry>,
) -> Result<(), LogError> {
    const CHUNK: u64 = 256 << 10;
    let (mut at_seq, mut off) = start;
    // A guess of the bytes needed (records are a few hundred bytes), grown when a frame does not fit.
    let mut chunk = ((stop - at_seq) * 384).clamp(4096, CHUNK);
    let mut buf = Vec::new();
    while at_seq < stop {
        let want = bytes.saturating_sub(off).min(chunk);
        if want == 0 {
            return Err(LogError::Corrupt {
                file: path.display().to_string(),
                offset: off,
                seq: at_seq,
                why: "the segment ends before the record".into(),
            });
        }
        buf.resize(want as usize, 0);
        file.read_exact_at(&mut buf, off).map_err(io(path))?;
        let mut p = 0usize;
        loop {
            if at_seq >= stop {
                return Ok(());
            }
            match format::decode_frame(&buf, p) {
                Ok(Some(f)) => {
                    if f.seq != at_seq {
                        return Err(LogError::Corrupt {
                            file: path.display().to_string(),
                            offset: off + p as u64,
                            seq: at_seq,
                            why: format!("found record {}", f.seq),
                        });
                    }
                    if at_seq >= seq {
                        let entry =
                            LogEntry::from_payload(f.payload).map_err(|e| LogError::Corrupt {
                                file: path.display().to_string(),
                                offset: off + p as u64,
                                seq: at_seq,
                                why: format!("the record is not a log entry: {e}"),
                            })?;
                        out.push(StoredEntry {
                            seq: at_seq,
                            entry,
                            leaf: merkle::leaf_hash(f.payload),
                        });
                    }
                    at_seq += 1;
                    p = f.end;
                }
                Ok(None) | Err(format::FrameError::Torn { .. }) if p > 0 => {
                    // The rest of this chunk holds a partial frame: read on from it.
                    off += p as u64;
                    break;
                }
                Ok(None) | Err(format::FrameError::Torn { .. }) => {
                    // Not even one frame fits: read a larger chunk.
                    chunk = chunk.saturating_mul(2);
                    if off + buf.len() as u64 >= bytes {
                        return Err(LogError::Corrupt {
                            file: path.display().to_string(),
                            offset: off,
                            seq: at_seq,
                            why: "a frame runs past the durable end of the segment".into(),
                        });
                    }
                    break;
                }
                Err(e) => {
                    return Err(LogError::Corrupt {
                        file: path.display().to_string(),
                        offset: off + p as u64,
                        seq: at_seq,
                        why: e.to_string(),
                    })
                }
            }
        }
    }
    Ok(())
}

#[async_trait]
impl sentinel_core::AuditLog for Log {
    async fn append(&self, r: AuditRecord) -> Result<Receipt, sentinel_core::AuditError> {
        Log::append(self, r).await?;
        Ok(Receipt {
            committed_at: Timestamp::now(),
        })
    }

    async fn append_queued(&self, r: AuditRecord) -> Result<(), sentinel_core::AuditError> {
        // A failure later is counted (`failures`) and logged by the writer.
        self.submit(r).await?;
        Ok(())
    }
}

/// Reads a whole file, or nothing when it does not exist.
fn read_all(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

fn create_with_header(path: &Path, header: &[u8], dir: &Path) -> Result<(), LogError> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(header)
        .and_then(|()| f.sync_data())
        .map_err(io(path))?;
    files::sync_dir(dir).map_err(io(dir))
}

fn truncate_to(path: &Path, len: u64) -> Result<(), LogError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    f.set_len(len).and_then(|()| f.sync_all()).map_err(io(path))
}

/// The checkpoints file, recovered: `(size, offset, len)` of each, the file's good length, and the
/// latest checkpoint (its signature checked).
type RecoveredCheckpoints = (Vec<(u64, u64, u32)>, u64, Option<SignedCheckpoint>);

/// Recovers the checkpoints file.
fn recover_checkpoints(dir: &Path, verifier: &Verifier) -> Result<RecoveredCheckpoints, LogError> {
    let path = dir.join("checkpoints");
    let buf = match read_all(&path)? {
        Some(b) if b.len() >= format::HEADER_LEN => b,
        Some(b) if format::checkpoints_header().starts_with(&b) => {
            // A crash while creating it.
            create_with_header(&path, &format::checkpoints_header(), dir)?;
            format::checkpoints_header().to_vec()
        }
        Some(_) => {
            return Err(LogError::Corrupt {
                file: path.display().to_string(),
                offset: 0,
                seq: 0,
                why: "not a checkpoints file".into(),
            })
        }
        None => {
            create_with_header(&path, &format::checkpoints_header(), dir)?;
            format::checkpoints_header().to_vec()
        }
    };
    let corrupt = |offset: usize, seq: u64, why: String| LogError::Corrupt {
        file: path.display().to_string(),
        offset: offset as u64,
        seq,
        why,
    };
    format::parse_header(format::CHECKPOINTS_MAGIC, &buf)
        .map_err(|e| corrupt(0, 0, e.to_string()))?;
    let mut idx: Vec<(u64, u64, u32)> = Vec::new();
    let mut off = format::HEADER_LEN;
    loop {
        match format::decode_frame(&buf, off) {
            Ok(None) => break,
            Ok(Some(f)) => {
                if let Some(&(prev, _, _)) = idx.last() {
                    if f.seq <= prev {
                        return Err(corrupt(
                            off,
                            f.seq,
                            format!("checkpoint of size {} after one of size {prev}", f.seq),
                        ));
                    }
                }
                idx.push((f.seq, off as u64, (f.end - off) as u32));
                off = f.end;
            }
            Err(e) => {
                // A later whole frame means damage, not a torn tail.
                let later = (off + 1..buf.len().saturating_sub(format::FRAME_HEAD))
                    .find(|&at| matches!(format::decode_frame(&buf, at), Ok(Some(f)) if f.seq >= idx.last().map_or(0, |c| c.0)));
                if let Some(at) = later {
                    return Err(corrupt(
                        off,
                        idx.last().map_or(0, |c| c.0),
                        format!("{e}, with a whole checkpoint at byte {at} after it"),
                    ));
                }
                let cut = buf.len() - off;
                truncate_to(&path, off as u64)?;
                tracing::warn!(
                    evt = "audit_checkpoints_tail_truncated",
                    path = %path.display(),
                    bytes = cut,
                    checkpoints = idx.len(),
                    "the checkpoints file ended in a partial checkpoint (a crash while signing); cut it off"
                );
                break;
            }
        }
    }
    let latest = match idx.last() {
        Some(&(size, off, len)) => {
            let f = format::decode_frame(&buf, off as usize)
                .ok()
                .flatten()
                .ok_or_else(|| corrupt(off as usize, size, "unreadable".into()))?;
            let _ = len;
            let text = std::str::from_utf8(f.payload)
                .map_err(|e| corrupt(off as usize, size, e.to_string()))?;
            let signed = verifier
                .verify(text)
                .map_err(|e| corrupt(off as usize, size, format!("the latest checkpoint: {e}")))?;
            if signed.checkpoint.size != size {
                return Err(corrupt(
                    off as usize,
                    size,
                    format!("the note says size {}", signed.checkpoint.size),
                ));
            }
            Some(signed)
        }
        None => None,
    };
    Ok((idx, off as u64, latest))
}

/// Recovers the files and builds the writer and the shared state.
#[allow(clippy::too_many_lines)]
fn recover(s: &AuditSettings) -> Result<((Writer, usize), Arc<Shared>), LogError> {
    let dir = &s.dir;
    let seg_dir = dir.join("segments");
    for d in [dir, &seg_dir] {
        if !d.is_dir() {
            fs::create_dir_all(d).map_err(io(d))?;
            if let Some(parent) = d.parent() {
                files::sync_dir(parent).map_err(io(parent))?;
            }
        }
    }
    let lock_path = dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| LogError::Io {
            path: lock_path.display().to_string(),
            why: format!("another writer has this audit log open ({e})"),
        },
    )?;
    // A log with signed checkpoints never gets a new key: that would hide the loss of the old one.
    let cp_path = dir.join("checkpoints");
    if !dir.join("key").exists()
        && fs::metadata(&cp_path).is_ok_and(|m| m.len() > format::HEADER_LEN as u64)
    {
        return Err(LogError::Key(keyfile::KeyError::Io {
            path: dir.join("key").display().to_string(),
            why: "the key is missing but the log holds checkpoints signed with it; restore the key (a new one would not match them)".into(),
        }));
    }
    let (signer, _) = keyfile::load_or_create(dir, &s.origin)?;
    let verifier = signer.verifier();
    let (cp_index, cp_len, latest) = recover_checkpoints(dir, &verifier)?;
    let cp_size = latest.as_ref().map_or(0, |c| c.checkpoint.size);

    // The segments, by first record (the original wins over a compressed copy an interrupted archive
    // left beside it).
    let (listed, shadowed) = crate::reader::list_segments(&seg_dir).map_err(io(&seg_dir))?;
    for p in &shadowed {
        tracing::warn!(
            evt = "audit_segment_shadowed",
            file = %p.display(),
            "a compressed copy beside its original segment (an interrupted archive): the original is used"
        );
    }
    let mut names: Vec<(u64, bool, PathBuf)> = listed
        .into_iter()
        .map(|s| (s.first_seq, s.compressed, s.path))
        .collect();
    if names.is_empty() {
        if cp_size > 0 {
            return Err(LogError::Mismatch(format!(
                "no segments in {}, but a signed checkpoint covers {cp_size} records",
                seg_dir.display()
            )));
        }
        let path = seg_dir.join(format::segment_name(0));
        create_with_header(&path, &format::segment_header(0), &seg_dir)?;
        names.push((0, false, path));
    }
    if names.last().is_some_and(|n| n.1) {
        return Err(LogError::Corrupt {
            file: seg_dir.display().to_string(),
            offset: 0,
            seq: 0,
            why: "the newest segment is archived; the active one is missing".into(),
        });
    }

    // Sealed segments: their indexes (rebuilt when missing or bad).
    let mut segs: Vec<SegInfo> = Vec::with_capacity(names.len());
    let last_i = names.len() - 1;
    for (i, (first, archived, path)) in names.iter().enumerate() {
        let next_first = names.get(i + 1).map(|n| n.0);
        let file = if *archived {
            None
        } else {
            Some(Arc::new(File::open(path).map_err(io(path))?))
        };
        let mut info = SegInfo {
            first: *first,
            records: 0,
            bytes: 0,
            entries: Vec::new(),
            file,
            path: path.clone(),
        };
        if i < last_i {
            let next_first = next_first.unwrap_or(*first);
            if *archived {
                info.records = next_first - first;
            } else {
                let idx = match SegmentIndex::read(&seg_dir, *first) {
                    Ok(Some(idx)) => {
                        let len = fs::metadata(path).map_err(io(path))?.len();
                        if len == idx.bytes {
                            Some(idx)
                        } else {
                            tracing::warn!(evt = "audit_index_rebuilt", segment = %path.display(), len, indexed = idx.bytes, "a segment's length is not the one its index records; rebuilding the index");
                            None
                        }
                    }
                    Ok(None) => None,
                    Err(why) => {
                        tracing::warn!(evt = "audit_index_rebuilt", segment = %path.display(), why = %why, "a segment index is unreadable; rebuilding it");
                        None
                    }
                };
                let idx = match idx {
                    Some(idx) => idx,
                    None => {
                        let buf = fs::read(path).map_err(io(path))?;
                        let scan = files::scan_segment(&buf, *first, |_, _| {}).map_err(|e| {
                            LogError::Corrupt {
                                file: path.display().to_string(),
                                offset: e.offset,
                                seq: e.seq,
                                why: e.why,
                            }
                        })?;
                        if let ScanEnd::Tail { offset, error } = scan.end {
                            return Err(LogError::Corrupt {
                                file: path.display().to_string(),
                                offset,
                                seq: scan.next_seq,
                                why: format!("a sealed segment ends in a bad frame: {error}"),
                            });
                        }
                        let idx = SegmentIndex {
                            first_seq: *first,
                            records: scan.next_seq - first,
                            bytes: scan.good_len,
                            entries: scan.entries,
                        };
                        idx.write(&seg_dir).map_err(io(&seg_dir))?;
                        idx
                    }
                };
                if first + idx.records != next_first {
                    return Err(LogError::Corrupt {
                        file: path.display().to_string(),
                        offset: idx.bytes,
                        seq: first + idx.records,
                        why: format!(
                            "the segment ends at record {} but the next one starts at {next_first}",
                            first + idx.records
                        ),
                    });
                }
                info.records = idx.records;
                info.bytes = idx.bytes;
                info.entries = idx.entries;
            }
        }
        segs.push(info);
    }

    // The stored hashes: cut back to the latest checkpoint (or to nothing when too short).
    let hashes_path = dir.join("hashes");
    let mut hashes_rw = HashFile::open_rw(&hashes_path).map_err(io(&hashes_path))?;
    let have = hashes_rw.metadata().map_err(io(&hashes_path))?.len() / 32;
    let need = merkle::stored_hash_count(cp_size);
    let start = if have >= need {
        cp_size
    } else {
        tracing::warn!(evt = "audit_hashes_rebuilt", have, need, "the stored hashes are shorter than the latest checkpoint needs; rebuilding them from every record");
        0
    };
    hashes_rw
        .set_len(merkle::stored_hash_count(start) * 32)
        .map_err(io(&hashes_path))?;
    let hashes = HashFile::open(&hashes_path).map_err(io(&hashes_path))?;
    let mut range = CompactRange::from_stored(start, &hashes).map_err(|e| LogError::Io {
        path: hashes_path.display().to_string(),
        why: e.to_string(),
    })?;

    // Scan from the segment holding `start` to the end, rebuilding hashes; the last segment may
    // have a torn tail.
    let from_i = segs.partition_point(|s| s.first <= start).saturating_sub(1);
    let mut stored: Vec<Hash> = Vec::new();
    let mut root_at_cp = (start == cp_size).then(|| range.root());
    let mut next = segs.get(from_i).map_or(0, |s| s.first);
    for (i, info) in segs.iter_mut().enumerate().skip(from_i) {
        let path = info.path.clone();
        if info.file.is_none() {
            return Err(LogError::Archived {
                seq: start.max(info.first),
                segment: path.display().to_string(),
            });
        }
        if info.first != next {
            return Err(LogError::Corrupt {
                file: path.display().to_string(),
                offset: 0,
                seq: next,
                why: format!(
                    "the segment starts at record {} after record {}",
                    info.first,
                    next.saturating_sub(1)
                ),
            });
        }
        let mut buf = fs::read(&path).map_err(io(&path))?;
        if i == last_i && buf.len() < format::HEADER_LEN {
            // A crash while creating the segment: write its header again.
            create_with_header(&path, &format::segment_header(info.first), &seg_dir)?;
            buf = format::segment_header(info.first).to_vec();
        }
        let scan = files::scan_segment(&buf, info.first, |seq, payload| {
            if seq >= start {
                if seq == cp_size {
                    root_at_cp = Some(range.root());
                }
                range.push_into(merkle::leaf_hash(payload), &mut stored);
            }
        })
        .map_err(|e| LogError::Corrupt {
            file: path.display().to_string(),
            offset: e.offset,
            seq: e.seq,
            why: e.why,
        })?;
        if let ScanEnd::Tail { offset, error } = &scan.end {
            if i != last_i {
                return Err(LogError::Corrupt {
                    file: path.display().to_string(),
                    offset: *offset,
                    seq: scan.next_seq,
                    why: format!("a sealed segment ends in a bad frame: {error}"),
                });
            }
            let cut = buf.len() as u64 - offset;
            truncate_to(&path, *offset)?;
            tracing::warn!(
                evt = "audit_tail_truncated",
                segment = %path.display(),
                bytes = cut,
                records = scan.next_seq,
                at_seq = scan.next_seq,
                error = %error,
                "the audit log ended in a partial record (a crash during a write, never acknowledged); cut it off, {} records kept",
                scan.next_seq
            );
        }
        if i < last_i && scan.next_seq != info.first + info.records {
            return Err(LogError::Corrupt {
                file: path.display().to_string(),
                offset: scan.good_len,
                seq: scan.next_seq,
                why: format!("the segment index says it holds {} records", info.records),
            });
        }
        info.records = scan.next_seq - info.first;
        info.bytes = scan.good_len;
        info.entries = scan.entries;
        next = scan.next_seq;
        // Bounded memory when rebuilding a long log: out to the file after each segment.
        flush_hashes(&mut hashes_rw, &mut stored, &hashes_path)?;
    }
    let size = next;
    if size == cp_size && root_at_cp.is_none() {
        root_at_cp = Some(range.root());
    }
    if cp_size > size {
        return Err(LogError::Mismatch(format!(
            "the latest signed checkpoint covers {cp_size} records but only {size} survive: records a signed checkpoint covers are missing"
        )));
    }
    if let Some(latest) = &latest {
        match root_at_cp {
            Some(r) if r == latest.checkpoint.root => {}
            _ => {
                return Err(LogError::Mismatch(format!(
                    "the records' root hash at size {cp_size} is not the one the latest checkpoint signed"
                )))
            }
        }
    }
    // The rebuilt hashes after `start` (written segment by segment above).
    let mut hashes_w = hashes_rw;
    flush_hashes(&mut hashes_w, &mut stored, &hashes_path)?;
    hashes_w.sync_all().map_err(io(&hashes_path))?;
    // The writer appends from here.
    std::io::Seek::seek(&mut hashes_w, std::io::SeekFrom::End(0)).map_err(io(&hashes_path))?;
    if hashes_w.metadata().map_err(io(&hashes_path))?.len() != merkle::stored_hash_count(size) * 32
    {
        return Err(LogError::Io {
            path: hashes_path.display().to_string(),
            why: "rebuilt hashes file has the wrong length".into(),
        });
    }

    let last = segs
        .last()
        .map_or((0, format::HEADER_LEN as u64), |s| (s.first, s.bytes));
    let last_path = seg_dir.join(format::segment_name(last.0));
    let seg = OpenOptions::new()
        .append(true)
        .open(&last_path)
        .map_err(io(&last_path))?;
    let cp_path = dir.join("checkpoints");
    let checkpoints = OpenOptions::new()
        .append(true)
        .open(&cp_path)
        .map_err(io(&cp_path))?;
    let checkpoints_file = File::open(&cp_path).map_err(io(&cp_path))?;
    let placeholder = latest.clone().unwrap_or_else(|| SignedCheckpoint {
        checkpoint: crate::note::Checkpoint {
            origin: s.origin.clone(),
            size: 0,
            root: merkle::empty_root(),
            time_ms: 0,
        },
        text: String::new(),
    });
    let (latest_tx, _) = watch::channel(placeholder);
    let shared = Arc::new(Shared {
        seg_dir: seg_dir.clone(),
        committed: AtomicU64::new(size),
        segments: RwLock::new(segs),
        hashes,
        checkpoint_index: RwLock::new(cp_index),
        checkpoints_file,
        checkpoints_path: cp_path,
        verifier,
        latest: latest_tx,
        stats: LogStats::default(),
        poisoned: AtomicBool::new(false),
    });
    let hashes_sync = hashes_w.try_clone().map_err(io(&hashes_path))?;
    let mut checkpointer = Checkpointer {
        shared: shared.clone(),
        signer,
        origin: s.origin.clone(),
        hashes: hashes_sync,
        checkpoints,
        checkpoints_len: cp_len,
        last_size: latest.as_ref().map(|c| c.checkpoint.size),
    };
    if latest.is_none() && size > 0 {
        tracing::warn!(
            evt = "audit_checkpoints_missing",
            records = size,
            "the audit log holds records but no checkpoint; signing one now"
        );
    }
    // A log without a checkpoint gets one (of the empty tree when new); records durable after the
    // last checkpoint (a crash before it was signed) are signed now.
    checkpointer.checkpoint(size, range.root())?;
    let slot = Arc::new(CheckpointSlot::default());
    let cp_slot = slot.clone();
    let cp_thread = std::thread::Builder::new()
        .name("audit-checkpoints".into())
        .spawn(move || checkpointer.run(cp_slot))
        .map_err(|e| LogError::Io {
            path: "audit checkpoint thread".into(),
            why: e.to_string(),
        })?;
    let writer = Writer {
        shared: shared.clone(),
        slot,
        _lock: lock,
        checkpointer: Some(cp_thread),
        segment_bytes: s.segment_bytes,
        checkpoint_every: s.checkpoint_every,
        checkpoint_interval: s.checkpoint_interval,
        max_batch: s.max_batch,
        seg,
        seg_first: last.0,
        seg_len: last.1,
        hashes: hashes_w,
        range,
        last_cp_size: size,
        last_cp_at: Instant::now(),
    };
    Ok(((writer, s.queue), shared))
}

/// Appends `stored` to the end of the hashes file and clears it.
fn flush_hashes(f: &mut File, stored: &mut Vec<Hash>, path: &Path) -> Result<(), LogError> {
    use std::io::Seek;
    if stored.is_empty() {
        return Ok(());
    }
    let mut b = Vec::new();
    files::hash_bytes(stored, &mut b);
    f.seek(std::io::SeekFrom::End(0))
        .and_then(|_| f.write_all(&b))
        .map_err(io(path))?;
    stored.clear();
    Ok(())
}
