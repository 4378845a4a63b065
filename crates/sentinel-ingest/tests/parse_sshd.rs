//! sshd fixtures: kind, address, user and time of every line; plus properties and a volume check.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use proptest::prelude::*;
use sentinel_core::Timestamp;
use sentinel_ingest::parse::sshd::Sshd;
use sentinel_ingest::{LineParser, LogKind, ParseCtx, Unparsed};
use std::collections::HashMap;

/// `2026-11-27T19:56:49Z` in epoch milliseconds.
const T0: i64 = 1_795_809_409_000;

fn ctx() -> ParseCtx {
    ParseCtx {
        reference: Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap(),
        utc_offset_secs: 0,
    }
}

type Want = Result<(LogKind, &'static str, Option<&'static str>, i64), Unparsed>;

fn ok(kind: LogKind, ip: &'static str, user: Option<&'static str>, secs: i64) -> Want {
    Ok((kind, ip, user, T0 + secs * 1000))
}

#[test]
fn fixture_lines() {
    use LogKind::*;
    let wants: Vec<Want> = vec![
        ok(AuthFailure, "203.0.113.5", Some("root"), 0),
        ok(InvalidUser, "203.0.113.5", Some("admin"), 1),
        ok(AuthFailure, "2001:db8::7", Some("git"), 2),
        ok(InvalidUser, "198.51.100.7", Some("oracle"), 3),
        ok(InvalidUser, "198.51.100.8", Some("test"), 4),
        ok(AuthFailure, "198.51.100.9", Some("root"), 5),
        ok(AuthFailure, "198.51.100.10", Some("root"), 6),
        ok(PreauthDisconnect, "198.51.100.11", Some("ubnt"), 7),
        ok(PreauthDisconnect, "198.51.100.12", None, 8),
        ok(PreauthDisconnect, "198.51.100.13", Some("root"), 9),
        ok(PreauthDisconnect, "198.51.100.14", None, 10),
        ok(TooManyAuthFailures, "198.51.100.15", Some("pi"), 11),
        ok(TooManyAuthFailures, "198.51.100.15", Some("pi"), 12),
        ok(ProtocolProbe, "198.51.100.16", None, 13),
        ok(ProtocolProbe, "198.51.100.17", None, 14),
        ok(ProtocolProbe, "198.51.100.18", None, 15),
        ok(ProtocolProbe, "198.51.100.19", None, 16),
        ok(AuthSuccess, "192.0.2.10", Some("alice"), 17),
        ok(AuthSuccess, "192.0.2.11", Some("bob"), 18),
        Err(Unparsed::Ignored),
        Err(Unparsed::Ignored),
        Err(Unparsed::NoMatch),
        Err(Unparsed::Malformed("bad_address")),
        Err(Unparsed::Malformed("bad_timestamp")),
        Ok((InvalidUser, "198.51.100.20", Some(""), T0 + 24_250)),
        Ok((PreauthDisconnect, "198.51.100.21", None, T0 + 25_003)),
        Err(Unparsed::Ignored),
        ok(InvalidUser, "198.51.100.22", Some("guest user"), 27),
        ok(AuthFailure, "198.51.100.23", Some("illegal user admin"), 28),
        ok(PreauthDisconnect, "2001:db8::9", Some("root"), 29),
        Err(Unparsed::NoMatch),
    ];
    let text = include_str!("fixtures/parse/sshd.log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), wants.len());
    for (line, want) in lines.iter().zip(wants) {
        let got = Sshd.parse(line, &ctx()).map(|p| {
            let user = p.get("user").map(str::to_owned);
            (
                p.kind,
                p.src_ip.unwrap().to_string(),
                user,
                p.ts.unwrap().as_millis(),
            )
        });
        let want = want.map(|(k, ip, user, ts)| (k, ip.to_owned(), user.map(str::to_owned), ts));
        assert_eq!(got, want, "{line}");
    }
}

#[test]
fn fields_port_and_method() {
    let p = Sshd
        .parse(
            include_str!("fixtures/parse/sshd.log")
                .lines()
                .next()
                .unwrap(),
            &ctx(),
        )
        .unwrap();
    assert_eq!(
        (p.get("port"), p.get("method")),
        (Some("52214"), Some("password"))
    );
    assert_eq!(p.service, "sshd");
    let p = Sshd
        .parse_message("Failed password for root from 10.0.0.1 port 22 ssh2")
        .unwrap();
    assert_eq!((p.ts, p.kind), (None, LogKind::AuthFailure));
}

/// Generated traffic: every kind in known proportions.
#[test]
fn hundred_thousand_generated_lines() {
    let templates: [(&str, LogKind); 6] = [
        ("Failed password for root from {ip} port {port} ssh2", LogKind::AuthFailure),
        ("Invalid user u{n} from {ip} port {port}", LogKind::InvalidUser),
        ("Connection closed by invalid user u{n} {ip} port {port} [preauth]", LogKind::PreauthDisconnect),
        ("Disconnecting invalid user u{n} {ip} port {port}: Too many authentication failures [preauth]", LogKind::TooManyAuthFailures),
        ("Did not receive identification string from {ip} port {port}", LogKind::ProtocolProbe),
        ("Accepted publickey for u{n} from {ip} port {port} ssh2", LogKind::AuthSuccess),
    ];
    let ctx = ctx();
    let mut counts: HashMap<LogKind, usize> = HashMap::new();
    let mut ignored = 0;
    for n in 0..100_000u32 {
        let ip = if n % 5 == 0 {
            format!("2001:db8::{:x}:{:x}", n >> 16, n & 0xffff)
        } else {
            format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255)
        };
        let message = if n % 10 == 9 {
            "pam_unix(sshd:session): session closed for user u".to_owned()
        } else {
            let (t, _) = templates[(n % 6) as usize];
            t.replace("{ip}", &ip)
                .replace("{port}", &(1024 + n % 60000).to_string())
                .replace("{n}", &n.to_string())
        };
        let line = format!(
            "Nov 27 19:{:02}:{:02} web1 sshd[{}]: {}",
            n / 60 % 60,
            n % 60,
            n,
            message
        );
        match Sshd.parse(&line, &ctx) {
            Ok(p) => {
                assert_eq!(
                    p.src_ip.unwrap(),
                    ip.parse::<std::net::IpAddr>().unwrap(),
                    "{line}"
                );
                *counts.entry(p.kind).or_default() += 1;
            }
            Err(Unparsed::Ignored) => ignored += 1,
            Err(e) => panic!("{line}: {e:?}"),
        }
    }
    assert_eq!(ignored, 10_000);
    let mut expected: HashMap<LogKind, usize> = HashMap::new();
    for n in 0..100_000u32 {
        if n % 10 != 9 {
            *expected.entry(templates[(n % 6) as usize].1).or_default() += 1;
        }
    }
    assert_eq!(counts, expected);
}

fn valid_line() -> impl Strategy<Value = String> {
    let lines: Vec<String> = include_str!("fixtures/parse/sshd.log")
        .lines()
        .map(str::to_owned)
        .collect();
    proptest::sample::select(lines)
}

/// Some whitespace- or punctuation-delimited token of `line` reads as `ip`.
fn ip_in_line(ip: std::net::IpAddr, line: &str) -> bool {
    line.split(|c: char| c.is_whitespace() || "[]()<>,=\"'".contains(c))
        .flat_map(|t| [t, t.trim_end_matches(':')])
        .filter_map(|t| t.parse::<std::net::IpAddr>().ok())
        .any(|a| a.to_canonical() == ip)
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        let _ = Sshd.parse(&s, &ctx());
        let _ = Sshd.parse(&format!("Nov 27 19:56:49 h sshd[1]: {s}"), &ctx());
    }

    #[test]
    fn mutated_lines_never_panic(line in valid_line(), at in any::<prop::sample::Index>(), cut in 0usize..8, insert in "\\PC{0,6}") {
        let mut chars: Vec<char> = line.chars().collect();
        let i = at.index(chars.len() + 1);
        let end = (i + cut).min(chars.len());
        chars.splice(i..end, insert.chars());
        let mutated: String = chars.into_iter().collect();
        if let Ok(p) = Sshd.parse(&mutated, &ctx()) {
            let ip = p.src_ip.unwrap();
            prop_assert!(ip_in_line(ip, &mutated), "{ip} not in {mutated}");
        }
    }
}
