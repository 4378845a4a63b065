//! `--format auto` and the by-name registry of parsers. [`Auto`] tries each log family in turn and
//! remembers the one that recognised the last line, so a homogeneous file costs one parser per line.

use super::falco::{self, Falco};
use super::http::{self, AccessLog, Caddy, ErrorLog, Haproxy, Traefik};
use super::json::JsonLines;
use super::mail::{Dovecot, Postfix};
use super::sshd::Sshd;
use super::syslog;
use crate::{LineParser, ParseCtx, Parsed, Unparsed};
use std::sync::atomic::{AtomicU8, Ordering};

/// Every format name [`by_name`] knows (the names of [`crate::config::LogFormat`]).
pub const FORMATS: &[&str] = crate::config::LogFormat::NAMES;

/// The parser for a format name (one of [`FORMATS`]); `None` for an unknown name.
pub fn by_name(name: &str) -> Option<Box<dyn LineParser>> {
    name.parse::<crate::config::LogFormat>()
        .ok()
        .map(crate::config::LogFormat::build)
}

/// The families [`Auto`] tells apart, in the order it tries them.
const SYSLOG: u8 = 0;
const ACCESS: u8 = 1;
const ERROR: u8 = 2;
const HAPROXY: u8 = 3;
const JSON: u8 = 4;
const ORDER: [u8; 5] = [SYSLOG, ACCESS, ERROR, HAPROXY, JSON];

/// Detects the format line by line (format name `auto`).
///
/// A syslog line is handed to sshd, postfix, an HTTP server (nginx, apache/httpd, traefik, caddy, haproxy:
/// see [`http::parse_syslog`]) or dovecot by its program; a syslog line of any other program is
/// [`Unparsed::Ignored`]. Other lines are tried as access log (with or without a leading virtual host),
/// nginx/apache error log, Traefik or Caddy JSON access log, Falco JSON alert or HAProxy line without
/// header, and JSON.
/// The first family that does not answer [`Unparsed::NoMatch`] decides, and is tried first next time.
#[derive(Debug, Default)]
pub struct Auto {
    access: AccessLog,
    error: ErrorLog,
    json: JsonLines,
    last: AtomicU8,
}

impl Auto {
    fn family(&self, family: u8, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        match family {
            SYSLOG => {
                let l = syslog::split(line, ctx)?;
                match Sshd.parse_syslog(&l) {
                    Err(Unparsed::NoMatch) => {}
                    r => return r,
                }
                match Postfix.parse_syslog(&l) {
                    Err(Unparsed::NoMatch) => {}
                    r => return r,
                }
                if let Some(r) = http::parse_syslog(&l, ctx) {
                    return r;
                }
                match Dovecot.parse_syslog(&l) {
                    Err(Unparsed::NoMatch) => Err(Unparsed::Ignored),
                    r => r,
                }
            }
            ACCESS => self.access.parse(line, ctx),
            ERROR => self.error.parse(line, ctx),
            HAPROXY => Haproxy.parse_raw(line, ctx),
            JSON => {
                // Access logs and Falco alerts are told from other JSON by keys only they write, so a
                // file mixing Traefik's access and application lines reads each right whatever came
                // before.
                let trimmed = line.trim_start();
                if http::traefik_json(trimmed) {
                    Traefik.parse_message(trimmed, ctx)
                } else if http::caddy_json(trimmed) {
                    Caddy.parse_message(trimmed, ctx)
                } else if falco::looks_like_alert(trimmed) {
                    Falco.parse(trimmed, ctx)
                } else {
                    self.json.parse(line, ctx)
                }
            }
            _ => Err(Unparsed::NoMatch),
        }
    }
}

impl LineParser for Auto {
    fn name(&self) -> &str {
        "auto"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let last = self.last.load(Ordering::Relaxed);
        match self.family(last, line, ctx) {
            Err(Unparsed::NoMatch) => {}
            r => return r,
        }
        for family in ORDER {
            if family == last {
                continue;
            }
            match self.family(family, line, ctx) {
                Err(Unparsed::NoMatch) => {}
                r => {
                    self.last.store(family, Ordering::Relaxed);
                    return r;
                }
            }
        }
        Err(Unparsed::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogKind;

    #[test]
    fn every_format_name_builds() {
        for name in FORMATS {
            assert!(by_name(name).is_some(), "{name}");
        }
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn auto_switches_and_remembers() {
        let auto = Auto::default();
        let ctx = ParseCtx::default();
        let ssh = "Nov 27 19:56:49 h sshd[1]: Invalid user bob from 1.2.3.4 port 22";
        assert_eq!(
            auto.parse(ssh, &ctx).map(|p| p.kind),
            Ok(LogKind::InvalidUser)
        );
        let web = r#"1.2.3.4 - - [27/Nov/2026:19:56:49 +0100] "GET / HTTP/1.1" 200 1"#;
        assert_eq!(
            auto.parse(web, &ctx).map(|p| p.kind),
            Ok(LogKind::HttpRequest)
        );
        assert_eq!(auto.last.load(Ordering::Relaxed), ACCESS);
        assert_eq!(
            auto.parse("Nov 27 19:56:49 h CRON[2]: hello", &ctx),
            Err(Unparsed::Ignored)
        );
        assert_eq!(auto.parse("garbage", &ctx), Err(Unparsed::NoMatch));
        assert_eq!(
            auto.parse(r#"{"ip":"1.2.3.4"}"#, &ctx)
                .map(|p| p.src_ip.is_some()),
            Ok(true)
        );
    }
}
