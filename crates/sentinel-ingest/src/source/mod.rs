//! Sources: where raw lines enter Sentinel, each tagged with its origin.
//!
//! This module owns rotation-safe file tailing ([`file::FileTail`]), fast replay of plain or gzip files
//! ([`file::LineReader`]), the syslog receiver ([`syslog::SyslogReceiver`]) and the journald stream
//! ([`journald::Journald`]). Every source is bounded (line sizes, connections, a bounded output queue that
//! makes it wait) and counts what it reads and rejects in a shared [`SourceMetrics`]. A source must not
//! parse or judge its lines: it hands them over as [`RawLine`]s and parsing is the parsers' job.
//!
//! Each source implements [`sentinel_core::Source`] (so a pipeline can hold any of them as
//! `Box<dyn Source>`) and also keeps an inherent `run` that takes any shutdown future.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

pub mod file;
pub mod journald;
mod lines;
pub mod syslog;

pub use sentinel_core::SourceError;

pub use sentinel_core::{LineTx, RawLine, Shutdown, Source};

/// Counters shared by a source and whoever reports on it.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    /// Lines delivered.
    pub lines_read: AtomicU64,
    /// Bytes read from the input (including line endings and discarded bytes).
    pub bytes_read: AtomicU64,
    /// Lines (or messages) longer than the limit, cut to it.
    pub lines_too_long: AtomicU64,
    /// Lines whose invalid UTF-8 was replaced.
    pub lines_invalid_utf8: AtomicU64,
    /// Files replaced at their path (rename rotation).
    pub rotations: AtomicU64,
    /// Files that shrank or were rewritten under the reader (copytruncate, truncation).
    pub truncations: AtomicU64,
    /// I/O errors, malformed records and failed child processes.
    pub errors: AtomicU64,
    /// Connections refused because the connection limit was reached.
    pub connections_refused: AtomicU64,
    /// Datagrams and connections dropped because the sender is not in `allowed_peers`.
    pub peers_refused: AtomicU64,
    /// Child process restarts (journald).
    pub restarts: AtomicU64,
}

/// A copy of [`SourceMetrics`] at one moment.
pub type MetricsSnapshot = sentinel_core::SourceCounts;

impl SourceMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            lines_read: get(&self.lines_read),
            bytes_read: get(&self.bytes_read),
            lines_too_long: get(&self.lines_too_long),
            lines_invalid_utf8: get(&self.lines_invalid_utf8),
            rotations: get(&self.rotations),
            truncations: get(&self.truncations),
            errors: get(&self.errors),
            connections_refused: get(&self.connections_refused),
            peers_refused: get(&self.peers_refused),
            restarts: get(&self.restarts),
        }
    }
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Sends one line unless shutdown fires first. `Ok(true)` = sent, `Ok(false)` = shutting down.
pub(crate) async fn send_or_stop<S>(
    out: &LineTx,
    line: RawLine,
    shutdown: &mut std::pin::Pin<&mut S>,
) -> Result<bool, SourceError>
where
    S: Future<Output = ()> + ?Sized,
{
    tokio::select! {
        biased;
        _ = shutdown.as_mut() => Ok(false),
        r = out.send(line) => match r {
            Ok(()) => Ok(true),
            Err(_) => Err(SourceError::Closed(sentinel_core::SinkClosed)),
        },
    }
}
