//! Syslog headers: RFC 3164 (`Nov 27 19:56:49 host prog[pid]: msg`, optionally with a `<PRI>` prefix, year
//! inferred from [`ParseCtx::reference`]), rsyslog's high-precision RFC 3339 variant
//! (`2026-11-27T19:56:49.123456+01:00 host prog[pid]: msg`) and RFC 5424
//! (`<34>1 2026-11-27T19:56:49.003Z host app procid msgid [sd] msg`, structured data skipped).
//! This module only splits the header from the message; the program parsers read the message.

use super::clock::{self, Civil};
use crate::{ParseCtx, Unparsed};
use sentinel_core::Timestamp;

/// A syslog line split into its header fields and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// The `<PRI>` value, if the line carries one.
    pub pri: Option<u8>,
    /// The line's time in UTC; `None` only for an RFC 5424 NILVALUE (`-`).
    pub ts: Option<Timestamp>,
    /// The reporting host (empty if the line has none).
    pub host: &'a str,
    /// The program (tag or APP-NAME) without its pid, e.g. `sshd` or `postfix/smtpd`; empty if none.
    pub program: &'a str,
    /// The process id, when the tag or PROCID is numeric.
    pub pid: Option<u32>,
    /// The free-form message after the header.
    pub message: &'a str,
}

/// Splits a syslog line into header and message.
///
/// Lines that do not start like any syslog header give [`Unparsed::NoMatch`]; a header whose timestamp
/// cannot be read gives `Malformed("bad_timestamp")`, broken RFC 5424 structured data
/// `Malformed("bad_structured_data")`.
pub fn split<'a>(line: &'a str, ctx: &ParseCtx) -> Result<SyslogLine<'a>, Unparsed> {
    let (pri, rest) = strip_pri(line)?;
    if pri.is_some() {
        if let Some(after_version) = rest.strip_prefix("1 ") {
            return rfc5424(pri, after_version, ctx);
        }
    }
    match rest.as_bytes().first() {
        Some(c) if c.is_ascii_digit() => iso_header(pri, rest, ctx),
        Some(c) if c.is_ascii_uppercase() => bsd_header(pri, rest, ctx),
        _ => Err(Unparsed::NoMatch),
    }
}

fn strip_pri(line: &str) -> Result<(Option<u8>, &str), Unparsed> {
    let Some(rest) = line.strip_prefix('<') else {
        return Ok((None, line));
    };
    let end = rest
        .bytes()
        .take(4)
        .position(|c| c == b'>')
        .ok_or(Unparsed::NoMatch)?;
    let pri = clock::digits(&rest.as_bytes()[..end])
        .filter(|p| *p <= 191)
        .ok_or(Unparsed::NoMatch)?;
    Ok((Some(pri as u8), &rest[end + 1..]))
}

/// `Mmm dd hh:mm:ss host tag: msg` (day may be space-padded).
fn bsd_header<'a>(pri: Option<u8>, s: &'a str, ctx: &ParseCtx) -> Result<SyslogLine<'a>, Unparsed> {
    let b = s.as_bytes();
    let month = b
        .get(..3)
        .and_then(clock::month_abbr)
        .ok_or(Unparsed::NoMatch)?;
    if b.get(3) != Some(&b' ') {
        return Err(Unparsed::NoMatch);
    }
    const BAD: Unparsed = Unparsed::Malformed("bad_timestamp");
    // `Nov  7` (RFC 3164's space padding) or `Nov 07`; `Nov 7`, as some writers leave it, moves the
    // time one byte left.
    let (day, t) = if b.get(5) == Some(&b' ') && b.get(4).is_some_and(u8::is_ascii_digit) {
        (clock::digits(&b[4..5]), 6)
    } else {
        if b.get(6) != Some(&b' ') {
            return Err(BAD);
        }
        let day = match b[4] {
            b' ' => clock::digits(&b[5..6]),
            _ => clock::digits(&b[4..6]),
        };
        (day, 7)
    };
    let day = day.ok_or(BAD)?;
    if b.len() < t + 9 || b[t + 8] != b' ' {
        return Err(BAD);
    }
    let (hour, minute, second) = clock::hms(&b[t..t + 8]).ok_or(BAD)?;
    let civil = Civil {
        year: 0,
        month,
        day,
        hour,
        minute,
        second,
        millis: 0,
    };
    let ts = clock::infer_year(civil, ctx).ok_or(BAD)?;
    Ok(host_and_tag(pri, Some(ts), &s[t + 9..]))
}

/// `2026-11-27T19:56:49.123456+01:00 host tag: msg`.
fn iso_header<'a>(pri: Option<u8>, s: &'a str, ctx: &ParseCtx) -> Result<SyslogLine<'a>, Unparsed> {
    let (stamp, rest) = super::scan::word(s);
    let b = stamp.as_bytes();
    if b.len() < 11 || b[4] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return Err(Unparsed::NoMatch);
    }
    let ts = clock::iso(stamp, ctx.utc_offset_secs).ok_or(Unparsed::Malformed("bad_timestamp"))?;
    Ok(host_and_tag(pri, Some(ts), rest))
}

/// `host prog[pid]: msg`; a line without host (`prog[pid]: msg`, as dovecot writes its own log) is
/// recognised by its first word ending in `:`.
fn host_and_tag<'a>(pri: Option<u8>, ts: Option<Timestamp>, s: &'a str) -> SyslogLine<'a> {
    let (first, rest) = super::scan::word(s);
    let (host, tagged) = if first.ends_with(':') {
        ("", s)
    } else {
        (first, rest)
    };
    let (program, pid, message) = tag(tagged);
    SyslogLine {
        pri,
        ts,
        host,
        program,
        pid,
        message,
    }
}

/// `prog[pid]: msg` or `prog: msg`; a message without tag gives an empty program.
fn tag(s: &str) -> (&str, Option<u32>, &str) {
    let b = s.as_bytes();
    match memchr::memchr2(b' ', b':', b) {
        Some(i) if b[i] == b':' && i > 0 => {
            let tag = &s[..i];
            let message = s[i + 1..].strip_prefix(' ').unwrap_or(&s[i + 1..]);
            match tag.split_once('[') {
                Some((program, pid)) => {
                    let pid = pid
                        .strip_suffix(']')
                        .and_then(|p| clock::digits(p.as_bytes()));
                    (program, pid, message)
                }
                None => (tag, None, message),
            }
        }
        _ => ("", None, s),
    }
}

/// `TS HOST APP PROCID MSGID SD [MSG]` after `<PRI>1 `.
fn rfc5424<'a>(pri: Option<u8>, s: &'a str, ctx: &ParseCtx) -> Result<SyslogLine<'a>, Unparsed> {
    use super::scan::word;
    let (stamp, rest) = word(s);
    let ts = match stamp {
        "-" => None,
        _ => Some(
            clock::iso(stamp, ctx.utc_offset_secs).ok_or(Unparsed::Malformed("bad_timestamp"))?,
        ),
    };
    let (host, rest) = word(rest);
    let (app, rest) = word(rest);
    let (procid, rest) = word(rest);
    let (_msgid, rest) = word(rest);
    let rest = skip_structured_data(rest)?;
    let message = rest.strip_prefix(' ').unwrap_or(rest);
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    let nil = |v: &'a str| if v == "-" { "" } else { v };
    Ok(SyslogLine {
        pri,
        ts,
        host: nil(host),
        program: nil(app),
        pid: clock::digits(procid.as_bytes()),
        message,
    })
}

/// Skips `-` or one or more `[id k="v" …]` elements; inside quoted values `\"`, `\\` and `\]` are escapes.
fn skip_structured_data(s: &str) -> Result<&str, Unparsed> {
    const BAD: Unparsed = Unparsed::Malformed("bad_structured_data");
    if let Some(rest) = s.strip_prefix('-') {
        return Ok(rest);
    }
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return Err(BAD);
    }
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let mut in_quotes = false;
        loop {
            match b.get(i) {
                None => return Err(BAD),
                Some(b'\\') if in_quotes => i += 2,
                Some(b'"') => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                Some(b']') if !in_quotes => {
                    i += 1;
                    break;
                }
                Some(_) => i += 1,
            }
        }
    }
    s.get(i..).ok_or(BAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseCtx {
        ParseCtx {
            reference: Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap(),
            utc_offset_secs: 3600,
        }
    }

    #[test]
    fn rfc3164_with_and_without_pri() {
        let l = split(
            "<38>Nov  7 19:56:49 web1 sshd[1234]: Failed password",
            &ctx(),
        )
        .unwrap();
        assert_eq!(l.pri, Some(38));
        assert_eq!(l.ts.unwrap().to_rfc3339(), "2026-11-07T18:56:49.000Z");
        assert_eq!(
            (l.host, l.program, l.pid, l.message),
            ("web1", "sshd", Some(1234), "Failed password")
        );
        let l = split("Nov 27 19:56:49 web1 CRON: hello: world", &ctx()).unwrap();
        assert_eq!(
            (l.program, l.pid, l.message),
            ("CRON", None, "hello: world")
        );
        assert_eq!(
            split("Nov 27 19:5x:49 web1 a: b", &ctx()),
            Err(Unparsed::Malformed("bad_timestamp"))
        );
        assert_eq!(split("hello world", &ctx()), Err(Unparsed::NoMatch));
    }

    #[test]
    fn rfc3339_and_5424() {
        let l = split(
            "2026-11-27T19:56:49.123456+01:00 web1 sshd-session[9]: msg",
            &ctx(),
        )
        .unwrap();
        assert_eq!(l.ts.unwrap().to_rfc3339(), "2026-11-27T18:56:49.123Z");
        assert_eq!(
            (l.program, l.pid, l.message),
            ("sshd-session", Some(9), "msg")
        );
        let line = r#"<34>1 2026-11-27T19:56:49.003Z mymachine su - ID47 [a@1 x="a\]b\"c"][b@2 y="]"] 'su root' failed"#;
        let l = split(line, &ctx()).unwrap();
        assert_eq!(l.ts.unwrap().to_rfc3339(), "2026-11-27T19:56:49.003Z");
        assert_eq!(
            (l.host, l.program, l.pid, l.message),
            ("mymachine", "su", None, "'su root' failed")
        );
        let l = split("<13>1 - - - - - -", &ctx()).unwrap();
        assert_eq!((l.ts, l.host, l.message), (None, "", ""));
        assert_eq!(
            split(r#"<13>1 - h a 1 - [x y="]"#, &ctx()),
            Err(Unparsed::Malformed("bad_structured_data"))
        );
    }
}
