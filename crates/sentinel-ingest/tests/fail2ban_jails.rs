//! Jails read from a copy of the installed `/etc/fail2ban` (with a `jail.local` written here) agree with
//! what fail2ban itself makes of the same directory (`fail2ban-client -c DIR -d`, run in the test), and
//! hostile or malformed jail files give clear errors naming the jail and the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_ingest::fail2ban::{read_jails, str2seconds, Backend, BanTime};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ETC: &str = "/etc/fail2ban";

/// A copy of the real `/etc/fail2ban` in a temp dir. Fails loudly when the package is not installed.
fn stock_copy() -> tempfile::TempDir {
    assert!(
        Path::new(ETC).join("jail.conf").is_file(),
        "Debian's fail2ban package must be installed (scripts/test installs it): {ETC}/jail.conf is missing"
    );
    let tmp = tempfile::tempdir().unwrap();
    let ok = Command::new("cp")
        .arg("-r")
        .arg(format!("{ETC}/."))
        .arg(tmp.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "copying {ETC}");
    tmp
}

/// fail2ban's own reading of `dir`: jail → option → value, from `fail2ban-client -d` (Python lists as JSON).
fn fail2ban_dump(dir: &Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    let out = Command::new("fail2ban-client")
        .arg("-c")
        .arg(dir)
        .arg("-d")
        .output()
        .expect("fail2ban-client must be on PATH (Debian's fail2ban package)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Python's own reading of its lists, as JSON (through a file: both outputs can exceed a pipe's buffer).
    let dump = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(dump.path(), &out.stdout).unwrap();
    let script = "import ast,json,sys\nfor l in open(sys.argv[1]):\n  l=l.strip()\n  if l.startswith('['): print(json.dumps(ast.literal_eval(l)))\n";
    let json = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dump.path())
        .output()
        .unwrap();
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let mut jails: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for line in String::from_utf8(json.stdout).unwrap().lines() {
        let v: Vec<Value> = serde_json::from_str(line).unwrap();
        let s = |i: usize| v.get(i).and_then(Value::as_str).unwrap_or("").to_string();
        match s(0).as_str() {
            "add" => {
                jails
                    .entry(s(1))
                    .or_default()
                    .insert("backend".into(), v[2].clone());
            }
            "set" if v.len() >= 4 && jails.contains_key(&s(1)) => {
                let key = s(2);
                let value = if v.len() == 4 {
                    v[3].clone()
                } else {
                    Value::Array(v[3..].to_vec())
                };
                let e = jails.get_mut(&s(1)).unwrap();
                if key == "addlogpath" {
                    let list = e.entry(key).or_insert_with(|| Value::Array(vec![]));
                    list.as_array_mut().unwrap().push(v[3].clone());
                } else {
                    e.insert(key, value);
                }
            }
            _ => {}
        }
    }
    jails
}

fn secs(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => str2seconds(s).unwrap(),
        other => panic!("not a time: {other}"),
    }
}

#[test]
fn stock_jails_with_a_local_override_read_as_fail2ban_reads_them() {
    let tmp = stock_copy();
    let dir = tmp.path();
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    for f in [
        "auth.log",
        "error.log",
        "access.log",
        "mail.log",
        "fail2ban.log",
    ] {
        std::fs::write(logs.join(f), "").unwrap();
    }
    let l = logs.display();
    std::fs::write(
        dir.join("jail.local"),
        format!(
            "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 192.0.2.7\nbantime.increment = true\nbantime.maxtime = 1w\n\
             [sshd]\nmode = aggressive\nlogpath = {l}/auth.log\n\
             [nginx-http-auth]\nenabled = true\nlogpath = {l}/error.log\nmaxretry = 3\nfindtime = 1h 30m\n\
             [nginx-botsearch]\nenabled = true\nlogpath = {l}/access.log\n            {l}/*.nomatch\n\
             [apache-badbots]\nenabled = true\nlogpath = {l}/access.log\n\
             [postfix]\nenabled = true\nlogpath = {l}/mail.log\nbantime = -1\n\
             [dovecot]\nenabled = true\nlogpath = {l}/mail.log\n\
             [recidive]\nenabled = true\nlogpath = {l}/fail2ban.log\n\
             [postfix-sasl]\nenabled = true\nbackend = systemd\n"
        ),
    )
    .unwrap();
    // jail.d is read after jail.conf and before jail.local.
    std::fs::write(dir.join("jail.d/zz-test.conf"), "[dovecot]\nmaxretry = 7\n").unwrap();

    let set = read_jails(dir).unwrap();
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    let ours: BTreeMap<&str, _> = set.jails.iter().map(|j| (j.name.as_str(), j)).collect();
    let theirs = fail2ban_dump(dir);
    let mut names: Vec<&str> = ours.keys().copied().collect();
    names.sort();
    let mut their_names: Vec<&str> = theirs.keys().map(String::as_str).collect();
    their_names.sort();
    assert_eq!(names, their_names, "the same jails are enabled");
    assert_eq!(
        names,
        [
            "apache-badbots",
            "dovecot",
            "nginx-botsearch",
            "nginx-http-auth",
            "postfix",
            "postfix-sasl",
            "recidive",
            "sshd"
        ]
    );
    for (name, j) in &ours {
        let t = &theirs[*name];
        let ctx = format!("jail {name}: fail2ban says {t:?}");
        assert_eq!(
            i64::from(j.maxretry),
            t["maxretry"].as_i64().unwrap(),
            "maxretry, {ctx}"
        );
        assert_eq!(j.findtime as f64, secs(&t["findtime"]), "findtime, {ctx}");
        match j.bantime {
            BanTime::Seconds(s) => assert_eq!(s as f64, secs(&t["bantime"]), "bantime, {ctx}"),
            BanTime::Permanent => assert!(secs(&t["bantime"]) < 0.0, "bantime, {ctx}"),
        }
        let backend = t["backend"].as_str().unwrap();
        match &j.backend {
            Backend::Files(b) => assert_eq!(b, backend, "{ctx}"),
            Backend::Systemd => assert!(backend.starts_with("systemd"), "{ctx}"),
        }
        assert_eq!(
            j.ignoreip,
            t["addignoreip"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect::<Vec<_>>(),
            "ignoreip, {ctx}"
        );
        assert_eq!(
            j.increment.is_some(),
            t["bantime.increment"].as_bool().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            j.increment.as_ref().and_then(|i| i.maxtime),
            Some(604_800),
            "{ctx}"
        );
        // fail2ban lists the files its globs found; ours are the globs, which must find the same files.
        let mut found: Vec<String> = j
            .logpaths
            .iter()
            .flat_map(|g| {
                glob::glob(g)
                    .unwrap()
                    .map(|p| p.unwrap().display().to_string())
            })
            .collect();
        found.sort();
        let mut theirs_found: Vec<String> = t
            .get("addlogpath")
            .map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        theirs_found.sort();
        assert_eq!(found, theirs_found, "log files, {ctx}");
        if let Some(jm) = t.get("addjournalmatch") {
            let want: Vec<&str> = match jm {
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
                other => vec![other.as_str().unwrap()],
            };
            let got = j
                .journalmatch(&j.load_filter().unwrap())
                .unwrap_or_default();
            assert_eq!(
                got.split_whitespace().collect::<Vec<_>>(),
                want,
                "journalmatch, {ctx}"
            );
        }
    }
    let sshd = ours["sshd"];
    assert_eq!(sshd.filter.name, "sshd");
    assert_eq!(sshd.filter.options.mode.as_deref(), Some("aggressive"));
    assert_eq!(sshd.port, "ssh");
    assert_eq!(ours["postfix"].bantime, BanTime::Permanent);
    assert_eq!(ours["dovecot"].maxretry, 7, "jail.d overrides jail.conf");
    assert_eq!(ours["nginx-http-auth"].findtime, 5400);
    assert_eq!(ours["postfix-sasl"].backend, Backend::Systemd);
    assert!(ours["postfix-sasl"].logpaths.is_empty());
    assert!(set.disabled.contains(&"apache-auth".to_string()));
}

#[test]
fn every_enabled_stock_jail_filter_loads() {
    let tmp = stock_copy();
    let set = read_jails(tmp.path()).unwrap();
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    assert_eq!(
        set.jails
            .iter()
            .map(|j| j.name.as_str())
            .collect::<Vec<_>>(),
        ["sshd"],
        "Debian enables sshd only (jail.d/defaults-debian.conf)"
    );
    // Now every jail jail.conf defines, as fail2ban reads them: same jails, same numbers, and each filter
    // (with its mode and the journal logtype) loads.
    std::fs::write(
        tmp.path().join("jail.local"),
        "[DEFAULT]\nenabled = true\nbackend = systemd\n",
    )
    .unwrap();
    let set = read_jails(tmp.path()).unwrap();
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    let theirs = fail2ban_dump(tmp.path());
    let ours: Vec<&str> = set.jails.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(ours, theirs.keys().map(String::as_str).collect::<Vec<_>>());
    assert!(ours.len() > 80, "{}", ours.len());
    for j in &set.jails {
        let t = &theirs[&j.name];
        assert_eq!(
            i64::from(j.maxretry),
            t["maxretry"].as_i64().unwrap(),
            "{}",
            j.name
        );
        assert_eq!(j.findtime as f64, secs(&t["findtime"]), "{}", j.name);
        if let BanTime::Seconds(b) = j.bantime {
            assert_eq!(b as f64, secs(&t["bantime"]), "{}", j.name);
        }
        j.load_filter()
            .unwrap_or_else(|e| panic!("jail {}: {e}", j.name));
    }
}

fn hostile(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("filter.d")).unwrap();
    std::fs::write(
        tmp.path().join("filter.d/ok.conf"),
        "[Definition]\nfailregex = ^fail from <HOST>$\n",
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    tmp
}

#[test]
fn malformed_jails_are_named_with_their_key() {
    let tmp = hostile(&[(
        "jail.conf",
        "[DEFAULT]\nlogpath = /tmp/x.log\n\
         [nofilter]\nenabled = true\n\
         [missing]\nenabled = true\nfilter = does-not-exist\n\
         [badretry]\nenabled = true\nfilter = ok\nmaxretry = five\n\
         [zeroretry]\nenabled = true\nfilter = ok\nmaxretry = 0\n\
         [badbackend]\nenabled = true\nfilter = ok\nbackend = inotify-magic\n\
         [badtime]\nenabled = true\nfilter = ok\nfindtime = soon\n\
         [badenabled]\nenabled = maybe\nfilter = ok\n\
         [traversal]\nenabled = true\nfilter = ../../etc/passwd\n\
         [badopts]\nenabled = true\nfilter = ok[mode=normal\n\
         [undefined]\nenabled = true\nfilter = ok\nlogpath = %(nowhere_log)s\n\
         [badignore]\nenabled = true\nfilter = ok\nignoreip = 127.0.0.1/8 file:/etc/ignored\n\
         [fine]\nenabled = true\nfilter = ok[mode=x]\n\
         [off]\nfilter = does-not-exist\n",
    )]);
    let set = read_jails(tmp.path()).unwrap();
    let by: BTreeMap<&str, String> = set
        .problems
        .iter()
        .map(|p| (p.jail.as_str(), p.to_string()))
        .collect();
    let expect = [
        ("nofilter", "filter", "no filter set"),
        ("missing", "filter", "filter `does-not-exist` not found"),
        ("badretry", "maxretry", "not an integer: \"five\""),
        ("zeroretry", "maxretry", "must be at least 1"),
        ("badbackend", "backend", "unknown backend `inotify-magic`"),
        ("badtime", "findtime", "not a time: \"soon\""),
        ("badenabled", "enabled", "not a boolean"),
        ("traversal", "filter", "not a filter name"),
        ("badopts", "filter", "unbalanced"),
        ("undefined", "logpath", "nowhere_log"),
        (
            "badignore",
            "ignoreip",
            "not an address, a CIDR, an address/netmask or a host name: \"file:/etc/ignored\"",
        ),
    ];
    for (jail, key, what) in expect {
        let msg = by
            .get(jail)
            .unwrap_or_else(|| panic!("no problem reported for [{jail}]: {by:?}"));
        assert!(
            msg.contains(&format!("[{jail}] {key}:")) && msg.contains(what),
            "[{jail}]: {msg}"
        );
    }
    assert_eq!(set.problems.len(), expect.len(), "{by:?}");
    assert_eq!(set.jails.len(), 1);
    assert_eq!(set.jails[0].name, "fine");
    assert_eq!(set.disabled, vec!["off".to_string()]);
}

#[test]
fn broken_files_fail_the_whole_read_with_the_file_named() {
    let tmp = hostile(&[
        (
            "jail.conf",
            "[INCLUDES]\nbefore = a.conf\n[x]\nenabled = false\n",
        ),
        ("a.conf", "[INCLUDES]\nbefore = jail.conf\n"),
    ]);
    let e = read_jails(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("include cycle"), "{e}");

    let tmp = hostile(&[("jail.conf", "enabled = true\n[x]\n")]);
    let e = read_jails(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("jail.conf:1"), "{e}");

    let tmp = hostile(&[("jail.conf", "[INCLUDES]\nbefore = paths-nowhere.conf\n")]);
    let e = read_jails(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("paths-nowhere.conf") && e.contains("does not exist"),
        "{e}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let e = read_jails(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("jail.conf") && e.contains("cannot read"), "{e}");

    let tmp = hostile(&[(
        "jail.conf",
        "[loop]\nenabled = true\nfilter = ok\nlogpath = %(a)s\na = %(b)s\nb = %(a)s\n",
    )]);
    let set = read_jails(tmp.path()).unwrap();
    assert!(
        set.problems[0].to_string().contains("cycle"),
        "{:?}",
        set.problems
    );
}

#[test]
fn logtype_follows_the_backend_unless_the_filter_sets_it() {
    let tmp = hostile(&[(
        "jail.conf",
        "[DEFAULT]\nenabled = true\n\
         [files]\nfilter = ok\nlogpath = /tmp/x.log\n\
         [journal]\nfilter = ok\nbackend = systemd\n\
         [own]\nfilter = own\nbackend = systemd\n\
         [given]\nfilter = ok[logtype=short]\nbackend = systemd\n",
    )]);
    std::fs::write(
        tmp.path().join("filter.d/own.conf"),
        "[Definition]\nlogtype = rfc5424\nfailregex = ^fail from <HOST>$\n",
    )
    .unwrap();
    let set = read_jails(tmp.path()).unwrap();
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    let logtype = |name: &str| {
        let j = set.jails.iter().find(|j| j.name == name).unwrap();
        j.filter
            .options
            .vars
            .iter()
            .filter(|(k, _)| k == "logtype")
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(logtype("files"), ["file"]);
    assert_eq!(logtype("journal"), ["journal"]);
    assert!(
        logtype("own").is_empty(),
        "the filter's own [Definition] logtype stays"
    );
    assert_eq!(logtype("given"), ["short"]);
}

/// fail2ban reads `address/netmask` in `ignoreip` (its IPAddr turns the mask into a prefix length): the
/// jail keeps it as `address/prefix`, which Sentinel's whitelist reads; a mask with holes is refused.
#[test]
fn ignoreip_netmasks_become_prefix_lengths() {
    let tmp = hostile(&[(
        "jail.conf",
        "[DEFAULT]\nlogpath = /tmp/x.log\nfilter = ok\nenabled = true\n\
         [masked]\nignoreip = 10.0.0.0/255.0.0.0 192.0.2.0/255.255.255.128 2001:db8::/ffff:ffff:: 198.51.100.1/255.255.255.255 127.0.0.1/8\n\
         [holes]\nignoreip = 10.0.0.0/255.0.255.0\n\
         [mixed]\nignoreip = 10.0.0.0/ffff::\n",
    )]);
    let set = read_jails(tmp.path()).unwrap();
    assert_eq!(set.jails.len(), 1, "{:?}", set.problems);
    assert_eq!(
        set.jails[0].ignoreip,
        [
            "10.0.0.0/8",
            "192.0.2.0/25",
            "2001:db8::/32",
            "198.51.100.1/32",
            "127.0.0.1/8"
        ]
    );
    let bad: Vec<String> = set.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad
        .iter()
        .any(|p| p.contains("[holes] ignoreip") && p.contains("10.0.0.0/255.0.255.0")));
    assert!(bad.iter().any(|p| p.contains("[mixed] ignoreip")));
}
