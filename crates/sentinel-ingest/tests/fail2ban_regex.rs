//! Filter loading edge cases: Python regex constructs (look-behind, backreference, unsupported ones),
//! interpolation cycles, missing includes, ignoreregex, multi-line refusals, prefregex and custom dates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::Timestamp;
use sentinel_ingest::fail2ban::{Fail2banFilter, FilterError};
use sentinel_ingest::{LineParser, ParseCtx, Unparsed};

fn ctx() -> ParseCtx {
    ParseCtx {
        reference: Timestamp::parse_rfc3339("2024-03-10T00:00:00Z").unwrap(),
        utc_offset_secs: 0,
    }
}

fn filter(failregex: &str, extra: &str) -> Result<Fail2banFilter, FilterError> {
    Fail2banFilter::from_str(
        "test",
        &format!("[Definition]\nfailregex = {failregex}\n{extra}"),
        None,
    )
}

#[test]
fn look_behind_loads_on_the_backtracking_engine_and_matches() {
    let f = filter(r"^\s*login (?<=login )failed from <HOST>$", "").unwrap();
    assert_eq!(f.backtracking_count(), 1);
    let p = f
        .parse("Mar  9 10:00:00 login failed from 192.0.2.1", &ctx())
        .unwrap();
    assert_eq!(p.src_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(p.service, "test");
    assert_eq!(p.ts.unwrap().to_rfc3339(), "2024-03-09T10:00:00.000Z");
}

#[test]
fn backreference_loads_and_matches() {
    let f = filter(r"^user (?P<x>\w+) retried as (?P=x) from <HOST>$", "").unwrap();
    assert_eq!(f.backtracking_count(), 1);
    assert!(f
        .parse("user bob retried as bob from 192.0.2.2", &ctx())
        .is_ok());
    assert_eq!(
        f.parse("user bob retried as eve from 192.0.2.2", &ctx()),
        Err(Unparsed::NoMatch)
    );
}

#[test]
fn plain_filters_stay_on_the_fast_engine() {
    let f = filter(
        r"^bad login for <F-USER>\S+</F-USER> from <ADDR> port <F-PORT/> <F-REASON>\w+</F-REASON>$",
        "",
    )
    .unwrap();
    assert_eq!(f.backtracking_count(), 0);
    let p = f
        .parse(
            "bad login for Bob from [2001:db8::7] port 22 expired",
            &ctx(),
        )
        .unwrap();
    assert_eq!(p.src_ip, Some("2001:db8::7".parse().unwrap()));
    assert_eq!(p.get("user"), Some("Bob"));
    assert_eq!(p.get("port"), Some("22"));
    assert_eq!(p.get("reason"), Some("expired"));
    assert_eq!(p.get("rule"), Some("0"));
    assert_eq!(p.ts, None);
}

#[test]
fn unsupported_construct_is_named_with_file_section_and_key() {
    let e = filter(r"^(?a)bad \w+ from <HOST>$", "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(?a)") && e.contains("test.conf") && e.contains("[Definition] failregex"),
        "{e}"
    );
    let e = filter(r"^x<SKIPLINES>y <HOST>$", "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unsupported: <SKIPLINES> (multi-line filters)"),
        "{e}"
    );
    let e = filter(r"^x <HOST>$", "maxlines = 3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported") && e.contains("maxlines"), "{e}");
    let e = filter(r"^no host here$", "").unwrap_err().to_string();
    assert!(e.contains("<HOST>"), "{e}");
}

#[test]
fn interpolation_cycle_is_an_error() {
    let e = filter("%(a)s <HOST>", "a = x%(b)s\nb = %(a)s\n").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FilterError::Interpolation { .. }), "{msg}");
    assert!(msg.contains("cycle") && msg.contains("failregex"), "{msg}");
    let e = filter("<a> <HOST>", "a = <b>\nb = <a>\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn missing_include_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.conf");
    std::fs::write(
        &path,
        "[INCLUDES]\nbefore = nothere.conf\n[Definition]\nfailregex = ^x <HOST>$\n",
    )
    .unwrap();
    let e = Fail2banFilter::load(&path, &Default::default()).unwrap_err();
    assert!(matches!(e, FilterError::MissingInclude { .. }));
    assert!(
        e.to_string()
            .contains(&dir.path().join("nothere.conf").display().to_string()),
        "{e}"
    );
}

#[test]
fn ignoreregex_turns_a_match_into_ignored() {
    let f = filter(
        r"^auth failed for \S+ from <HOST>$",
        "ignoreregex = for (?:monitor|nagios) ",
    )
    .unwrap();
    assert_eq!(
        f.parse("auth failed for nagios from 192.0.2.3", &ctx()),
        Err(Unparsed::Ignored)
    );
    assert!(f
        .parse("auth failed for root from 192.0.2.3", &ctx())
        .is_ok());
    assert_eq!(
        f.parse("unrelated for nagios", &ctx()),
        Err(Unparsed::NoMatch)
    );
}

#[test]
fn prefregex_content_and_custom_datepattern() {
    let text = "[Definition]\n\
        prefregex = ^\\s*app\\[\\d+\\]: <F-CONTENT>.+</F-CONTENT>$\n\
        failregex = ^denied <F-ID/>\n\
        \x20           ^refused from <HOST>\n\
        datepattern = ^%%Y%%m%%d-%%H%%M%%S\n";
    let f = Fail2banFilter::from_str("app", text, None).unwrap();
    let p = f
        .parse("20240301-101500 app[7]: refused from 192.0.2.9", &ctx())
        .unwrap();
    assert_eq!(p.src_ip, Some("192.0.2.9".parse().unwrap()));
    assert_eq!(p.get("rule"), Some("1"));
    assert_eq!(p.ts.unwrap().to_rfc3339(), "2024-03-01T10:15:00.000Z");
    let p = f
        .parse("20240301-101500 app[7]: denied 198.51.100.4", &ctx())
        .unwrap();
    assert_eq!(p.src_ip, Some("198.51.100.4".parse().unwrap()));
    let p = f
        .parse("20240301-101500 app[7]: denied token-42", &ctx())
        .unwrap();
    assert_eq!((p.src_ip, p.get("id")), (None, Some("token-42")));
    // The prefix must match: failregexes see only the content.
    assert_eq!(
        f.parse("20240301-101500 other: refused from 192.0.2.9", &ctx()),
        Err(Unparsed::NoMatch)
    );
    let e = Fail2banFilter::from_str(
        "app",
        "[Definition]\nprefregex = ^x\nfailregex = <HOST>\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("F-CONTENT"), "{e}");
}

#[test]
fn host_less_mlfid_filters_are_refused() {
    let text = "[Definition]\nprefregex = ^<F-MLFID>\\S+</F-MLFID> <F-CONTENT>.+</F-CONTENT>$\nfailregex = ^Disconnecting: too many\n";
    let e = Fail2banFilter::from_str("m", text, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("<F-MLFID>"), "{e}");
}
