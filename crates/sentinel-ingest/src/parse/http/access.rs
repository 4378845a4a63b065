//! Access logs in the NCSA common and combined formats, as nginx and apache write them by default:
//! `IP ident user [27/Nov/2026:19:56:49 +0100] "GET /p HTTP/1.1" 404 123 "referer" "UA"`.

use super::request_line;
use crate::parse::clock::{self, Civil};
use crate::parse::scan::{self, quoted, unescape, word};
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use sentinel_core::Timestamp;
use std::borrow::Cow;

/// The access-log parser (format names `access`, `nginx`, `apache`).
///
/// Gives [`LogKind::HttpRequest`] with fields `method`, `path` (the request target, query included),
/// `status`, `bytes` (`-` reads as `0`), and when present `user`, `referer`, `user_agent`. A request line
/// that is not `METHOD target [HTTP/x]` (e.g. a TLS handshake sent to a plain port) gives an empty `method`
/// and `path` and the raw text in `request`.
#[derive(Debug, Clone, Copy)]
pub struct AccessLog {
    service: &'static str,
}

impl AccessLog {
    /// An access-log parser reporting its lines as coming from `service` (`nginx`, `apache`, `http`).
    pub const fn new(service: &'static str) -> Self {
        Self { service }
    }
}

impl Default for AccessLog {
    fn default() -> Self {
        Self::new("http")
    }
}

impl LineParser for AccessLog {
    fn name(&self) -> &str {
        "access"
    }

    fn parse(&self, line: &str, _ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let (client, rest) = word(line);
        let (_ident, rest) = word(rest);
        let (user, rest) = word(rest);
        let rest = rest.strip_prefix('[').ok_or(Unparsed::NoMatch)?;
        let close = memchr::memchr(b']', rest.as_bytes()).ok_or(Unparsed::NoMatch)?;
        let rest_after = rest[close + 1..]
            .strip_prefix(" \"")
            .ok_or(Unparsed::NoMatch)?;
        let ts = clf_time(&rest[..close]).ok_or(Unparsed::Malformed("bad_timestamp"))?;
        let ip = scan::ip(client).ok_or(Unparsed::Malformed("bad_address"))?;
        let (request, rest) = quoted_from(rest_after)?;
        let rest = rest
            .strip_prefix(' ')
            .ok_or(Unparsed::Malformed("bad_status"))?;
        let (status, rest) = word(rest);
        if status.len() != 3 || !status.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Unparsed::Malformed("bad_status"));
        }
        let (bytes, rest) = word(rest);
        let bytes = match bytes {
            "-" => "0",
            b if !b.is_empty() && b.len() <= 20 && b.bytes().all(|c| c.is_ascii_digit()) => b,
            _ => return Err(Unparsed::Malformed("bad_bytes")),
        };
        let mut fields = Vec::with_capacity(7);
        match request_line(request) {
            Some((method, path)) => {
                fields.push(("method", method.to_owned()));
                fields.push(("path", unescape(path).into_owned()));
            }
            None => {
                fields.push(("method", String::new()));
                fields.push(("path", String::new()));
                fields.push(("request", unescape(request).into_owned()));
            }
        }
        fields.push(("status", status.to_owned()));
        fields.push(("bytes", bytes.to_owned()));
        if user != "-" && !user.is_empty() {
            fields.push(("user", user.to_owned()));
        }
        // Combined format: `"referer" "user agent"`; common format stops after the size.
        if let Some((referer, rest)) = quoted(rest) {
            if referer != "-" {
                fields.push(("referer", unescape(referer).into_owned()));
            }
            if let Some((agent, _)) = rest.strip_prefix(' ').and_then(quoted) {
                if agent != "-" {
                    fields.push(("user_agent", unescape(agent).into_owned()));
                }
            }
        }
        Ok(Parsed {
            ts: Some(ts),
            service: Cow::Borrowed(self.service),
            kind: LogKind::HttpRequest,
            src_ip: Some(ip),
            fields,
        })
    }
}

/// The quoted request after `[time] ` (the opening quote already consumed).
fn quoted_from(after_open: &str) -> Result<(&str, &str), Unparsed> {
    let b = after_open.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok((&after_open[..i], &after_open[i + 1..])),
            _ => i += 1,
        }
    }
    Err(Unparsed::Malformed("bad_request"))
}

/// `27/Nov/2026:19:56:49 +0100`.
fn clf_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return None;
    }
    let (hour, minute, second) = clock::hms(&b[12..20])?;
    let civil = Civil {
        year: i64::from(clock::digits(&b[7..11])?),
        month: clock::month_abbr(&b[3..6])?,
        day: clock::digits(&b[0..2])?,
        hour,
        minute,
        second,
        millis: 0,
    };
    civil.to_timestamp(clock::zone(&b[21..])?)
}
