//! Filter loading edge cases: Python regex constructs (look-behind, backreference, unsupported ones),
//! interpolation cycles, missing includes, unresolved tags, ignoreregex, multi-line filters (`maxlines`,
//! `<SKIPLINES>`, `<F-MLFID>` sessions), prefregex and custom dates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::Timestamp;
use sentinel_ingest::fail2ban::{Fail2banFilter, FilterError};
use sentinel_ingest::{LineParser, ParseCtx, Unparsed};
use std::path::Path;

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
    let e = filter(r"^x <HOST>$", "maxlines = three")
        .unwrap_err()
        .to_string();
    assert!(e.contains("maxlines") && e.contains("three"), "{e}");
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
    assert!(e.contains("self-referencing") && e.contains("<a>"), "{e}");
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
fn unresolved_tags_are_load_errors_naming_the_tag() {
    let e = filter("^<__prefix_line>x <HOST>$", "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("<__prefix_line>") && e.contains("failregex"),
        "{e}"
    );
    let e = filter("^<lt_<logtype>/x> <HOST>$", "logtype = file\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("<lt_file/x>"), "{e}");
    // Upper-case text in angle brackets is log text, as fail2ban leaves it.
    assert!(filter("^<NOSRV> <HOST>$", "").is_ok());
}

#[test]
fn section_qualified_and_nested_tags_resolve_with_definition_over_default() {
    let text =
        "[DEFAULT]\n_daemon = \\S*\nlogtype = file\n__prefix_line = <lt_<logtype>/__prefix_line>\n\
                [lt_file]\n__prefix_line = <_daemon>\\[\\d+\\]:\\s\n\
                [lt_journal]\n__prefix_line = %(lt_file/__prefix_line)s\n\
                [Definition]\n_daemon = sshd\nfailregex = ^<__prefix_line>bad from <HOST>$\n";
    let f = Fail2banFilter::from_str("q", text, None).unwrap();
    assert!(f.parse("sshd[1]: bad from 192.0.2.1", &ctx()).is_ok());
    // [Definition]'s _daemon wins over [DEFAULT]'s: another program does not match.
    assert_eq!(
        f.parse("cron[1]: bad from 192.0.2.1", &ctx()),
        Err(Unparsed::NoMatch)
    );
    let opts = sentinel_ingest::fail2ban::FilterOptions {
        mode: None,
        vars: vec![("logtype".into(), "journal".into())],
    };
    let j = Fail2banFilter::from_str_with("q", text, None, &opts).unwrap();
    assert!(j.parse("sshd[1]: bad from 192.0.2.1", &ctx()).is_ok());
}

#[test]
fn mlfid_session_reports_on_the_completing_line_with_the_earlier_host() {
    let text = "[Definition]\n\
        prefregex = ^s\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-CONTENT>.+</F-CONTENT>$\n\
        failregex = ^<F-NOFAIL>Connection from</F-NOFAIL> <HOST>\n  \
        ^Disconnecting: too many failures for <F-USER>\\S+</F-USER>\n  \
        ^<F-NOFAIL><F-MLFFORGET>Closed</F-MLFFORGET></F-NOFAIL>\n";
    let f = Fail2banFilter::from_str("m", text, None).unwrap();
    assert!(f.correlates_sessions());
    assert_eq!(
        f.parse("s[7]: Connection from 192.0.2.7", &ctx()),
        Err(Unparsed::Ignored)
    );
    let p = f
        .parse("s[7]: Disconnecting: too many failures for root", &ctx())
        .unwrap();
    assert_eq!(p.src_ip, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(p.get("user"), Some("root"));
    // Another session without a known host stays pending, and is counted.
    assert_eq!(
        f.parse("s[8]: Disconnecting: too many failures for x", &ctx()),
        Err(Unparsed::Ignored)
    );
    assert_eq!(f.session_stats().pending, 1);
    assert_eq!(f.session_stats().live, 2);
    assert_eq!(f.parse("s[7]: Closed", &ctx()), Err(Unparsed::Ignored));
    assert_eq!(f.session_stats().live, 1);
}

#[test]
fn maxlines_buffer_and_skiplines_match_across_lines() {
    let text = "[Definition]\nmaxlines = 4\n\
        failregex = ^conn (?P<id>\\d+) from <HOST>$<SKIPLINES>^conn (?P=id) auth failed$\n";
    let f = Fail2banFilter::from_str("b", text, None).unwrap();
    assert_eq!(f.maxlines(), 4);
    assert_eq!(
        f.parse("conn 1 from 192.0.2.1", &ctx()),
        Err(Unparsed::NoMatch)
    );
    assert_eq!(
        f.parse("conn 2 from 192.0.2.2", &ctx()),
        Err(Unparsed::NoMatch)
    );
    assert_eq!(f.parse("noise", &ctx()), Err(Unparsed::NoMatch));
    let p = f.parse("conn 1 auth failed", &ctx()).unwrap();
    assert_eq!(p.src_ip, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(p.get("context"), Some("conn 1 from 192.0.2.1"));
    // The lines the match stepped over stay in the buffer for later matches.
    let p = f.parse("conn 2 auth failed", &ctx()).unwrap();
    assert_eq!(p.src_ip, Some("192.0.2.2".parse().unwrap()));
}

#[test]
fn named_backreference_to_a_user_group() {
    let f = filter(r"^login <F-USER>\S+</F-USER> from <HOST> as (?P=user)$", "").unwrap();
    let p = f.parse("login bob from 192.0.2.3 as bob", &ctx()).unwrap();
    assert_eq!(p.get("user"), Some("bob"));
    assert_eq!(
        f.parse("login bob from 192.0.2.3 as eve", &ctx()),
        Err(Unparsed::NoMatch)
    );
}

#[test]
fn journalmatch_is_exposed() {
    let f = filter(
        r"^x <HOST>$",
        "journalmatch = _SYSTEMD_UNIT=sshd.service + _COMM=sshd\n",
    )
    .unwrap();
    assert_eq!(
        f.journalmatch(),
        ["_SYSTEMD_UNIT=sshd.service + _COMM=sshd"]
    );
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_not_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    // A device as the filter itself, or included: refused at once (reading /dev/zero never ends).
    let e = Fail2banFilter::load(Path::new("/dev/zero"), &Default::default()).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let path = dir.path().join("f.conf");
    std::fs::write(
        &path,
        "[INCLUDES]\nbefore = /dev/zero\n[Definition]\nfailregex = ^x <HOST>$\n",
    )
    .unwrap();
    let e = Fail2banFilter::load(&path, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // A FIFO would block on open: refused by its type, and named, not reported as missing.
    let fifo = dir.path().join("pipe.conf");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::write(
        &path,
        "[INCLUDES]\nbefore = pipe.conf\n[Definition]\nfailregex = ^x <HOST>$\n",
    )
    .unwrap();
    let e = Fail2banFilter::load(&path, &Default::default()).unwrap_err();
    assert!(matches!(e, FilterError::Read { .. }), "{e}");
    assert!(e.to_string().contains("pipe.conf"), "{e}");
    // An oversized file is refused, not loaded into memory whole.
    let big = dir.path().join("big.conf");
    let mut text = String::from("[Definition]\nfailregex = ^x <HOST>$\n");
    text.push_str(&format!("# {}\n", "x".repeat(5 << 20)));
    std::fs::write(&big, text).unwrap();
    let e = Fail2banFilter::load(&big, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}

#[test]
fn a_misspelt_host_tag_is_a_load_error_not_literal_text() {
    for (re, tag, meant) in [
        ("^x <HOST> from <HOTS>$", "HOTS", "HOST"),
        ("^x <HOST> <IP5>$", "IP5", "IP4"),
        ("^x <HOST> <ADR>$", "ADR", "ADDR"),
    ] {
        let e = filter(re, "").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("[Definition] failregex")
                && s.contains(&format!("<{tag}>"))
                && s.contains(&format!("<{meant}>")),
            "{re}: {s}"
        );
    }
    // Upper-case tags that are log text (haproxy's `<NOSRV>`) still load.
    assert!(filter("^x <HOST> <NOSRV>$", "").is_ok());
}

#[test]
fn maxlines_buffer_is_bounded_in_bytes_and_trimming_is_counted() {
    let text = "[Definition]\nmaxlines = 1000\n\
        failregex = ^conn (?P<id>\\d+) from <HOST>$<SKIPLINES>^conn (?P=id) auth failed$\n";
    let f = Fail2banFilter::from_str("b", text, None).unwrap();
    let long = format!("noise {}", "x".repeat(100_000));
    for _ in 0..20 {
        assert_eq!(f.parse(&long, &ctx()), Err(Unparsed::NoMatch));
    }
    // 20 lines of 100 kB would be 4 MB held (and searched) per line: the oldest went early, counted.
    assert!(
        f.session_stats().buffer_trimmed >= 17,
        "{:?}",
        f.session_stats()
    );
    // Short lines still correlate across the buffer as before.
    assert_eq!(
        f.parse("conn 7 from 192.0.2.7", &ctx()),
        Err(Unparsed::NoMatch)
    );
    let p = f.parse("conn 7 auth failed", &ctx()).unwrap();
    assert_eq!(p.src_ip, Some("192.0.2.7".parse().unwrap()));
}

#[test]
fn an_unknown_usedns_value_is_a_load_error() {
    let e = filter("^x <HOST>$", "usedns = maybe\n").unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("[Definition] usedns") && s.contains("maybe"),
        "{s}"
    );
    for ok in ["yes", "no", "warn", "raw", "No"] {
        assert!(
            filter("^x <HOST>$", &format!("usedns = {ok}\n")).is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn a_failregex_that_can_never_match_is_a_load_error() {
    for re in [
        "^x <HOST>$ port \\d+",
        "^x (?:<HOST>$) y",
        "a^x <HOST>",
        "^x <HOST> [^\\s\\S]",
    ] {
        let e = filter(re, "").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("[Definition] failregex") && s.contains("can never match"),
            "{re}: {s}"
        );
    }
    // Anchors that leave room for a match still load, optional text after `$` too.
    for re in [
        "^x <HOST>$",
        "^x <HOST>(?: port \\d+)?$",
        "^(?:a|b^)? <HOST>",
        "^x <HOST>$(?:\\s*)",
    ] {
        assert!(filter(re, "").is_ok(), "{re}");
    }
}
