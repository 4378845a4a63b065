//! Replay: reading a whole plain or gzip file (or stdin) line by line, as fast as the disk allows.
//!
//! Gzip is recognised by its magic bytes, not its name. The callback API lends each line from a reused
//! buffer, so a line costs no allocation unless it spans buffer refills or holds invalid UTF-8 (replaced
//! and counted). Lines longer than the limit are cut and counted. It does not follow or tail anything.

use crate::source::lines::trim_cr;
use flate2::read::MultiGzDecoder;
use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Read buffer size for replay.
const REPLAY_BUFFER: usize = 1 << 20;
/// Default longest line kept whole when replaying.
pub const DEFAULT_REPLAY_MAX_LINE: usize = 1 << 20;

/// What a replay read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Lines delivered.
    pub lines: u64,
    /// Bytes read (after decompression).
    pub bytes: u64,
    /// Lines cut to the limit.
    pub too_long: u64,
    /// Lines with invalid UTF-8 replaced.
    pub invalid_utf8: u64,
}

/// Reads lines from a plain or gzip file, or stdin.
pub struct LineReader {
    inner: Box<dyn BufRead + Send>,
    carry: Vec<u8>,
    carry_cut: bool,
    max_line_bytes: usize,
    stats: ReplayStats,
}

impl std::fmt::Debug for LineReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineReader")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Opens `path` (`-` is stdin) for replay; gzip is detected by magic bytes.
pub fn read_all(path: impl AsRef<Path>) -> io::Result<LineReader> {
    LineReader::open(path)
}

/// Calls `f` with every line of `path` (`-` is stdin), plain or gzip, over a reused buffer.
pub fn for_each_line(path: impl AsRef<Path>, f: impl FnMut(&str)) -> io::Result<ReplayStats> {
    let mut r = LineReader::open(path)?;
    r.for_each_line(f)?;
    Ok(r.stats())
}

impl LineReader {
    /// Opens a file, or stdin for `-`.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        if path == Path::new("-") {
            Self::from_reader(io::stdin())
        } else {
            Self::from_reader(std::fs::File::open(path)?)
        }
    }

    /// Reads from any byte source, decompressing it if it starts with the gzip magic.
    pub fn from_reader(r: impl Read + Send + 'static) -> io::Result<Self> {
        let mut peek = BufReader::with_capacity(REPLAY_BUFFER, r);
        let head = peek.fill_buf()?;
        let inner: Box<dyn BufRead + Send> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(BufReader::with_capacity(
                REPLAY_BUFFER,
                MultiGzDecoder::new(peek),
            ))
        } else {
            Box::new(peek)
        };
        Ok(Self {
            inner,
            carry: Vec::new(),
            carry_cut: false,
            max_line_bytes: DEFAULT_REPLAY_MAX_LINE,
            stats: ReplayStats::default(),
        })
    }

    /// Sets the longest line kept whole; longer lines are cut and counted.
    pub fn with_max_line_bytes(mut self, n: usize) -> Self {
        self.max_line_bytes = n.max(1);
        self
    }

    /// What has been read so far.
    pub fn stats(&self) -> ReplayStats {
        self.stats
    }

    /// Calls `f` with every remaining line. The `&str` is only valid during the call.
    pub fn for_each_line(&mut self, mut f: impl FnMut(&str)) -> io::Result<()> {
        while self.next_with(&mut f)? {}
        Ok(())
    }

    /// Reads up to and including the next line, handing it to `f`; `false` at the end of input.
    fn next_with(&mut self, f: &mut impl FnMut(&str)) -> io::Result<bool> {
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                if self.carry.is_empty() && !self.carry_cut {
                    return Ok(false);
                }
                emit(&self.carry, self.carry_cut, &mut self.stats, f);
                self.carry.clear();
                self.carry_cut = false;
                return Ok(true);
            }
            let max = self.max_line_bytes;
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    if self.carry.is_empty() && !self.carry_cut && i <= max {
                        emit(&buf[..i], false, &mut self.stats, f);
                    } else {
                        self.carry_cut |= push_bounded(&mut self.carry, &buf[..i], max);
                        emit(&self.carry, self.carry_cut, &mut self.stats, f);
                        self.carry.clear();
                        self.carry_cut = false;
                    }
                    self.stats.bytes += i as u64 + 1;
                    self.inner.consume(i + 1);
                    return Ok(true);
                }
                None => {
                    let n = buf.len();
                    self.carry_cut |= push_bounded(&mut self.carry, buf, max);
                    self.stats.bytes += n as u64;
                    self.inner.consume(n);
                }
            }
        }
    }
}

/// The allocating convenience: one `String` per line.
impl Iterator for LineReader {
    type Item = io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = None;
        match self.next_with(&mut |s: &str| line = Some(s.to_owned())) {
            Ok(true) => line.map(Ok),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

fn push_bounded(carry: &mut Vec<u8>, piece: &[u8], max: usize) -> bool {
    let room = max.saturating_sub(carry.len());
    if piece.len() > room {
        carry.extend_from_slice(&piece[..room]);
        true
    } else {
        carry.extend_from_slice(piece);
        false
    }
}

fn emit(bytes: &[u8], cut: bool, stats: &mut ReplayStats, f: &mut impl FnMut(&str)) {
    let bytes = if cut { bytes } else { trim_cr(bytes) };
    stats.lines += 1;
    if cut {
        stats.too_long += 1;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            stats.invalid_utf8 += 1;
            String::from_utf8_lossy(bytes)
        }
    };
    f(&text);
}
