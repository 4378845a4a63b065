//! The log's single writer: a dedicated OS thread that takes batches of appends from the queue,
//! numbers them, writes their frames and stored hashes, `fdatasync`s the segment once per batch
//! (group commit), and only then answers every append of the batch.
//!
//! The stored hashes are derived from the records: each batch writes them (readers need them at
//! once) but only the segment is synced per batch; the hashes file is synced before every checkpoint
//! that relies on it, and recovery cuts it back to the latest checkpoint and rebuilds the rest from
//! the records. Checkpoints are signed on their own thread ([`Checkpointer`]), asked for only after
//! the records they cover are durable; a request made while one is being stored is merged into the
//! next (the newest size wins), so checkpoints never slow the appends down.

use crate::files::{self, SegmentIndex, INDEX_EVERY};
use crate::format::{self, LogEntry};
use crate::log::{Appended, LogError, SegInfo, Shared};
use crate::merkle::{leaf_hash, CompactRange, Hash};
use crate::note::{Checkpoint, SignedCheckpoint, Signer};
use sentinel_core::AuditRecord;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// The answer to one append.
pub(crate) type AppendReply = oneshot::Sender<Result<Appended, LogError>>;
/// The answer to a checkpoint request.
pub(crate) type CheckpointReply = oneshot::Sender<Result<SignedCheckpoint, LogError>>;

/// What the queue carries.
pub(crate) enum Req {
    /// One record to append.
    Append(AuditRecord, AppendReply),
    /// Sign a checkpoint of everything committed so far.
    Checkpoint(CheckpointReply),
    /// Commit what is queued, sign a last checkpoint, and stop.
    Finish(CheckpointReply),
}

/// Everything the writer owns.
pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub slot: Arc<CheckpointSlot>,
    /// `<dir>/lock`, held (flock) while the writer runs: one writer per log.
    pub _lock: File,
    pub checkpointer: Option<std::thread::JoinHandle<()>>,
    pub segment_bytes: u64,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    pub max_batch: usize,
    /// The active segment, opened for appending.
    pub seg: File,
    pub seg_first: u64,
    pub seg_len: u64,
    pub hashes: File,
    pub range: CompactRange,
    /// The size of the last checkpoint asked for.
    pub last_cp_size: u64,
    pub last_cp_at: Instant,
}

struct Batch {
    appends: Vec<(AuditRecord, AppendReply)>,
    controls: Vec<Req>,
}

impl Writer {
    /// Runs until finished or until every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Req>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(evt = "audit_writer_failed", error = %e, "the audit writer cannot start its timer");
                self.shared.poisoned.store(true, Ordering::SeqCst);
                return;
            }
        };
        let mut batch = Batch {
            appends: Vec::with_capacity(self.max_batch),
            controls: Vec::new(),
        };
        let mut frames = Vec::with_capacity(1 << 20);
        let mut hashes = Vec::with_capacity(1 << 16);
        loop {
            let wait = self.until_timed_checkpoint();
            let first = rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
            match first {
                Err(_) => {
                    // The interval passed with records not yet in a checkpoint.
                    self.checkpoint_if_grown();
                    continue;
                }
                Ok(None) => {
                    // Every handle is gone: a last checkpoint, as finish() would.
                    self.checkpoint_if_grown();
                    self.stop_checkpointer();
                    return;
                }
                Ok(Some(r)) => self.take(r, &mut batch),
            }
            while batch.appends.len() < self.max_batch && batch.controls.is_empty() {
                match rx.try_recv() {
                    Ok(r) => self.take(r, &mut batch),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch, &mut frames, &mut hashes);
            let mut finished = false;
            for c in batch.controls.drain(..) {
                match c {
                    Req::Checkpoint(reply) => self.request_checkpoint(Some(reply)),
                    Req::Finish(reply) => {
                        self.request_checkpoint(Some(reply));
                        finished = true;
                    }
                    Req::Append(..) => {}
                }
            }
            if finished {
                rx.close();
                // Anything queued after finish is refused, not lost silently.
                while let Ok(r) = rx.try_recv() {
                    refuse(r, LogError::Closed);
                }
                self.stop_checkpointer();
                return;
            }
            if self.shared.committed.load(Ordering::Acquire) - self.last_cp_size
                >= self.checkpoint_every
            {
                self.checkpoint_if_grown();
            }
        }
    }

    fn stop_checkpointer(&mut self) {
        self.slot.stop();
        if let Some(t) = self.checkpointer.take() {
            let _ = t.join();
        }
    }

    fn take(&self, r: Req, batch: &mut Batch) {
        match r {
            Req::Append(rec, reply) => batch.appends.push((rec, reply)),
            other => batch.controls.push(other),
        }
    }

    fn until_timed_checkpoint(&self) -> Duration {
        if self.shared.committed.load(Ordering::Acquire) > self.last_cp_size {
            self.checkpoint_interval
                .saturating_sub(self.last_cp_at.elapsed())
                .max(Duration::from_millis(1))
        } else {
            Duration::from_secs(3600)
        }
    }

    /// Writes, syncs and answers one batch of appends.
    fn commit(&mut self, batch: &mut Batch, frames: &mut Vec<u8>, hbuf: &mut Vec<u8>) {
        if batch.appends.is_empty() {
            return;
        }
        let n = batch.appends.len() as u64;
        if self.shared.poisoned.load(Ordering::SeqCst) {
            self.shared.stats.failures.fetch_add(n, Ordering::Relaxed);
            for (_, reply) in batch.appends.drain(..) {
                let _ = reply.send(Err(LogError::Poisoned));
            }
            return;
        }
        let start = self.shared.committed.load(Ordering::Acquire);
        match self.write_batch(start, batch, frames, hbuf) {
            Ok(leaves) => {
                let s = &self.shared.stats;
                s.appends.fetch_add(n, Ordering::Relaxed);
                s.batches.fetch_add(1, Ordering::Relaxed);
                for ((_, reply), (i, leaf)) in
                    batch.appends.drain(..).zip(leaves.into_iter().enumerate())
                {
                    let _ = reply.send(Ok(Appended {
                        seq: start + i as u64,
                        leaf,
                    }));
                }
            }
            Err(why) => {
                self.shared.poisoned.store(true, Ordering::SeqCst);
                self.shared.stats.failures.fetch_add(n, Ordering::Relaxed);
                tracing::error!(
                    evt = "audit_write_failed",
                    records = n,
                    first_seq = start,
                    error = %why,
                    "the audit log could not make a batch durable: every append of it failed, and the log refuses appends until it is reopened"
                );
                let e = LogError::Write(why);
                for (_, reply) in batch.appends.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn write_batch(
        &mut self,
        start: u64,
        batch: &Batch,
        frames: &mut Vec<u8>,
        hbuf: &mut Vec<u8>,
    ) -> Result<Vec<Hash>, String> {
        frames.clear();
        hbuf.clear();
        let mut stored: Vec<Hash> = Vec::with_capacity(batch.appends.len() * 2);
        let mut leaves = Vec::with_capacity(batch.appends.len());
        let mut new_entries: Vec<(u64, u64)> = Vec::new();
        for (i, (rec, _)) in batch.appends.iter().enumerate() {
            let seq = start + i as u64;
            let payload = LogEntry::new(seq, rec.clone()).to_payload();
            let frame_len = (format::FRAME_HEAD + payload.len()) as u64;
            let at = self.seg_len + frames.len() as u64;
            if at > format::HEADER_LEN as u64 && at + frame_len > self.segment_bytes {
                // Seal this segment (its records durable first) and start the next.
                self.flush_segment(frames, &mut new_entries, seq)?;
                self.roll(seq)?;
            }
            let offset = self.seg_len + frames.len() as u64;
            if (seq - self.seg_first).is_multiple_of(INDEX_EVERY) {
                new_entries.push((seq, offset));
            }
            format::encode_frame(seq, &payload, frames);
            let leaf = leaf_hash(&payload);
            self.range.push_into(leaf, &mut stored);
            leaves.push(leaf);
        }
        let end = start + batch.appends.len() as u64;
        self.flush_segment(frames, &mut new_entries, end)?;
        // The stored hashes are derived from the records: they are written now (readers need them)
        // but made durable only before a checkpoint that relies on them; recovery rebuilds the rest
        // from the records.
        files::hash_bytes(&stored, hbuf);
        self.hashes
            .write_all(hbuf)
            .map_err(|e| format!("hashes file: {e}"))?;
        self.shared
            .stats
            .bytes
            .fetch_add(hbuf.len() as u64, Ordering::Relaxed);
        self.shared.committed.store(end, Ordering::Release);
        Ok(leaves)
    }

    /// Writes and syncs the pending frames of the active segment (records up to `next_seq`), and
    /// publishes its new length and index pairs for readers.
    fn flush_segment(
        &mut self,
        frames: &mut Vec<u8>,
        new_entries: &mut Vec<(u64, u64)>,
        next_seq: u64,
    ) -> Result<(), String> {
        if !frames.is_empty() {
            self.seg
                .write_all(frames)
                .and_then(|()| self.seg.sync_data())
                .map_err(|e| format!("segment {}: {e}", format::segment_name(self.seg_first)))?;
            let s = &self.shared.stats;
            s.fsyncs.fetch_add(1, Ordering::Relaxed);
            s.bytes.fetch_add(frames.len() as u64, Ordering::Relaxed);
            self.seg_len += frames.len() as u64;
            frames.clear();
        }
        let mut segs = self
            .shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(last) = segs.last_mut() {
            last.bytes = self.seg_len;
            last.records = next_seq - self.seg_first;
            last.entries.append(new_entries);
        }
        Ok(())
    }

    /// Seals the active segment (writes its `.idx`) and creates the one starting at `first`.
    fn roll(&mut self, first: u64) -> Result<(), String> {
        let dir = self.shared.seg_dir.clone();
        let idx = {
            let segs = self
                .shared
                .segments
                .read()
                .unwrap_or_else(|e| e.into_inner());
            segs.last().map(|s| SegmentIndex {
                first_seq: s.first,
                records: s.records,
                bytes: s.bytes,
                entries: s.entries.clone(),
            })
        };
        if let Some(idx) = idx {
            idx.write(&dir)
                .map_err(|e| format!("index of segment {}: {e}", idx.first_seq))?;
        }
        let path = dir.join(format::segment_name(first));
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        f.write_all(&format::segment_header(first))
            .and_then(|()| f.sync_data())
            .and_then(|()| files::sync_dir(&dir))
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        let reader = File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
        self.shared.stats.fsyncs.fetch_add(2, Ordering::Relaxed);
        self.seg = f;
        self.seg_first = first;
        self.seg_len = format::HEADER_LEN as u64;
        let mut segs = self
            .shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner());
        segs.push(SegInfo {
            first,
            records: 0,
            bytes: self.seg_len,
            entries: Vec::new(),
            file: Some(Arc::new(reader)),
            path,
        });
        tracing::debug!(evt = "audit_segment_rolled", first_seq = first);
        Ok(())
    }

    fn checkpoint_if_grown(&mut self) {
        if self.shared.committed.load(Ordering::Acquire) > self.last_cp_size {
            self.request_checkpoint(None);
        }
    }

    /// Asks the checkpointer for a checkpoint of everything committed now.
    fn request_checkpoint(&mut self, reply: Option<CheckpointReply>) {
        let size = self.shared.committed.load(Ordering::Acquire);
        self.slot.request(size, self.range.root(), reply);
        self.last_cp_size = size;
        self.last_cp_at = Instant::now();
    }
}

/// Where the writer leaves checkpoint requests: only the newest size is kept (a checkpoint of it
/// covers every earlier request), with every caller waiting for it.
#[derive(Default)]
pub(crate) struct CheckpointSlot {
    state: Mutex<SlotState>,
    cv: Condvar,
}

#[derive(Default)]
struct SlotState {
    pending: Option<(u64, Hash)>,
    replies: Vec<CheckpointReply>,
    stop: bool,
}

impl CheckpointSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn request(&self, size: u64, root: Hash, reply: Option<CheckpointReply>) {
        let mut st = self.lock();
        if st.pending.is_none_or(|(s, _)| s <= size) {
            st.pending = Some((size, root));
        }
        st.replies.extend(reply);
        self.cv.notify_one();
    }

    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_one();
    }
}

/// Signs and stores checkpoints on its own thread, so that the writer's batches never wait for a
/// checkpoint's `fsync`s. A checkpoint is asked for only after the records it covers are durable.
pub(crate) struct Checkpointer {
    pub shared: Arc<Shared>,
    pub signer: Signer,
    pub origin: String,
    /// The stored-hashes file (synced before each checkpoint that relies on it).
    pub hashes: File,
    pub checkpoints: File,
    pub checkpoints_len: u64,
    pub last_size: Option<u64>,
}

impl Checkpointer {
    pub(crate) fn run(mut self, slot: Arc<CheckpointSlot>) {
        loop {
            let (job, replies) = {
                let mut st = slot.lock();
                while st.pending.is_none() && !st.stop {
                    st = slot.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                match st.pending.take() {
                    Some(job) => (job, std::mem::take(&mut st.replies)),
                    None => return,
                }
            };
            let out = self.checkpoint(job.0, job.1);
            for r in replies {
                let _ = r.send(out.clone());
            }
        }
    }

    /// Signs and stores a checkpoint of `size` records with root `root`, unless the latest already
    /// covers them (then answers the latest).
    pub(crate) fn checkpoint(
        &mut self,
        size: u64,
        root: Hash,
    ) -> Result<SignedCheckpoint, LogError> {
        if self.last_size.is_some_and(|l| l >= size) {
            return Ok(self.shared.latest.borrow().clone());
        }
        if self.shared.poisoned.load(Ordering::SeqCst) {
            return Err(LogError::Poisoned);
        }
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        };
        let signed = self.signer.sign(&cp);
        match self.store(&signed) {
            Ok(()) => Ok(signed),
            Err(why) => {
                self.shared.poisoned.store(true, Ordering::SeqCst);
                self.shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(evt = "audit_checkpoint_failed", size, error = %why, "the audit log could not store a checkpoint; it refuses appends until it is reopened");
                Err(LogError::Write(why))
            }
        }
    }

    fn store(&mut self, signed: &SignedCheckpoint) -> Result<(), String> {
        let size = signed.checkpoint.size;
        let mut buf = Vec::with_capacity(signed.text.len() + format::FRAME_HEAD);
        format::encode_frame(size, signed.text.as_bytes(), &mut buf);
        // The hashes the checkpoint's root comes from are durable before it is.
        self.hashes
            .sync_data()
            .map_err(|e| format!("hashes file: {e}"))?;
        self.checkpoints
            .write_all(&buf)
            .and_then(|()| self.checkpoints.sync_data())
            .map_err(|e| format!("checkpoints file: {e}"))?;
        let offset = self.checkpoints_len;
        self.checkpoints_len += buf.len() as u64;
        self.shared
            .checkpoint_index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((size, offset, buf.len() as u32));
        let s = &self.shared.stats;
        s.fsyncs.fetch_add(2, Ordering::Relaxed);
        s.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.last_size = Some(size);
        self.shared.latest.send_replace(signed.clone());
        tracing::debug!(evt = "audit_checkpoint", size);
        Ok(())
    }
}

/// Answers a request that will not be carried out.
pub(crate) fn refuse(r: Req, e: LogError) {
    match r {
        Req::Append(_, reply) => {
            let _ = reply.send(Err(e));
        }
        Req::Checkpoint(reply) | Req::Finish(reply) => {
            let _ = reply.send(Err(e));
        }
    }
}
