//! A daemon configured with one line, `{type: fail2ban_jails, dir: …}`, on a copy of the installed
//! `/etc/fail2ban` (with a `jail.local` written here): it tails the sshd jail's log, raises the jail's alert
//! for an attacker at the `maxretry`-th failure and not before, plans a block for the jail's `bantime`,
//! never counts an `ignoreip` address, and its `/metrics` show the jail's matched and unmatched line counters
//! moving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{eventually, Daemon};
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn stamp() -> String {
    sentinel_core::Timestamp::now().to_rfc3339()
}

fn copy_etc_fail2ban(to: &Path) {
    assert!(
        Path::new("/etc/fail2ban/jail.conf").is_file(),
        "Debian's fail2ban package must be installed (scripts/test installs it)"
    );
    std::fs::create_dir_all(to).unwrap();
    let ok = std::process::Command::new("cp")
        .arg("-r")
        .arg("/etc/fail2ban/.")
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

async fn get(d: &Daemon, path: &str) -> reqwest::Response {
    d.client()
        .get(d.url(path))
        .bearer_auth(&d.key)
        .send()
        .await
        .unwrap()
}

async fn jail_alerts(d: &Daemon) -> Vec<Value> {
    let v: Value = get(d, "/v1/alerts?scenario=fail2ban-sshd")
        .await
        .json()
        .await
        .unwrap();
    v["items"].as_array().unwrap().clone()
}

/// `(matched, unmatched)` of the sshd jail's source in `/metrics`.
async fn jail_lines(d: &Daemon) -> (u64, u64) {
    let text = get(d, "/metrics").await.text().await.unwrap();
    let read = |name: &str| {
        let prefix = format!("{name}{{source=\"jail:sshd\",filter=\"sshd\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
            .parse::<u64>()
            .unwrap()
    };
    (
        read("sentinel_source_lines_matched_total"),
        read("sentinel_source_lines_unmatched_total"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fail2ban_jail_alerts_at_maxretry_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let f2b = dir.path().join("fail2ban");
    copy_etc_fail2ban(&f2b);
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    std::fs::write(
        f2b.join("jail.local"),
        format!(
            "[DEFAULT]\nignoreip = 127.0.0.1/8 192.0.2.10\n\n[sshd]\nbackend = auto\nlogpath = {}\nmaxretry = 6\nfindtime = 10m\nbantime = 2h\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "sources:\n  - {{ type: fail2ban_jails, dir: \"{}\" }}\nrespond:\n  escalation_factor: 1\n",
            f2b.display()
        ),
    )
    .unwrap();
    // `config check` accepts it and names the jail.
    let out = common::command(dir.path())
        .args(["config", "check", "--config", "sentinel.yml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("fail2ban jail sshd: filter sshd on"),
        "{stdout}"
    );

    let d = Daemon::start_in(dir, &[]);
    assert_eq!(
        jail_lines(&d).await,
        (0, 0),
        "counters exist before any line"
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let fail = |f: &mut std::fs::File, pid: u32, ip: &str| {
        writeln!(
            f,
            "{} srv sshd[{pid}]: Failed password for invalid user admin{pid} from {ip} port {} ssh2",
            stamp(),
            40000 + pid
        )
        .unwrap();
        f.flush().unwrap();
    };
    // Five failures from the attacker, seven from an ignoreip address, and a line of another program.
    for pid in 201..206 {
        fail(&mut f, pid, "203.0.113.66");
    }
    for pid in 301..308 {
        fail(&mut f, pid, "192.0.2.10");
    }
    writeln!(
        f,
        "{} srv CRON[5]: pam_unix(cron:session): session opened for user root",
        stamp()
    )
    .unwrap();
    f.flush().unwrap();
    eventually(Duration::from_secs(10), || async {
        (jail_lines(&d).await == (12, 1)).then_some(())
    })
    .await;
    // Every line is in the pipeline; give the scenario stage time to act on them, then: nothing yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        jail_alerts(&d).await.is_empty(),
        "5 failures of maxretry 6 (and an ignoreip address) raised an alert"
    );
    // Nor does any other scenario count the jail's lines (the built-in rule_match_bruteforce would at 5).
    let all: Value = get(&d, "/v1/alerts").await.json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 0, "{all}");

    fail(&mut f, 206, "203.0.113.66");
    let found = eventually(Duration::from_secs(10), || async {
        let a = jail_alerts(&d).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    let alert = &found[0];
    assert_eq!(alert["subject"]["value"], "203.0.113.66");
    assert!(
        alert["reasons"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("6 matching lines from one source within 10m"),
        "{alert}"
    );
    assert_eq!(jail_lines(&d).await.0, 13);
    let id = alert["id"].as_str().unwrap().to_owned();
    let detail = eventually(Duration::from_secs(5), || async {
        let v: Value = get(&d, &format!("/v1/alerts/{id}"))
            .await
            .json()
            .await
            .unwrap();
        (v["actions"].as_array().map(|a| !a.is_empty()) == Some(true)).then_some(v)
    })
    .await;
    let action = &detail["plans"][0]["actions"][0];
    assert_eq!(action["kind"], "block_ip", "{detail}");
    assert_eq!(action["ttl_secs"], 7200, "the jail's bantime: {detail}");
    assert!(detail["plans"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("fail2ban-sshd matched"));
    let (_dir, _) = d.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jail_whose_filter_does_not_load_stops_config_check_and_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let f2b = dir.path().join("fail2ban");
    copy_etc_fail2ban(&f2b);
    std::fs::write(
        f2b.join("filter.d/broken.conf"),
        "[Definition]\nfailregex = ^login failed from <HOST> <undefined-tag>$\n",
    )
    .unwrap();
    std::fs::write(
        f2b.join("jail.local"),
        format!(
            "[sshd]\nbackend = auto\nlogpath = {}/nowhere/auth.log\n\
         [broken]\nenabled = true\nfilter = broken\nlogpath = /nonexistent/broken.log\n\
         [unknownbackend]\nenabled = true\nfilter = sshd\nbackend = magic\n",
            f2b.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "sources:\n  - {{ type: fail2ban_jails, dir: \"{}\" }}\n",
            f2b.display()
        ),
    )
    .unwrap();
    let out = common::command(dir.path())
        .args(["config", "check", "--config", "sentinel.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("jail [broken] filter:") && stderr.contains("undefined-tag"),
        "{stderr}"
    );
    assert!(
        stderr.contains("jail [unknownbackend] backend: unknown backend `magic`"),
        "{stderr}"
    );
    let run = common::command(dir.path())
        .args(["run", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!run.status.success());
    assert!(all.contains("fail2ban jails have 2 problem(s)"), "{all}");
}

#[test]
fn import_prints_a_section_config_check_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let f2b = dir.path().join("fail2ban");
    copy_etc_fail2ban(&f2b);
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("auth.log"), "").unwrap();
    std::fs::write(logs.join("error.log"), "").unwrap();
    std::fs::write(
        f2b.join("jail.local"),
        format!(
            "[DEFAULT]\nbantime.increment = true\nbantime.maxtime = 1w\nbantime.overalljails = true\n\
             [sshd]\nmode = aggressive\nbackend = auto\nlogpath = {l}/auth.log\n\
             [nginx-http-auth]\nenabled = true\nlogpath = {l}/error.log\nbantime = -1\n\
             [postfix-sasl]\nenabled = true\nbackend = systemd\n",
            l = logs.display()
        ),
    )
    .unwrap();
    let out = common::command(dir.path())
        .args(["import", "fail2ban"])
        .arg(&f2b)
        .output()
        .unwrap();
    let yaml = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{yaml}");
    assert!(
        stderr.contains("WARNING: jail [nginx-http-auth] bantime -1 (permanent)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`usedns = warn` (nginx-http-auth, postfix-sasl, sshd): not honoured"),
        "{stderr}"
    );
    assert!(
        yaml.contains("# WARNING: jail [nginx-http-auth] bantime -1"),
        "{yaml}"
    );
    let v: Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(v["policy"]["rules"][0]["risk"], "any");
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3, "{yaml}");
    let sshd = sources.iter().find(|s| s["jail"] == "sshd").unwrap();
    assert_eq!(sshd["type"], "file");
    assert_eq!(sshd["mode"], "aggressive");
    assert_eq!(
        sshd["fail2ban_filter"],
        format!("{}/filter.d/sshd.conf", f2b.display())
    );
    let sasl = sources
        .iter()
        .find(|s| s["jail"] == "postfix-sasl")
        .unwrap();
    assert_eq!(sasl["type"], "journald");
    assert_eq!(sasl["fail2ban_vars"]["logtype"], "journal");
    let cmd: Vec<&str> = sasl["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        cmd.starts_with(&["journalctl", "-o", "json", "-f"]),
        "{cmd:?}"
    );
    assert!(cmd.contains(&"_SYSTEMD_UNIT=postfix.service"), "{cmd:?}");
    let define = v["detect"]["scenarios"]["define"].as_array().unwrap();
    let sc = define
        .iter()
        .find(|s| s["name"] == "fail2ban-sshd")
        .unwrap();
    assert_eq!(sc["counting"]["type"], "window");
    assert_eq!(sc["counting"]["threshold"], 5);
    assert_eq!(sc["counting"]["window"], "10m");
    assert_eq!(v["respond"]["escalation_factor"], 2);
    assert_eq!(v["respond"]["escalation_max_ttl"], "7days");
    let rules = v["policy"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["scenario"][0], "fail2ban-nginx-http-auth");
    assert_eq!(
        rules[0]["actions"][0]["ttl"], "30days",
        "bantime -1 → policy.max_ttl"
    );

    std::fs::write(dir.path().join("imported.yml"), &yaml).unwrap();
    let check = common::command(dir.path())
        .args(["config", "check", "--config", "imported.yml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for jail in ["sshd", "nginx-http-auth", "postfix-sasl"] {
        assert!(
            stdout.contains(&format!("fail2ban jail {jail}: filter")),
            "{stdout}"
        );
    }
}

/// A `backend = systemd` jail reads the journal through `journalctl` with the filter's `journalmatch`
/// (a stand-in `journalctl` on PATH follows a file of journal JSON entries and records its arguments).
#[tokio::test(flavor = "multi_thread")]
async fn a_systemd_jail_reads_the_journal_with_the_filters_journalmatch() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f2b = dir.path().join("fail2ban");
    copy_etc_fail2ban(&f2b);
    std::fs::write(
        f2b.join("jail.local"),
        "[sshd]\nbackend = systemd\nmaxretry = 2\nbantime = 30m\n",
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let entries = dir.path().join("journal.json");
    std::fs::write(&entries, "").unwrap();
    let args = dir.path().join("journalctl.args");
    let fake = bin.join("journalctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\nexec tail -n +1 -f {}\n",
            args.display(),
            entries.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "sources:\n  - {{ type: fail2ban_jails, dir: \"{}\" }}\nrespond:\n  escalation_factor: 1\n",
            f2b.display()
        ),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let d = Daemon::start_in(dir, &[("PATH", path.as_str())]);
    let entry = |pid: u32, ip: &str| {
        let now = sentinel_core::Timestamp::now().as_millis() * 1000;
        let v = serde_json::json!({
            "__CURSOR": format!("s=1;i={pid}"),
            "__REALTIME_TIMESTAMP": now.to_string(),
            "_HOSTNAME": "srv",
            "SYSLOG_IDENTIFIER": "sshd",
            "_PID": pid.to_string(),
            "_SYSTEMD_UNIT": "ssh.service",
            "MESSAGE": format!("Failed password for invalid user admin from {ip} port {} ssh2", 40000 + pid),
        });
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&entries)
            .unwrap();
        writeln!(f, "{v}").unwrap();
    };
    let jail_source = |text: &str| -> (u64, u64) {
        let read = |name: &str| {
            let prefix = format!("{name}{{source=\"jail:sshd\",filter=\"sshd\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
                .parse::<u64>()
                .unwrap()
        };
        (
            read("sentinel_source_lines_matched_total"),
            read("sentinel_source_lines_unmatched_total"),
        )
    };
    entry(501, "198.51.100.9");
    eventually(Duration::from_secs(10), || async {
        let text = get(&d, "/metrics").await.text().await.unwrap();
        (jail_source(&text) == (1, 0)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(jail_alerts(&d).await.is_empty(), "1 failure of maxretry 2");
    entry(502, "198.51.100.9");
    let found = eventually(Duration::from_secs(10), || async {
        let a = jail_alerts(&d).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(found[0]["subject"]["value"], "198.51.100.9");
    let recorded = std::fs::read_to_string(&args).unwrap();
    assert!(
        recorded.contains("-o json -f --no-pager _SYSTEMD_UNIT=sshd.service + _COMM=sshd"),
        "journalctl was run as: {recorded}"
    );
    let (_dir, _) = d.stop();
}

/// Values quoted in the header's WARNING/ERROR comments may span lines (INI continuation lines): each line
/// stays a comment, so a jail file cannot add keys to the printed YAML or make it unreadable.
#[test]
fn import_comments_hold_multi_line_values() {
    let dir = tempfile::tempdir().unwrap();
    let f2b = dir.path().join("fail2ban");
    copy_etc_fail2ban(&f2b);
    std::fs::write(dir.path().join("auth.log"), "").unwrap();
    std::fs::write(
        f2b.join("jail.local"),
        format!(
            "[sshd]\nenabled = true\nlogpath = {}/auth.log\nusedns = warn\n  api: {{listen: \"0.0.0.0:1\"}}\n\
             port = ssh\n  injected: 1\n[broken]\nenabled = true\nfilter = sshd\nlogpath = /x\nmaxretry = 3\n  evil: 2\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = common::command(dir.path())
        .args(["import", "fail2ban"])
        .arg(&f2b)
        .output()
        .unwrap();
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("#   api: {listen"), "{yaml}");
    assert!(
        yaml.contains(r#"jail [broken] maxretry: not an integer: "3\nevil: 2""#),
        "{yaml}"
    );
    let v: Value = serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["detect", "policy", "respond", "sources"], "{yaml}");
}

/// An import that found no jail because the directory is wrong prints no configuration (a file of
/// Sentinel's defaults would pass for an import) and exits 2 naming the problem.
#[test]
fn an_import_of_nothing_is_an_error_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-fail2ban-here");
    let out = common::command(dir.path())
        .args(["import", "fail2ban"])
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(&format!("{}/jail.conf: cannot read", missing.display())),
        "{stderr}"
    );
}
