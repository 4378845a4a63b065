//! Access logs in the NCSA common and combined formats, as nginx and apache write them by default:
//! `IP ident user [27/Nov/2026:19:56:49 +0100] "GET /p HTTP/1.1" 404 123 "referer" "UA"`, with or
//! without a leading virtual host (Apache's `vhost_combined`), Traefik's CLF (the same line followed by
//! a request count, router, backend URL and duration), and any of these inside a syslog line.

use super::{request_line, Server};
use crate::parse::clock::{self, Civil};
use crate::parse::scan::{self, quoted, unescape, word};
use crate::parse::syslog;
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use sentinel_core::Timestamp;
use std::borrow::Cow;

/// The access-log parser (format names `access`, `nginx`, `apache`).
///
/// Gives [`LogKind::HttpRequest`] with fields `method`, `path` (the request target, query included),
/// `status`, `bytes` (`-` reads as `0`), and when present `user`, `referer`, `user_agent` and `vhost`
/// (the leading virtual host, port dropped). A syslog line from an HTTP server's program (see
/// [`Server`]) is read by its message; its service is the program's unless the parser names one. A request line
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

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        match clf(line, self.service) {
            Err(Unparsed::NoMatch) => {}
            r => return r,
        }
        // The same line sent through syslog (`Nov 29 10:00:00 web1 nginx: 198.51.100.7 - - […] …`).
        let Ok(l) = syslog::split(line, ctx) else {
            return Err(Unparsed::NoMatch);
        };
        let Some(server) = Server::of_program(l.program) else {
            return Err(Unparsed::NoMatch);
        };
        let service = match self.service {
            "http" => server.service(),
            own if own == server.service() => own,
            _ => return Err(Unparsed::NoMatch),
        };
        let mut parsed = clf(l.message, service)?;
        parsed.ts = parsed.ts.or(l.ts);
        Ok(parsed)
    }
}

/// One common/combined line, with or without a leading virtual host (`www.example.com:443 IP - - […]`,
/// Apache's `vhost_combined`; `www.example.com IP - - […]`, nginx's usual multi-site variant).
pub(crate) fn clf(line: &str, service: &'static str) -> Result<Parsed, Unparsed> {
    let (vhost, client, user, rest) = clf_head(line).ok_or(Unparsed::NoMatch)?;
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
    let mut fields = Vec::with_capacity(8);
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
    if let Some(vhost) = vhost {
        fields.push(("vhost", host_without_port(vhost).to_owned()));
    }
    let mut service = service;
    // Combined format: `"referer" "user agent"`; common format stops after the size.
    if let Some((referer, rest)) = quoted(rest) {
        if referer != "-" {
            fields.push(("referer", unescape(referer).into_owned()));
        }
        if let Some((agent, rest)) = rest.strip_prefix(' ').and_then(quoted) {
            if agent != "-" {
                fields.push(("user_agent", unescape(agent).into_owned()));
            }
            if service == "http" && is_traefik_tail(rest) {
                service = "traefik";
            }
        }
    }
    Ok(Parsed {
        ts: Some(ts),
        service: Cow::Borrowed(service),
        kind: LogKind::HttpRequest,
        src_ip: Some(ip),
        fields,
        extra: Vec::new(),
    })
}

/// The words before `[time]`: `(vhost, client, user, rest at "[")`.
///
/// `IP ident user [` or `vhost IP ident user [`, one word each. The user (`$remote_user`, `%u`) is the
/// client's own text from its `Authorization` header and may hold spaces (nginx and apache escape quotes and
/// control bytes, not spaces): `IP - user with spaces [` is read too, the user running up to the first ` [`
/// that opens a valid time followed by ` "`. A virtual host may hold spaces as well (nginx's `$host` is the
/// client's `Host`), so that form is only taken when no word of the user is an address: in a virtual-host
/// layout the real address would be such a word, and the first words the client's own.
fn clf_head(line: &str) -> Option<(Option<&str>, &str, &str, &str)> {
    // `[time] "` at the start of `s`.
    let opens_time = |s: &str| {
        s.get(1..27).is_some_and(|stamp| clf_time(stamp).is_some())
            && s.get(27..).is_some_and(|r| r.starts_with("] \""))
    };
    let (first, r1) = word(line);
    let (second, r2) = word(r1);
    let (third, r3) = word(r2);
    // An address is never `-`: `IP - a b [` is a user with a space, not a virtual host.
    let user_with_spaces = second == "-" && scan::ip(first).is_some();
    if r3.starts_with('[') && (!user_with_spaces || opens_time(r3)) {
        return Some((None, first, third, r3));
    }
    if first.is_empty() {
        return None;
    }
    if !user_with_spaces {
        let (fourth, r4) = word(r3);
        return r4
            .starts_with('[')
            .then_some((Some(first), second, fourth, r4));
    }
    let bytes = line.as_bytes();
    let user_from = line.len() - r2.len();
    let mut from = user_from;
    let at = loop {
        let Some(found) = memchr::memmem::find(&bytes[from..], b" [") else {
            // No valid time: read the words as they stand (a bad time is then malformed, not foreign).
            return r3.starts_with('[').then_some((None, first, third, r3));
        };
        let at = from + found;
        if opens_time(&line[at + 1..]) {
            break at;
        }
        from = at + 2;
    };
    let user = &line[user_from..at];
    let holds_address = user.split(' ').any(|w| scan::ip_with_port(w).is_some());
    (!holds_address).then_some((None, first, user, &line[at + 1..]))
}

/// `www.example.com:443` → `www.example.com`; an IPv6 address or a name without port is kept whole.
fn host_without_port(vhost: &str) -> &str {
    match vhost.rsplit_once(':') {
        Some((host, port)) if scan::is_port(port) && !host.contains(':') => host,
        _ => vhost,
    }
}

/// Traefik's CLF ends ` 42 "router@docker" "http://10.0.0.2:80" 3ms` after the user agent.
fn is_traefik_tail(rest: &str) -> bool {
    let Some(rest) = rest.strip_prefix(' ') else {
        return false;
    };
    let (count, rest) = word(rest);
    if count.is_empty() || !count.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Some((_router, rest)) = quoted(rest) else {
        return false;
    };
    let Some((_url, rest)) = rest.strip_prefix(' ').and_then(quoted) else {
        return false;
    };
    rest.strip_prefix(' ')
        .and_then(|d| d.trim_end().strip_suffix("ms"))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
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
