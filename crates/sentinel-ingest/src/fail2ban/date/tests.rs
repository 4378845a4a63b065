//! Cases from fail2ban 1.0.2's own date detector tests (`tests/datedetectortestcase.py`) and sample logs. fail2ban
//! runs them with "now" = 2005-08-14 12:00 CEST and local time CET/CEST; here the offset is given per case.

use super::*;

const TEST_NOW_MS: i64 = 1_124_013_600_000;
const CET: i32 = 3600;
const CEST: i32 = 7200;

fn ctx(offset: i32) -> ParseCtx {
    ParseCtx {
        reference: Timestamp::from_millis(TEST_NOW_MS),
        utc_offset_secs: offset,
    }
}

/// The matched span and the time in whole seconds (fail2ban drops fractions of strptime dates).
fn get(d: &DateMatcher, line: &str, offset: i32) -> Option<(String, Option<i64>)> {
    let f = d.find(line, &ctx(offset))?;
    Some((
        line[f.start..f.end].to_string(),
        f.ts.map(|t| t.as_millis().div_euclid(1000)),
    ))
}

fn dm(p: &str) -> DateMatcher {
    DateMatcher::new(Some(p)).unwrap()
}

#[test]
fn default_list_has_every_template_in_order() {
    let d = DateMatcher::new(None).unwrap();
    // 14 anchored copies + 17 originals.
    assert_eq!(d.template_count(), 31);
    // {^LN-BEG}: the 14 copies and the three templates anchored by themselves.
    assert_eq!(dm("{^LN-BEG}").template_count(), 17);
}

#[test]
fn various_times_like_fail2ban() {
    // (anchored, word-boundary testable, date, expected span)
    let cases: &[(bool, bool, &str, Option<&str>)] = &[
        (false, true, "Jan 23 21:59:59", None),
        (false, false, "Sun Jan 23 21:59:59 2005", None),
        (false, false, "Sun Jan 23 21:59:59", None),
        (false, false, "Sun Jan 23 2005 21:59:59", None),
        (false, true, "2005/01/23 21:59:59", None),
        (false, true, "2005.01.23 21:59:59", None),
        (false, true, "23/01/2005 21:59:59", None),
        (false, true, "23/01/05 21:59:59", None),
        (false, true, "23/Jan/2005:21:59:59", None),
        (false, true, "23/Jan/2005:21:59:59 +0100", None),
        (false, true, "01/23/2005:21:59:59", None),
        (false, true, "2005-01-23 21:59:59", None),
        (false, true, "2005-01-23 21:59:59,000", None),
        (false, true, "23-Jan-2005 21:59:59", None),
        (false, true, "23-Jan-2005 21:59:59.02", None),
        (false, true, "23-Jan-2005 21:59:59 +0100", None),
        (false, true, "23-01-2005 21:59:59", None),
        (true, true, "1106513999", None),
        (false, true, "01-23-2005 21:59:59.252", None),
        (false, false, "@4000000041f4104f00000000", None),
        (false, true, "2005-01-23T20:59:59.252Z", None),
        (false, true, "2005-01-23T15:59:59-05:00", None),
        (false, true, "20050123T215959", None),
        (false, true, "20050123 215959", None),
        (true, true, "<01/23/05@21:59:59>", None),
        (false, true, "050123 21:59:59", None),
        (true, true, "Jan-23-05 21:59:59", None),
        (false, true, "Jan 23, 2005 9:59:59 PM", None),
        (true, true, "1106513999.000", None),
        (true, true, "[1106513999.000]", Some("1106513999.000")),
        (
            false,
            true,
            "audit(1106513999.000:987)",
            Some("1106513999.000"),
        ),
    ];
    let d = DateMatcher::new(None).unwrap();
    for &(anchored, bound, sdate, rdate) in cases {
        let rdate = rdate.unwrap_or(sdate);
        for (should, prefix) in [
            (true, ""),
            (!anchored, "bogus-prefix "),
            (false, "word-boundary"),
        ] {
            if !bound && prefix == "word-boundary" {
                continue;
            }
            let line = format!("{prefix}{sdate}[sshd] error: PAM: Authentication failure");
            let got = get(&d, &line, CET);
            if should {
                assert_eq!(
                    got,
                    Some((rdate.to_string(), Some(1_106_513_999))),
                    "{line}"
                );
            } else {
                assert_eq!(got, None, "{line}");
            }
        }
    }
    assert_eq!(get(&d, "no date line", CET), None);
}

#[test]
fn nearest_date_wins_among_unanchored() {
    let d = DateMatcher::new(None).unwrap();
    let cases = [
        ("030324  0:03:59", "some free text 030324  0:03:59 -- 2003-03-07 17:05:01 ..."),
        ("2003-03-07 17:05:01", "some free text 2003-03-07 17:05:01 test ..."),
        ("030324  0:04:00", "server mysqld[1000]: 030324  0:04:00 [Warning] Access denied ... foreign-input just some free text 2003-03-07 17:05:01 test"),
        ("Sep 16 21:30:26", "server mysqld[1020]: Sep 16 21:30:26 server mysqld: 030916 21:30:26 [Warning] Access denied"),
        ("2005-10-07 06:09:42", "server mysqld[5906]: 2005-10-07 06:09:42 5907 [Warning] Access denied"),
        ("2005-10-08T15:26:18.237955", "server mysqld[5906]: 2005-10-08T15:26:18.237955 6 [Note] Access denied"),
        ("051009 10:05:30", "server mysqld[1000]: 051009 10:05:30 [Warning] Access denied ..."),
    ];
    for (want, line) in cases {
        for _ in 0..3 {
            assert_eq!(
                get(&d, line, CET).map(|g| g.0).as_deref(),
                Some(want),
                "{line}"
            );
        }
    }
    // A different format after the previous one was used, and back.
    let local = |s: &str| Timestamp::parse_rfc3339(s).unwrap().as_millis() / 1000;
    let mu = local("2012-10-11T00:37:17Z");
    for line in [
        "2012/10/11 02:37:17 [error] 18434#0",
        "11/10/2012 02:37:17 [error] 18434#0",
    ] {
        for _ in 0..3 {
            assert_eq!(get(&d, line, CEST).unwrap().1, Some(mu), "{line}");
        }
    }
}

#[test]
fn epochs_and_tai64n() {
    let e = dm("EPOCH");
    for secs in [1_138_049_999i64, 32_535_244_799] {
        for fmt in ["{}", "[{}]", "[{}.555]", "audit({}.555:101)"] {
            let date = fmt.replace("{}", &secs.to_string());
            let got = get(
                &e,
                &format!("{date} [sshd] error: PAM: Authentication failure"),
                0,
            );
            assert_eq!(got.unwrap().1, Some(secs), "{date}");
        }
    }
    for bad in [
        "123456789",
        "9999999999999999",
        "1138049999A",
        "A1138049999",
    ] {
        for fmt in ["{}", "[{}]", "[{}.555]", "audit({}.555:101)"] {
            let line = format!("{} [sshd] x", fmt.replace("{}", bad));
            assert_eq!(get(&e, &line, 0), None, "{line}");
        }
    }
    let l = dm("LEPOCH");
    for fact in [1i64, 1000, 1_000_000] {
        for secs in [1_138_049_999i64, 32_535_244_799] {
            for fmt in ["{}", "[{}]", "audit({}:101)"] {
                let long = (secs * fact).to_string();
                let line = format!("{} [sshd] x", fmt.replace("{}", &long));
                assert_eq!(
                    get(&l, &line, 0),
                    Some((long.clone(), Some(secs))),
                    "{line}"
                );
            }
        }
    }
    let p = dm(r"(?<=\|\s){LEPOCH}(?=\s\|)");
    assert_eq!(
        get(&p, "auth-error | 1138049999123 | invalid password", 0),
        Some(("1138049999123".into(), Some(1_138_049_999)))
    );
    assert_eq!(get(&p, "test1138049999123 | test-left", 0), None);
    let t = dm("{^LN-BEG}TAI64N");
    assert_eq!(
        get(&t, "@4000000041f4104f00000000 dovecot: auth: x", 0)
            .unwrap()
            .1,
        Some(1_106_513_999)
    );
    let nsd = dm("{^LN-BEG}Epoch\n{^LN-BEG}");
    assert_eq!(
        get(&nsd, "[1387288242] nsd[7745]: x", 0).unwrap().1,
        Some(1_387_288_242)
    );
    assert_eq!(
        get(&nsd, "Jan 23 21:59:59 host x", CET).unwrap().1,
        Some(1_106_513_999)
    );
}

#[test]
fn custom_patterns_like_fail2ban() {
    let cases: &[(Option<&str>, &str, &str)] = &[
        (
            Some("20:00:00 01.02.2003"),
            r"%H:%M:%S %d.%m.%Y$",
            "192.0.2.1 at 20:00:00 01.02.2003",
        ),
        (
            Some("[20:00:00 01.02.2003]"),
            r"\[%H:%M:%S %d.%m.%Y\]",
            "192.0.2.1[20:00:00 01.02.2003]",
        ),
        (
            Some("[20:00:00 01.02.2003]"),
            r"\[%H:%M:%S %d.%m.%Y\]",
            "[20:00:00 01.02.2003]192.0.2.1",
        ),
        (
            Some("[20:00:00 01.02.2003]"),
            r"\[%H:%M:%S %d.%m.%Y\]$",
            "192.0.2.1[20:00:00 01.02.2003]",
        ),
        (
            Some("[20:00:00 01.02.2003]"),
            r"^\[%H:%M:%S %d.%m.%Y\]",
            "[20:00:00 01.02.2003]192.0.2.1",
        ),
        (
            Some("[17/Jun/2011 17:00:45]"),
            r"^\[%d/%b/%Y %H:%M:%S\]",
            "[17/Jun/2011 17:00:45] Attempt, IP address 192.0.2.1",
        ),
        (
            Some("[17/Jun/2011 17:00:45]"),
            r"\[%d/%b/%Y %H:%M:%S\]",
            "Attempt IP address 192.0.2.1, date: [17/Jun/2011 17:00:45]",
        ),
        (None, r"%H:%M:%S %d.%m.%Y", "192.0.2.1x20:00:00 01.02.2003"),
        (None, r"%H:%M:%S %d.%m.%Y", "20:00:00 01.02.2003x192.0.2.1"),
        (
            Some("20:00:00 01.02.2003"),
            r"**%H:%M:%S %d.%m.%Y**",
            "192.0.2.1x20:00:00 01.02.2003",
        ),
        (
            Some("20:00:00 01.02.2003"),
            r"**%H:%M:%S %d.%m.%Y**",
            "20:00:00 01.02.2003x192.0.2.1",
        ),
        (
            Some("*20:00:00 01.02.2003*"),
            r"\**%H:%M:%S %d.%m.%Y\**",
            "test*20:00:00 01.02.2003*test",
        ),
        (
            Some("20:00:00 01.02.2003"),
            r"%H:%M:%S %d.%m.%Y",
            "192.0.2.1 20:00:00 01.02.2003",
        ),
        (
            Some("2003-12-30 00:00:00"),
            r"%ExY-%Exm-%Exd %ExH:%ExM:%ExS",
            "0000-12-30 00:00:00 - 2003-12-30 00:00:00",
        ),
        (
            Some("20031230 010203"),
            r"%ExY%Exm%Exd %ExH%ExM%ExS",
            "text:200333 010203 | date:20031230 010203",
        ),
        (
            Some("200333 010203"),
            r"%Y%m%d %H%M%S",
            "text:200333 010203 | date:20031230 010203",
        ),
        (
            Some("20030101 000000"),
            "%ExY%Exm%Exd %ExH%ExM%ExS",
            "00001230 010203 - 20030101 000000",
        ),
        (
            None,
            "{^LN-BEG}%ExY%Exm%Exd %ExH%ExM%ExS",
            "00001230 010203 - 20030101 000000",
        ),
        (
            Some("20031230 010203"),
            "{^LN-BEG}%ExY%Exm%Exd %ExH%ExM%ExS",
            "20031230 010203 - 20030101 000000",
        ),
        (
            Some("20031230010203"),
            "{^LN-BEG}%ExY%Exm%Exd%ExH%ExM%ExS**",
            "##2003123001020320030101000000",
        ),
        (
            Some("20031230010203"),
            "{^LN-BEG}%ExY%Exm%Exd%ExH%ExM%ExS",
            "[20031230010203]20030101000000",
        ),
    ];
    for &(want, p, line) in cases {
        assert_eq!(
            get(&dm(p), line, CET).map(|g| g.0).as_deref(),
            want,
            "{p} on {line}"
        );
    }
    // Defaults on the same ambiguous lines.
    let d = DateMatcher::new(None).unwrap();
    assert_eq!(
        get(&d, "0000-12-30 00:00:00 - 2003-12-30 00:00:00", CET)
            .unwrap()
            .0,
        "2003-12-30 00:00:00"
    );
    assert_eq!(
        get(
            &d,
            "Test failure TestJan 23 21:59:59.011 2015 for 192.0.2.1",
            CET
        ),
        None
    );
    assert_eq!(
        get(
            &d,
            "Test failure Jan 23 21:59:59123456789 for 192.0.2.1",
            CET
        ),
        None
    );
    assert_eq!(
        get(
            &d,
            "[Aug 8 11:25:50] 20030f2329b8 Authentication failed",
            CEST
        )
        .unwrap()
        .0,
        "Aug 8 11:25:50"
    );
    // A year the pattern's %Y accepts but no calendar has: a span without a time.
    assert_eq!(
        get(
            &dm(r"%Y-%Exm-%Exd %ExH:%ExM:%ExS"),
            "0000-12-30 00:00:00 - x",
            CET
        ),
        Some(("0000-12-30 00:00:00".into(), None))
    );
    // Case: `{^LN-BEG}` literal text is case-sensitive, month names are not.
    let t = dm("{^LN-BEG}time:%ExY%Exm%ExdT%ExH%ExM%ExS");
    assert!(get(&t, "TIME:20050102T010203", CET).is_none());
    assert!(get(&t, "Xtime:20050102T010203", CET).is_none());
    assert!(get(&t, "time:20050102T010203X", CET).is_none());
    assert!(get(&t, "##time:20050102T010203...", CET).is_some());
    let u = dm("(?iu)**time:%ExY%Exm%ExdT%ExH%ExM%ExS**");
    assert_eq!(
        get(&u, "XTIME:20050102T010203X", CET).unwrap().0,
        "TIME:20050102T010203"
    );
    assert!(get(&u, "TIME:50050102T010203", CET).is_none());
    let b = dm("^%Y %b %d");
    for line in ["2005 jun 03", "2005 Jun 03", "2005 JUN 03"] {
        assert!(get(&b, line, CEST).is_some(), "{line}");
    }
}

#[test]
fn zones_and_default_offsets() {
    let d = dm(r"^%ExY-%Exm-%Exd %H:%M:%S(?: ?%Exz)?");
    let utc = |s: &str| Timestamp::parse_rfc3339(s).unwrap().as_millis() / 1000;
    let log = "2017-01-23 15:00:00";
    let cases: &[(i32, String, &str)] = &[
        (10_800, log.into(), "2017-01-23T12:00:00Z"),
        (0, log.into(), "2017-01-23T15:00:00Z"),
        (-16_200, log.into(), "2017-01-23T19:30:00Z"),
        (CET, log.into(), "2017-01-23T14:00:00Z"),
        (10_800, format!("{log} GMT"), "2017-01-23T15:00:00Z"),
        (0, format!("{log} -1045"), "2017-01-24T01:45:00Z"),
        (CET, format!("{log} -10:45"), "2017-01-24T01:45:00Z"),
        (0, format!("{log} +0945"), "2017-01-23T05:15:00Z"),
        (10_800, format!("{log} Z"), "2017-01-23T15:00:00Z"),
        (43_200, format!("{log} CET"), "2017-01-23T14:00:00Z"),
        (43_200, format!("{log} CEST"), "2017-01-23T13:00:00Z"),
        (43_200, format!("{log} CET+0130"), "2017-01-23T12:30:00Z"),
    ];
    for (offset, line, want) in cases {
        assert_eq!(get(&d, line, *offset).unwrap().1, Some(utc(want)), "{line}");
    }
    for (p, line, want) in [
        (
            r"{^LN-BEG}%ExY-%Exm-%Exd %ExH:%ExM:%ExS(?: %z)?",
            "[2003-12-30 01:02:03] server",
            1_072_746_123 - 3600,
        ),
        (
            r"{^LN-BEG}%ExY-%Exm-%Exd %ExH:%ExM:%ExS(?: %Z)?",
            "[2003-12-30 01:02:03 UTC] server",
            1_072_746_123,
        ),
        (
            r"{^LN-BEG}%ExY-%Exm-%Exd %ExH:%ExM:%ExS(?: %z)?",
            "[2003-12-30 01:02:03 Z] server",
            1_072_746_123,
        ),
        (
            r"{^LN-BEG}%ExY-%Exm-%Exd %ExH:%ExM:%ExS(?: %z)?",
            "[2003-12-30 01:02:03 +0000] server",
            1_072_746_123,
        ),
    ] {
        assert_eq!(get(&dm(p), line, CET).unwrap().1, Some(want), "{line}");
    }
}

#[test]
fn format_specs_and_inference() {
    for (want, p, line, offset) in [
        (
            1_106_438_399,
            "^%B %Exd %I:%ExM:%ExS**",
            "January 23 12:59:59",
            CET,
        ),
        (
            985_208_399,
            "^%y %U %A %ExH:%ExM:%ExS**",
            "01 11 Wednesday 21:59:59",
            CET,
        ),
        (
            984_603_599,
            "^%y %W %A %ExH:%ExM:%ExS**",
            "01 11 Wednesday 21:59:59",
            CET,
        ),
        (
            984_949_199,
            "^%y %W %w %ExH:%ExM:%ExS**",
            "01 11 0 21:59:59",
            CET,
        ),
        (
            984_862_799,
            "^%y %W %w %ExH:%ExM:%ExS**",
            "01 11 6 21:59:59",
            CET,
        ),
        (1_123_963_199, "^%ExH:%ExM:%ExS**", "21:59:59", CEST),
        (1_123_970_401, "^%ExH:%ExM:%ExS**", "00:00:01", CEST),
        (
            1_094_068_799,
            "^%m/%d %ExH:%ExM:%ExS**",
            "09/01 21:59:59",
            CEST,
        ),
        (1_093_989_600, "^%Y-%m-%d**", "2004-09-01", CEST),
        (1_093_996_800, "^%Y-%m-%d%z**", "2004-09-01Z", CEST),
    ] {
        assert_eq!(
            get(&dm(p), line, offset).unwrap().1,
            Some(want),
            "{p} on {line}"
        );
    }
    // Time-only (unbounded or not), either side of the line: today's date.
    for p in [r"%H:%M:%S", r"{UNB}%H:%M:%S"] {
        let d = dm(p);
        for fmt in ["{} test", "test {}", "test {} "] {
            for t in ["00:01:02", "00:01:2", "00:1:2", "0:1:2"] {
                let line = fmt.replace("{}", t);
                assert_eq!(
                    get(&d, &line, CEST),
                    Some((t.to_string(), Some(1_123_970_462))),
                    "{line}"
                );
            }
        }
    }
}

#[test]
fn formats_named_in_the_issue() {
    let d = dm("{^LN-BEG}");
    let local = |s: &str, off: i32| {
        Timestamp::parse_rfc3339(s).unwrap().as_millis() / 1000 - i64::from(off)
    };
    for (line, want, off) in [
        (
            "2011.11.21 14:29:16 [16] Error: x",
            local("2011-11-21T14:29:16Z", CET),
            CET,
        ),
        // No zone in this template: the offset after the time is not part of the date (as in fail2ban).
        (
            "11-06-2013 02:09:40 +0300 x",
            local("2013-06-11T02:09:40Z", CEST),
            CEST,
        ),
        (
            "Oct 27 2015 12:35:40 x",
            local("2015-10-27T12:35:40Z", CET),
            CET,
        ),
        (
            "11-Aug-2013 03:36:11.372 error x",
            local("2013-08-11T03:36:11Z", CEST),
            CEST,
        ),
        (
            "[PDT Apr 16 21:05:29] x",
            local("2005-04-16T21:05:29Z", -25_200),
            CEST,
        ),
        (
            "-0700 Apr 16 21:05:29 x",
            local("2005-04-16T21:05:29Z", -25_200),
            CEST,
        ),
        (
            "Jan 23 21:59:59 host sshd[1]: x",
            local("2005-01-23T21:59:59Z", CET),
            CET,
        ),
    ] {
        assert_eq!(get(&d, line, off).unwrap().1, Some(want), "{line}");
    }
    // murmur: `<W>2015-06-14 …` after `^<W>`.
    let m = dm("^<W>{DATE}");
    let (span, ts) = get(
        &m,
        "<W>2015-06-14 22:22:19.374 1 => <8:x(-1)> Rejected connection",
        CEST,
    )
    .unwrap();
    // The pattern has no group of its own, so (as in fail2ban) the whole match, `<W>` included, is cut.
    assert_eq!(span, "<W>2015-06-14 22:22:19.374");
    assert_eq!(ts, Some(local("2015-06-14T22:22:19Z", CEST)));
    // traefik's access log (CLF date inside the line), through nginx-botsearch's list.
    let t = dm("{^LN-BEG}%ExY(?P<_sep>[-/.])%m(?P=_sep)%d[T ]%H:%M:%S(?:[.,]%f)?(?:\\s*%z)?\n^[^\\[]*\\[({DATE})\n{^LN-BEG}");
    let line = r#"10.0.0.1 - - [20/Jun/2020:09:58:36 +0000] "GET /admin HTTP/1.1" 404 19 "-" "curl" 1 "r@docker" "http://10.0.0.2:80" 0ms"#;
    let (span, ts) = get(&t, line, CEST).unwrap();
    assert_eq!(span, "20/Jun/2020:09:58:36 +0000");
    assert_eq!(ts, Some(local("2020-06-20T09:58:36Z", 0)));
    // Optional-date markers: the span is empty and there is no time of its own.
    let g = dm("^%b %d, %ExY %I:%M:%S %p\n^WARNING:()**\n{^LN-BEG}");
    let f = g
        .find(
            "WARNING: Authentication attempt from 192.0.2.1 for user x failed.",
            &ctx(CET),
        )
        .unwrap();
    assert_eq!((f.start, f.end, f.ts), (8, 8, None));
    let none = dm("{NONE}");
    assert_eq!(
        none.find("Jan 23 21:59:59 x", &ctx(CET))
            .map(|f| (f.start, f.end, f.ts)),
        Some((0, 0, None))
    );
}

#[test]
fn load_errors_name_the_problem() {
    for (p, needle) in [
        ("%Y %q", "%q"),
        ("%Exq", "%Ex"),
        ("[%d", "regex"),
        ("(%H", "regex"),
        ("50%", "%"),
    ] {
        let e = DateMatcher::new(Some(p)).unwrap_err();
        assert!(e.contains(needle), "{p}: {e}");
    }
}

#[test]
fn never_panics_on_odd_patterns_or_lines() {
    let patterns = [
        "",
        "%",
        "%%",
        "{DATE}",
        "{^LN-BEG}{DATE}",
        "**",
        "()**",
        "(?P<_sep>[)",
        "{EPOCH}",
        "{LEPOCH}x{EPOCH}",
        "^",
        "$",
        "\\",
        "(?P<d>x)(?P<d>y)",
        "%Y%Y",
        "(?P<Y>\\d+)",
    ];
    let lines = [
        "",
        "é",
        "Jan 99 99:99:99",
        "9999-99-99 99:99:99",
        "99999999999999999999",
        "@ffffffffffffffffffffffff",
        "[",
        "2005-02-29 00:00:00",
    ];
    for p in patterns {
        if let Ok(d) = DateMatcher::new(Some(p)) {
            for l in lines {
                let _ = d.find(l, &ctx(CET));
            }
        }
    }
    let d = DateMatcher::new(None).unwrap();
    for l in lines {
        if let Some(f) = d.find(l, &ctx(CET)) {
            assert!(f.start <= f.end && f.end <= l.len());
        }
    }
}
