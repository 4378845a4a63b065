//! Syslog headers: year inference, the four header layouts, the by-name registry and `auto`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use proptest::prelude::*;
use sentinel_core::Timestamp;
use sentinel_ingest::parse::{by_name, syslog, Auto, FORMATS};
use sentinel_ingest::{LineParser, LogKind, ParseCtx, Unparsed};

fn ctx_at(reference: &str, offset: i32) -> ParseCtx {
    ParseCtx {
        reference: Timestamp::parse_rfc3339(reference).unwrap(),
        utc_offset_secs: offset,
    }
}

#[test]
fn december_line_read_in_january_is_previous_year() {
    let line = "Dec 31 23:59:59 h sshd[1]: x";
    let l = syslog::split(line, &ctx_at("2027-01-01T00:10:00Z", 0)).unwrap();
    assert_eq!(l.ts.unwrap().to_rfc3339(), "2026-12-31T23:59:59.000Z");
    let l = syslog::split(line, &ctx_at("2026-12-31T23:59:59Z", 0)).unwrap();
    assert_eq!(l.ts.unwrap().to_rfc3339(), "2026-12-31T23:59:59.000Z");
    // Same year: a line from earlier in the year stays in it.
    let l = syslog::split("Mar  3 01:02:03 h a: b", &ctx_at("2026-11-27T00:00:00Z", 0)).unwrap();
    assert_eq!(l.ts.unwrap().to_rfc3339(), "2026-03-03T01:02:03.000Z");
    // Local zone applies to year-less stamps.
    let l = syslog::split(
        "Nov 27 20:56:49 h a: b",
        &ctx_at("2026-11-28T00:00:00Z", 3600),
    )
    .unwrap();
    assert_eq!(l.ts.unwrap().as_millis(), 1_795_809_409_000);
}

#[test]
fn header_layouts() {
    let ctx = ctx_at("2026-12-01T00:00:00Z", 0);
    let cases = [
        (
            "Nov 27 19:56:49 host sshd[42]: msg here",
            Some(1_795_809_409_000),
            "host",
            "sshd",
            Some(42),
            "msg here",
        ),
        (
            "<13>Nov 27 19:56:49 host prog: msg",
            Some(1_795_809_409_000),
            "host",
            "prog",
            None,
            "msg",
        ),
        (
            "2026-11-27T20:56:49.123456+01:00 host prog[7]: msg",
            Some(1_795_809_409_123),
            "host",
            "prog",
            Some(7),
            "msg",
        ),
        (
            r#"<34>1 2026-11-27T19:56:49.003Z host app 99 ID1 [ex@1 a="x\]y"] msg"#,
            Some(1_795_809_409_003),
            "host",
            "app",
            Some(99),
            "msg",
        ),
        (
            "<34>1 2026-11-27T19:56:49Z host app - - - \u{feff}bom",
            Some(1_795_809_409_000),
            "host",
            "app",
            None,
            "bom",
        ),
    ];
    for (line, ts, host, program, pid, message) in cases {
        let l = syslog::split(line, &ctx).unwrap();
        assert_eq!(
            (
                l.ts.map(Timestamp::as_millis),
                l.host,
                l.program,
                l.pid,
                l.message
            ),
            (ts, host, program, pid, message),
            "{line}"
        );
    }
    assert_eq!(
        syslog::split("Nov 27 25:00:00 h a: b", &ctx),
        Err(Unparsed::Malformed("bad_timestamp"))
    );
    assert_eq!(
        syslog::split("2026-13-01T00:00:00Z h a: b", &ctx),
        Err(Unparsed::Malformed("bad_timestamp"))
    );
    assert_eq!(syslog::split("{\"a\":1}", &ctx), Err(Unparsed::NoMatch));
}

#[test]
fn registry_and_auto() {
    for name in FORMATS {
        assert!(by_name(name).is_some(), "{name}");
    }
    let ctx = ctx_at("2026-12-01T00:00:00Z", 0);
    let auto = Auto::default();
    let fixtures = [
        (
            include_str!("fixtures/parse/sshd.log"),
            LogKind::AuthFailure,
        ),
        (
            include_str!("fixtures/parse/access.log"),
            LogKind::HttpRequest,
        ),
        (
            include_str!("fixtures/parse/error.log"),
            LogKind::HttpAuthFailure,
        ),
        (
            include_str!("fixtures/parse/mail.log"),
            LogKind::MailAuthFailure,
        ),
        (
            include_str!("fixtures/parse/json.log"),
            LogKind::AuthFailure,
        ),
    ];
    for (text, first_kind) in fixtures {
        assert_eq!(
            auto.parse(text.lines().next().unwrap(), &ctx)
                .map(|p| p.kind),
            Ok(first_kind)
        );
        for line in text.lines() {
            let _ = auto.parse(line, &ctx);
        }
    }
}

proptest! {
    #[test]
    fn split_never_panics(s in "\\PC*") {
        let ctx = ParseCtx::default();
        let _ = syslog::split(&s, &ctx);
        let _ = syslog::split(&format!("<1>1 {s}"), &ctx);
        let _ = syslog::split(&format!("Nov 27 {s}"), &ctx);
        let _ = Auto::default().parse(&s, &ctx);
    }

    #[test]
    fn any_reference_places_a_line_within_a_day_after_it(ms in 0i64..4_000_000_000_000, offset in -50_400i32..50_400) {
        let ctx = ParseCtx { reference: Timestamp::from_millis(ms), utc_offset_secs: offset };
        for line in ["Jan  1 00:00:00 h a: b", "Dec 31 23:59:59 h a: b", "Feb 29 12:00:00 h a: b", "Jul 15 12:00:00 h a: b"] {
            let l = syslog::split(line, &ctx).unwrap();
            let t = l.ts.unwrap().as_millis();
            prop_assert!(t <= ms + 86_400_000, "{line} at {ms}: {t}");
            // Not more than a year (eight for 29 February) plus a day before the reference.
            let span = if line.starts_with("Feb 29") { 8 * 366 } else { 367 };
            prop_assert!(t > ms - span * 86_400_000, "{line} at {ms}: {t}");
        }
    }
}
