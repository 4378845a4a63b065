//! Splitting a byte stream into bounded lines: partial lines are held until their newline arrives, and a
//! line longer than the limit is cut (the rest discarded up to its newline) instead of being buffered.
//! It does no I/O.

/// A complete line taken out of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitLine {
    /// The text, without `\n` or `\r\n`, invalid UTF-8 replaced.
    pub text: String,
    /// Index in the chunk just after this line's newline.
    pub end: usize,
    /// The line was longer than the limit and was cut.
    pub cut: bool,
    /// Invalid UTF-8 was replaced.
    pub lossy: bool,
}

/// Holds the unfinished tail of a stream between chunks.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
    max: usize,
    overflow: bool,
    pending: u64,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(1),
            overflow: false,
            pending: 0,
        }
    }

    /// Bytes received since the last newline (held or discarded).
    pub(crate) fn pending_bytes(&self) -> u64 {
        self.pending
    }

    /// Forgets any partial line.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.overflow = false;
        self.pending = 0;
    }

    /// Splits `chunk`, appending each completed line to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<SplitLine>) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let piece = &chunk[start..nl];
            let line = if self.buf.is_empty() && !self.overflow && piece.len() <= self.max {
                make_line(piece, false, nl + 1)
            } else {
                self.append(piece);
                let l = make_line(&self.buf, self.overflow, nl + 1);
                self.buf.clear();
                self.overflow = false;
                l
            };
            self.pending = 0;
            out.push(line);
            start = nl + 1;
        }
        self.append(&chunk[start..]);
    }

    /// Takes the held partial line, if any, as if its newline had arrived (end of a finished input).
    pub(crate) fn take_partial(&mut self) -> Option<SplitLine> {
        if self.pending == 0 {
            return None;
        }
        let l = make_line(&self.buf, self.overflow, 0);
        self.reset();
        Some(l)
    }

    fn append(&mut self, piece: &[u8]) {
        self.pending += piece.len() as u64;
        let room = self.max.saturating_sub(self.buf.len());
        if piece.len() > room {
            self.buf.extend_from_slice(&piece[..room]);
            self.overflow = true;
        } else {
            self.buf.extend_from_slice(piece);
        }
    }
}

/// Strips one trailing `\r`.
pub(crate) fn trim_cr(b: &[u8]) -> &[u8] {
    match b.split_last() {
        Some((b'\r', rest)) => rest,
        _ => b,
    }
}

fn make_line(bytes: &[u8], cut: bool, end: usize) -> SplitLine {
    let bytes = if cut { bytes } else { trim_cr(bytes) };
    let (text, lossy) = match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    };
    SplitLine {
        text,
        end,
        cut,
        lossy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        out.into_iter().map(|l| (l.text, l.cut)).collect()
    }

    #[test]
    fn source_lines_partial_and_crlf() {
        let got = split(100, &[b"ab", b"c\r\nde", b"f\n", b"gh"]);
        assert_eq!(got, vec![("abc".into(), false), ("def".into(), false)]);
    }

    #[test]
    fn source_lines_cut_bounded() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        s.feed(b"0123456789", &mut out);
        s.feed(b"abcdef", &mut out);
        assert!(out.is_empty());
        assert_eq!(s.buf.len(), 4);
        assert_eq!(s.pending_bytes(), 16);
        s.feed(b"x\nok\n", &mut out);
        assert_eq!(out[0].text, "0123");
        assert!(out[0].cut);
        assert_eq!(out[1].text, "ok");
        assert_eq!(s.pending_bytes(), 0);
    }

    proptest::proptest! {
        #[test]
        fn source_lines_any_chunking(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), cut in 0usize..300) {
            let cut = cut.min(data.len());
            let whole = split(1 << 20, &[&data]);
            let parts = split(1 << 20, &[&data[..cut], &data[cut..]]);
            proptest::prop_assert_eq!(whole, parts);
        }
    }
}
