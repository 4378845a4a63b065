//! A child's recent output: a bounded ring of its last stdout/stderr lines (for crash notices), fed
//! by readers that also forward each line to `tracing`. Lines are capped in length; a child that
//! writes without newlines cannot grow memory without bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Longest line kept (bytes); the rest of a longer line is dropped and marked.
pub const MAX_LINE: usize = 4096;

/// The last lines a child wrote, shared between its readers and its task.
#[derive(Debug, Clone)]
pub struct OutputRing {
    lines: Arc<Mutex<VecDeque<String>>>,
    cap: usize,
}

impl OutputRing {
    /// A ring keeping `cap` lines.
    pub fn new(cap: usize) -> OutputRing {
        OutputRing {
            lines: Arc::new(Mutex::new(VecDeque::with_capacity(cap.min(1024)))),
            cap,
        }
    }

    /// Adds a line, dropping the oldest beyond the cap.
    pub fn push(&self, line: String) {
        if self.cap == 0 {
            return;
        }
        let mut l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        while l.len() >= self.cap {
            l.pop_front();
        }
        l.push_back(line);
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        l.iter().cloned().collect()
    }
}

/// Reads `r` line by line until it closes: each line goes to the ring and to `tracing` (info,
/// `evt = "child_output"`).
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    r: R,
    child: String,
    stream: &'static str,
    ring: OutputRing,
) {
    let mut r = BufReader::new(r);
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(evt = "child_output_error", child = %child, stream, error = %e);
                break;
            }
        };
        if buf.is_empty() {
            if !line.is_empty() {
                emit(&child, stream, &ring, &line, truncated);
            }
            break;
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if chunk.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let newline = done > chunk.len();
        r.consume(done);
        if newline {
            emit(&child, stream, &ring, &line, truncated);
            line.clear();
            truncated = false;
        }
    }
}

fn emit(child: &str, stream: &'static str, ring: &OutputRing, line: &[u8], truncated: bool) {
    let mut text = String::from_utf8_lossy(line).into_owned();
    if text.ends_with('\r') {
        text.pop();
    }
    if truncated {
        text.push_str(" [truncated]");
    }
    tracing::info!(evt = "child_output", child = %child, stream, line = %text);
    ring.push(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_lines_and_caps_long_ones() {
        let ring = OutputRing::new(2);
        let mut input = b"one\ntwo\nthree\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend_from_slice(b"\nlast-no-newline");
        pump(&input[..], "c".into(), "stdout", ring.clone()).await;
        let lines = ring.lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("[truncated]"));
        assert_eq!(lines[0].len(), MAX_LINE + " [truncated]".len());
        assert_eq!(lines[1], "last-no-newline");
    }
}
