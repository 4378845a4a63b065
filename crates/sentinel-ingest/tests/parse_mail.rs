//! postfix and dovecot fixtures, plus properties.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use proptest::prelude::*;
use sentinel_core::Timestamp;
use sentinel_ingest::parse::mail::{Dovecot, Postfix};
use sentinel_ingest::{LineParser, LogKind, ParseCtx, Unparsed};

/// `2026-11-27T19:56:49Z` in epoch milliseconds.
const T0: i64 = 1_795_809_409_000;
const MAIL: &str = include_str!("fixtures/parse/mail.log");

fn ctx() -> ParseCtx {
    ParseCtx {
        reference: Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap(),
        utc_offset_secs: 0,
    }
}

type Want = Result<(LogKind, &'static str, Option<&'static str>, i64), Unparsed>;

fn parse(
    parser: &dyn LineParser,
    line: &str,
) -> Result<(LogKind, String, Option<String>, i64), Unparsed> {
    parser.parse(line, &ctx()).map(|p| {
        (
            p.kind,
            p.src_ip.unwrap().to_string(),
            p.get("user").map(str::to_owned),
            p.ts.unwrap().as_millis(),
        )
    })
}

#[test]
fn fixture_lines() {
    use LogKind::{AuthSuccess as S, MailAuthFailure as F};
    let n = Err(Unparsed::NoMatch);
    // (postfix, dovecot) per line.
    let wants: Vec<(Want, Want)> = vec![
        (Ok((F, "203.0.113.5", None, T0)), n),
        (
            Ok((F, "2001:db8::5", Some("bob@example.com"), T0 + 1000)),
            n,
        ),
        (Ok((F, "198.51.100.7", None, T0 + 2000)), n),
        (Err(Unparsed::Ignored), n),
        (n, Ok((F, "198.51.100.9", Some("carol"), T0 + 4000))),
        (n, Ok((F, "198.51.100.10", Some("dave"), T0 + 5000))),
        (n, Ok((F, "2001:db8::6", Some("erin"), T0 + 6000))),
        (n, Ok((S, "192.0.2.20", Some("frank"), T0 + 7000))),
        (n, Ok((F, "198.51.100.11", Some("gina"), T0 + 8000))),
        (n, Ok((F, "198.51.100.12", Some("hank"), T0 + 9000))),
        (n, Err(Unparsed::Ignored)),
        (n, n),
    ];
    let lines: Vec<&str> = MAIL.lines().collect();
    assert_eq!(lines.len(), wants.len());
    for (line, (pf, dc)) in lines.iter().zip(wants) {
        let own = |w: Want| w.map(|(k, ip, u, ts)| (k, ip.to_owned(), u.map(str::to_owned), ts));
        assert_eq!(parse(&Postfix, line), own(pf), "postfix: {line}");
        assert_eq!(parse(&Dovecot, line), own(dc), "dovecot: {line}");
    }
}

#[test]
fn fields() {
    let l = |i: usize| MAIL.lines().nth(i).unwrap();
    let p = Postfix.parse(l(2), &ctx()).unwrap();
    assert_eq!(
        (p.get("method"), p.service.as_ref()),
        (Some("CRAM-MD5"), "postfix")
    );
    let d = Dovecot.parse(l(5), &ctx()).unwrap();
    assert_eq!(
        (d.get("method"), d.get("attempts"), d.service.as_ref()),
        (Some("PLAIN"), Some("3"), "dovecot")
    );
}

fn ip_in_line(ip: std::net::IpAddr, line: &str) -> bool {
    line.split(|c: char| c.is_whitespace() || "[]()<>,=\"'".contains(c))
        .filter_map(|t| t.parse::<std::net::IpAddr>().ok())
        .any(|a| a.to_canonical() == ip)
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        let _ = Postfix.parse(&s, &ctx());
        let _ = Dovecot.parse(&s, &ctx());
        let _ = Postfix.parse(&format!("Nov 27 19:56:49 mx postfix/smtpd[1]: warning: {s}"), &ctx());
        let _ = Dovecot.parse(&format!("Nov 27 19:56:49 mx dovecot: {s}"), &ctx());
    }

    #[test]
    fn mutated_lines(line in proptest::sample::select(MAIL.lines().collect::<Vec<_>>()),
                     at in any::<prop::sample::Index>(), cut in 0usize..8, ins in "\\PC{0,6}") {
        let mut chars: Vec<char> = line.chars().collect();
        let i = at.index(chars.len() + 1);
        let end = (i + cut).min(chars.len());
        chars.splice(i..end, ins.chars());
        let m: String = chars.into_iter().collect();
        for parser in [&Postfix as &dyn LineParser, &Dovecot] {
            if let Ok(p) = parser.parse(&m, &ctx()) {
                prop_assert!(ip_in_line(p.src_ip.unwrap(), &m), "{m}");
            }
        }
    }
}
