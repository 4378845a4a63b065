//! The sshd filter fixture (common.conf include, prefregex, `mode`, `.local` override) against real auth.log
//! lines: which lines match in which mode, and the address, user and time each gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::Timestamp;
use sentinel_ingest::fail2ban::{Fail2banFilter, FilterOptions};
use sentinel_ingest::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Loads once per mode (filters take a while to compile in debug builds).
fn sshd(mode: Option<&str>, vars: &[(&str, &str)]) -> Arc<Fail2banFilter> {
    static CACHE: OnceLock<Mutex<HashMap<Option<String>, Arc<Fail2banFilter>>>> = OnceLock::new();
    if !vars.is_empty() {
        return Arc::new(load(mode, vars));
    }
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(mode.map(String::from))
        .or_insert_with(|| Arc::new(load(mode, vars)))
        .clone()
}

fn load(mode: Option<&str>, vars: &[(&str, &str)]) -> Fail2banFilter {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fail2ban/filter.d/sshd.conf");
    let opts = FilterOptions {
        mode: mode.map(String::from),
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    Fail2banFilter::load(&path, &opts).unwrap()
}

fn ctx() -> ParseCtx {
    ParseCtx {
        reference: Timestamp::parse_rfc3339("2024-03-10T00:00:00Z").unwrap(),
        utc_offset_secs: 0,
    }
}

fn hit(f: &Fail2banFilter, line: &str) -> Parsed {
    match f.parse(line, &ctx()) {
        Ok(p) => p,
        Err(e) => panic!("{line:?} → {e:?}"),
    }
}

fn check(p: &Parsed, ip: &str, user: Option<&str>, ts: &str) {
    assert_eq!(p.kind, LogKind::RuleMatch);
    assert_eq!(p.service, "sshd");
    assert_eq!(p.src_ip, Some(ip.parse().unwrap()), "{p:?}");
    assert_eq!(p.get("user"), user, "{p:?}");
    assert_eq!(p.ts.unwrap().to_rfc3339(), ts);
    assert!(p.get("rule").is_some());
}

const INVALID_USER: &str =
    "Mar  9 06:25:11 web1 sshd[12345]: Invalid user admin from 203.0.113.5 port 52111";
const FAILED_INVALID: &str =
    "Mar  9 06:25:13 web1 sshd[12345]: Failed password for invalid user admin from 203.0.113.5 port 52111 ssh2";
const FAILED_ROOT: &str =
    "Mar  9 06:26:02 web1 sshd[12400]: Failed password for root from 198.51.100.7 port 40022 ssh2";
const PAM: &str = "Mar  9 06:26:01 web1 sshd[12400]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7  user=root";
const MAX_ATTEMPTS: &str = "Mar  9 06:26:30 web1 sshd[12401]: error: maximum authentication attempts exceeded for root from 198.51.100.8 port 40100 ssh2 [preauth]";
const FAILED_V6: &str =
    "Mar  9 06:29:00 web1 sshd[12700]: Failed password for invalid user oracle from 2001:db8::1 port 22 ssh2";
const PREAUTH: &str =
    "Mar  9 06:27:40 web1 sshd[12500]: Connection closed by authenticating user root 192.0.2.44 port 51234 [preauth]";
const NO_IDENT: &str = "Mar  9 06:28:00 web1 sshd[12600]: Did not receive identification string from 192.0.2.99 port 40000";
const NEGOTIATE: &str = "Mar  9 06:28:05 web1 sshd[12601]: Unable to negotiate with 192.0.2.100 port 40001: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]";
const ACCEPTED: &str =
    "Mar  9 06:30:00 web1 sshd[12800]: Accepted publickey for deploy from 10.0.0.5 port 50000 ssh2: ED25519 SHA256:abc";
const FAILED_PUBKEY: &str =
    "Mar  9 06:31:00 web1 sshd[12900]: Failed publickey for root from 203.0.113.10 port 5 ssh2: RSA SHA256:x";
const LISTENING: &str = "Mar  9 06:00:00 web1 sshd[1000]: Server listening on 0.0.0.0 port 22.";

#[test]
fn normal_mode_matches_failures_with_ip_user_and_time() {
    let f = sshd(None, &[]);
    check(
        &hit(&f, INVALID_USER),
        "203.0.113.5",
        Some("admin"),
        "2024-03-09T06:25:11.000Z",
    );
    check(
        &hit(&f, FAILED_INVALID),
        "203.0.113.5",
        Some("admin"),
        "2024-03-09T06:25:13.000Z",
    );
    check(
        &hit(&f, FAILED_ROOT),
        "198.51.100.7",
        Some("root"),
        "2024-03-09T06:26:02.000Z",
    );
    check(
        &hit(&f, PAM),
        "198.51.100.7",
        Some("root"),
        "2024-03-09T06:26:01.000Z",
    );
    check(
        &hit(&f, MAX_ATTEMPTS),
        "198.51.100.8",
        Some("root"),
        "2024-03-09T06:26:30.000Z",
    );
    check(
        &hit(&f, FAILED_V6),
        "2001:db8::1",
        Some("oracle"),
        "2024-03-09T06:29:00.000Z",
    );
}

#[test]
fn rule_index_names_the_failregex() {
    let f = sshd(None, &[]);
    // cmnfailre order: 2 = "Failed …", 4 = "Invalid user …".
    assert_eq!(hit(&f, FAILED_ROOT).get("rule"), Some("2"));
    assert_eq!(hit(&f, INVALID_USER).get("rule"), Some("4"));
}

#[test]
fn preauth_disconnects_fail_only_in_aggressive_mode() {
    assert_eq!(
        sshd(None, &[]).parse(PREAUTH, &ctx()),
        Err(Unparsed::Ignored)
    );
    assert_eq!(
        sshd(Some("ddos"), &[]).parse(PREAUTH, &ctx()),
        Err(Unparsed::Ignored)
    );
    let p = hit(&sshd(Some("aggressive"), &[]), PREAUTH);
    check(&p, "192.0.2.44", Some("root"), "2024-03-09T06:27:40.000Z");
}

#[test]
fn ddos_lines_fail_only_in_ddos_and_aggressive_modes() {
    for line in [NO_IDENT, NEGOTIATE] {
        assert_eq!(
            sshd(None, &[]).parse(line, &ctx()),
            Err(Unparsed::NoMatch),
            "{line}"
        );
        assert_eq!(
            sshd(Some("extra"), &[]).parse(line, &ctx()),
            Err(Unparsed::NoMatch),
            "{line}"
        );
        hit(&sshd(Some("ddos"), &[]), line);
        hit(&sshd(Some("aggressive"), &[]), line);
    }
    let p = hit(&sshd(Some("ddos"), &[]), NO_IDENT);
    check(&p, "192.0.2.99", None, "2024-03-09T06:28:00.000Z");
    assert_eq!(
        hit(&sshd(Some("ddos"), &[]), NEGOTIATE).src_ip,
        Some("192.0.2.100".parse().unwrap())
    );
}

#[test]
fn mode_changes_the_number_of_failregexes() {
    let normal = sshd(None, &[]).failregex_count();
    assert!(sshd(Some("ddos"), &[]).failregex_count() == normal + 4);
    assert!(sshd(Some("aggressive"), &[]).failregex_count() == normal + 6);
}

#[test]
fn nofail_lines_and_other_lines() {
    let f = sshd(None, &[]);
    assert_eq!(f.parse(ACCEPTED, &ctx()), Err(Unparsed::Ignored));
    assert_eq!(f.parse(FAILED_PUBKEY, &ctx()), Err(Unparsed::Ignored));
    assert_eq!(f.parse(LISTENING, &ctx()), Err(Unparsed::NoMatch));
    assert_eq!(f.parse("", &ctx()), Err(Unparsed::NoMatch));
}

#[test]
fn init_variable_is_overridable() {
    let f = sshd(None, &[("publickey", "any")]);
    check(
        &hit(&f, FAILED_PUBKEY),
        "203.0.113.10",
        Some("root"),
        "2024-03-09T06:31:00.000Z",
    );
}

#[test]
fn host_names_are_not_resolved() {
    let f = sshd(None, &[]);
    let line = "Mar  9 06:31:00 web1 sshd[1]: Invalid user x from evil.example.com port 1";
    assert_eq!(
        f.parse(line, &ctx()),
        Err(Unparsed::Malformed("host_not_an_address"))
    );
}

#[test]
fn local_override_extends_the_shipped_failregex() {
    let f = sshd(None, &[]);
    let p = hit(
        &f,
        "Mar  9 07:00:00 web1 sshd[2]: Sentinel test probe from 192.0.2.7",
    );
    assert_eq!(p.src_ip, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(
        p.get("rule"),
        Some((f.failregex_count() - 1).to_string().as_str())
    );
}

#[test]
fn ignoreregex_from_caller_vars() {
    let f = sshd(None, &[("ignoreregex", r"from 10\.0\.0\.\d+ ")]);
    let line =
        "Mar  9 06:26:02 web1 sshd[12400]: Failed password for root from 10.0.0.9 port 40022 ssh2";
    assert_eq!(f.parse(line, &ctx()), Err(Unparsed::Ignored));
    hit(&f, FAILED_ROOT);
}

#[test]
fn year_is_inferred_from_the_reference() {
    let f = sshd(None, &[]);
    let line = "Dec 31 23:59:59 web1 sshd[1]: Invalid user a from 203.0.113.1 port 1";
    assert_eq!(
        hit(&f, line).ts.unwrap().to_rfc3339(),
        "2023-12-31T23:59:59.000Z"
    );
}
