//! Reading feed files in the formats their publishers document: plain IP/CIDR lists (FireHOL netsets,
//! Spamhaus DROP/EDROP text, the Tor bulk exit list), Spamhaus DROP JSON lines, Tor's exit-addresses
//! document and delimited text with a column mapping (CrowdSec exports).
//!
//! A bad line never stops a feed: it is counted with its line number (the first few kept for the
//! report) and the rest is read. Parsing never panics and does no I/O beyond reading the one file.

use crate::config::{CsvMapping, FeedFormat};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

/// How many malformed lines a report quotes.
pub const SAMPLES: usize = 5;
/// The longest quoted line or reason kept (characters).
const MAX_TEXT: usize = 120;
/// The largest feed file read (bytes). 500,000 CIDRs with reasons take tens of MB; a file far
/// bigger is not a feed, and reading it whole would cost that much memory on every reload.
pub const MAX_FEED_BYTES: u64 = 128 * 1024 * 1024;

/// One listed net, with what its row said about it when the row said anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The net (a bare address is a /32 or /128; host bits cleared).
    pub net: IpNet,
    /// The row's own score (CSV score column), overriding the feed's.
    pub score: Option<u8>,
    /// The row's reason: a position in [`ParsedFeed::reasons`].
    pub reason: Option<u32>,
}

/// A bad line: where, and what it said (shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// Why it was not read.
    pub why: String,
    /// The line itself, shortened.
    pub text: String,
}

/// What a feed file held.
#[derive(Debug, Clone, Default)]
pub struct ParsedFeed {
    /// Every net listed, in file order.
    pub entries: Vec<Entry>,
    /// Distinct reasons, each stored once however many rows give it.
    pub reasons: Vec<Box<str>>,
    /// Lines that could not be read.
    pub malformed: u64,
    /// The first [`SAMPLES`] of them.
    pub samples: Vec<BadLine>,
    /// Lines read but corrected or partly ignored (host bits set in a CIDR, an unreadable score).
    pub warnings: u64,
    /// Notes about the file as a whole (a metadata record count that does not match).
    pub notes: Vec<String>,
}

impl ParsedFeed {
    fn bad(&mut self, line: usize, why: &str, text: &str) {
        self.malformed += 1;
        if self.samples.len() < SAMPLES {
            self.samples.push(BadLine {
                line,
                why: why.to_string(),
                text: shorten(text),
            });
        }
    }
}

/// Collects rows, storing each distinct reason once.
#[derive(Default)]
struct Builder {
    feed: ParsedFeed,
    reason_ids: HashMap<Box<str>, u32>,
}

impl Builder {
    fn push(&mut self, net: IpNet, score: Option<u8>, reason: Option<&str>) {
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| self.intern(r));
        self.feed.entries.push(Entry { net, score, reason });
    }

    fn intern(&mut self, reason: &str) -> u32 {
        let reason = shorten(reason);
        if let Some(&id) = self.reason_ids.get(reason.as_str()) {
            return id;
        }
        let id = u32::try_from(self.feed.reasons.len()).unwrap_or(u32::MAX);
        let boxed: Box<str> = reason.into_boxed_str();
        self.feed.reasons.push(boxed.clone());
        self.reason_ids.insert(boxed, id);
        id
    }

    /// Reads an address or CIDR, counting a corrected one (host bits set) as a warning.
    fn net(&mut self, line: usize, token: &str, text: &str) -> Option<IpNet> {
        match parse_net(token) {
            Ok((net, masked)) => {
                if masked {
                    self.feed.warnings += 1;
                }
                Some(net)
            }
            Err(why) => {
                self.feed.bad(line, why, text);
                None
            }
        }
    }
}

/// At most [`MAX_TEXT`] characters, control characters (escape sequences, carriage returns) each
/// replaced by `\u{fffd}`: what a feed says ends up in the log, the store and the dashboard.
fn shorten(s: &str) -> String {
    let clean = |t: &str| -> String {
        t.chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect()
    };
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", clean(&s[..i])),
        None => clean(s),
    }
}

/// Reads an IP or CIDR. A bare address is a /32 or /128; a CIDR with host bits set is cleared to its
/// network (`true` says so). A /0 is refused: in a feed it would silently list every address there
/// is (a typo, or a poisoned upstream), so it is a bad line, counted and quoted in the report.
pub fn parse_net(s: &str) -> Result<(IpNet, bool), &'static str> {
    if s.contains('/') {
        let net: IpNet = s.parse().map_err(|_| "not a CIDR")?;
        if net.prefix_len() == 0 {
            return Err("a /0 would list every address; not loaded");
        }
        let trunc = net.trunc();
        Ok((trunc, trunc != net))
    } else {
        let ip: IpAddr = s.parse().map_err(|_| "not an IP address")?;
        Ok((IpNet::from(ip), false))
    }
}

/// Reads a feed file. `Err` when the file cannot be read or its layout does not fit the mapping
/// (a CSV column that is not there); bad lines are counted in the result instead.
pub fn parse_file(path: &Path, format: &FeedFormat) -> Result<ParsedFeed, String> {
    let bytes = read_bounded(path)?;
    // Invalid UTF-8 spoils only the lines it is on (they then fail to parse and are counted).
    let text = String::from_utf8_lossy(&bytes);
    parse(format, &text)
}

/// A feed file's bytes: only a regular file (a FIFO would block the read, and so the start or a
/// reload, forever; a device like `/dev/zero` never ends), and at most [`MAX_FEED_BYTES`] of it.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let cannot = |e: std::io::Error| format!("cannot read {shown}: {e}");
    // Checked before opening: opening a FIFO blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("cannot read {shown}: not a regular file"));
    }
    let file = open_nonblocking(path).map_err(cannot)?;
    // Checked again on what was opened, in case the path was swapped in between (the open does not
    // wait for a FIFO's writer, so a swap cannot hang it either).
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(format!("cannot read {shown}: not a regular file"));
    }
    let too_big = || format!("cannot read {shown}: larger than {MAX_FEED_BYTES} bytes, not a feed");
    if meta.len() > MAX_FEED_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // Bounded again while reading: the file may grow after the check.
    file.take(MAX_FEED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FEED_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

/// `O_NONBLOCK` on Linux (x86, x86-64, arm, aarch64, riscv); no effect on a regular file's reads.
#[cfg(target_os = "linux")]
const O_NONBLOCK: i32 = 0o4000;

/// Opens for reading without waiting for a FIFO's writer.
#[cfg(target_os = "linux")]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Reads a feed's text.
pub fn parse(format: &FeedFormat, text: &str) -> Result<ParsedFeed, String> {
    let mut b = Builder::default();
    match format {
        FeedFormat::List => list(&mut b, text),
        FeedFormat::SpamhausJson => spamhaus_json(&mut b, text),
        FeedFormat::TorExitAddresses => tor_exit_addresses(&mut b, text),
        FeedFormat::Csv(m) => csv(&mut b, m, text)?,
    }
    Ok(b.feed)
}

/// Lines without their ending (LF or CRLF), numbered from 1.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// One IP or CIDR per line. `#` and `;` start comments, whole-line or trailing; a trailing `;` comment
/// on a listed net is its reason (Spamhaus DROP text: `1.10.16.0/20 ; SBL256894`).
fn list(b: &mut Builder, text: &str) {
    for (n, raw) in lines(text) {
        let line = raw.trim_start_matches('\u{feff}');
        let (data, comment) = match line.find(['#', ';']) {
            Some(i) => (&line[..i], Some((line.as_bytes()[i], &line[i + 1..]))),
            None => (line, None),
        };
        let data = data.trim();
        if data.is_empty() {
            continue;
        }
        let mut tokens = data.split_whitespace();
        let Some(token) = tokens.next() else {
            continue;
        };
        if tokens.next().is_some() {
            b.feed.bad(n, "more than one value on the line", raw);
            continue;
        }
        if let Some(net) = b.net(n, token, raw) {
            let reason = comment.and_then(|(c, text)| (c == b';').then_some(text));
            b.push(net, None, reason);
        }
    }
}

#[derive(Deserialize)]
struct SpamhausRow {
    cidr: Option<String>,
    sblid: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    records: Option<u64>,
}

/// Spamhaus DROP/EDROP JSON lines: one `{"cidr","sblid","rir"}` object a line, and a closing
/// `{"type":"metadata",…,"records":n}` line. The SBL id is the reason.
fn spamhaus_json(b: &mut Builder, text: &str) {
    let mut declared = None;
    for (n, raw) in lines(text) {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let row: SpamhausRow = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(_) => {
                b.feed.bad(n, "not a JSON object", raw);
                continue;
            }
        };
        if row.kind.as_deref() == Some("metadata") {
            declared = row.records;
            continue;
        }
        let Some(cidr) = row.cidr else {
            b.feed.bad(n, "no `cidr` field", raw);
            continue;
        };
        if let Some(net) = b.net(n, cidr.trim(), raw) {
            b.push(net, None, row.sblid.as_deref());
        }
    }
    if let Some(want) = declared {
        let got = b.feed.entries.len() as u64;
        if want != got {
            b.feed.notes.push(format!(
                "the metadata line declares {want} records but {got} were read"
            ));
        }
    }
}

/// Tor's exit-addresses document: blocks of `ExitNode <fingerprint>`, `Published <date> <time>`,
/// `LastStatus <date> <time>` and one or more `ExitAddress <ip> <date> <time>`.
fn tor_exit_addresses(b: &mut Builder, text: &str) {
    for (n, raw) in lines(text) {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('@') {
            // `@type tordnsel 1.0` annotations precede some copies.
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("ExitAddress") => match words.next() {
                Some(ip) => {
                    if ip.contains('/') {
                        b.feed.bad(n, "an exit address is one address", raw);
                    } else if let Some(net) = b.net(n, ip, raw) {
                        b.push(net, None, None);
                    }
                }
                None => b.feed.bad(n, "`ExitAddress` without an address", raw),
            },
            Some("ExitNode" | "Published" | "LastStatus") => {}
            _ => b.feed.bad(n, "not an exit-addresses keyword", raw),
        }
    }
}

/// Splits one delimited line; double quotes enclose fields holding the delimiter, `""` is a quote.
/// `None` when a quote is left open.
fn split_fields(line: &str, delim: char) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && at_start {
            quoted = true;
            at_start = false;
        } else if c == delim {
            out.push(std::mem::take(&mut field));
            at_start = true;
        } else {
            field.push(c);
            at_start = false;
        }
    }
    if quoted {
        return None;
    }
    out.push(field);
    Some(out)
}

/// Finds a column: a header name (case-insensitive), or a 0-based index.
fn column(name: &str, header: Option<&[String]>) -> Result<usize, String> {
    if let Some(h) = header {
        if let Some(i) = h
            .iter()
            .position(|c| c.trim().eq_ignore_ascii_case(name.trim()))
        {
            return Ok(i);
        }
    }
    name.trim().parse::<usize>().map_err(|_| match header {
        Some(h) => format!(
            "no column `{name}` in the header ({})",
            shorten(&h.join(","))
        ),
        None => format!("column `{name}` must be a 0-based index when the file has no header"),
    })
}

/// A CSV value that may carry a CrowdSec scope (`Ip:1.2.3.4`, `Range:1.2.3.0/24`).
fn strip_scope(v: &str) -> &str {
    let v = v.trim();
    for scope in ["ip:", "range:"] {
        if v.len() > scope.len() && v[..scope.len()].eq_ignore_ascii_case(scope) {
            return v[scope.len()..].trim();
        }
    }
    v
}

/// A score written as an integer or decimal 0–100.
fn parse_score(v: &str) -> Option<u8> {
    let f: f64 = v.trim().parse().ok()?;
    (0.0..=100.0).contains(&f).then(|| f.round() as u8)
}

/// Delimited text with a column mapping.
fn csv(b: &mut Builder, m: &CsvMapping, text: &str) -> Result<(), String> {
    let mut rows = lines(text).filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let header = if m.header {
        match rows.next() {
            Some((n, l)) => Some(
                split_fields(l.trim_start_matches('\u{feff}'), m.delimiter)
                    .ok_or_else(|| format!("line {n}: the header has an unclosed quote"))?,
            ),
            None => return Ok(()),
        }
    } else {
        None
    };
    let ip_col = column(&m.ip_column, header.as_deref())?;
    let score_col = m
        .score_column
        .as_deref()
        .map(|c| column(c, header.as_deref()))
        .transpose()?;
    let reason_col = m
        .reason_column
        .as_deref()
        .map(|c| column(c, header.as_deref()))
        .transpose()?;
    for (n, raw) in rows {
        let Some(fields) = split_fields(raw, m.delimiter) else {
            b.feed.bad(n, "unclosed quote", raw);
            continue;
        };
        let Some(value) = fields.get(ip_col) else {
            b.feed.bad(n, "too few fields", raw);
            continue;
        };
        let Some(net) = b.net(n, strip_scope(value), raw) else {
            continue;
        };
        let score = match score_col.and_then(|c| fields.get(c)) {
            Some(v) if !v.trim().is_empty() => {
                let s = parse_score(v);
                if s.is_none() {
                    // The row is still listed, with the feed's score.
                    b.feed.warnings += 1;
                }
                s
            }
            _ => None,
        };
        let reason = reason_col.and_then(|c| fields.get(c)).map(String::as_str);
        b.push(net, score, reason);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn list_comments_crlf_and_host_bits() {
        let text =
            "# header\r\n\r\n192.0.2.1\r\n198.51.100.7/24 ; SBL1\r\n  2001:db8::/32 # trailing\r\n\
                    ; whole-line\r\nnot-an-ip\r\n203.0.113.0/24 extra\r\n";
        let f = parse(&FeedFormat::List, text).unwrap();
        let nets: Vec<String> = f.entries.iter().map(|e| e.net.to_string()).collect();
        assert_eq!(nets, ["192.0.2.1/32", "198.51.100.0/24", "2001:db8::/32"]);
        assert_eq!(f.warnings, 1);
        assert_eq!(f.malformed, 2);
        assert_eq!(f.samples[0].line, 7);
        assert_eq!(f.samples[1].line, 8);
        assert_eq!(
            f.entries[1].reason.map(|r| &*f.reasons[r as usize]),
            Some("SBL1")
        );
        assert_eq!(f.entries[2].reason, None);
    }

    #[test]
    fn fields_with_quotes() {
        assert_eq!(
            split_fields(r#"a,"b,c","d""e",,"#, ',').unwrap(),
            ["a", "b,c", "d\"e", "", ""]
        );
        assert_eq!(split_fields(r#"a,"b"#, ','), None);
        assert_eq!(strip_scope("Ip:2001:db8::1"), "2001:db8::1");
        assert_eq!(strip_scope("range:192.0.2.0/24"), "192.0.2.0/24");
        assert_eq!(strip_scope("2001:db8::1"), "2001:db8::1");
        assert_eq!(parse_score("87.4"), Some(87));
        assert_eq!(parse_score("101"), None);
    }

    #[test]
    fn control_characters_never_reach_reasons_or_samples() {
        let f = parse(
            &FeedFormat::List,
            "203.0.113.1 ; SBL1\u{1b}[2J\rforged log line\n\u{1b}[31m198.51.100.x\u{7}\n",
        )
        .unwrap();
        assert_eq!(f.entries.len(), 1);
        let shown = format!("{:?} {:?}", f.reasons, f.samples);
        assert!(!f.reasons[0].chars().any(char::is_control), "{shown}");
        assert!(!f.samples[0].text.chars().any(char::is_control), "{shown}");
        assert!(f.reasons[0].contains("forged log line"), "{shown}");
    }

    #[test]
    fn reasons_are_stored_once() {
        let m = CsvMapping {
            ip_column: "0".into(),
            score_column: None,
            reason_column: Some("1".into()),
            delimiter: ';',
            header: false,
        };
        let text = "192.0.2.1;ssh-bf\n192.0.2.2;ssh-bf\n192.0.2.3;\n192.0.2.4;http-probing\n";
        let f = parse(&FeedFormat::Csv(m), text).unwrap();
        assert_eq!(f.entries.len(), 4);
        assert_eq!(f.reasons.len(), 2);
        assert_eq!(f.entries[2].reason, None);
        assert_eq!(f.entries[0].reason, f.entries[1].reason);
    }

    #[test]
    fn csv_missing_column_is_an_error() {
        let m = CsvMapping {
            ip_column: "address".into(),
            score_column: None,
            reason_column: None,
            delimiter: ',',
            header: true,
        };
        let e = parse(&FeedFormat::Csv(m.clone()), "ip,reason\n192.0.2.1,x\n").unwrap_err();
        assert!(e.contains("no column `address`"), "{e}");
        let m = CsvMapping { header: false, ..m };
        assert!(parse(&FeedFormat::Csv(m), "192.0.2.1\n").is_err());
    }

    proptest! {
        // Whatever the bytes, parsing answers (no panic) and every non-blank line is either listed,
        // counted malformed or a comment.
        #[test]
        fn any_text_parses_without_panic(text in "[0-9a-f:./;#, \"\\r\\n]{0,300}") {
            for format in [
                FeedFormat::List,
                FeedFormat::SpamhausJson,
                FeedFormat::TorExitAddresses,
                FeedFormat::Csv(CsvMapping {
                    ip_column: "0".into(),
                    score_column: Some("1".into()),
                    reason_column: Some("2".into()),
                    delimiter: ',',
                    header: false,
                }),
            ] {
                let f = parse(&format, &text).unwrap();
                let nonblank = text.split('\n').filter(|l| !l.trim().is_empty()).count();
                prop_assert!(f.entries.len() + f.malformed as usize <= nonblank);
            }
        }

        #[test]
        fn listed_addresses_come_back(addrs in proptest::collection::vec(any::<u32>(), 1..50)) {
            let text: String = addrs.iter().map(|a| format!("{}\n", std::net::Ipv4Addr::from(*a))).collect();
            let f = parse(&FeedFormat::List, &text).unwrap();
            prop_assert_eq!(f.malformed, 0);
            let got: Vec<IpNet> = f.entries.iter().map(|e| e.net).collect();
            let want: Vec<IpNet> = addrs.iter().map(|a| IpNet::from(IpAddr::V4((*a).into()))).collect();
            prop_assert_eq!(got, want);
        }
    }
}
