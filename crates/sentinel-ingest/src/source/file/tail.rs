//! `tail -F` over glob patterns by polling (stat + read), with no inotify.
//!
//! Files are known by (device, inode); a path is only where one was last seen. On each poll the patterns are
//! re-expanded: a new inode at a known path is a rename rotation, and the old inode is still read to its end
//! until it has been idle for `rotate_wait` (the writer may not have reopened yet). A file that shrinks below
//! the read position, or whose first line changed, was truncated (copytruncate): before restarting at 0 the
//! tailer finishes the old content from the rotated copy (a sibling named `<name>…` with the same first line),
//! so only the lines written between logrotate's copy and its truncate can be lost, as logrotate documents.
//! A file whose first line matches a file already being read is such a copy and is never read on its own.
//! Partial last lines are held (bounded by `max_line_bytes`) until their newline arrives. Offsets are
//! checkpointed (always just after a newline) and resumed only if inode, device and first-line hash match.
//!
//! No file-system call runs on the async runtime: globbing, stat, open, reads (positional, `pread`) and
//! checkpoint writes go to tokio's blocking pool, so a stalled disk, a network filesystem or a FIFO at a
//! checkpoint path holds up this tailer only, never the tasks sharing its runtime. One checkpoint write is
//! in flight at a time; while one is stuck, later ones are skipped (and counted as errors) until it ends.

use super::identity::{find_copy, fingerprint, last_line_start, open_regular, Key};
use super::state::{FileCheckpoint, TailCheckpoint};
use crate::source::lines::{LineSplitter, SplitLine};
use crate::source::{bump, send_or_stop, LineTx, RawLine, SourceError, SourceMetrics};
use sentinel_core::Timestamp;
use std::collections::HashSet;
use std::fs::File;
use std::future::Future;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Read chunk size.
const CHUNK: usize = 64 * 1024;
/// How long shutdown waits for the last checkpoint write.
const FINAL_STORE_WAIT: Duration = Duration::from_secs(5);

/// Runs blocking file-system work on tokio's blocking pool.
async fn off_runtime<T, F>(f: F) -> std::io::Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| std::io::Error::other(format!("blocking file task failed: {e}")))?
}

/// One positional read, retried on `EINTR`.
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    loop {
        match file.read_at(buf, pos) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

type ReadJob = tokio::task::JoinHandle<std::io::Result<(usize, Vec<u8>)>>;

/// Starts reading up to `min(limit, CHUNK)` bytes of `file` at `pos` off the runtime, into `buf` (handed back
/// with the count; a buffer of the wrong size is replaced).
fn start_read(file: &Arc<File>, mut buf: Vec<u8>, pos: u64, limit: usize) -> ReadJob {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        if buf.len() != CHUNK {
            buf = vec![0; CHUNK];
        }
        let want = limit.min(CHUNK);
        let n = read_at(&file, &mut buf[..want], pos)?;
        Ok((n, buf))
    })
}

async fn finish_read(job: ReadJob) -> std::io::Result<(usize, Vec<u8>)> {
    job.await
        .map_err(|e| std::io::Error::other(format!("blocking file task failed: {e}")))?
}

/// Reads up to `min(limit, CHUNK)` bytes of `file` at `pos` off the runtime.
async fn read_chunk(
    file: &Arc<File>,
    buf: Vec<u8>,
    pos: u64,
    limit: usize,
) -> std::io::Result<(usize, Vec<u8>)> {
    finish_read(start_read(file, buf, pos, limit)).await
}

/// What to tail and how.
#[derive(Debug, Clone)]
pub struct FileTailConfig {
    /// Glob patterns (`/var/log/auth.log`, `/var/log/nginx/*.log`), re-expanded every poll.
    pub patterns: Vec<String>,
    /// Where offsets are checkpointed; `None` keeps them in memory only.
    pub state_path: Option<PathBuf>,
    /// Files seen for the first time at startup are read from the start (replay) instead of the end.
    pub from_beginning: bool,
    /// How often files are stat'ed and read.
    pub poll_interval: Duration,
    /// Longer lines are cut to this many bytes and counted.
    pub max_line_bytes: usize,
    /// How long a file no longer at any matched path is still read after it stops growing.
    pub rotate_wait: Duration,
    /// Checkpoint after this many lines…
    pub checkpoint_lines: u64,
    /// …or this much time, whichever comes first (and at shutdown).
    pub checkpoint_interval: Duration,
}

impl Default for FileTailConfig {
    fn default() -> Self {
        Self {
            patterns: Vec::new(),
            state_path: None,
            from_beginning: false,
            poll_interval: Duration::from_millis(250),
            max_line_bytes: 64 * 1024,
            rotate_wait: Duration::from_secs(5),
            checkpoint_lines: 1000,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

impl FileTailConfig {
    /// Checks the configuration without I/O, reporting every problem.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        if self.patterns.is_empty() {
            errs.push("patterns: at least one is required".to_owned());
        }
        for p in &self.patterns {
            if let Err(e) = glob::Pattern::new(p) {
                errs.push(format!("patterns: `{p}`: {e}"));
            }
        }
        if self.poll_interval.is_zero() {
            errs.push("poll_interval: must be above zero".to_owned());
        }
        if self.max_line_bytes == 0 {
            errs.push("max_line_bytes: must be above zero".to_owned());
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// Follows files matching glob patterns, surviving rotation and restarts.
#[derive(Debug)]
pub struct FileTail {
    cfg: FileTailConfig,
    metrics: Arc<SourceMetrics>,
}

pub(super) struct Tracked {
    pub(super) key: Key,
    pub(super) path: PathBuf,
    origin: Arc<str>,
    file: Arc<File>,
    /// Bytes handed to the splitter.
    pub(super) read_pos: u64,
    /// Bytes whose lines were delivered (just after a newline).
    committed: u64,
    splitter: LineSplitter,
    pub(super) hash: Option<[u8; 32]>,
    last_size: u64,
    visible: bool,
    last_growth: Instant,
    /// A rotated copy of another file: never read on its own.
    copy: bool,
}

impl Tracked {
    fn checkpoint(&self) -> FileCheckpoint {
        FileCheckpoint {
            path: self.path.to_string_lossy().into_owned(),
            dev: self.key.0,
            inode: self.key.1,
            offset: self.committed,
            first_line_hash: self.hash.map(hex::encode),
        }
    }
}

type Stop<'a, S> = Pin<&'a mut S>;

struct Tailer {
    cfg: FileTailConfig,
    metrics: Arc<SourceMetrics>,
    files: Vec<Tracked>,
    /// Checkpoint entries not (or no longer) matched to a file being read.
    prior: Vec<FileCheckpoint>,
    ignored: HashSet<Key>,
    /// Files the patterns match that could not be opened (counted and logged once each; retried).
    unopenable: HashSet<Key>,
    first_poll: bool,
    since_flush: u64,
    last_flush: Instant,
    /// The checkpoint write in flight, if any.
    storing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The chunk being delivered.
    chunk: Vec<u8>,
    /// The buffer the next chunk is read into while `chunk` is delivered.
    spare: Vec<u8>,
    lines: Vec<SplitLine>,
}

/// What opening a newly seen file found (read off the runtime).
struct Opened {
    file: File,
    size: u64,
    hash: Option<[u8; 32]>,
    gzip: bool,
    /// Where the last line starts, when asked for.
    tail_start: Option<u64>,
}

fn open_new(path: &Path, tail_window: Option<usize>) -> std::io::Result<Opened> {
    let file = open_regular(path)?;
    let size = file.metadata()?.len();
    let (hash, head) = fingerprint(&file)?;
    let tail_start = tail_window.map(|w| last_line_start(&file, size, w));
    Ok(Opened {
        gzip: head.starts_with(&[0x1f, 0x8b]),
        file,
        size,
        hash,
        tail_start,
    })
}

impl FileTail {
    /// A tailer; nothing is opened until [`FileTail::run`].
    pub fn new(cfg: FileTailConfig, metrics: Arc<SourceMetrics>) -> Self {
        Self { cfg, metrics }
    }

    /// Tails until `shutdown` completes, then writes the checkpoint. Fails on a bad configuration, an
    /// unreadable checkpoint, or when `out` is closed.
    pub async fn run(
        self,
        out: LineTx,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), SourceError> {
        self.cfg
            .validate()
            .map_err(|e| SourceError::Io(e.join("; ")))?;
        let prior = match self.cfg.state_path.clone() {
            Some(p) => {
                let shown = p.display().to_string();
                off_runtime(move || TailCheckpoint::load(&p))
                    .await
                    .map_err(|e| SourceError::Io(format!("checkpoint {shown}: {e}")))?
                    .files
            }
            None => Vec::new(),
        };
        tokio::pin!(shutdown);
        let mut t = Tailer::new(self.cfg, self.metrics, prior);
        let result = loop {
            match t.poll(&out, &mut shutdown).await {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
            if t.since_flush >= t.cfg.checkpoint_lines
                || t.last_flush.elapsed() >= t.cfg.checkpoint_interval
            {
                t.store();
            }
            tokio::select! {
                biased;
                _ = shutdown.as_mut() => break Ok(()),
                _ = tokio::time::sleep(t.cfg.poll_interval) => {}
            }
        };
        t.store_final().await;
        result
    }
}

impl Tailer {
    /// A tailer that has not polled yet, resuming from `prior` checkpoints.
    fn new(cfg: FileTailConfig, metrics: Arc<SourceMetrics>, prior: Vec<FileCheckpoint>) -> Self {
        Tailer {
            cfg,
            metrics,
            files: Vec::new(),
            prior,
            ignored: HashSet::new(),
            unopenable: HashSet::new(),
            first_poll: true,
            since_flush: 0,
            last_flush: Instant::now(),
            storing: None,
            chunk: vec![0; CHUNK],
            spare: vec![0; CHUNK],
            lines: Vec::new(),
        }
    }

    /// Starts writing the checkpoint off the runtime, unless the previous write is still going.
    fn store(&mut self) {
        self.since_flush = 0;
        self.last_flush = Instant::now();
        if self.cfg.state_path.is_none() {
            return;
        }
        if let Some(h) = &self.storing {
            if !h.is_finished() {
                bump(&self.metrics.errors, 1);
                tracing::warn!(
                    "tail checkpoint write still in progress; this checkpoint is skipped"
                );
                return;
            }
        }
        self.reap_store();
        if let Some(job) = self.checkpoint_job() {
            self.storing = Some(tokio::task::spawn_blocking(job));
        }
    }

    /// Counts the outcome of a finished checkpoint write.
    fn reap_store(&mut self) {
        let Some(h) = self.storing.take_if(|h| h.is_finished()) else {
            return;
        };
        let r = finished_result(h);
        self.count_store(r);
    }

    fn count_store(&self, r: std::io::Result<()>) {
        if let Err(e) = r {
            bump(&self.metrics.errors, 1);
            let path = self.cfg.state_path.as_deref().unwrap_or(Path::new(""));
            tracing::warn!(path = %path.display(), error = %e, "could not write tail checkpoint");
        }
    }

    /// At shutdown: waits (bounded) for a write in flight, then writes the last checkpoint and waits for it.
    async fn store_final(&mut self) {
        self.since_flush = 0;
        for round in 0..2 {
            if let Some(h) = self.storing.take() {
                match tokio::time::timeout(FINAL_STORE_WAIT, h).await {
                    Ok(r) => {
                        let r = r
                            .map_err(|e| std::io::Error::other(e.to_string()))
                            .and_then(|r| r);
                        self.count_store(r);
                    }
                    Err(_) => {
                        bump(&self.metrics.errors, 1);
                        tracing::warn!(
                            wait = ?FINAL_STORE_WAIT,
                            "tail checkpoint write did not finish; the last checkpoint is not written"
                        );
                        return;
                    }
                }
            }
            if round == 0 {
                if let Some(job) = self.checkpoint_job() {
                    self.storing = Some(tokio::task::spawn_blocking(job));
                }
            }
        }
    }

    /// The write of the current checkpoint, ready to run off the runtime.
    fn checkpoint_job(&self) -> Option<impl FnOnce() -> std::io::Result<()> + Send + 'static> {
        let path = self.cfg.state_path.clone()?;
        let mut files: Vec<FileCheckpoint> = self
            .files
            .iter()
            .filter(|f| !f.copy)
            .map(Tracked::checkpoint)
            .collect();
        let known: HashSet<String> = files.iter().map(|f| f.path.clone()).collect();
        files.extend(
            self.prior
                .iter()
                .filter(|p| !known.contains(&p.path))
                .cloned(),
        );
        let cp = TailCheckpoint { version: 1, files };
        Some(move || cp.store(&path))
    }
}

/// The result of a finished blocking task, without waiting.
fn finished_result(h: tokio::task::JoinHandle<std::io::Result<()>>) -> std::io::Result<()> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut h = h;
    match Pin::new(&mut h).poll(&mut cx) {
        std::task::Poll::Ready(Ok(r)) => r,
        std::task::Poll::Ready(Err(e)) => Err(std::io::Error::other(e.to_string())),
        std::task::Poll::Pending => Ok(()),
    }
}

/// Every regular file the patterns match now, once per (device, inode).
fn expand(patterns: &[String]) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for pat in patterns {
        let Ok(paths) = glob::glob(pat) else { continue };
        for p in paths.flatten() {
            if let Ok(m) = std::fs::metadata(&p) {
                if m.is_file() && seen.insert((m.dev(), m.ino())) {
                    found.push((p, m));
                }
            }
        }
    }
    found
}

impl Tailer {
    /// One poll: discover, detect rotation and truncation, read. `Ok(false)` when shutting down.
    async fn poll<S: Future<Output = ()> + ?Sized>(
        &mut self,
        out: &LineTx,
        stop: &mut Stop<'_, S>,
    ) -> Result<bool, SourceError> {
        let patterns = self.cfg.patterns.clone();
        let found = match off_runtime(move || Ok(expand(&patterns))).await {
            Ok(f) => f,
            Err(e) => {
                bump(&self.metrics.errors, 1);
                tracing::warn!(error = %e, "tail pattern expansion failed");
                return Ok(true);
            }
        };
        for f in &mut self.files {
            f.visible = false;
        }
        for (path, meta) in found {
            let key = (meta.dev(), meta.ino());
            if let Some(f) = self.files.iter_mut().find(|f| f.key == key) {
                f.visible = true;
                f.path = path;
            } else if !self.ignored.contains(&key) {
                self.discover(path, key).await;
            }
        }
        self.first_poll = false;
        // Rotated-away files first, so the old inode's lines come before the new file's.
        self.files.sort_by_key(|f| f.visible);
        let mut i = 0;
        while i < self.files.len() {
            if self.files[i].copy {
                i += 1;
                continue;
            }
            match self.read_file(i, out, stop).await {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(Failure::Closed(e)) => return Err(e),
                Err(Failure::Io(e)) => {
                    bump(&self.metrics.errors, 1);
                    tracing::warn!(path = %self.files[i].path.display(), error = %e, "tail read failed");
                }
            }
            let f = &self.files[i];
            if !f.visible && f.last_growth.elapsed() >= self.cfg.rotate_wait {
                let mut gone = self.files.remove(i);
                if let Some(l) = gone.splitter.take_partial() {
                    let mut pending = vec![l];
                    if !self
                        .send_lines(&mut gone, &mut pending, 0, out, stop)
                        .await?
                    {
                        return Ok(false);
                    }
                }
                self.remember(gone.checkpoint());
                continue;
            }
            i += 1;
        }
        Ok(true)
    }

    fn remember(&mut self, cp: FileCheckpoint) {
        self.prior.retain(|p| p.path != cp.path);
        self.prior.push(cp);
    }

    async fn discover(&mut self, path: PathBuf, key: Key) {
        let window =
            (self.first_poll && !self.cfg.from_beginning).then_some(self.cfg.max_line_bytes);
        let p = path.clone();
        let Opened {
            file,
            size,
            hash,
            gzip,
            tail_start,
        } = match off_runtime(move || open_new(&p, window)).await {
            Ok(o) => {
                self.unopenable.remove(&key);
                o
            }
            Err(e) => {
                // Tried again every poll; counted and logged once, not at every poll.
                if self.unopenable.insert(key) {
                    bump(&self.metrics.errors, 1);
                    tracing::warn!(path = %path.display(), error = %e, "tail: cannot open a matched file; retrying");
                }
                return;
            }
        };
        if gzip {
            // A compressed rotation matched by the pattern: not text to tail.
            self.ignored.insert(key);
            return;
        }
        // Without a complete first line the file cannot be recognised yet; look again next poll.
        let Some(hash) = hash else { return };
        let copy = self.files.iter().any(|f| f.hash == Some(hash));
        let path_text = path.to_string_lossy().into_owned();
        let rotated = self
            .files
            .iter()
            .any(|f| f.origin_path() == path_text.as_str());
        if rotated {
            bump(&self.metrics.rotations, 1);
        }
        let resume = self.prior.iter().position(|p| {
            p.dev == key.0
                && p.inode == key.1
                && p.first_line_hash.as_deref() == Some(hex::encode(hash).as_str())
                && p.offset <= size
        });
        let start = if copy {
            size
        } else if let Some(ix) = resume {
            self.prior.remove(ix).offset
        } else if let Some(ix) = self.prior.iter().position(|p| p.path == path_text) {
            // Known path, different file: rotated while we were not running.
            self.prior.remove(ix);
            bump(&self.metrics.rotations, 1);
            0
        } else {
            // From the last line on a first poll (unless replaying from the beginning), else the start.
            tail_start.unwrap_or_default()
        };
        tracing::debug!(path = %path.display(), start, copy, "tailing file");
        self.files.push(Tracked {
            key,
            origin: Arc::from(format!("file:{path_text}")),
            path,
            file: Arc::new(file),
            read_pos: start,
            committed: start,
            splitter: LineSplitter::new(self.cfg.max_line_bytes),
            hash: Some(hash),
            last_size: size,
            visible: true,
            last_growth: Instant::now(),
            copy,
        });
    }

    /// Checks file `i` for truncation, then reads it to its end.
    async fn read_file<S: Future<Output = ()> + ?Sized>(
        &mut self,
        i: usize,
        out: &LineTx,
        stop: &mut Stop<'_, S>,
    ) -> Result<bool, Failure> {
        let mut f = self.files.swap_remove(i);
        let r = self.read_tracked(&mut f, out, stop).await;
        self.files.push(f);
        let last = self.files.len() - 1;
        self.files.swap(i, last);
        r
    }

    async fn read_tracked<S: Future<Output = ()> + ?Sized>(
        &mut self,
        f: &mut Tracked,
        out: &LineTx,
        stop: &mut Stop<'_, S>,
    ) -> Result<bool, Failure> {
        let file = f.file.clone();
        let last = f.last_size;
        let (size, hash) = off_runtime(move || {
            let size = file.metadata()?.len();
            let hash = if size != last {
                Some(fingerprint(&file)?.0)
            } else {
                None
            };
            Ok((size, hash))
        })
        .await?;
        if let Some(hash) = hash {
            f.last_size = size;
            f.last_growth = Instant::now();
            let rewritten =
                size < f.read_pos || (f.read_pos > 0 && f.hash.is_some() && hash != f.hash);
            if rewritten {
                bump(&self.metrics.truncations, 1);
                if !self.finish_from_copy(f, out, stop).await? {
                    return Ok(false);
                }
                tracing::info!(path = %f.path.display(), "file truncated; reading from the start");
                f.splitter.reset();
                f.read_pos = 0;
                f.committed = 0;
            }
            if rewritten || f.hash.is_none() {
                f.hash = hash;
            }
        }
        let spare = std::mem::take(&mut self.spare);
        let mut ahead = start_read(&f.file, spare, f.read_pos, CHUNK);
        loop {
            // On an early return the read in flight finishes unobserved; its buffer is made anew.
            let (n, buf) = finish_read(ahead).await?;
            if n == 0 {
                self.spare = buf;
                return Ok(true);
            }
            f.last_growth = Instant::now();
            // The next chunk is read while this one is split and sent.
            let next = std::mem::replace(&mut self.chunk, buf);
            ahead = start_read(&f.file, next, f.read_pos + n as u64, CHUNK);
            if !self.deliver_chunk(f, n, out, stop).await? {
                return Ok(false);
            }
        }
    }

    /// Splits `self.chunk[..n]` (just read from `f`) and sends its lines.
    async fn deliver_chunk<S: Future<Output = ()> + ?Sized>(
        &mut self,
        f: &mut Tracked,
        n: usize,
        out: &LineTx,
        stop: &mut Stop<'_, S>,
    ) -> Result<bool, Failure> {
        bump(&self.metrics.bytes_read, n as u64);
        let mut lines = std::mem::take(&mut self.lines);
        f.splitter.feed(&self.chunk[..n], &mut lines);
        let base = f.read_pos;
        f.read_pos += n as u64;
        let r = self.send_lines(f, &mut lines, base, out, stop).await;
        self.lines = lines;
        Ok(r?)
    }

    async fn send_lines<S: Future<Output = ()> + ?Sized>(
        &mut self,
        f: &mut Tracked,
        lines: &mut Vec<SplitLine>,
        base: u64,
        out: &LineTx,
        stop: &mut Stop<'_, S>,
    ) -> Result<bool, SourceError> {
        let received = Timestamp::now();
        for l in lines.drain(..) {
            let end = l.end;
            self.count(&l);
            let raw = RawLine {
                text: l.text,
                origin: f.origin.clone(),
                received,
                ts_hint: None,
            };
            if !send_or_stop(out, raw, stop).await? {
                return Ok(false);
            }
            if end > 0 {
                f.committed = base + end as u64;
            }
            self.since_flush += 1;
        }
        Ok(true)
    }

    fn count(&self, l: &SplitLine) {
        bump(&self.metrics.lines_read, 1);
        if l.cut {
            bump(&self.metrics.lines_too_long, 1);
        }
        if l.lossy {
            bump(&self.metrics.lines_invalid_utf8, 1);
        }
    }

    /// After a truncation: reads what was not yet read from the rotated copy, if one can be found.
    async fn finish_from_copy<S: Future<Output = ()> + ?Sized>(
        &mut self,
        f: &mut Tracked,
        out: &LineTx,
        stop: &mut Stop<'_, S>,
    ) -> Result<bool, Failure> {
        let (path, hash, key, read_pos) = (f.path.clone(), f.hash, f.key, f.read_pos);
        let found = off_runtime(move || Ok(find_copy(&path, hash, key, read_pos))).await?;
        let Some((copy, key, size)) = found else {
            if f.splitter.pending_bytes() > 0 {
                tracing::debug!(path = %f.path.display(), "partial line lost to truncation");
            }
            return Ok(true);
        };
        let copy = Arc::new(copy);
        let mut left = size.saturating_sub(f.read_pos);
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            let buf = std::mem::take(&mut self.chunk);
            let (n, buf) = read_chunk(&copy, buf, f.read_pos, want).await?;
            self.chunk = buf;
            if n == 0 {
                break;
            }
            left -= n as u64;
            if !self.deliver_chunk(f, n, out, stop).await? {
                return Ok(false);
            }
        }
        if let Some(l) = f.splitter.take_partial() {
            let mut pending = vec![l];
            if !self.send_lines(f, &mut pending, 0, out, stop).await? {
                return Ok(false);
            }
        }
        if !self.files.iter().any(|t| t.key == key) {
            let path = f.path.clone();
            self.files.push(Tracked {
                key,
                origin: f.origin.clone(),
                path,
                file: copy,
                read_pos: size,
                committed: size,
                splitter: LineSplitter::new(1),
                hash: f.hash,
                last_size: size,
                visible: true,
                last_growth: Instant::now(),
                copy: true,
            });
        } else if let Some(t) = self.files.iter_mut().find(|t| t.key == key) {
            t.copy = true;
        }
        Ok(true)
    }
}

impl Tracked {
    fn origin_path(&self) -> &str {
        self.origin.strip_prefix("file:").unwrap_or(&self.origin)
    }
}

enum Failure {
    Io(std::io::Error),
    Closed(SourceError),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        Failure::Closed(e)
    }
}

#[async_trait::async_trait]
impl sentinel_core::Source for FileTail {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn run(
        self: Box<Self>,
        out: sentinel_core::LineTx,
        shutdown: sentinel_core::Shutdown,
    ) -> Result<(), SourceError> {
        FileTail::run(*self, out, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::atomic::Ordering;

    /// Lets an open blocked on `fifo`'s read end return (else the runtime would wait for it at drop).
    fn release(fifo: &Path) {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000)
            .open(fifo);
    }

    fn tailer(metrics: Arc<SourceMetrics>) -> Tailer {
        let mut t = Tailer::new(FileTailConfig::default(), metrics, Vec::new());
        t.first_poll = false;
        t
    }

    /// A matched path replaced by a FIFO between the poll's stat and the open (a writer-less FIFO makes
    /// a plain open wait forever): the open is refused at once, counted and logged once, and the
    /// tailer goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_path_replaced_by_a_fifo_is_refused_not_waited_on_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("auth.log");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let meta = std::fs::metadata(&fifo).unwrap();
        let key = (meta.dev(), meta.ino());
        let metrics = Arc::new(SourceMetrics::default());
        let mut t = tailer(metrics.clone());
        for _ in 0..3 {
            let found = tokio::time::timeout(Duration::from_secs(5), t.discover(fifo.clone(), key));
            let waited = found.await.is_err();
            if waited {
                release(&fifo);
            }
            assert!(!waited, "the open waited on the FIFO");
        }
        assert!(t.files.is_empty());
        assert_eq!(metrics.errors.load(Ordering::Relaxed), 1, "counted once");
        // Once it is a regular file again, it is tailed.
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, "one\n").unwrap();
        let meta = std::fs::metadata(&fifo).unwrap();
        t.discover(fifo.clone(), (meta.dev(), meta.ino())).await;
        assert_eq!(t.files.len(), 1);
        // The copytruncate sibling search skips a FIFO the same way.
        let sib = dir.path().join("auth.log.1");
        assert!(std::process::Command::new("mkfifo")
            .arg(&sib)
            .status()
            .unwrap()
            .success());
        let hash = t.files[0].hash;
        let found = tokio::time::timeout(
            Duration::from_secs(5),
            off_runtime(move || Ok(find_copy(&fifo, hash, (0, 0), 0).is_some())),
        )
        .await;
        if found.is_err() {
            release(&sib);
        }
        assert!(!found.expect("find_copy waited on the FIFO").unwrap());
    }
}
