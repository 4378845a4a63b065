//! JSON-lines fixtures, plus properties.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use proptest::prelude::*;
use sentinel_ingest::parse::json::JsonLines;
use sentinel_ingest::{LineParser, LogKind, ParseCtx, Unparsed};

/// `2026-11-27T19:56:49Z` in epoch milliseconds.
const T0: i64 = 1_795_809_409_000;
const JSON: &str = include_str!("fixtures/parse/json.log");

type Want = Result<(LogKind, &'static str, Option<&'static str>, i64), Unparsed>;

#[test]
fn fixture_lines() {
    let wants: Vec<Want> = vec![
        Ok((LogKind::AuthFailure, "203.0.113.5", Some("root"), T0)),
        Ok((LogKind::Other, "2001:db8::1", Some("bob"), T0 + 1000)),
        Ok((LogKind::HttpRequest, "198.51.100.7", None, T0 + 2500)),
        Ok((LogKind::Other, "198.51.100.8", None, T0 + 3250)),
        Err(Unparsed::Malformed("bad_timestamp")),
        Err(Unparsed::Malformed("bad_address")),
        Err(Unparsed::Malformed("bad_json")),
        Err(Unparsed::NoMatch),
    ];
    let lines: Vec<&str> = JSON.lines().collect();
    assert_eq!(lines.len(), wants.len());
    let parser = JsonLines::default();
    for (line, want) in lines.iter().zip(wants) {
        let got = parser.parse(line, &ParseCtx::default()).map(|p| {
            (
                p.kind,
                p.src_ip.unwrap().to_string(),
                p.get("user").map(str::to_owned),
                p.ts.unwrap().as_millis(),
            )
        });
        let want = want.map(|(k, ip, u, ts)| (k, ip.to_owned(), u.map(str::to_owned), ts));
        assert_eq!(got, want, "{line}");
    }
    let other = parser.parse(lines[1], &ParseCtx::default()).unwrap();
    assert_eq!(
        (other.get("kind"), other.service.as_ref()),
        (Some("login_failed"), "json")
    );
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        let _ = JsonLines::default().parse(&s, &ParseCtx::default());
        let _ = JsonLines::default().parse(&format!("{{\"ts\":{s}}}"), &ParseCtx::default());
    }

    #[test]
    fn mutated_lines(line in proptest::sample::select(JSON.lines().collect::<Vec<_>>()),
                     at in any::<prop::sample::Index>(), cut in 0usize..8, ins in "\\PC{0,6}") {
        let mut chars: Vec<char> = line.chars().collect();
        let i = at.index(chars.len() + 1);
        let end = (i + cut).min(chars.len());
        chars.splice(i..end, ins.chars());
        let m: String = chars.into_iter().collect();
        if let Ok(p) = JsonLines::default().parse(&m, &ParseCtx::default()) {
            if let Some(ip) = p.src_ip {
                let found = m.split('"').filter_map(|t| t.parse::<std::net::IpAddr>().ok()).any(|a| a.to_canonical() == ip);
                prop_assert!(found, "{m}");
            }
        }
    }
}
