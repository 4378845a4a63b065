//! TCP syslog framing (RFC 6587): octet counting (`12 <34>1 hello…`) and newline-delimited messages,
//! chosen per message by its first byte (a digit starts a length). Bounded: a message over the limit is cut,
//! the rest skipped. It does no I/O and does not look inside messages.

/// One message taken off the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub text: String,
    pub cut: bool,
    pub lossy: bool,
}

/// The stream broke the framing rules; the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadFraming;

#[derive(Debug, Clone, Copy)]
enum State {
    Start,
    Count { len: usize, digits: u8 },
    Body { left: usize, cut: bool },
    Line { cut: bool },
}

/// Splits a TCP byte stream into syslog messages.
#[derive(Debug)]
pub(crate) struct Framer {
    max: usize,
    state: State,
    buf: Vec<u8>,
}

impl Framer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            state: State::Start,
            buf: Vec::new(),
        }
    }

    /// Feeds bytes, appending each complete message to `out`.
    pub(crate) fn feed(&mut self, mut data: &[u8], out: &mut Vec<Frame>) -> Result<(), BadFraming> {
        while let Some(&b) = data.first() {
            match self.state {
                State::Start => {
                    if b.is_ascii_digit() && b != b'0' {
                        self.state = State::Count { len: 0, digits: 0 };
                    } else if matches!(b, b'\n' | b'\r' | 0) {
                        data = &data[1..];
                    } else {
                        self.state = State::Line { cut: false };
                    }
                }
                State::Count { len, digits } => {
                    data = &data[1..];
                    if b.is_ascii_digit() {
                        if digits >= 9 {
                            return Err(BadFraming);
                        }
                        let len = len * 10 + usize::from(b - b'0');
                        self.state = State::Count {
                            len,
                            digits: digits + 1,
                        };
                    } else if b == b' ' {
                        self.state = State::Body {
                            left: len,
                            cut: len > self.max,
                        };
                        if len == 0 {
                            self.state = State::Start;
                        }
                    } else {
                        return Err(BadFraming);
                    }
                }
                State::Body { left, cut } => {
                    let k = left.min(data.len());
                    self.push(&data[..k]);
                    data = &data[k..];
                    if k == left {
                        self.emit(cut, out);
                    } else {
                        self.state = State::Body {
                            left: left - k,
                            cut,
                        };
                    }
                }
                State::Line { cut } => match memchr::memchr(b'\n', data) {
                    Some(i) => {
                        let cut = cut | self.push(&data[..i]);
                        data = &data[i + 1..];
                        self.emit(cut, out);
                    }
                    None => {
                        let cut = cut | self.push(data);
                        data = &[];
                        self.state = State::Line { cut };
                    }
                },
            }
        }
        Ok(())
    }

    /// Pushes bytes up to the limit; `true` if some were dropped.
    fn push(&mut self, piece: &[u8]) -> bool {
        let room = self.max.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&piece[..piece.len().min(room)]);
        piece.len() > room
    }

    fn emit(&mut self, cut: bool, out: &mut Vec<Frame>) {
        let mut bytes = &self.buf[..];
        while let Some((b'\n' | b'\r' | 0, rest)) = bytes.split_last() {
            bytes = rest;
        }
        out.push(to_frame(bytes, cut));
        self.buf.clear();
        self.state = State::Start;
    }
}

/// A datagram or message as text, trailing line ends removed, cut to `max`.
pub(crate) fn datagram(bytes: &[u8], max: usize) -> Frame {
    let mut bytes = bytes;
    while let Some((b'\n' | b'\r' | 0, rest)) = bytes.split_last() {
        bytes = rest;
    }
    let cut = bytes.len() > max;
    to_frame(&bytes[..bytes.len().min(max)], cut)
}

fn to_frame(bytes: &[u8], cut: bool) -> Frame {
    match std::str::from_utf8(bytes) {
        Ok(s) => Frame {
            text: s.to_owned(),
            cut,
            lossy: false,
        },
        Err(_) => Frame {
            text: String::from_utf8_lossy(bytes).into_owned(),
            cut,
            lossy: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out).unwrap();
        }
        out.into_iter().map(|f| (f.text, f.cut)).collect()
    }

    #[test]
    fn source_syslog_octet_counting_and_lines_mix() {
        let got = frames(100, &[b"11 <34>1 hello", b"5 <1>hi<5>nl\r\n", b"<6>x\n"]);
        assert_eq!(
            got,
            vec![
                ("<34>1 hello".into(), false),
                ("<1>hi".into(), false),
                ("<5>nl".into(), false),
                ("<6>x".into(), false)
            ]
        );
    }

    #[test]
    fn source_syslog_octet_counting_oversized_is_cut() {
        let got = frames(4, &[b"10 0123456789", b"<1>abcdef\n3 abc"]);
        assert_eq!(
            got,
            vec![
                ("0123".into(), true),
                ("<1>a".into(), true),
                ("abc".into(), false)
            ]
        );
    }

    #[test]
    fn source_syslog_bad_length_closes() {
        let mut f = Framer::new(10);
        assert_eq!(f.feed(b"12x", &mut Vec::new()), Err(BadFraming));
        let mut f = Framer::new(10);
        assert_eq!(f.feed(b"12345678901 ", &mut Vec::new()), Err(BadFraming));
    }

    proptest::proptest! {
        #[test]
        fn source_syslog_framer_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut f = Framer::new(64);
            let mut out = Vec::new();
            let _ = f.feed(&data, &mut out);
            for fr in out { proptest::prop_assert!(fr.text.len() <= 64 * 3); }
        }
    }
}
