//! HAProxy's HTTP log (`option httplog`), sent through syslog:
//! `haproxy[pid]: IP:port [29/Nov/2026:10:00:00.123] frontend backend/server Tq/Tw/Tc/Tr/Ta status bytes
//! req_cookie res_cookie term_state actconn/feconn/beconn/srvconn/retries srv_queue/backend_queue
//! [{captured request headers}] [{captured response headers}] "GET /path HTTP/1.1"`.
//! TCP-mode lines and HAProxy's own messages are [`Unparsed::Ignored`].

use super::{request_line, Server};
use crate::parse::clock::{self, Civil};
use crate::parse::scan::{self, word};
use crate::parse::syslog;
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use sentinel_core::Timestamp;
use std::borrow::Cow;

/// The HAProxy parser (format name `haproxy`).
///
/// Gives [`LogKind::HttpRequest`] with `method`, `path` (the target as sent, query included; an
/// absolute-form target stays absolute), `status` (`-1` when the client went away first), `bytes`, and
/// `frontend`, `backend`, `server`, `termination`. A request HAProxy could not read (`<BADREQ>`) gives an
/// empty `method` and `path` and the raw text in `request`. The accept date carries no zone and is read
/// at [`ParseCtx::utc_offset_secs`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Haproxy;

const BAD: Unparsed = Unparsed::Malformed("bad_haproxy_line");

impl LineParser for Haproxy {
    fn name(&self) -> &str {
        "haproxy"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        match self.parse_raw(line, ctx) {
            Err(Unparsed::NoMatch) => {}
            r => return r,
        }
        let l = syslog::split(line, ctx)?;
        if Server::of_program(l.program) != Some(Server::Haproxy) {
            return Err(Unparsed::NoMatch);
        }
        let mut parsed = message(l.message, ctx)?;
        parsed.ts = parsed.ts.or(l.ts);
        Ok(parsed)
    }
}

impl Haproxy {
    /// A line without syslog header (`log stdout format raw`): `IP:port [date] …`; anything else gives
    /// [`Unparsed::NoMatch`].
    pub fn parse_raw(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let (client, rest) = word(line);
        if !rest.starts_with('[') || scan::ip_with_port(client).is_none_or(|(_, p)| p.is_none()) {
            return Err(Unparsed::NoMatch);
        }
        message(line, ctx)
    }
}

/// One message from HAProxy (the part after `haproxy[pid]: `).
pub(super) fn message(msg: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
    let (client, rest) = word(msg);
    let Some(date_and_rest) = rest.strip_prefix('[') else {
        // `Proxy web started.`, `Server be/s1 is DOWN …`: HAProxy's own messages.
        return Err(Unparsed::Ignored);
    };
    let (ip, _port) = scan::ip_with_port(client).ok_or(Unparsed::Malformed("bad_address"))?;
    let (date, rest) = date_and_rest.split_once("] ").ok_or(BAD)?;
    let ts = accept_date(date, ctx).ok_or(Unparsed::Malformed("bad_timestamp"))?;
    let (frontend, rest) = word(rest);
    let (backend_server, rest) = word(rest);
    let (timers, rest) = word(rest);
    if timers.split('/').count() != 5 {
        // `option tcplog` has three timers and no request: not an HTTP request.
        return Err(Unparsed::Ignored);
    }
    let (status, rest) = word(rest);
    let status_ok =
        status == "-1" || (status.len() == 3 && status.bytes().all(|c| c.is_ascii_digit()));
    if !status_ok {
        return Err(Unparsed::Malformed("bad_status"));
    }
    let (bytes, rest) = word(rest);
    let bytes = bytes.strip_prefix('+').unwrap_or(bytes);
    if bytes.is_empty() || bytes.len() > 20 || !bytes.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Unparsed::Malformed("bad_bytes"));
    }
    let (_req_cookie, rest) = word(rest);
    let (_res_cookie, rest) = word(rest);
    let (termination, rest) = word(rest);
    let (_conns, rest) = word(rest);
    let (_queues, mut rest) = word(rest);
    // Captured headers: `{a|b} {c}`; HAProxy encodes `{`, `|`, `}` and `"` inside them.
    while let Some(block) = rest.strip_prefix('{') {
        let end = memchr::memchr(b'}', block.as_bytes()).ok_or(BAD)?;
        rest = block[end + 1..].trim_start_matches(' ');
    }
    let request = rest.trim_end().strip_prefix('"').ok_or(BAD)?;
    // A request longer than HAProxy's buffer is cut without its closing quote.
    let request = request.strip_suffix('"').unwrap_or(request);
    let (backend, server) = backend_server
        .split_once('/')
        .unwrap_or((backend_server, ""));
    let mut fields = Vec::with_capacity(9);
    match request_line(request) {
        Some((method, path)) => {
            fields.push(("method", method.to_owned()));
            fields.push(("path", path.to_owned()));
        }
        None => {
            fields.push(("method", String::new()));
            fields.push(("path", String::new()));
            fields.push(("request", request.to_owned()));
        }
    }
    fields.push(("status", status.to_owned()));
    fields.push(("bytes", bytes.to_owned()));
    fields.push(("frontend", frontend.to_owned()));
    fields.push(("backend", backend.to_owned()));
    fields.push(("server", server.to_owned()));
    fields.push(("termination", termination.to_owned()));
    Ok(Parsed {
        ts: Some(ts),
        service: Cow::Borrowed("haproxy"),
        kind: LogKind::HttpRequest,
        src_ip: Some(ip),
        fields,
        extra: Vec::new(),
    })
}

/// `29/Nov/2026:10:00:00.123` (local time, no zone).
fn accept_date(s: &str, ctx: &ParseCtx) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let (hour, minute, second) = clock::hms(&b[12..20])?;
    let millis = match &b[20..] {
        [] => 0,
        [b'.', frac @ ..] => clock::fraction_millis(frac)?,
        _ => return None,
    };
    Civil {
        year: i64::from(clock::digits(&b[7..11])?),
        month: clock::month_abbr(&b[3..6])?,
        day: clock::digits(&b[0..2])?,
        hour,
        minute,
        second,
        millis,
    }
    .to_timestamp(ctx.utc_offset_secs)
}
