//! nginx/apache access and error log fixtures, plus properties.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use proptest::prelude::*;
use sentinel_core::Timestamp;
use sentinel_ingest::parse::http::{AccessLog, ErrorLog, ErrorLogFlavor};
use sentinel_ingest::{LineParser, LogKind, ParseCtx, Unparsed};

/// `2026-11-27T19:56:49Z` in epoch milliseconds.
const T0: i64 = 1_795_809_409_000;

fn ctx(offset: i32) -> ParseCtx {
    ParseCtx {
        reference: Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap(),
        utc_offset_secs: offset,
    }
}

type Want = Result<(LogKind, &'static str, Option<&'static str>, i64), Unparsed>;

fn check(parser: &dyn LineParser, text: &str, ctx: &ParseCtx, wants: Vec<Want>) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), wants.len());
    for (line, want) in lines.iter().zip(wants) {
        let got = parser.parse(line, ctx).map(|p| {
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
}

const ACCESS: &str = include_str!("fixtures/parse/access.log");
const ERRORS: &str = include_str!("fixtures/parse/error.log");

#[test]
fn access_log_fixture() {
    use LogKind::HttpRequest as R;
    let wants: Vec<Want> = vec![
        Ok((R, "203.0.113.5", None, T0)),
        Ok((R, "2001:db8::1", Some("bob"), T0 + 1000)),
        Ok((R, "198.51.100.7", None, T0 + 2000)),
        Ok((R, "198.51.100.8", None, T0 + 3000)),
        Ok((R, "198.51.100.9", Some("frank"), T0 + 4000)),
        Ok((R, "198.51.100.10", None, T0 + 5000)),
        Err(Unparsed::Malformed("bad_address")),
        Err(Unparsed::Malformed("bad_status")),
        Err(Unparsed::Malformed("bad_timestamp")),
        Err(Unparsed::NoMatch),
    ];
    check(&AccessLog::new("nginx"), ACCESS, &ctx(0), wants);
}

#[test]
fn access_log_fields() {
    let p = |i: usize| {
        AccessLog::default()
            .parse(ACCESS.lines().nth(i).unwrap(), &ctx(0))
            .unwrap()
    };
    let first = p(0);
    let get = |k| first.get(k);
    assert_eq!(
        (
            get("method"),
            get("path"),
            get("status"),
            get("bytes"),
            get("referer"),
            get("user_agent")
        ),
        (
            Some("GET"),
            Some("/index.php?id=1"),
            Some("404"),
            Some("153"),
            None,
            Some("Mozilla/5.0 (X11; Linux x86_64)")
        )
    );
    let second = p(1);
    assert_eq!(
        (second.get("bytes"), second.get("referer")),
        (Some("0"), Some("https://example.com/"))
    );
    let tls = p(2);
    assert_eq!(
        (tls.get("method"), tls.get("status")),
        (Some(""), Some("400"))
    );
    assert_eq!(
        tls.get("request"),
        Some(r"\x16\x03\x01\x00\xF1\x01\x00\x00")
    );
    assert_eq!(p(3).get("user_agent"), Some(r#"Agent "quoted" v1"#));
    assert_eq!(p(4).get("user_agent"), None);
}

#[test]
fn error_log_fixture() {
    use LogKind::{HttpAuthFailure as A, HttpRateLimited as L};
    let wants: Vec<Want> = vec![
        Ok((A, "203.0.113.5", Some("bob"), T0)),
        Ok((A, "2001:db8::2", Some("alice"), T0 + 1000)),
        Ok((L, "198.51.100.7", None, T0 + 2000)),
        Err(Unparsed::Ignored),
        Err(Unparsed::Ignored),
        Ok((A, "198.51.100.9", Some("bob"), T0 + 5123)),
        Ok((A, "2001:db8::3", Some("carol"), T0 + 6000)),
        Ok((A, "198.51.100.10", Some("dave"), T0 + 7000)),
        Err(Unparsed::Ignored),
        Err(Unparsed::Malformed("bad_address")),
        Err(Unparsed::Malformed("bad_timestamp")),
    ];
    // Error logs carry no zone: these were written at UTC+1.
    check(&ErrorLog::default(), ERRORS, &ctx(3600), wants);
    let nginx_only = ErrorLog::new(ErrorLogFlavor::Nginx);
    assert_eq!(
        nginx_only.parse(ERRORS.lines().nth(5).unwrap(), &ctx(0)),
        Err(Unparsed::NoMatch)
    );
    let apache_only = ErrorLog::new(ErrorLogFlavor::Apache);
    assert_eq!(
        apache_only.parse(ERRORS.lines().next().unwrap(), &ctx(0)),
        Err(Unparsed::NoMatch)
    );
}

#[test]
fn error_log_fields() {
    let limit = ErrorLog::default()
        .parse(ERRORS.lines().nth(2).unwrap(), &ctx(0))
        .unwrap();
    assert_eq!(
        (limit.get("zone"), limit.get("excess"), limit.get("path")),
        (Some("one"), Some("0.512"), Some("/"))
    );
    let ap = ErrorLog::default()
        .parse(ERRORS.lines().nth(6).unwrap(), &ctx(0))
        .unwrap();
    assert_eq!(
        (ap.get("path"), ap.get("code"), ap.service.as_ref()),
        (Some("/admin"), Some("AH01617"), "apache")
    );
}

fn ip_in_line(ip: std::net::IpAddr, line: &str) -> bool {
    line.split(|c: char| c.is_whitespace() || "[]()<>,=\"'".contains(c))
        .flat_map(|t| [Some(t), t.rsplit_once(':').map(|(a, _)| a)])
        .flatten()
        .filter_map(|t| t.parse::<std::net::IpAddr>().ok())
        .any(|a| a.to_canonical() == ip)
}

fn mutate(line: &str, at: prop::sample::Index, cut: usize, insert: &str) -> String {
    let mut chars: Vec<char> = line.chars().collect();
    let i = at.index(chars.len() + 1);
    let end = (i + cut).min(chars.len());
    chars.splice(i..end, insert.chars());
    chars.into_iter().collect()
}

fn lines(text: &'static str) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(text.lines().collect::<Vec<_>>())
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        let _ = AccessLog::default().parse(&s, &ctx(0));
        let _ = ErrorLog::default().parse(&s, &ctx(0));
        let _ = ErrorLog::default().parse(&format!("[{s}"), &ctx(0));
        let _ = AccessLog::default().parse(&format!("1.2.3.4 - - [{s}"), &ctx(0));
    }

    #[test]
    fn mutated_access_lines(line in lines(ACCESS), at in any::<prop::sample::Index>(), cut in 0usize..8, ins in "\\PC{0,6}") {
        let m = mutate(line, at, cut, &ins);
        if let Ok(p) = AccessLog::default().parse(&m, &ctx(0)) {
            prop_assert!(ip_in_line(p.src_ip.unwrap(), &m), "{m}");
        }
    }

    #[test]
    fn mutated_error_lines(line in lines(ERRORS), at in any::<prop::sample::Index>(), cut in 0usize..8, ins in "\\PC{0,6}") {
        let m = mutate(line, at, cut, &ins);
        if let Ok(p) = ErrorLog::default().parse(&m, &ctx(0)) {
            prop_assert!(ip_in_line(p.src_ip.unwrap(), &m), "{m}");
        }
    }
}

/// The user field is the client's own text (`Authorization: Basic` decoded) and may hold spaces: a probe
/// sent with such a header is still read, with its real address; neither a user nor a virtual host (the
/// client's `Host`) that holds another address or a time can move the address or the request.
#[test]
fn a_user_with_spaces_neither_hides_nor_moves_the_request() {
    let ok = |line: &str| {
        AccessLog::default()
            .parse(line, &ctx(0))
            .unwrap_or_else(|e| panic!("{e:?}: {line}"))
    };
    let t = "[27/Nov/2026:19:56:49 +0100]";
    let p = ok(&format!(
        r#"198.51.100.1 - a b {t} "GET /.env HTTP/1.1" 404 1 "-" "x""#
    ));
    assert_eq!(p.src_ip, Some("198.51.100.1".parse().unwrap()));
    assert_eq!((p.get("user"), p.get("path")), (Some("a b"), Some("/.env")));
    assert_eq!(p.get("vhost"), None);
    // A user holding an address is not taken (in a virtual-host layout that address would be the real
    // one): the line stays unread rather than read with the wrong address.
    assert_eq!(
        AccessLog::default().parse(
            &format!(r#"198.51.100.1 - x 203.0.113.9 y {t} "GET /.git/config HTTP/1.1" 404 1"#),
            &ctx(0)
        ),
        Err(Unparsed::NoMatch)
    );
    // nginx's `$host $remote_addr - $remote_user` with a `Host` header holding spaces and an address: never
    // read as coming from the address the client wrote.
    for host in [
        "evil 203.0.113.9",
        "203.0.113.9 -",
        "203.0.113.9 - x",
        "a 203.0.113.9 -",
    ] {
        let line = format!(r#"{host} 198.51.100.1 - - {t} "GET /.env HTTP/1.1" 404 1 "-" "x""#);
        if let Ok(p) = AccessLog::default().parse(&line, &ctx(0)) {
            assert_eq!(p.src_ip, Some("198.51.100.1".parse().unwrap()), "{line}");
        }
    }
    // A time inside the user without the request's quote after it is not the line's time.
    let p = ok(&format!(
        r#"198.51.100.1 - u [27/Nov/2020:00:00:00 +0000] x {t} "GET /a HTTP/1.1" 200 1"#
    ));
    assert_eq!(p.get("path"), Some("/a"));
    assert_eq!(
        p.ts,
        ok(&format!(r#"198.51.100.1 - - {t} "GET /a HTTP/1.1" 200 1"#)).ts
    );
    // The plain forms are unchanged; a bad time in the vhost form is still malformed, not foreign.
    let p = ok(&format!(
        r#"www.example.com 198.51.100.3 - bob {t} "GET / HTTP/1.1" 200 1"#
    ));
    assert_eq!(
        (p.src_ip, p.get("vhost"), p.get("user")),
        (
            Some("198.51.100.3".parse().unwrap()),
            Some("www.example.com"),
            Some("bob")
        )
    );
    assert_eq!(
        AccessLog::default().parse(
            r#"www.example.com 198.51.100.3 - bob [99/Nov/2026:19:56:49 +0100] "GET / HTTP/1.1" 200 1"#,
            &ctx(0)
        ),
        Err(Unparsed::Malformed("bad_timestamp"))
    );
}

/// A basic-auth user holding quotes (nginx writes it as sent) is still a failure from the real client,
/// for both wordings; the address is never taken from the user.
#[test]
fn nginx_auth_failures_with_quotes_in_the_user() {
    let parse = |line: &str| ErrorLog::default().parse(line, &ctx(0));
    let p = parse(
        r#"2026/11/27 19:56:49 [error] 1234#0: *5 user "ad"min" x": password mismatch, client: 198.51.100.2, server: example.com, request: "GET / HTTP/1.1", host: "example.com""#,
    )
    .unwrap();
    assert_eq!(p.kind, LogKind::HttpAuthFailure);
    assert_eq!(p.src_ip, Some("198.51.100.2".parse().unwrap()));
    assert_eq!(p.get("user"), Some(r#"ad"min" x"#));
    let p = parse(
        r#"2026/11/27 19:56:49 [error] 1234#0: *5 user "a"b" was not found in "/etc/nginx/.htpasswd", client: 198.51.100.3, server: example.com"#,
    )
    .unwrap();
    assert_eq!(
        (p.src_ip, p.get("user")),
        (Some("198.51.100.3".parse().unwrap()), Some(r#"a"b"#))
    );
    // Other messages about a user stay ignored.
    assert_eq!(
        parse(
            r#"2026/11/27 19:56:49 [error] 1234#0: *5 user "a" said hello, client: 198.51.100.3, server: e"#
        ),
        Err(Unparsed::Ignored)
    );
}
