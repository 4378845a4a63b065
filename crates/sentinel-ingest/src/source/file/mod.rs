//! File sources: `tail -F` over glob patterns ([`FileTail`]) and whole-file replay ([`LineReader`]).
//!
//! Tailing is rotation-safe (rename, copytruncate, truncation) and checkpointed ([`TailCheckpoint`]);
//! replay reads plain or gzip files at full speed. Neither parses the lines it reads.

mod identity;
mod replay;
mod state;
mod tail;

pub use replay::{for_each_line, read_all, LineReader, ReplayStats, DEFAULT_REPLAY_MAX_LINE};
pub(crate) use state::write_atomic;
pub use state::{FileCheckpoint, TailCheckpoint};
pub use tail::{FileTail, FileTailConfig};
