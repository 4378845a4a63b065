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

use super::identity::{find_copy, fingerprint, last_line_start, Key};
use super::state::{FileCheckpoint, TailCheckpoint};
use crate::source::lines::{LineSplitter, SplitLine};
use crate::source::{bump, send_or_stop, LineTx, RawLine, SourceError, SourceMetrics};
use sentinel_core::Timestamp;
use std::collections::HashSet;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Read chunk size.
const CHUNK: usize = 64 * 1024;

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
    file: File,
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
    first_poll: bool,
    since_flush: u64,
    last_flush: Instant,
    chunk: Vec<u8>,
    lines: Vec<SplitLine>,
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
        let prior = match &self.cfg.state_path {
            Some(p) => {
                TailCheckpoint::load(p)
                    .map_err(|e| SourceError::Io(format!("checkpoint {}: {e}", p.display())))?
                    .files
            }
            None => Vec::new(),
        };
        tokio::pin!(shutdown);
        let mut t = Tailer {
            cfg: self.cfg,
            metrics: self.metrics,
            files: Vec::new(),
            prior,
            ignored: HashSet::new(),
            first_poll: true,
            since_flush: 0,
            last_flush: Instant::now(),
            chunk: vec![0; CHUNK],
            lines: Vec::new(),
        };
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
        t.store();
        result
    }
}

impl Tailer {
    fn store(&mut self) {
        self.since_flush = 0;
        self.last_flush = Instant::now();
        let Some(path) = &self.cfg.state_path else {
            return;
        };
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
        if let Err(e) = cp.store(path) {
            bump(&self.metrics.errors, 1);
            tracing::warn!(path = %path.display(), error = %e, "could not write tail checkpoint");
        }
    }

    fn expand(&self) -> Vec<(PathBuf, std::fs::Metadata)> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for pat in &self.cfg.patterns {
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

    /// One poll: discover, detect rotation and truncation, read. `Ok(false)` when shutting down.
    async fn poll<S: Future<Output = ()> + ?Sized>(
        &mut self,
        out: &LineTx,
        stop: &mut Stop<'_, S>,
    ) -> Result<bool, SourceError> {
        let found = self.expand();
        for f in &mut self.files {
            f.visible = false;
        }
        for (path, meta) in found {
            let key = (meta.dev(), meta.ino());
            if let Some(f) = self.files.iter_mut().find(|f| f.key == key) {
                f.visible = true;
                f.path = path;
            } else if !self.ignored.contains(&key) {
                self.discover(path, key);
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

    fn discover(&mut self, path: PathBuf, key: Key) {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(_) => return,
        };
        let Ok(meta) = file.metadata() else { return };
        let size = meta.len();
        let Ok((hash, head)) = fingerprint(&file) else {
            return;
        };
        if head.starts_with(&[0x1f, 0x8b]) {
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
        } else if self.first_poll && !self.cfg.from_beginning {
            last_line_start(&file, size, self.cfg.max_line_bytes)
        } else {
            0
        };
        let mut file = file;
        if file.seek(SeekFrom::Start(start)).is_err() {
            return;
        }
        tracing::debug!(path = %path.display(), start, copy, "tailing file");
        self.files.push(Tracked {
            key,
            origin: Arc::from(format!("file:{path_text}")),
            path,
            file,
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
        let size = f.file.metadata()?.len();
        if size != f.last_size {
            f.last_size = size;
            f.last_growth = Instant::now();
            let (hash, _) = fingerprint(&f.file)?;
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
                f.file.seek(SeekFrom::Start(0))?;
            }
            if rewritten || f.hash.is_none() {
                f.hash = hash;
            }
        }
        loop {
            let n = match f.file.read(&mut self.chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Ok(true);
            }
            f.last_growth = Instant::now();
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
        let Some((mut copy, key, size)) = find_copy(f) else {
            if f.splitter.pending_bytes() > 0 {
                tracing::debug!(path = %f.path.display(), "partial line lost to truncation");
            }
            return Ok(true);
        };
        copy.seek(SeekFrom::Start(f.read_pos))?;
        let mut left = size.saturating_sub(f.read_pos);
        while left > 0 {
            let want = (left as usize).min(self.chunk.len());
            let n = copy.read(&mut self.chunk[..want])?;
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
