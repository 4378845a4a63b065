//! HTTP server lines beyond plain access/error files: nginx and apache inside syslog (RFC 3164 and 5424),
//! virtual-host-prefixed access logs, Traefik (JSON and CLF), Caddy JSON, HAProxy's HTTP log and nginx
//! mail-proxy login failures. Every example goes through its own format name and through `auto`, with the
//! exact fields the scenarios read; then lines that must not parse as these kinds, and properties.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use proptest::prelude::*;
use sentinel_core::Timestamp;
use sentinel_ingest::parse::{by_name, Auto};
use sentinel_ingest::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};

fn ctx() -> ParseCtx {
    ParseCtx {
        reference: Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap(),
        utc_offset_secs: 0,
    }
}

/// One example: the line, the format name that reads it, and what it must give.
struct Case {
    line: &'static str,
    format: &'static str,
    kind: LogKind,
    service: &'static str,
    ip: &'static str,
    ts: &'static str,
    /// Fields that must hold exactly these values.
    fields: &'static [(&'static str, &'static str)],
    /// Fields that must be absent.
    absent: &'static [&'static str],
}

const HTTP: LogKind = LogKind::HttpRequest;

#[rustfmt::skip]
const CASES: &[Case] = &[
    // nginx access lines through syslog: rsyslog's RFC 3164, nginx's own `syslog:` header, RFC 5424.
    Case {
        line: r#"Nov 29 10:00:00 web1 nginx: 198.51.100.7 - - [29/Nov/2026:10:00:00 +0000] "GET /index.php?id=1%27 HTTP/1.1" 404 153 "-" "Mozilla/5.0 (X11; Linux x86_64)""#,
        format: "nginx", kind: HTTP, service: "nginx", ip: "198.51.100.7", ts: "2026-11-29T10:00:00.000Z",
        fields: &[("method", "GET"), ("path", "/index.php?id=1%27"), ("status", "404"), ("bytes", "153"),
                  ("user_agent", "Mozilla/5.0 (X11; Linux x86_64)")],
        absent: &["referer", "user", "vhost"],
    },
    Case {
        line: r#"<190>Nov 29 10:00:01 web1 nginx: 198.51.100.8 - - [29/Nov/2026:11:00:01 +0100] "GET /wp-login.php HTTP/1.1" 200 612 "https://example.com/" "curl/8.5.0""#,
        format: "nginx", kind: HTTP, service: "nginx", ip: "198.51.100.8", ts: "2026-11-29T10:00:01.000Z",
        fields: &[("method", "GET"), ("path", "/wp-login.php"), ("status", "200"), ("bytes", "612"),
                  ("referer", "https://example.com/"), ("user_agent", "curl/8.5.0")],
        absent: &["vhost"],
    },
    Case {
        line: r#"<190>1 2026-11-29T10:00:02.120Z web1 nginx 4321 - - 198.51.100.9 - - [29/Nov/2026:10:00:02 +0000] "HEAD / HTTP/1.0" 200 0 "-" "-""#,
        format: "nginx", kind: HTTP, service: "nginx", ip: "198.51.100.9", ts: "2026-11-29T10:00:02.000Z",
        fields: &[("method", "HEAD"), ("path", "/"), ("status", "200"), ("bytes", "0")],
        absent: &["referer", "user_agent"],
    },
    // apache through syslog (`CustomLog "|logger -t apache2"`), vhost_combined, `httpd` tag with pid.
    Case {
        line: r#"Nov 29 10:00:03 web1 apache2: www.example.com:443 198.51.100.10 - bob [29/Nov/2026:10:00:03 +0000] "POST /wp-login.php HTTP/1.1" 200 5120 "https://www.example.com/" "Mozilla/5.0""#,
        format: "apache", kind: HTTP, service: "apache", ip: "198.51.100.10", ts: "2026-11-29T10:00:03.000Z",
        fields: &[("method", "POST"), ("path", "/wp-login.php"), ("status", "200"), ("bytes", "5120"),
                  ("user", "bob"), ("vhost", "www.example.com"), ("referer", "https://www.example.com/"),
                  ("user_agent", "Mozilla/5.0")],
        absent: &[],
    },
    Case {
        line: r#"Nov 29 10:00:04 web1 httpd[1234]: 198.51.100.11 - - [29/Nov/2026:10:00:04 +0000] "GET /cgi-bin/test.cgi HTTP/1.0" 301 -"#,
        format: "apache", kind: HTTP, service: "apache", ip: "198.51.100.11", ts: "2026-11-29T10:00:04.000Z",
        fields: &[("method", "GET"), ("path", "/cgi-bin/test.cgi"), ("status", "301"), ("bytes", "0")],
        absent: &["referer", "user_agent", "vhost"],
    },
    // Virtual-host-prefixed files: Apache's vhost_combined and nginx's `$host $remote_addr - …`.
    Case {
        line: r#"www.example.com:443 198.51.100.18 - - [29/Nov/2026:10:00:10 +0000] "GET /.env HTTP/1.1" 404 196 "-" "curl/8.5.0""#,
        format: "vhost_combined", kind: HTTP, service: "apache", ip: "198.51.100.18", ts: "2026-11-29T10:00:10.000Z",
        fields: &[("method", "GET"), ("path", "/.env"), ("status", "404"), ("bytes", "196"),
                  ("vhost", "www.example.com"), ("user_agent", "curl/8.5.0")],
        absent: &["referer", "user"],
    },
    Case {
        line: r#"example.org 2001:db8::19 - - [29/Nov/2026:10:00:11 +0000] "GET /wp-admin/?a=b&c HTTP/2.0" 302 0 "-" "Mozilla/5.0""#,
        format: "nginx", kind: HTTP, service: "nginx", ip: "2001:db8::19", ts: "2026-11-29T10:00:11.000Z",
        fields: &[("method", "GET"), ("path", "/wp-admin/?a=b&c"), ("status", "302"), ("vhost", "example.org")],
        absent: &[],
    },
    // nginx error lines through syslog, with and without their own time.
    Case {
        line: r#"Nov 29 10:00:05 web1 nginx: 2026/11/29 10:00:05 [error] 1234#0: *7 user "admin" was not found in "/etc/nginx/.htpasswd", client: 198.51.100.12, server: example.com, request: "GET /admin HTTP/1.1", host: "example.com""#,
        format: "nginx-error", kind: LogKind::HttpAuthFailure, service: "nginx", ip: "198.51.100.12", ts: "2026-11-29T10:00:05.000Z",
        fields: &[("user", "admin"), ("method", "GET"), ("path", "/admin")],
        absent: &[],
    },
    Case {
        line: r#"<187>Nov 29 10:00:06 web1 nginx: [error] 1234#0: *8 limiting requests, excess: 20.000 by zone "one", client: 198.51.100.13, server: example.com, request: "GET / HTTP/1.1", host: "example.com""#,
        format: "nginx-error", kind: LogKind::HttpRateLimited, service: "nginx", ip: "198.51.100.13", ts: "2026-11-29T10:00:06.000Z",
        fields: &[("zone", "one"), ("excess", "20.000")],
        absent: &[],
    },
    // apache error through syslog (`ErrorLog syslog:`): no time of its own.
    Case {
        line: r#"Nov 29 10:00:07 web1 apache2[99]: [auth_basic:error] [pid 99] [client 198.51.100.14:50000] AH01618: user bob not found: /private"#,
        format: "apache-error", kind: LogKind::HttpAuthFailure, service: "apache", ip: "198.51.100.14", ts: "2026-11-29T10:00:07.000Z",
        fields: &[("user", "bob"), ("path", "/private"), ("code", "AH01618")],
        absent: &[],
    },
    // nginx mail proxy (ngx_mail_auth_http_module) login failures, own file and syslog.
    Case {
        line: r#"2026/11/29 10:00:08 [info] 1234#0: *5 client login failed: "Authentication credentials invalid" while in http auth state, client: 198.51.100.15, server: 0.0.0.0:25, login: "user""#,
        format: "nginx-error", kind: LogKind::MailAuthFailure, service: "nginx", ip: "198.51.100.15", ts: "2026-11-29T10:00:08.000Z",
        fields: &[("user", "user"), ("reason", "Authentication credentials invalid"), ("server", "0.0.0.0:25")],
        absent: &["path"],
    },
    Case {
        line: r#"Nov 29 10:00:09 mx1 nginx: 2026/11/29 10:00:09 [info] 1234#0: *6 client login failed: "Invalid login or password" while in http auth state, client: 2001:db8::16, server: 0.0.0.0:993, login: "alice@example.com", upstream: 192.0.2.25:993"#,
        format: "nginx-error", kind: LogKind::MailAuthFailure, service: "nginx", ip: "2001:db8::16", ts: "2026-11-29T10:00:09.000Z",
        fields: &[("user", "alice@example.com"), ("server", "0.0.0.0:993")],
        absent: &[],
    },
    Case {
        line: r#"2026/11/29 10:00:10 [info] 1234#0: *9 client login failed: "Authentication credentials invalid" while in http auth state, client: 198.51.100.17, server: 0.0.0.0:110"#,
        format: "nginx-error", kind: LogKind::MailAuthFailure, service: "nginx", ip: "198.51.100.17", ts: "2026-11-29T10:00:10.000Z",
        fields: &[("reason", "Authentication credentials invalid")],
        absent: &["user"],
    },
    // Traefik: CLF (documentation example layout) and JSON (field names as Traefik writes them).
    Case {
        line: r#"198.51.100.20 - - [29/Nov/2026:10:00:12 +0000] "GET /whoami?x=1 HTTP/1.1" 200 457 "-" "curl/8.5.0" 1 "whoami@docker" "http://172.18.0.3:80" 5ms"#,
        format: "traefik", kind: HTTP, service: "traefik", ip: "198.51.100.20", ts: "2026-11-29T10:00:12.000Z",
        fields: &[("method", "GET"), ("path", "/whoami?x=1"), ("status", "200"), ("bytes", "457"), ("user_agent", "curl/8.5.0")],
        absent: &["referer"],
    },
    Case {
        line: r#"{"ClientAddr":"198.51.100.21:54321","ClientHost":"198.51.100.21","ClientPort":"54321","ClientUsername":"-","DownstreamContentSize":19,"DownstreamStatus":404,"Duration":2364567,"OriginContentSize":19,"OriginDuration":2211233,"OriginStatus":404,"Overhead":153334,"RequestAddr":"whoami.example.com","RequestContentSize":0,"RequestCount":1,"RequestHost":"whoami.example.com","RequestMethod":"GET","RequestPath":"/.git/config?x=\"1\"","RequestPort":"-","RequestProtocol":"HTTP/1.1","RequestScheme":"http","RetryAttempts":0,"RouterName":"whoami@docker","ServiceAddr":"172.18.0.3:80","ServiceName":"whoami@docker","ServiceURL":"http://172.18.0.3:80","StartLocal":"2026-11-29T11:00:13.123456789+01:00","StartUTC":"2026-11-29T10:00:13.123456789Z","entryPointName":"web","level":"info","msg":"","request_User-Agent":"Mozilla/5.0 zgrab/0.x","request_Referer":"http://evil.example/","time":"2026-11-29T11:00:13+01:00"}"#,
        format: "traefik", kind: HTTP, service: "traefik", ip: "198.51.100.21", ts: "2026-11-29T10:00:13.123Z",
        fields: &[("method", "GET"), ("path", "/.git/config?x=\"1\""), ("status", "404"), ("bytes", "19"),
                  ("vhost", "whoami.example.com"), ("user_agent", "Mozilla/5.0 zgrab/0.x"),
                  ("referer", "http://evil.example/"), ("router", "whoami@docker")],
        absent: &["user"],
    },
    Case {
        line: r#"Nov 29 10:00:14 web1 traefik[1]: {"ClientAddr":"[2001:db8::22]:443","ClientUsername":"carol","DownstreamStatus":401,"RequestHost":"api.example.com","RequestMethod":"POST","RequestPath":"/login","time":"2026-11-29T10:00:14Z"}"#,
        format: "traefik", kind: HTTP, service: "traefik", ip: "2001:db8::22", ts: "2026-11-29T10:00:14.000Z",
        fields: &[("method", "POST"), ("path", "/login"), ("status", "401"), ("user", "carol"), ("vhost", "api.example.com")],
        absent: &["bytes", "user_agent"],
    },
    // Caddy: the documentation's access-log entry; an older entry with `remote_addr` only.
    Case {
        line: r#"{"level":"info","ts":1795946415.5241024,"logger":"http.log.access.log0","msg":"handled request","request":{"remote_ip":"192.0.2.1","remote_port":"41342","client_ip":"198.51.100.23","proto":"HTTP/2.0","method":"GET","host":"example.com","uri":"/wp-content/plugins/x.php?cmd=id","headers":{"User-Agent":["curl/7.82.0"],"Accept":["*/*"],"Accept-Encoding":["gzip, deflate, br"],"Referer":["https://example.com/"]},"tls":{"resumed":false,"version":772,"cipher_suite":4865,"proto":"h2","server_name":"example.com"}},"bytes_read":0,"user_id":"","duration":0.000929675,"size":10900,"status":200,"resp_headers":{"Server":["Caddy"],"Content-Type":["text/html; charset=utf-8"]}}"#,
        format: "caddy", kind: HTTP, service: "caddy", ip: "198.51.100.23", ts: "2026-11-29T10:00:15.524Z",
        fields: &[("method", "GET"), ("path", "/wp-content/plugins/x.php?cmd=id"), ("status", "200"), ("bytes", "10900"),
                  ("vhost", "example.com"), ("user_agent", "curl/7.82.0"), ("referer", "https://example.com/")],
        absent: &["user"],
    },
    Case {
        line: r#"{"level":"info","ts":"2026-11-29T10:00:16.5Z","logger":"http.log.access","msg":"handled request","request":{"remote_addr":"198.51.100.24:5555","proto":"HTTP/1.1","method":"PUT","host":"example.com","uri":"/upload","headers":{}},"user_id":"dave","size":0,"status":403}"#,
        format: "caddy", kind: HTTP, service: "caddy", ip: "198.51.100.24", ts: "2026-11-29T10:00:16.500Z",
        fields: &[("method", "PUT"), ("path", "/upload"), ("status", "403"), ("bytes", "0"), ("user", "dave")],
        absent: &["user_agent", "referer"],
    },
    // HAProxy: the configuration manual's `option httplog` examples, with and without captured headers.
    Case {
        line: r#"Feb  6 12:14:14 localhost haproxy[14389]: 198.51.100.25:33317 [06/Feb/2026:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1""#,
        format: "haproxy", kind: HTTP, service: "haproxy", ip: "198.51.100.25", ts: "2026-02-06T12:14:14.655Z",
        fields: &[("method", "GET"), ("path", "/index.html"), ("status", "200"), ("bytes", "2750"),
                  ("frontend", "http-in"), ("backend", "static"), ("server", "srv1"), ("termination", "----")],
        absent: &["user_agent"],
    },
    Case {
        line: r#"<134>1 2026-11-29T10:00:17Z lb1 haproxy 555 - - 2001:db8::26:41234 [29/Nov/2026:10:00:17.001] fe~ be/<NOSRV> 0/-1/-1/-1/0 503 +212 - - SC-- 1/1/0/0/0 0/0 "GET /api/v1/users?id=1%20or%201=1 HTTP/1.1""#,
        format: "haproxy", kind: HTTP, service: "haproxy", ip: "2001:db8::26", ts: "2026-11-29T10:00:17.001Z",
        fields: &[("method", "GET"), ("path", "/api/v1/users?id=1%20or%201=1"), ("status", "503"), ("bytes", "212"),
                  ("backend", "be"), ("server", "<NOSRV>")],
        absent: &[],
    },
    Case {
        line: r#"Nov 29 10:00:18 lb1 haproxy[555]: 198.51.100.27:40000 [29/Nov/2026:10:00:18.000] fe fe/<NOSRV> -1/-1/-1/-1/0 400 187 - - PR-- 1/1/0/0/0 0/0 "<BADREQ>""#,
        format: "haproxy", kind: HTTP, service: "haproxy", ip: "198.51.100.27", ts: "2026-11-29T10:00:18.000Z",
        fields: &[("method", ""), ("path", ""), ("request", "<BADREQ>"), ("status", "400")],
        absent: &[],
    },
    // `log stdout format raw` (containers): no syslog header.
    Case {
        line: r#"198.51.100.28:40001 [29/Nov/2026:10:00:19.250] fe be/s1 0/0/1/2/3 200 1234 - - ---- 1/1/0/0/0 0/0 "GET http://198.51.100.1/proxy-test HTTP/1.1""#,
        format: "haproxy", kind: HTTP, service: "haproxy", ip: "198.51.100.28", ts: "2026-11-29T10:00:19.250Z",
        fields: &[("method", "GET"), ("path", "http://198.51.100.1/proxy-test"), ("status", "200")],
        absent: &[],
    },
];

/// The service `auto` reports: a plain access-log file does not say which server wrote it, so `auto`
/// reports `http` for it (a syslog tag, a format name or a format only one server writes names it).
fn service_via(case: &Case, via: &str) -> &'static str {
    let plain_access = case.kind == HTTP
        && matches!(case.format, "nginx" | "apache" | "vhost_combined")
        && !case.line.starts_with(['<', 'N']);
    if via != case.format && plain_access {
        "http"
    } else {
        case.service
    }
}

fn check(case: &Case, p: &Parsed, via: &str) {
    let line = case.line;
    assert_eq!(
        (p.kind, p.service.as_ref(), p.src_ip.map(|i| i.to_string())),
        (case.kind, service_via(case, via), Some(case.ip.to_owned())),
        "{via}: {line}"
    );
    assert_eq!(
        p.ts.map(|t| t.to_rfc3339()).as_deref(),
        Some(case.ts),
        "{via}: {line}"
    );
    for (k, v) in case.fields {
        assert_eq!(p.get(k), Some(*v), "{via}: field {k} of {line}");
    }
    for k in case.absent {
        assert_eq!(p.get(k), None, "{via}: field {k} of {line}");
    }
}

#[test]
fn examples_through_their_format_and_auto() {
    let auto = Auto::default();
    for case in CASES {
        let parser = by_name(case.format).unwrap();
        let p = parser
            .parse(case.line, &ctx())
            .unwrap_or_else(|e| panic!("{}: {e:?}: {}", case.format, case.line));
        check(case, &p, case.format);
        let p = auto
            .parse(case.line, &ctx())
            .unwrap_or_else(|e| panic!("auto: {e:?}: {}", case.line));
        check(case, &p, "auto");
    }
    // A fresh `auto` per line too: the family remembered from the line before must not matter.
    for case in CASES {
        let p = Auto::default().parse(case.line, &ctx()).unwrap();
        check(case, &p, "fresh auto");
    }
}

/// Lines that must not parse as these kinds, each with the reason it is counted under.
#[test]
fn counter_examples() {
    let ctx = ctx();
    let cases: &[(&str, &str, Result<LogKind, Unparsed>)] = &[
        // HAProxy's TCP log and its own messages.
        ("haproxy", "Feb  6 12:12:09 localhost haproxy[14385]: 198.51.100.1:33313 [06/Feb/2026:12:12:51.443] fnt bck/srv1 0/0/5007 212 -- 0/0/0/0/3 0/0", Err(Unparsed::Ignored)),
        ("haproxy", "Nov 29 10:00:00 lb1 haproxy[1]: Proxy http-in started.", Err(Unparsed::Ignored)),
        ("haproxy", "Nov 29 10:00:00 lb1 haproxy[1]: Server be/s1 is DOWN, reason: Layer4 timeout, check duration: 2001ms.", Err(Unparsed::Ignored)),
        ("haproxy", r#"Nov 29 10:00:00 lb1 haproxy[1]: 198.51.100.1:1 [29/Nov/2026:10:00:00.000] fe be/s1 0/0/0/0/0 2000 1 - - ---- 0/0/0/0/0 0/0 "GET / HTTP/1.1""#, Err(Unparsed::Malformed("bad_status"))),
        ("haproxy", r#"Nov 29 10:00:00 lb1 haproxy[1]: 198.51.100.1:1 [29/Nov/2026:10:00:00.000] fe be/s1 0/0/0/0/0 200 1 - - ---- 0/0/0/0/0 0/0"#, Err(Unparsed::Malformed("bad_haproxy_line"))),
        ("haproxy", r#"Nov 29 10:00:00 lb1 haproxy[1]: host.example:1 [29/Nov/2026:10:00:00.000] fe be/s1 0/0/0/0/0 200 1 - - ---- 0/0/0/0/0 0/0 "GET / HTTP/1.1""#, Err(Unparsed::Malformed("bad_address"))),
        ("haproxy", "Nov 29 10:00:00 web1 nginx: 198.51.100.1 - - [29/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1", Err(Unparsed::NoMatch)),
        // Traefik's and Caddy's application lines.
        ("traefik", r#"{"level":"info","msg":"Configuration loaded from flags.","time":"2026-11-29T10:00:00Z"}"#, Err(Unparsed::Ignored)),
        ("traefik", r#"{"RequestMethod":"GET","ClientHost":"not-an-ip"}"#, Err(Unparsed::Malformed("bad_address"))),
        ("traefik", r#"{"RequestMethod":"GET","ClientHost":"198.51.100.1","DownstreamStatus":"200"}"#, Err(Unparsed::Malformed("bad_json"))),
        ("caddy", r#"{"level":"info","ts":1795903215.5,"logger":"tls.cache.maintenance","msg":"started background certificate maintenance"}"#, Err(Unparsed::Ignored)),
        ("caddy", r#"{"level":"error","ts":1795903215.5,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"","method":"GET","uri":"/"},"status":502}"#, Err(Unparsed::Malformed("bad_address"))),
        ("caddy", "Nov 29 10:00:00 web1 caddy[1]: not json", Err(Unparsed::NoMatch)),
        // Syslog lines of HTTP servers in a layout none of their formats has: counted, not ignored.
        ("auto", "Nov 29 10:00:00 web1 nginx: upstream response time 0.123 for /x", Err(Unparsed::NoMatch)),
        ("auto", "Nov 29 10:00:00 web1 nginx: 198.51.100.1 - - [29/Nov/2026:10:00:00 +0000] \"GET / HTTP/1.1\" 2000 1", Err(Unparsed::Malformed("bad_status"))),
        // nginx mail-proxy lines that are not failures.
        ("nginx-error", "2026/11/29 10:00:00 [info] 1234#0: *5 client 198.51.100.1:4242 connected to 0.0.0.0:25", Err(Unparsed::Ignored)),
        ("nginx-error", "2026/11/29 10:00:00 [info] 1234#0: *5 client logged in, client: 198.51.100.1, server: 0.0.0.0:25, login: \"bob\", upstream: 192.0.2.25:25", Err(Unparsed::Ignored)),
        // A leading word that is no virtual host: five words before the time.
        ("vhost_combined", r#"a b 198.51.100.1 - - [29/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#, Err(Unparsed::NoMatch)),
        ("vhost_combined", r#"www.example.com:443 client.example - - [29/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#, Err(Unparsed::Malformed("bad_address"))),
        // The nginx format does not take apache's syslog lines, nor sshd's.
        ("nginx", r#"Nov 29 10:00:00 web1 apache2: 198.51.100.1 - - [29/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1"#, Err(Unparsed::NoMatch)),
        ("nginx", "Nov 29 10:00:00 web1 sshd[1]: Failed password for root from 198.51.100.1 port 22 ssh2", Err(Unparsed::NoMatch)),
        // sshd stays sshd under auto.
        ("auto", "Nov 29 10:00:00 web1 sshd[1]: Failed password for root from 198.51.100.1 port 22 ssh2", Ok(LogKind::AuthFailure)),
        // Other JSON stays generic JSON under auto.
        ("auto", r#"{"level":"info","msg":"Configuration loaded from flags.","time":"2026-11-29T10:00:00Z"}"#, Ok(LogKind::Other)),
    ];
    for (format, line, want) in cases {
        let got = by_name(format).unwrap().parse(line, &ctx).map(|p| p.kind);
        assert_eq!(&got, want, "{format}: {line}");
    }
}

#[test]
fn auto_reads_traefik_access_after_traefik_application_lines() {
    let auto = Auto::default();
    let app = r#"{"level":"info","msg":"Starting provider *docker.Provider","time":"2026-11-29T10:00:00Z"}"#;
    let access = CASES
        .iter()
        .find(|c| c.line.starts_with("{\"ClientAddr"))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(auto.parse(app, &ctx()).map(|p| p.kind), Ok(LogKind::Other));
        check(
            access,
            &auto.parse(access.line, &ctx()).unwrap(),
            "auto after app line",
        );
    }
}

fn example_line() -> impl Strategy<Value = (&'static str, &'static str)> {
    proptest::sample::select(CASES.iter().map(|c| (c.format, c.line)).collect::<Vec<_>>())
}

const NEW_FORMATS: [&str; 8] = [
    "auto",
    "nginx",
    "apache",
    "vhost_combined",
    "nginx-error",
    "traefik",
    "caddy",
    "haproxy",
];

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        for format in NEW_FORMATS {
            let p = by_name(format).unwrap();
            let _ = p.parse(&s, &ctx());
            for prefix in ["Nov 29 10:00:00 h nginx: ", "Nov 29 10:00:00 h haproxy[1]: ", "<1>1 - h traefik - - - ", "Nov 29 10:00:00 h caddy: ", "Nov 29 10:00:00 h apache2: [", "2026/11/29 10:00:00 [info] 1#0: *1 client login failed: \"", "198.51.100.1:1 [29/Nov/2026:10:00:00.000] ", "h 198.51.100.1 - - ["] {
                let _ = p.parse(&format!("{prefix}{s}"), &ctx());
            }
        }
    }

    #[test]
    fn arbitrary_json_values_never_panic(key in proptest::sample::select(vec!["ClientHost", "ClientAddr", "RequestPath", "StartUTC", "time", "ts", "request", "status", "DownstreamStatus", "headers", "uri"]), value in "\\PC{0,40}", n in any::<f64>()) {
        for line in [
            format!(r#"{{"RequestMethod":"GET","{key}":"{value}"}}"#),
            format!(r#"{{"RequestMethod":"GET","{key}":{n}}}"#),
            format!(r#"{{"logger":"http.log.access","request":{{"remote_ip":"198.51.100.1","{key}":"{value}"}},"{key}":{n}}}"#),
            format!(r#"{{"logger":"http.log.access","request":{{"remote_ip":"198.51.100.1"}},"ts":{n}}}"#),
        ] {
            for format in ["auto", "traefik", "caddy"] {
                let _ = by_name(format).unwrap().parse(&line, &ctx());
            }
        }
    }

    #[test]
    fn mutated_examples_never_panic((format, line) in example_line(), at in any::<prop::sample::Index>(), cut in 0usize..8, insert in "\\PC{0,6}") {
        let mut chars: Vec<char> = line.chars().collect();
        let i = at.index(chars.len() + 1);
        let end = (i + cut).min(chars.len());
        chars.splice(i..end, insert.chars());
        let mutated: String = chars.into_iter().collect();
        for f in [format, "auto"] {
            if let Ok(p) = by_name(f).unwrap().parse(&mutated, &ctx()) {
                if p.kind == LogKind::HttpRequest {
                    // Every request carries the fields the scenarios read.
                    prop_assert!(p.get("method").is_some() && p.get("path").is_some(), "{mutated}");
                    prop_assert!(p.src_ip.is_some(), "{mutated}");
                }
            }
        }
    }
}
