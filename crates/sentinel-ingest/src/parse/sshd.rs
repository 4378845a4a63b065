//! OpenSSH server messages, as fail2ban's `sshd` filter knows them in its normal, aggressive and ddos
//! modes: failed and accepted logins, invalid users, pre-authentication disconnects, too many
//! authentication failures and protocol probes. It reads lines from `sshd`, `sshd-session` and `sshd-auth`
//! (newer OpenSSH); the header is split by [`super::syslog`]. Hand-written matching keeps a line well under
//! a microsecond; only `user`, `port` and `method` are allocated.

use super::scan::{self, port_prefix, word};
use super::syslog::{self, SyslogLine};
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use std::borrow::Cow;
use std::net::IpAddr;

/// The sshd parser (format name `sshd`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sshd;

/// What one sshd message says, borrowed from the line.
struct Hit<'a> {
    kind: LogKind,
    ip: IpAddr,
    user: Option<&'a str>,
    port: Option<&'a str>,
    method: Option<&'a str>,
}

const BAD_ADDRESS: Unparsed = Unparsed::Malformed("bad_address");

impl Sshd {
    /// Whether a syslog program name is an OpenSSH server process.
    pub fn is_program(program: &str) -> bool {
        matches!(program, "sshd" | "sshd-session" | "sshd-auth")
    }

    /// Parses an already split syslog line; other programs give [`Unparsed::NoMatch`].
    pub fn parse_syslog(&self, line: &SyslogLine<'_>) -> Result<Parsed, Unparsed> {
        if !Self::is_program(line.program) {
            return Err(Unparsed::NoMatch);
        }
        let mut parsed = self.parse_message(line.message)?;
        parsed.ts = line.ts;
        Ok(parsed)
    }

    /// Parses a bare sshd message (journald's `MESSAGE`, no header); the result has no timestamp.
    pub fn parse_message(&self, message: &str) -> Result<Parsed, Unparsed> {
        let hit = message_hit(message)?;
        let mut fields = Vec::with_capacity(3);
        if let Some(user) = hit.user {
            fields.push(("user", user.to_owned()));
        }
        if let Some(port) = hit.port {
            fields.push(("port", port.to_owned()));
        }
        if let Some(method) = hit.method {
            fields.push(("method", method.to_owned()));
        }
        Ok(Parsed {
            ts: None,
            service: Cow::Borrowed("sshd"),
            kind: hit.kind,
            src_ip: Some(hit.ip),
            fields,
        })
    }
}

impl LineParser for Sshd {
    fn name(&self) -> &str {
        "sshd"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        self.parse_syslog(&syslog::split(line, ctx)?)
    }
}

fn message_hit(msg: &str) -> Result<Hit<'_>, Unparsed> {
    let msg = msg.trim_end();
    let preauth = msg.ends_with("[preauth]");
    match msg.as_bytes().first() {
        Some(b'F') => {
            let rest = msg.strip_prefix("Failed ").ok_or(Unparsed::Ignored)?;
            let (method, rest) = word(rest);
            let rest = rest.strip_prefix("for ").ok_or(Unparsed::Ignored)?;
            user_from(rest, LogKind::AuthFailure, Some(method))
        }
        Some(b'A') => {
            let rest = msg.strip_prefix("Accepted ").ok_or(Unparsed::Ignored)?;
            let (method, rest) = word(rest);
            let rest = rest.strip_prefix("for ").ok_or(Unparsed::Ignored)?;
            user_from(rest, LogKind::AuthSuccess, Some(method))
        }
        Some(b'I') => {
            // The user may be empty: `Invalid user  from 1.2.3.4 port 22`.
            let rest = msg.strip_prefix("Invalid user ").ok_or(Unparsed::Ignored)?;
            user_from(rest, LogKind::InvalidUser, None)
        }
        Some(b'U') => {
            if let Some(rest) = msg.strip_prefix("User ") {
                if rest.contains(" not allowed because ") {
                    return user_from(rest, LogKind::AuthFailure, None);
                }
            } else if let Some(rest) = msg.strip_prefix("Unable to negotiate with ") {
                return address_after(rest, LogKind::ProtocolProbe, None);
            }
            Err(Unparsed::Ignored)
        }
        Some(b'p') => match scan::pam_failure(msg) {
            Some((_, Some(rhost), user)) => {
                let ip = scan::ip(rhost).ok_or(BAD_ADDRESS)?;
                Ok(Hit {
                    kind: LogKind::AuthFailure,
                    ip,
                    user,
                    port: None,
                    method: None,
                })
            }
            _ => Err(Unparsed::Ignored),
        },
        Some(b'C') => {
            let rest = msg
                .strip_prefix("Connection closed by ")
                .or_else(|| msg.strip_prefix("Connection reset by "))
                .ok_or(Unparsed::Ignored)?;
            user_then_address(rest, preauth, LogKind::PreauthDisconnect)
        }
        Some(b'D') => {
            if let Some(rest) = msg.strip_prefix("Disconnected from ") {
                user_then_address(rest, preauth, LogKind::PreauthDisconnect)
            } else if let Some(rest) = msg.strip_prefix("Disconnecting ") {
                let kind = if msg.contains(": Too many authentication failures") {
                    LogKind::TooManyAuthFailures
                } else {
                    LogKind::PreauthDisconnect
                };
                user_then_address(rest, preauth || kind == LogKind::TooManyAuthFailures, kind)
            } else if let Some(rest) =
                msg.strip_prefix("Did not receive identification string from ")
            {
                address_after(rest, LogKind::ProtocolProbe, None)
            } else {
                Err(Unparsed::Ignored)
            }
        }
        Some(b'R') => {
            let rest = msg
                .strip_prefix("Received disconnect from ")
                .ok_or(Unparsed::Ignored)?;
            if !preauth {
                return Err(Unparsed::Ignored);
            }
            address_after(rest, LogKind::PreauthDisconnect, None)
        }
        Some(b'B') => {
            let rest = msg
                .strip_prefix("Bad protocol version identification")
                .ok_or(Unparsed::Ignored)?;
            let mut from = rest.len();
            // The banner is attacker text and may itself say " from "; the address follows the last one.
            while let Some(i) = rest[..from].rfind(" from ") {
                if let Ok(hit) = address_after(&rest[i + 6..], LogKind::ProtocolProbe, None) {
                    return Ok(hit);
                }
                from = i;
            }
            Err(BAD_ADDRESS)
        }
        Some(b'b') => {
            let rest = msg
                .strip_prefix("banner exchange: Connection from ")
                .ok_or(Unparsed::Ignored)?;
            address_after(rest, LogKind::ProtocolProbe, None)
        }
        Some(b'e') => match msg.strip_prefix("error: ") {
            Some(rest) => error_hit(rest),
            None => Err(Unparsed::Ignored),
        },
        Some(b'm') => error_hit(msg),
        _ => Err(Unparsed::Ignored),
    }
}

/// Messages sshd logs with an `error: ` prefix (older versions log some without it).
fn error_hit(msg: &str) -> Result<Hit<'_>, Unparsed> {
    if let Some(rest) = msg.strip_prefix("maximum authentication attempts exceeded for ") {
        return user_from(rest, LogKind::TooManyAuthFailures, None);
    }
    if let Some(rest) = msg
        .strip_prefix("PAM: Authentication failure for ")
        .or_else(|| {
            msg.strip_prefix("PAM: User not known to the underlying authentication module for ")
        })
    {
        return user_from(rest, LogKind::AuthFailure, None);
    }
    Err(Unparsed::Ignored)
}

/// `[invalid user ]USER from IP[ port N]…`. The user may contain spaces (and even " from "), so the
/// address is looked for after the last " from " that is followed by one.
fn user_from<'a>(
    rest: &'a str,
    kind: LogKind,
    method: Option<&'a str>,
) -> Result<Hit<'a>, Unparsed> {
    let (kind, rest) = match rest.strip_prefix("invalid user ") {
        Some(r) if kind == LogKind::AuthFailure => (LogKind::InvalidUser, r),
        Some(r) => (kind, r),
        _ => (kind, rest),
    };
    let mut end = rest.len();
    let mut saw_from = false;
    while let Some(i) = rest[..end].rfind(" from ") {
        saw_from = true;
        if let Ok(mut hit) = address_after(&rest[i + 6..], kind, method) {
            hit.user = Some(&rest[..i]);
            return Ok(hit);
        }
        end = i;
    }
    Err(if saw_from {
        BAD_ADDRESS
    } else {
        Unparsed::Ignored
    })
}

/// `IP[ port N]` at the start of `rest`; the address ends at a space, or at a `:` right after it.
fn address_after<'a>(
    rest: &'a str,
    kind: LogKind,
    method: Option<&'a str>,
) -> Result<Hit<'a>, Unparsed> {
    let (token, _) = word(rest);
    let ip = match scan::ip(token) {
        Some(ip) => ip,
        // `1.2.3.4: 11: Bye Bye` (no port): the address ends at the colon.
        None => token
            .strip_suffix(':')
            .and_then(scan::ip)
            .ok_or(BAD_ADDRESS)?,
    };
    let port = port_prefix(&rest[token.len()..]).map(|(p, _)| p);
    Ok(Hit {
        kind,
        ip,
        user: None,
        port,
        method,
    })
}

/// `[invalid user X |authenticating user X |user X ]IP port N…` (Connection closed, Disconnected from,
/// Disconnecting). Without `[preauth]` it is an ordinary session end and is ignored.
fn user_then_address(rest: &str, preauth: bool, kind: LogKind) -> Result<Hit<'_>, Unparsed> {
    if !preauth {
        return Err(Unparsed::Ignored);
    }
    let Some(user_and_ip) = rest
        .strip_prefix("invalid user ")
        .or_else(|| rest.strip_prefix("authenticating user "))
        .or_else(|| rest.strip_prefix("user "))
    else {
        return address_after(rest, kind, None);
    };
    // The address is the word before the last " port " (users may contain spaces).
    let i = user_and_ip.rfind(" port ").ok_or(BAD_ADDRESS)?;
    let (user, ip_text) = user_and_ip[..i].rsplit_once(' ').ok_or(BAD_ADDRESS)?;
    let ip = scan::ip(ip_text).ok_or(BAD_ADDRESS)?;
    let port = port_prefix(&user_and_ip[i..]).map(|(p, _)| p);
    Ok(Hit {
        kind,
        ip,
        user: Some(user),
        port,
        method: None,
    })
}
