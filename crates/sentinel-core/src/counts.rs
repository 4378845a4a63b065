//! What a log source has counted: the one shape the sources keep and `/metrics` reports.

/// What one log source has counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceCounts {
    /// Lines (messages, journal entries) delivered.
    pub lines_read: u64,
    /// Bytes read from the input, line endings and discarded bytes included.
    pub bytes_read: u64,
    /// Lines longer than the limit, cut to it.
    pub lines_too_long: u64,
    /// Lines whose invalid UTF-8 was replaced.
    pub lines_invalid_utf8: u64,
    /// Files replaced at their path (rename rotation).
    pub rotations: u64,
    /// Files that shrank or were rewritten under the reader (copytruncate).
    pub truncations: u64,
    /// I/O errors, malformed records or frames, failed child processes.
    pub errors: u64,
    /// TCP connections refused at the connection limit.
    pub connections_refused: u64,
    /// Datagrams and connections dropped: sender not in `allowed_peers`.
    pub peers_refused: u64,
    /// Child process restarts (journald).
    pub restarts: u64,
}

impl std::ops::AddAssign for SourceCounts {
    fn add_assign(&mut self, o: Self) {
        self.lines_read += o.lines_read;
        self.bytes_read += o.bytes_read;
        self.lines_too_long += o.lines_too_long;
        self.lines_invalid_utf8 += o.lines_invalid_utf8;
        self.rotations += o.rotations;
        self.truncations += o.truncations;
        self.errors += o.errors;
        self.connections_refused += o.connections_refused;
        self.peers_refused += o.peers_refused;
        self.restarts += o.restarts;
    }
}
