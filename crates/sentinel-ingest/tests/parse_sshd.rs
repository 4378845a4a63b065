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
        ok(ProtocolProbe, "198.51.100.12", None, 8),
        ok(AuthFailure, "198.51.100.13", Some("root"), 9),
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
        Ok((ProtocolProbe, "198.51.100.21", None, T0 + 25_003)),
        Err(Unparsed::Ignored),
        ok(InvalidUser, "198.51.100.22", Some("guest user"), 27),
        ok(AuthFailure, "198.51.100.23", Some("illegal user admin"), 28),
        ok(AuthFailure, "2001:db8::9", Some("root"), 29),
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

/// Protocol-level lines and the pre-authentication lines CrowdSec counts: kind, address, user, `probe`.
#[test]
fn probe_and_preauth_lines() {
    use LogKind::*;
    type Row = (
        Result<(LogKind, Option<&'static str>, Option<&'static str>), Unparsed>,
        Option<&'static str>,
    );
    let ok = |k, ip, user, probe| (Ok((k, ip, user)), probe);
    let wants: Vec<Row> = vec![
        ok(ProtocolProbe, Some("198.51.100.7"), None, Some("timeout")),
        ok(ProtocolProbe, Some("198.51.100.8"), None, Some("timeout")),
        ok(ProtocolProbe, Some("198.51.100.9"), None, Some("timeout")),
        ok(
            ProtocolProbe,
            Some("198.51.100.10"),
            None,
            Some("dispatch_fatal"),
        ),
        ok(
            ProtocolProbe,
            Some("198.51.100.11"),
            Some("root"),
            Some("dispatch_fatal"),
        ),
        ok(
            ProtocolProbe,
            Some("198.51.100.12"),
            None,
            Some("dispatch_fatal"),
        ),
        ok(ProtocolProbe, None, None, Some("kex_ident")),
        ok(ProtocolProbe, None, None, Some("kex_ident")),
        ok(ProtocolProbe, Some("198.51.100.13"), None, Some("banner")),
        ok(ProtocolProbe, Some("198.51.100.14"), None, Some("banner")),
        ok(ProtocolProbe, Some("198.51.100.15"), None, Some("no_ident")),
        ok(
            ProtocolProbe,
            Some("198.51.100.16"),
            None,
            Some("negotiate"),
        ),
        ok(
            ProtocolProbe,
            Some("198.51.100.17"),
            None,
            Some("negotiate"),
        ),
        ok(
            ProtocolProbe,
            Some("198.51.100.18"),
            None,
            Some("closed_preauth"),
        ),
        ok(
            ProtocolProbe,
            Some("198.51.100.19"),
            None,
            Some("reset_preauth"),
        ),
        ok(
            ProtocolProbe,
            Some("198.51.100.20"),
            Some("root"),
            Some("reset_preauth"),
        ),
        ok(AuthFailure, Some("198.51.100.21"), Some("root"), None),
        ok(AuthFailure, Some("198.51.100.22"), Some("admin"), None),
        ok(
            PreauthDisconnect,
            Some("198.51.100.23"),
            Some("guest"),
            None,
        ),
        ok(
            PreauthDisconnect,
            Some("198.51.100.24"),
            Some("oracle"),
            None,
        ),
        ok(PreauthDisconnect, Some("198.51.100.25"), None, None),
        ok(PreauthDisconnect, Some("198.51.100.26"), None, None),
        ok(PreauthDisconnect, Some("198.51.100.27"), None, None),
        // Not pre-authentication, or no peer: ended sessions and sshd's own messages.
        (Err(Unparsed::Ignored), None),
        (Err(Unparsed::Ignored), None),
        (Err(Unparsed::Ignored), None),
        (Err(Unparsed::Ignored), None),
        (Err(Unparsed::Ignored), None),
        (Err(Unparsed::Malformed("bad_address")), None),
        (Err(Unparsed::Malformed("bad_address")), None),
    ];
    let text = include_str!("fixtures/parse/sshd_probes.log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), wants.len());
    for (line, (want, probe)) in lines.iter().zip(wants) {
        let got = Sshd.parse(line, &ctx());
        let summary = got.clone().map(|p| {
            (
                p.kind,
                p.src_ip.map(|ip| ip.to_string()),
                p.get("user").map(str::to_owned),
            )
        });
        let want = want.map(|(k, ip, u)| (k, ip.map(str::to_owned), u.map(str::to_owned)));
        assert_eq!(summary, want, "{line}");
        if let Ok(p) = got {
            assert_eq!(p.get("probe"), probe, "{line}");
            assert!(p.ts.is_some(), "{line}");
        }
    }
}

/// Every line of fail2ban's own sshd sample log (installed by the test command) that states a protocol
/// probe or a pre-authentication disconnect parses to the matching kind and `probe`.
#[test]
fn fail2ban_sample_log_probes() {
    let path = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs/sshd";
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (the test command installs Debian's fail2ban)"));
    let ctx = ParseCtx {
        reference: Timestamp::parse_rfc3339("2005-12-31T00:00:00Z").unwrap(),
        utc_offset_secs: 0,
    };
    let mut probes: HashMap<String, usize> = HashMap::new();
    let mut checked = 0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Ok(p) = Sshd.parse(line, &ctx) else {
            continue;
        };
        if let Some(probe) = p.get("probe") {
            assert_eq!(p.kind, LogKind::ProtocolProbe, "{line}");
            *probes.entry(probe.to_owned()).or_default() += 1;
        }
        let expect = |needle: &str, kind: LogKind, probe: Option<&str>| {
            if line.contains(needle) {
                assert_eq!((p.kind, p.get("probe")), (kind, probe), "{line}");
                true
            } else {
                false
            }
        };
        let msg = line.split_once("]: ").map_or(line, |(_, m)| m);
        let known = [
            (
                "Disconnected from authenticating user",
                LogKind::AuthFailure,
                None,
            ),
            (
                "Connection closed by authenticating user",
                LogKind::AuthFailure,
                None,
            ),
            (
                "banner exchange: Connection from",
                LogKind::ProtocolProbe,
                Some("banner"),
            ),
            (
                "Bad protocol version identification",
                LogKind::ProtocolProbe,
                Some("banner"),
            ),
            (
                "Did not receive identification string",
                LogKind::ProtocolProbe,
                Some("no_ident"),
            ),
            (
                "Unable to negotiate with",
                LogKind::ProtocolProbe,
                Some("negotiate"),
            ),
            (
                "kex_exchange_identification:",
                LogKind::ProtocolProbe,
                Some("kex_ident"),
            ),
            (
                "Connection reset by ",
                LogKind::ProtocolProbe,
                Some("reset_preauth"),
            ),
            ("Received disconnect from", LogKind::PreauthDisconnect, None),
        ];
        for (needle, kind, probe) in known {
            if msg.contains(needle) && expect(needle, kind, probe) {
                checked += 1;
                break;
            }
        }
        if msg.starts_with("Connection closed by ") && !msg.contains(" user ") {
            assert_eq!(p.get("probe"), Some("closed_preauth"), "{line}");
            checked += 1;
        }
    }
    // The sample holds each of these; a parser that stopped reading one would lower its count.
    for (probe, at_least) in [
        ("banner", 3),
        ("no_ident", 2),
        ("negotiate", 4),
        ("kex_ident", 4),
        ("closed_preauth", 4),
        ("reset_preauth", 2),
    ] {
        let n = probes.get(probe).copied().unwrap_or(0);
        assert!(n >= at_least, "{probe}: {n} < {at_least} in {probes:?}");
    }
    assert!(checked >= 30, "{checked}");
}

fn valid_line() -> impl Strategy<Value = String> {
    let lines: Vec<String> = include_str!("fixtures/parse/sshd.log")
        .lines()
        .chain(include_str!("fixtures/parse/sshd_probes.log").lines())
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
            match p.src_ip {
                Some(ip) => prop_assert!(ip_in_line(ip, &mutated), "{ip} not in {mutated}"),
                // Only kex_exchange_identification lines name no peer.
                None => prop_assert_eq!(p.get("probe"), Some("kex_ident"), "{}", mutated),
            }
            if p.kind == LogKind::ProtocolProbe {
                prop_assert!(p.get("probe").is_some(), "{mutated}");
            }
        }
    }
}
