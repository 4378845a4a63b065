//! Recognising a file by content: the first-line fingerprint, where the last line starts, and finding the
//! copy `copytruncate` left next to a file. Read-only; it never changes a file.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A file's identity on disk: (device, inode).
pub(super) type Key = (u64, u64);

/// The first line is hashed up to this many bytes.
const FINGERPRINT_BYTES: usize = 4096;

/// `O_NONBLOCK` on Linux (x86, x86-64, arm, aarch64, riscv); no effect on a regular file's reads.
const O_NONBLOCK: i32 = 0o4000;

/// Opens `path` for reading only if it is a regular file. The path is checked (stat) before, but it
/// may be replaced between that check and the open: a FIFO put there would make a plain open wait
/// for a writer forever (holding the tailer and a blocking-pool thread), so the open does not wait,
/// and what it opened is checked again.
pub(super) fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

/// The SHA-256 of the first line (or of its first 4 KiB), if complete, and the bytes read.
pub(super) fn fingerprint(file: &File) -> std::io::Result<(Option<[u8; 32]>, Vec<u8>)> {
    let mut head = vec![0; FINGERPRINT_BYTES];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    let line = match memchr::memchr(b'\n', &head) {
        Some(i) => &head[..i],
        None if n == FINGERPRINT_BYTES => &head[..],
        None => return Ok((None, head)),
    };
    Ok((Some(Sha256::digest(line).into()), head))
}

/// Where the last line of a file starts (so tailing from the end still delivers a line being written).
pub(super) fn last_line_start(file: &File, size: u64, window: usize) -> u64 {
    let from = size.saturating_sub(window as u64);
    let mut buf = vec![0; (size - from) as usize];
    match file.read_exact_at(&mut buf, from) {
        Ok(()) => memchr::memrchr(b'\n', &buf).map_or(size, |i| from + i as u64 + 1),
        Err(_) => size,
    }
}

/// A sibling named like `path` (`auth.log.1`, `auth.log-20240101`), other than the file `key`, holding the
/// first line hashed to `hash` and at least the `read_pos` bytes already read: the copy `copytruncate` made.
pub(super) fn find_copy(
    path: &Path,
    hash: Option<[u8; 32]>,
    key: Key,
    read_pos: u64,
) -> Option<(File, Key, u64)> {
    let hash = hash?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name()?.to_string_lossy().into_owned();
    let mut best: HashMap<Key, (PathBuf, u64)> = HashMap::new();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n == name || !n.starts_with(&name) {
            continue;
        }
        let Ok(m) = std::fs::metadata(entry.path()) else {
            continue;
        };
        let k = (m.dev(), m.ino());
        if m.is_file() && k != key && m.len() >= read_pos {
            best.insert(k, (entry.path(), m.len()));
        }
    }
    best.into_iter().find_map(|(key, (p, len))| {
        let file = open_regular(&p).ok()?;
        match fingerprint(&file) {
            Ok((Some(h), _)) if h == hash => Some((file, key, len)),
            _ => None,
        }
    })
}
