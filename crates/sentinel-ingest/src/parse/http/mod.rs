//! HTTP server logs: access logs in the common and combined formats ([`AccessLog`], nginx and apache alike,
//! with or without a leading virtual host), the error logs of nginx and apache ([`ErrorLog`]) for
//! basic-auth failures, `limit_req` refusals and nginx mail-proxy login failures, Traefik's and Caddy's
//! JSON access logs ([`Traefik`], [`Caddy`]), HAProxy's HTTP log ([`Haproxy`]), and all of these inside
//! syslog lines ([`parse_syslog`]). Reads what the server wrote; judging requests is left to detection.

mod access;
mod caddy;
mod error;
mod haproxy;
mod traefik;

pub use access::AccessLog;
pub use caddy::Caddy;
pub use error::{ErrorLog, ErrorLogFlavor};
pub use haproxy::Haproxy;
pub use traefik::Traefik;

pub(crate) use caddy::looks_like_json_access as caddy_json;
pub(crate) use traefik::looks_like_json_access as traefik_json;

use super::syslog::SyslogLine;
use crate::{LineParser, ParseCtx, Parsed, Unparsed};

/// An HTTP server, as its syslog program name tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// `nginx`, `nginx-access`, … (access, error and mail-proxy lines).
    Nginx,
    /// `apache2`, `apache`, `httpd` (access and error lines).
    Apache,
    /// `traefik` (JSON or CLF access lines).
    Traefik,
    /// `caddy` (JSON access lines).
    Caddy,
    /// `haproxy` (HTTP log lines).
    Haproxy,
}

impl Server {
    /// The server a syslog program (tag or APP-NAME) belongs to, as CrowdSec's parsers pick them by prefix.
    pub fn of_program(program: &str) -> Option<Self> {
        let b = program.as_bytes();
        let starts = |p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
        Some(if starts(b"nginx") {
            Self::Nginx
        } else if starts(b"apache") || starts(b"httpd") {
            Self::Apache
        } else if starts(b"traefik") {
            Self::Traefik
        } else if starts(b"caddy") {
            Self::Caddy
        } else if starts(b"haproxy") {
            Self::Haproxy
        } else {
            return None;
        })
    }

    /// The service name its lines are reported under.
    pub fn service(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Apache => "apache",
            Self::Traefik => "traefik",
            Self::Caddy => "caddy",
            Self::Haproxy => "haproxy",
        }
    }
}

/// Parses the message of a syslog line sent by an HTTP server; `None` when the program is not one.
///
/// The message's own time wins over the header's. A message none of the server's formats reads gives
/// [`Unparsed::NoMatch`] (a custom log format, counted as such), not [`Unparsed::Ignored`].
pub fn parse_syslog(line: &SyslogLine<'_>, ctx: &ParseCtx) -> Option<Result<Parsed, Unparsed>> {
    let server = Server::of_program(line.program)?;
    let msg = line.message;
    let result = match server {
        Server::Nginx => match access::clf(msg, "nginx") {
            Err(Unparsed::NoMatch) => error::nginx_message(msg, line.ts, ctx),
            r => r,
        },
        Server::Apache => match access::clf(msg, "apache") {
            Err(Unparsed::NoMatch) => error::apache_message(msg, line.ts, ctx),
            r => r,
        },
        Server::Traefik => match Traefik.parse(msg, ctx) {
            Err(Unparsed::NoMatch) => access::clf(msg, "traefik"),
            r => r,
        },
        Server::Caddy => Caddy.parse(msg, ctx),
        Server::Haproxy => haproxy::message(msg, ctx),
    };
    Some(result.map(|mut p| {
        p.ts = p.ts.or(line.ts);
        p
    }))
}

/// Reads a line as `server` writes it on its own (`read`), or else inside a syslog line whose program is
/// `server`, the syslog time standing in when the message has none.
fn bare_or_in_syslog(
    line: &str,
    ctx: &ParseCtx,
    server: Server,
    read: impl Fn(&str, &ParseCtx) -> Result<Parsed, Unparsed>,
) -> Result<Parsed, Unparsed> {
    match read(line, ctx) {
        Err(Unparsed::NoMatch) => {}
        r => return r,
    }
    let Ok(l) = super::syslog::split(line, ctx) else {
        return Err(Unparsed::NoMatch);
    };
    if Server::of_program(l.program) != Some(server) {
        return Err(Unparsed::NoMatch);
    }
    let mut parsed = read(l.message, ctx)?;
    parsed.ts = parsed.ts.or(l.ts);
    Ok(parsed)
}

/// `GET /path HTTP/1.1` → method and target; anything else (TLS bytes sent to a plain port, garbage) →
/// `None`.
fn request_line(request: &str) -> Option<(&str, &str)> {
    let mut parts = request.splitn(3, ' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let ok_method = !method.is_empty()
        && method.len() <= 24
        && method
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c == b'-' || c == b'_');
    let ok_version = parts.next().is_none_or(|v| v.starts_with("HTTP/"));
    (ok_method && !target.is_empty() && ok_version).then_some((method, target))
}
