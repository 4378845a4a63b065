//! OpenSSH server messages, as fail2ban's `sshd` filter (normal, aggressive and ddos modes) and CrowdSec's
//! `sshd-logs` parser know them: failed and accepted logins, invalid users, pre-authentication
//! disconnects, too many authentication failures and protocol probes. It reads lines from `sshd`,
//! `sshd-session` and `sshd-auth` (newer OpenSSH); the header is split by [`super::syslog`]. Hand-written
//! matching keeps a line well under a microsecond; only the fields returned are allocated.

use super::scan::{self, port_prefix, word};
use super::syslog::{self, SyslogLine};
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use std::borrow::Cow;
use std::net::IpAddr;

/// The sshd parser (format name `sshd`).
///
/// Fields: `user`, `port`, `method` where the line names them, and for [`LogKind::ProtocolProbe`] a
/// `probe` saying which protocol-level failure it is:
///
/// | `probe` | message |
/// |---|---|
/// | `timeout` | `fatal: Timeout before authentication for IP port N` |
/// | `dispatch_fatal` | `ssh_dispatch_run_fatal: Connection from IP port N: … [preauth]` |
/// | `kex_ident` | `error: kex_exchange_identification: …` (sshd names no address: `src_ip` is `None`) |
/// | `banner` | `banner exchange: Connection from IP port N: invalid format`, `Bad protocol version identification … from IP` |
/// | `no_ident` | `Did not receive identification string from IP` |
/// | `negotiate` | `Unable to negotiate with IP port N: no matching … found` |
/// | `closed_preauth` | `Connection closed by IP port N [preauth]` (no user) |
/// | `reset_preauth` | `Connection reset by [… user U ]IP port N [preauth]` |
///
/// `Disconnected from authenticating user U IP port N [preauth]` and `Connection closed by authenticating
/// user U IP port N [preauth]` are [`LogKind::AuthFailure`] (as CrowdSec counts them: a client that gave
/// up on a real account); the `invalid user` forms of those lines stay [`LogKind::PreauthDisconnect`]
/// because the `Invalid user` line before them is already counted. `Received disconnect from IP … [preauth]`
/// is [`LogKind::PreauthDisconnect`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Sshd;

/// What one sshd message says, borrowed from the line.
struct Hit<'a> {
    kind: LogKind,
    /// `None` only for messages sshd logs without the peer (`kex_exchange_identification: …`).
    ip: Option<IpAddr>,
    user: Option<&'a str>,
    port: Option<&'a str>,
    method: Option<&'a str>,
    /// For [`LogKind::ProtocolProbe`]: which protocol-level failure (see [`Sshd`]).
    probe: Option<&'static str>,
}

impl Hit<'_> {
    fn probe(mut self, probe: &'static str) -> Self {
        self.kind = LogKind::ProtocolProbe;
        self.probe = Some(probe);
        self
    }
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
        if let Some(probe) = hit.probe {
            fields.push(("probe", probe.to_owned()));
        }
        Ok(Parsed {
            ts: None,
            service: Cow::Borrowed("sshd"),
            kind: hit.kind,
            src_ip: hit.ip,
            fields,
            extra: Vec::new(),
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
                Err(Unparsed::Ignored)
            } else {
                probe_hit(msg)
            }
        }
        Some(b'p') => match scan::pam_failure(msg) {
            Some((_, Some(rhost), user)) => {
                let ip = scan::ip(rhost).ok_or(BAD_ADDRESS)?;
                Ok(Hit {
                    kind: LogKind::AuthFailure,
                    ip: Some(ip),
                    user,
                    port: None,
                    method: None,
                    probe: None,
                })
            }
            _ => Err(Unparsed::Ignored),
        },
        Some(b'C') => {
            if let Some(rest) = msg.strip_prefix("Connection closed by ") {
                closed_or_disconnected(rest, preauth, "closed_preauth")
            } else if let Some(rest) = msg.strip_prefix("Connection reset by ") {
                Ok(preauth_peer(rest, preauth)?.0.probe("reset_preauth"))
            } else {
                Err(Unparsed::Ignored)
            }
        }
        Some(b'D') => {
            if let Some(rest) = msg.strip_prefix("Disconnected from ") {
                closed_or_disconnected(rest, preauth, "")
            } else if let Some(rest) = msg.strip_prefix("Disconnecting ") {
                let kind = if msg.contains(": Too many authentication failures") {
                    LogKind::TooManyAuthFailures
                } else {
                    LogKind::PreauthDisconnect
                };
                let (mut hit, _) =
                    preauth_peer(rest, preauth || kind == LogKind::TooManyAuthFailures)?;
                hit.kind = kind;
                Ok(hit)
            } else if let Some(rest) =
                msg.strip_prefix("Did not receive identification string from ")
            {
                Ok(address_after(rest, LogKind::ProtocolProbe, None)?.probe("no_ident"))
            } else {
                Err(Unparsed::Ignored)
            }
        }
        Some(b'R') => received_disconnect(msg, preauth),
        Some(b'B') => {
            let rest = msg
                .strip_prefix("Bad protocol version identification")
                .ok_or(Unparsed::Ignored)?;
            let mut from = rest.len();
            // The banner is attacker text and may itself say " from "; the address follows the last one.
            while let Some(i) = rest[..from].rfind(" from ") {
                if let Ok(hit) = address_after(&rest[i + 6..], LogKind::ProtocolProbe, None) {
                    return Ok(hit.probe("banner"));
                }
                from = i;
            }
            Err(BAD_ADDRESS)
        }
        Some(b'b' | b's' | b'T') => probe_hit(msg),
        Some(b'f') => match msg.strip_prefix("fatal: ") {
            Some(rest) => probe_hit(rest),
            None => Err(Unparsed::Ignored),
        },
        Some(b'e') => match msg.strip_prefix("error: ") {
            Some(rest) => error_hit(rest, preauth),
            None => Err(Unparsed::Ignored),
        },
        Some(b'm') => error_hit(msg, preauth),
        _ => Err(Unparsed::Ignored),
    }
}

/// Protocol-level failures that carry the peer, with or without sshd's `fatal: ` prefix (it depends on
/// the version and on the code path that gave up).
fn probe_hit(msg: &str) -> Result<Hit<'_>, Unparsed> {
    const PROBE: LogKind = LogKind::ProtocolProbe;
    if let Some(rest) = msg.strip_prefix("Unable to negotiate with ") {
        return Ok(address_after(rest, PROBE, None)?.probe("negotiate"));
    }
    if let Some(rest) = msg.strip_prefix("banner exchange: Connection from ") {
        return Ok(address_after(rest, PROBE, None)?.probe("banner"));
    }
    if let Some(rest) = msg.strip_prefix("Timeout before authentication for ") {
        // FreeBSD's sshd: `Timeout before authentication for connection from IP to IP, pid = N`.
        let rest = rest.strip_prefix("connection from ").unwrap_or(rest);
        return Ok(address_after(rest, PROBE, None)?.probe("timeout"));
    }
    if let Some(rest) = msg.strip_prefix("ssh_dispatch_run_fatal: Connection from ") {
        // Newer versions name the user once one was sent: `Connection from authenticating user root IP
        // port N: …`.
        return Ok(preauth_peer(rest, true)?.0.probe("dispatch_fatal"));
    }
    Err(Unparsed::Ignored)
}

/// Messages sshd logs with an `error: ` prefix (older versions log some without it).
fn error_hit(msg: &str, preauth: bool) -> Result<Hit<'_>, Unparsed> {
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
    if msg.starts_with("kex_exchange_identification: ") {
        // sshd logs the peer on the next line (`Connection closed by IP port N`), not on this one.
        return Ok(Hit {
            kind: LogKind::ProtocolProbe,
            ip: None,
            user: None,
            port: None,
            method: None,
            probe: Some("kex_ident"),
        });
    }
    if msg.starts_with("Received disconnect from ") {
        return received_disconnect(msg, preauth);
    }
    Err(Unparsed::Ignored)
}

/// `Received disconnect from IP[ port N]:CODE: text [preauth]`; without `[preauth]` it ends a session.
fn received_disconnect(msg: &str, preauth: bool) -> Result<Hit<'_>, Unparsed> {
    let rest = msg
        .strip_prefix("Received disconnect from ")
        .ok_or(Unparsed::Ignored)?;
    if !preauth {
        return Err(Unparsed::Ignored);
    }
    address_after(rest, LogKind::PreauthDisconnect, None)
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

/// `IP[ port N]` at the start of `rest`; the address ends at a space, or at a `:` or `,` right after it.
fn address_after<'a>(
    rest: &'a str,
    kind: LogKind,
    method: Option<&'a str>,
) -> Result<Hit<'a>, Unparsed> {
    let (token, _) = word(rest);
    let ip = match scan::ip(token) {
        Some(ip) => ip,
        // `1.2.3.4: 11: Bye Bye` (no port), `1.2.3.4, pid = 7`: the address ends at the punctuation.
        None => token
            .strip_suffix(':')
            .or_else(|| token.strip_suffix(','))
            .and_then(scan::ip)
            .ok_or(BAD_ADDRESS)?,
    };
    let port = port_prefix(&rest[token.len()..]).map(|(p, _)| p);
    Ok(Hit {
        kind,
        ip: Some(ip),
        user: None,
        port,
        method,
        probe: None,
    })
}

/// Who a pre-authentication line names before the address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// `authenticating user U` (an existing account).
    Authenticating,
    /// `invalid user U` or `user U`.
    User,
    /// The address alone.
    Address,
}

/// `Connection closed by …` (`probe` names the address-only case) and `Disconnected from …` (`probe`
/// empty: the address-only case stays a [`LogKind::PreauthDisconnect`]).
fn closed_or_disconnected<'a>(
    rest: &'a str,
    preauth: bool,
    probe: &'static str,
) -> Result<Hit<'a>, Unparsed> {
    let (mut hit, peer) = preauth_peer(rest, preauth)?;
    match peer {
        Peer::Authenticating => hit.kind = LogKind::AuthFailure,
        Peer::Address if !probe.is_empty() => hit = hit.probe(probe),
        _ => {}
    }
    Ok(hit)
}

/// `[invalid user X |authenticating user X |user X ]IP port N…` (Connection closed/reset, Disconnected
/// from, Disconnecting) as a [`LogKind::PreauthDisconnect`]. Without `[preauth]` it is an ordinary session
/// end and is ignored.
fn preauth_peer(rest: &str, preauth: bool) -> Result<(Hit<'_>, Peer), Unparsed> {
    if !preauth {
        return Err(Unparsed::Ignored);
    }
    let kind = LogKind::PreauthDisconnect;
    let (peer, user_and_ip) = if let Some(r) = rest.strip_prefix("authenticating user ") {
        (Peer::Authenticating, r)
    } else if let Some(r) = rest
        .strip_prefix("invalid user ")
        .or_else(|| rest.strip_prefix("user "))
    {
        (Peer::User, r)
    } else {
        return Ok((address_after(rest, kind, None)?, Peer::Address));
    };
    // The address is the word before the last " port " (users may contain spaces).
    let i = user_and_ip.rfind(" port ").ok_or(BAD_ADDRESS)?;
    let (user, ip_text) = user_and_ip[..i].rsplit_once(' ').ok_or(BAD_ADDRESS)?;
    let ip = scan::ip(ip_text).ok_or(BAD_ADDRESS)?;
    let port = port_prefix(&user_and_ip[i..]).map(|(p, _)| p);
    let hit = Hit {
        kind,
        ip: Some(ip),
        user: Some(user),
        port,
        method: None,
        probe: None,
    };
    Ok((hit, peer))
}
