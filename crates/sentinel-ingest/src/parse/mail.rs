//! Mail servers: postfix `smtpd` SASL failures ([`Postfix`]) and dovecot login failures ([`Dovecot`]),
//! the lines fail2ban's `postfix[mode=auth]`/`postfix-sasl` and `dovecot` filters act on. Headers are
//! split by [`super::syslog`]; dovecot's own log file (`imap-login: Info: …`, no host) is read too.

use super::scan::{self, kv};
use super::syslog::{self, SyslogLine};
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use std::borrow::Cow;

const BAD_ADDRESS: Unparsed = Unparsed::Malformed("bad_address");

/// The postfix parser (format name `postfix`).
///
/// `warning: unknown[1.2.3.4]: SASL LOGIN authentication failed: …[, sasl_username=bob]` →
/// [`LogKind::MailAuthFailure`] with `method` and, when logged, `user`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postfix;

impl Postfix {
    /// Whether a syslog program is a postfix daemon (`postfix/smtpd`, `postfix/submission/smtpd`, `smtpd`).
    pub fn is_program(program: &str) -> bool {
        program.starts_with("postfix") || program == "smtpd"
    }

    /// Parses an already split syslog line; other programs give [`Unparsed::NoMatch`].
    pub fn parse_syslog(&self, line: &SyslogLine<'_>) -> Result<Parsed, Unparsed> {
        if !Self::is_program(line.program) {
            return Err(Unparsed::NoMatch);
        }
        let rest = line
            .message
            .strip_prefix("warning: ")
            .ok_or(Unparsed::Ignored)?;
        let (client, rest) = rest.split_once("]: SASL ").ok_or(Unparsed::Ignored)?;
        let (method, rest) = rest.split_once(' ').ok_or(Unparsed::Ignored)?;
        if !rest.starts_with("authentication failed") {
            return Err(Unparsed::Ignored);
        }
        let (_host, addr) = client.rsplit_once('[').ok_or(BAD_ADDRESS)?;
        let addr = addr.strip_prefix("IPv6:").unwrap_or(addr);
        let ip = scan::ip(addr).ok_or(BAD_ADDRESS)?;
        let mut fields = vec![("method", method.to_owned())];
        if let Some(user) = kv(rest, "sasl_username=") {
            fields.push(("user", user.to_owned()));
        }
        Ok(Parsed {
            ts: line.ts,
            service: Cow::Borrowed("postfix"),
            kind: LogKind::MailAuthFailure,
            src_ip: Some(ip),
            fields,
            extra: Vec::new(),
        })
    }
}

impl LineParser for Postfix {
    fn name(&self) -> &str {
        "postfix"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        self.parse_syslog(&syslog::split(line, ctx)?)
    }
}

/// The dovecot parser (format name `dovecot`).
///
/// `imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<bob>, method=PLAIN, rip=IP, …`,
/// `pop3-login: Aborted login (auth failed, …)`, `auth: pam_unix(dovecot:auth): authentication failure; …
/// rhost=IP user=bob` and `auth: passwd-file(bob,IP): unknown user` / `pam(bob,IP): … failed` /
/// `sql(bob,IP,<s>): Password mismatch` → [`LogKind::MailAuthFailure`]; `Login: user=<bob>, …` →
/// [`LogKind::AuthSuccess`]. Fields: `user`, `method`, `attempts`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dovecot;

impl Dovecot {
    /// Whether a syslog program is dovecot (`dovecot`, or a dovecot process logging under its own name).
    pub fn is_program(program: &str) -> bool {
        matches!(program, "dovecot" | "auth" | "auth-worker")
            || program.ends_with("-login")
            || program.starts_with("auth-worker(")
    }

    /// Parses an already split syslog line; other programs give [`Unparsed::NoMatch`].
    pub fn parse_syslog(&self, line: &SyslogLine<'_>) -> Result<Parsed, Unparsed> {
        if !Self::is_program(line.program) {
            return Err(Unparsed::NoMatch);
        }
        let mut parsed = message(line.message)?;
        parsed.ts = line.ts;
        Ok(parsed)
    }
}

impl LineParser for Dovecot {
    fn name(&self) -> &str {
        "dovecot"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        self.parse_syslog(&syslog::split(line, ctx)?)
    }
}

/// Strips `imap-login: `, `auth-worker(42): ` style process prefixes and `Info: ` style levels.
fn strip_prefixes(mut msg: &str) -> &str {
    for _ in 0..3 {
        let Some((head, rest)) = msg.split_once(": ") else {
            break;
        };
        let is_process = head.ends_with("-login")
            || head == "auth"
            || head.starts_with("auth-worker")
            || matches!(
                head,
                "Info" | "Warning" | "Error" | "Debug" | "Fatal" | "Panic"
            );
        if !is_process || head.contains(' ') {
            break;
        }
        msg = rest;
    }
    msg
}

fn message(msg: &str) -> Result<Parsed, Unparsed> {
    let msg = strip_prefixes(msg);
    let mut fields = Vec::with_capacity(3);
    let (kind, ip_text) = if let Some((_, rhost, user)) = scan::pam_failure(msg) {
        if let Some(user) = user {
            fields.push(("user", user.to_owned()));
        }
        (LogKind::MailAuthFailure, rhost.ok_or(Unparsed::Ignored)?)
    } else if msg.contains("(auth failed, ") || msg.starts_with("Login: ") {
        let kind = if msg.starts_with("Login: ") {
            LogKind::AuthSuccess
        } else {
            LogKind::MailAuthFailure
        };
        if let Some(user) = scan::after(msg, "user=<")
            .and_then(|u| u.split_once('>'))
            .map(|(u, _)| u)
        {
            fields.push(("user", user.to_owned()));
        }
        if let Some(method) = kv(msg, "method=") {
            fields.push(("method", method.to_owned()));
        }
        if let Some(n) = scan::after(msg, "(auth failed, ")
            .and_then(|r| r.split_once(' '))
            .map(|(n, _)| n)
        {
            fields.push(("attempts", n.to_owned()));
        }
        (kind, kv(msg, "rip=").ok_or(BAD_ADDRESS)?)
    } else if let Some((user, ip)) = passdb_failure(msg) {
        fields.push(("user", user.to_owned()));
        (LogKind::MailAuthFailure, ip)
    } else {
        return Err(Unparsed::Ignored);
    };
    let ip = scan::ip(ip_text).ok_or(BAD_ADDRESS)?;
    Ok(Parsed {
        ts: None,
        service: Cow::Borrowed("dovecot"),
        kind,
        src_ip: Some(ip),
        fields,
        extra: Vec::new(),
    })
}

/// `passwd-file(bob,1.2.3.4): unknown user`, `pam(bob,1.2.3.4,<sess>): pam_authenticate() failed: …`,
/// `sql(bob,1.2.3.4): Password mismatch` → user and address text.
fn passdb_failure(msg: &str) -> Option<(&str, &str)> {
    let (driver, rest) = msg.split_once('(')?;
    if driver.is_empty()
        || driver.len() > 16
        || !driver.bytes().all(|c| c.is_ascii_lowercase() || c == b'-')
    {
        return None;
    }
    let (args, reason) = rest.split_once("): ")?;
    let failed = reason.starts_with("unknown user")
        || reason.contains("assword mismatch")
        || reason.starts_with("pam_authenticate() failed");
    if !failed {
        return None;
    }
    // A trailing `<session id>` is dropped; the address is the last remaining part.
    let args = match args.rsplit_once(',') {
        Some((head, session)) if session.starts_with('<') => head,
        _ => args,
    };
    args.rsplit_once(',')
}
