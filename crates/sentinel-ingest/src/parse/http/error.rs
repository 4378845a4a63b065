//! nginx and apache error logs, for the lines fail2ban's `nginx-http-auth`, `nginx-limit-req` and
//! `apache-auth` filters act on: basic-auth user-not-found and password-mismatch
//! ([`LogKind::HttpAuthFailure`]), `limit_req`/`limit_conn` refusals ([`LogKind::HttpRateLimited`]) and
//! nginx mail-proxy login failures ([`LogKind::MailAuthFailure`]), in their own files or inside syslog.
//! Every other error-log line of a recognised layout is [`Unparsed::Ignored`].

use super::{request_line, Server};
use crate::parse::clock::{self, Civil};
use crate::parse::scan::{self, after, quoted};
use crate::parse::syslog;
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use sentinel_core::Timestamp;
use std::borrow::Cow;
use std::net::IpAddr;

/// Which error-log layout(s) an [`ErrorLog`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorLogFlavor {
    /// `2026/11/27 19:56:49 [error] 1234#0: *5 message, client: IP, server: …`.
    Nginx,
    /// `[Fri Nov 27 19:56:49.123456 2026] [auth_basic:error] [pid 1] [client IP:port] AH01618: …`.
    Apache,
    /// Either, told apart by the first byte.
    #[default]
    Either,
}

/// The error-log parser (format names `nginx-error`, `apache-error`).
///
/// Timestamps carry no zone and are read at [`ParseCtx::utc_offset_secs`]. Fields: `user` (auth
/// failures), `zone` and `excess` (rate limiting), `method`/`path` from nginx's `request:` or apache's URI,
/// `code` (apache `AHnnnnn`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorLog {
    flavor: ErrorLogFlavor,
}

impl ErrorLog {
    /// A parser for the given layout(s).
    pub const fn new(flavor: ErrorLogFlavor) -> Self {
        Self { flavor }
    }
}

const BAD_ADDRESS: Unparsed = Unparsed::Malformed("bad_address");
const BAD_TIMESTAMP: Unparsed = Unparsed::Malformed("bad_timestamp");

impl LineParser for ErrorLog {
    fn name(&self) -> &str {
        match self.flavor {
            ErrorLogFlavor::Nginx => "nginx-error",
            ErrorLogFlavor::Apache => "apache-error",
            ErrorLogFlavor::Either => "http-error",
        }
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let direct = match (line.as_bytes().first(), self.flavor) {
            (Some(b'['), ErrorLogFlavor::Apache | ErrorLogFlavor::Either) => apache(line, ctx),
            (Some(c), ErrorLogFlavor::Nginx | ErrorLogFlavor::Either) if c.is_ascii_digit() => {
                nginx(line, ctx)
            }
            _ => Err(Unparsed::NoMatch),
        };
        if direct != Err(Unparsed::NoMatch) {
            return direct;
        }
        // The same line sent through syslog (`… web1 nginx: 2026/11/29 10:00:00 [error] …`).
        let Ok(l) = syslog::split(line, ctx) else {
            return direct;
        };
        let mut parsed = match (Server::of_program(l.program), self.flavor) {
            (Some(Server::Nginx), ErrorLogFlavor::Nginx | ErrorLogFlavor::Either) => {
                nginx_message(l.message, l.ts, ctx)?
            }
            (Some(Server::Apache), ErrorLogFlavor::Apache | ErrorLogFlavor::Either) => {
                apache_message(l.message, l.ts, ctx)?
            }
            _ => return direct,
        };
        parsed.ts = parsed.ts.or(l.ts);
        Ok(parsed)
    }
}

/// An nginx error-log message from syslog: with its own time, or without it (`[error] 1234#0: …`, the
/// header's time `ts` then stands).
pub(super) fn nginx_message(
    msg: &str,
    ts: Option<Timestamp>,
    ctx: &ParseCtx,
) -> Result<Parsed, Unparsed> {
    match msg.as_bytes().first() {
        Some(c) if c.is_ascii_digit() => nginx(msg, ctx),
        Some(b'[') if is_nginx_level(&msg[1..]) => nginx_body(&msg[1..], ts),
        _ => Err(Unparsed::NoMatch),
    }
}

/// `emerg] `, `error] `, … at the start of `s`.
fn is_nginx_level(s: &str) -> bool {
    [
        "emerg] ", "alert] ", "crit] ", "error] ", "warn] ", "notice] ", "info] ", "debug] ",
    ]
    .iter()
    .any(|l| s.starts_with(l))
}

/// An apache error-log message from syslog: with its own `[time]`, or starting at the module section
/// (`[auth_basic:error] [pid 1] [client …] …`, the header's time `ts` then stands).
pub(super) fn apache_message(
    msg: &str,
    ts: Option<Timestamp>,
    ctx: &ParseCtx,
) -> Result<Parsed, Unparsed> {
    let Some(inner) = msg.strip_prefix('[') else {
        return Err(Unparsed::NoMatch);
    };
    let first_section = inner.split_once(']').map_or("", |(s, _)| s);
    if apache_time(first_section).is_some() {
        apache(msg, ctx)
    } else if first_section.contains(':') || first_section.starts_with("client ") {
        apache_body(msg, ts)
    } else {
        Err(Unparsed::NoMatch)
    }
}

fn hit(
    service: &'static str,
    ts: Option<Timestamp>,
    kind: LogKind,
    ip: IpAddr,
    fields: Vec<(&'static str, String)>,
) -> Parsed {
    Parsed {
        ts,
        service: Cow::Borrowed(service),
        kind,
        src_ip: Some(ip),
        fields,
        extra: Vec::new(),
    }
}

/// `2026/11/27 19:56:49 [level] pid#tid: [*cid ]message[, client: IP, server: S, request: "R", …]`.
fn nginx(line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
    let b = line.as_bytes();
    if b.len() < 21
        || b[4] != b'/'
        || b[7] != b'/'
        || b[10] != b' '
        || b[19] != b' '
        || b[20] != b'['
    {
        return Err(Unparsed::NoMatch);
    }
    let (hour, minute, second) = clock::hms(&b[11..19]).ok_or(BAD_TIMESTAMP)?;
    let ts = Civil {
        year: clock::digits(&b[0..4])
            .map(i64::from)
            .ok_or(BAD_TIMESTAMP)?,
        month: clock::digits(&b[5..7]).ok_or(BAD_TIMESTAMP)?,
        day: clock::digits(&b[8..10]).ok_or(BAD_TIMESTAMP)?,
        hour,
        minute,
        second,
        millis: 0,
    }
    .to_timestamp(ctx.utc_offset_secs)
    .ok_or(BAD_TIMESTAMP)?;
    nginx_body(&line[21..], Some(ts))
}

/// `level] pid#tid: [*cid ]message…`, the part of an nginx error line after its time and `[`.
fn nginx_body(rest: &str, ts: Option<Timestamp>) -> Result<Parsed, Unparsed> {
    let (_level, rest) = rest.split_once("] ").ok_or(Unparsed::NoMatch)?;
    let (_pid, rest) = rest.split_once(": ").ok_or(Unparsed::NoMatch)?;
    let msg = match rest.strip_prefix('*') {
        Some(r) => r.split_once(' ').map_or("", |(_, m)| m),
        None => rest,
    };
    let mut fields = Vec::with_capacity(5);
    let kind = if let Some(r) = msg.strip_prefix("user \"") {
        // The user is the client's text and may hold quotes (not `:`, where basic auth splits it): it ends
        // at the quote that starts nginx's own wording.
        let end = [
            r.find("\": password mismatch"),
            r.find("\" was not found in \""),
        ]
        .into_iter()
        .flatten()
        .min()
        .ok_or(Unparsed::Ignored)?;
        fields.push(("user", r[..end].to_owned()));
        LogKind::HttpAuthFailure
    } else if let Some(r) = msg.strip_prefix("limiting requests, excess: ") {
        let (excess, tail) = r.split_once(' ').ok_or(Unparsed::Ignored)?;
        fields.push(("excess", excess.to_owned()));
        if let Some((zone, _)) = after(tail, "zone \"").and_then(|z| z.split_once('"')) {
            fields.push(("zone", zone.to_owned()));
        }
        LogKind::HttpRateLimited
    } else if let Some(r) = msg.strip_prefix("limiting connections by zone \"") {
        if let Some((zone, _)) = r.split_once('"') {
            fields.push(("zone", zone.to_owned()));
        }
        LogKind::HttpRateLimited
    } else if let Some(r) = msg.strip_prefix("client login failed: \"") {
        // ngx_mail_auth_http_module: `client login failed: "<Auth-Status>" while in http auth state,
        // client: IP, server: ADDR:PORT, login: "user"`.
        if let Some((reason, _)) = r.split_once("\" while ") {
            fields.push(("reason", reason.to_owned()));
        }
        // The login is the client's text and may itself hold quotes: it ends at the last one.
        if let Some((login, _)) = after(msg, ", login: \"").and_then(|l| l.rsplit_once('"')) {
            fields.push(("user", login.to_owned()));
        }
        if let Some(server) = after(msg, ", server: ").and_then(|s| s.split(',').next()) {
            fields.push(("server", server.to_owned()));
        }
        LogKind::MailAuthFailure
    } else {
        return Err(Unparsed::Ignored);
    };
    let client = after(msg, ", client: ").ok_or(BAD_ADDRESS)?;
    let client = client.split(',').next().unwrap_or(client);
    let ip = scan::ip(client).ok_or(BAD_ADDRESS)?;
    if let Some((method, path)) = after(msg, ", request: ")
        .and_then(quoted)
        .and_then(|(r, _)| request_line(r))
    {
        fields.push(("method", method.to_owned()));
        fields.push(("path", path.to_owned()));
    }
    Ok(hit("nginx", ts, kind, ip, fields))
}

/// `[Www Mmm dd hh:mm:ss[.ffffff] yyyy] [module:level] [pid N[:tid M]] [client IP[:port]] message`
/// (apache 2.4; 2.2's `[error] [client IP] message` too).
fn apache(line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
    let (stamp, rest) = line[1..].split_once("] ").ok_or(Unparsed::NoMatch)?;
    let ts = apache_time(stamp).ok_or(BAD_TIMESTAMP)?;
    let ts = ts.to_timestamp(ctx.utc_offset_secs).ok_or(BAD_TIMESTAMP)?;
    apache_body(rest, Some(ts))
}

/// `[module:level] [pid N[:tid M]] [client IP[:port]] message`, an apache error line after its time.
fn apache_body(mut rest: &str, ts: Option<Timestamp>) -> Result<Parsed, Unparsed> {
    let mut client = None;
    while let Some(section) = rest.strip_prefix('[') {
        let Some((inner, tail)) = section.split_once(']') else {
            break;
        };
        if let Some(c) = inner.strip_prefix("client ") {
            client = Some(c);
        }
        rest = tail.strip_prefix(' ').unwrap_or(tail);
    }
    let (code, msg) = match rest.split_once(": ") {
        Some((code, msg)) if code.len() == 7 && code.starts_with("AH") => (Some(code), msg),
        _ => (None, rest),
    };
    let mut fields = Vec::with_capacity(4);
    if let Some(r) = msg.strip_prefix("user ") {
        if let Some((user, path)) = r.split_once(" not found: ") {
            fields.push(("user", user.to_owned()));
            fields.push(("path", path.to_owned()));
        } else if let Some((user, tail)) = r.split_once(": authentication failure for \"") {
            fields.push(("user", user.to_owned()));
            if let Some((path, _)) = tail.split_once('"') {
                fields.push(("path", path.to_owned()));
            }
        } else {
            return Err(Unparsed::Ignored);
        }
    } else if let Some(path) = msg.strip_prefix("client used wrong authentication scheme: ") {
        fields.push(("path", path.to_owned()));
    } else {
        return Err(Unparsed::Ignored);
    }
    if let Some(code) = code {
        fields.push(("code", code.to_owned()));
    }
    let (ip, _port) = client.and_then(scan::ip_with_port).ok_or(BAD_ADDRESS)?;
    Ok(hit("apache", ts, LogKind::HttpAuthFailure, ip, fields))
}

/// `Fri Nov 27 19:56:49.123456 2026` (day zero- or space-padded, fraction optional).
fn apache_time(s: &str) -> Option<Civil> {
    let mut parts = s.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let month = clock::month_abbr(parts.next()?.as_bytes())?;
    let day = clock::digits(parts.next()?.as_bytes())?;
    let time = parts.next()?.as_bytes();
    let year = clock::digits(parts.next()?.as_bytes())?;
    if parts.next().is_some() {
        return None;
    }
    let (hour, minute, second) = clock::hms(time)?;
    let millis = match time.get(8..) {
        None | Some([]) => 0,
        Some([b'.', frac @ ..]) => clock::fraction_millis(frac)?,
        Some(_) => return None,
    };
    Some(Civil {
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
        millis,
    })
}
