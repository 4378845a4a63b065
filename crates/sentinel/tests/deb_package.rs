//! The Debian package, end to end on this machine with the real dpkg: cargo-deb builds it from this crate's
//! `[package.metadata.deb]` (packaging the binary this test suite was built with, so nothing is compiled
//! twice); `dpkg-deb` shows its files, modes, conffiles and dependencies; `dpkg -i` installs it (twice: the
//! postinst is idempotent), which makes the user, the directories and their modes and enables the unit
//! without starting anything; the configuration passes `sentinel config check` as the `sentinel` user;
//! `systemd-analyze verify` accepts the installed units; the daemon starts from the installed files exactly
//! as the unit starts it (its user, groups, capabilities, umask, working directory and ExecStart, as no
//! systemd runs here), tells systemd READY=1 and answers `/ready` and `sentinel healthcheck`; `dpkg
//! --remove` keeps the configuration (with an edit), the data and the user; `dpkg --purge` leaves nothing:
//! the paths under /etc, /usr and /var/lib are the same as before the install, and the user is gone.
//!
//! It changes the machine (a throwaway CI box: scripts/test runs it as root and installs cargo-deb), and
//! purges the package again even when it fails. It refuses to run where a `sentinel` package, user or
//! directory exists already. Without root or cargo-deb it fails; `SENTINEL_SKIP_DEB=1` leaves it out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sentinel");
/// What the package installs, as `dpkg-deb -c` lists it: path, mode, owner (root).
const FILES: [(&str, &str, &str); 9] = [
    ("./etc/sentinel/sentinel.yml", "-rw-r-----", "0/0"),
    ("./usr/bin/sentinel", "-rwxr-xr-x", "0/0"),
    (
        "./usr/lib/systemd/system/sentinel-supervise.service",
        "-rw-r--r--",
        "0/0",
    ),
    (
        "./usr/lib/systemd/system/sentinel.service",
        "-rw-r--r--",
        "0/0",
    ),
    ("./usr/share/doc/sentinel/README.md", "-rw-r--r--", "0/0"),
    ("./usr/share/doc/sentinel/SECURITY.md", "-rw-r--r--", "0/0"),
    ("./usr/share/doc/sentinel/changelog.gz", "-rw-r--r--", "0/0"),
    ("./usr/share/doc/sentinel/copyright", "-rw-r--r--", "0/0"),
    (
        "./usr/share/doc/sentinel/examples/supervise.yml",
        "-rw-r--r--",
        "0/0",
    ),
];
/// Where the package, dpkg, adduser and deb-systemd-helper may leave anything: compared before the install
/// and after the purge (the trees whole; /var/lib only one level deep, as other services keep changing
/// state there, with the subtrees ours may touch whole). Left out: the backups the shadow tools keep
/// (/etc/passwd-, …) and their lock file, which any account change may create; dpkg's own records.
const SNAPSHOT_TREES: [&str; 11] = [
    "/etc",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib/systemd",
    "/usr/share/doc",
    "/var/mail",
    "/home",
    "/var/lib/sentinel",
    "/var/lib/sentinel-supervise",
    "/var/lib/systemd/deb-systemd-helper-enabled",
    "/var/lib/systemd/deb-systemd-helper-masked",
];
const SNAPSHOT_SHALLOW: [&str; 2] = ["/var/lib", "/var/lib/systemd"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd`, which must succeed; its stdout and stderr.
fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let o = run(cmd);
    assert!(o.status.success(), "{shown}: {}\n{}", o.status, said(&o));
    said(&o)
}

/// dpkg as apt would run it: no questions, a plain environment.
fn dpkg(args: &[&str]) -> Command {
    let mut c = Command::new("dpkg");
    c.args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C");
    c
}

/// `dpkg-query`'s status abbreviation for the package (`ii`, `rc`), or `None` when it is not on this
/// machine (unknown to dpkg, or its status, the second letter, is `n`: not installed).
fn package_status() -> Option<String> {
    let o = run(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", "sentinel"]));
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| s.len() >= 2 && !s[1..].starts_with('n'))
}

/// A `getent` entry split at `:`, or `None` when there is none.
fn getent(db: &str, name: &str) -> Option<Vec<String>> {
    let o = run(Command::new("getent").args([db, name]));
    o.status.success().then(|| {
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .split(':')
            .map(str::to_owned)
            .collect()
    })
}

/// Every path in the trees and directly in the shallow directories (symlinks not followed), without the
/// shadow tools' backups.
fn snapshot() -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, deep: bool, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let s = p.to_string_lossy();
            if s.starts_with("/etc/") && (s.ends_with('-') || s.ends_with(".pwd.lock")) {
                continue;
            }
            out.insert(p.clone());
            if deep && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&p, deep, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for (roots, deep) in [(&SNAPSHOT_TREES[..], true), (&SNAPSHOT_SHALLOW[..], false)] {
        for root in roots {
            let root = Path::new(root);
            if root.symlink_metadata().is_ok() {
                out.insert(root.to_path_buf());
                walk(root, deep, &mut out);
            }
        }
    }
    out
}

/// `(section, key, value)` for every assignment of a unit file.
fn directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (k, v) = line.split_once('=').expect("an assignment");
        out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
    }
    out
}

/// The service's setting `key` (the last one given), if any.
fn service<'a>(d: &'a [(String, String, String)], key: &str) -> Option<&'a str> {
    d.iter()
        .rev()
        .find(|(s, k, _)| s == "Service" && k == key)
        .map(|(_, _, v)| v.as_str())
}

/// Owner uid, group gid and permission bits of a path (not following a symlink).
fn owner_mode(path: &str) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// The package is on this machine (installed, or its configuration left): purged when dropped, so that
/// a failing test leaves nothing behind. Declared before the daemon, so the daemon is stopped first.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if package_status().is_some() {
            let o = run(dpkg(&["--purge", "sentinel"]).env("PATH", system_path()));
            eprintln!(
                "clean-up: dpkg --purge sentinel: {}\n{}",
                o.status,
                said(&o)
            );
        }
    }
}

/// The daemon started as the unit starts it: killed when dropped (before the purge, which cannot remove
/// a user that still runs a process).
struct Running {
    child: Option<Child>,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// PATH as systemd gives it to a service.
fn system_path() -> &'static str {
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

/// The unit's supplementary groups. systemd refuses to start a unit whose group does not exist
/// (status=216/GROUP): only groups every Debian with systemd has (base-passwd's adm, systemd's
/// systemd-journal), so that `systemctl start` works on a host without Docker.
fn supplementary_groups(d: &[(String, String, String)]) -> Vec<&str> {
    let groups: Vec<&str> = service(d, "SupplementaryGroups")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    for g in &groups {
        assert!(
            ["adm", "systemd-journal"].contains(g),
            "SupplementaryGroups names {g}, which a fresh Debian 12 may not have"
        );
        assert!(getent("group", g).is_some(), "no group {g} here");
    }
    groups
}

/// The unit's identity and privileges as `setpriv` arguments, checked against what a fresh Debian has.
fn setpriv_args(d: &[(String, String, String)]) -> Vec<String> {
    let user = service(d, "User").expect("User=");
    let group = service(d, "Group").expect("Group=");
    assert_eq!((user, group), ("sentinel", "sentinel"));
    let groups = supplementary_groups(d);
    let caps = service(d, "AmbientCapabilities").unwrap_or("");
    assert_eq!(service(d, "CapabilityBoundingSet"), Some(caps));
    let caps: Vec<String> = caps
        .split_whitespace()
        .map(|c| {
            format!(
                "+{}",
                c.strip_prefix("CAP_").expect("CAP_ name").to_lowercase()
            )
        })
        .collect();
    let with = |base: &str| {
        std::iter::once(base.to_owned())
            .chain(caps.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut args = vec![
        format!("--reuid={user}"),
        format!("--regid={group}"),
        if groups.is_empty() {
            "--clear-groups".to_owned()
        } else {
            format!("--groups={}", groups.join(","))
        },
        format!("--inh-caps={}", with("-all")),
        format!("--ambient-caps={}", with("-all")),
        format!("--bounding-set={}", with("-all")),
    ];
    if service(d, "NoNewPrivileges") == Some("yes") {
        args.push("--no-new-privs".to_owned());
    }
    args
}

/// A command run as the `sentinel` user with its groups, in the data directory, with systemd's PATH.
fn as_sentinel(args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=sentinel",
        "--regid=sentinel",
        "--init-groups",
        "--",
    ])
    .args(args)
    .env_clear()
    .env("PATH", system_path())
    .current_dir("/var/lib/sentinel");
    c
}

/// A plain HTTP/1.1 GET; the status code.
fn get_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// Builds the package from the test build of the binary: cargo-deb's `target/release/sentinel` is looked
/// up in the target directory it is given, so a directory holding a copy of this binary there stands in
/// for a release build (`--no-build`). Returns the .deb.
fn build_package(dir: &Path) -> PathBuf {
    let target = dir.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(BIN, target.join("release/sentinel")).unwrap();
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = run(Command::new("cargo")
        .args(["deb", "-p", "sentinel", "--no-build", "--locked", "--fast"])
        .arg("--output")
        .arg(&out)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(workspace()));
    assert!(
        o.status.success(),
        "cargo deb failed ({}); is cargo-deb installed (scripts/test installs it)?\n{}",
        o.status,
        said(&o)
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}\n{}", said(&o));
    let name = debs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("sentinel_{}-1_", env!("CARGO_PKG_VERSION"))),
        "{name}"
    );
    debs[0].clone()
}

/// `dpkg-deb -I` and `-c`: the control fields, the conffiles, the maintainer scripts, every file.
fn inspect_package(deb: &Path, dir: &Path) {
    let info = ok(Command::new("dpkg-deb").arg("-I").arg(deb));
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{info}"))
            .to_owned()
    };
    assert_eq!(field("Package"), "sentinel");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Section"), "admin");
    let depends: Vec<String> = field("Depends")
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap().to_owned())
        .collect();
    // nft for the responder, adduser for the postinst, and the C library the binary links.
    for want in ["nftables", "adduser", "libc6"] {
        assert!(depends.iter().any(|d| d == want), "{depends:?}");
    }
    for unwanted in ["iproute2", "docker.io", "systemd"] {
        assert!(!depends.iter().any(|d| d == unwanted), "{depends:?}");
    }

    let control = dir.join("control");
    ok(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/sentinel/sentinel.yml");
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    // Enabled on install; never started by the package: only an upgrade restarts it, and only if it runs.
    assert_eq!(
        postinst
            .matches("deb-systemd-helper enable sentinel.service")
            .count(),
        1,
        "{postinst}"
    );
    assert!(!postinst.contains("invoke start"), "{postinst}");
    assert!(!postinst.contains("_dh_action=start"), "{postinst}");
    assert!(postinst.contains("try-restart"), "{postinst}");
    assert!(!postinst.contains("#DEBHELPER#"), "{postinst}");
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    assert!(postrm.contains("deb-systemd-helper purge"), "{postrm}");
    for script in ["postinst", "postrm"] {
        ok(Command::new("sh").arg("-n").arg(control.join(script)));
        let mode = std::fs::metadata(control.join(script))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
    }

    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files = Vec::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert!(cols.len() >= 6, "{line}");
        if cols[0].starts_with('d') {
            assert_eq!(cols[0], "drwxr-xr-x", "{line}");
            continue;
        }
        files.push((cols[5].to_owned(), cols[0].to_owned(), cols[1].to_owned()));
    }
    files.sort();
    let want: Vec<(String, String, String)> = FILES
        .iter()
        .map(|(p, m, o)| (p.to_string(), m.to_string(), o.to_string()))
        .collect();
    assert_eq!(files, want, "{listing}");
}

/// What `dpkg -i` leaves: the user and group, the files with their owners and modes, the unit enabled.
fn check_installed(before_uid: Option<u32>) -> (u32, u32) {
    assert_eq!(package_status().as_deref(), Some("ii"));
    let user = getent("passwd", "sentinel").expect("no user sentinel after the install");
    let group = getent("group", "sentinel").expect("no group sentinel after the install");
    let (uid, gid): (u32, u32) = (user[2].parse().unwrap(), user[3].parse().unwrap());
    assert_eq!(group[2].parse::<u32>().unwrap(), gid, "{user:?} {group:?}");
    assert!(uid < 1000, "not a system user: {user:?}");
    assert_eq!(user[5], "/var/lib/sentinel", "{user:?}");
    assert_eq!(user[6], "/usr/sbin/nologin", "{user:?}");
    if let Some(b) = before_uid {
        assert_eq!(uid, b, "the reinstall made the user again");
    }

    assert_eq!(owner_mode("/usr/bin/sentinel"), (0, 0, 0o755));
    assert_eq!(owner_mode("/etc/sentinel"), (0, gid, 0o750));
    assert_eq!(owner_mode("/etc/sentinel/sentinel.yml"), (0, gid, 0o640));
    assert_eq!(owner_mode("/var/lib/sentinel"), (uid, gid, 0o700));
    assert_eq!(
        std::fs::read_to_string("/etc/sentinel/sentinel.yml").unwrap(),
        std::fs::read_to_string(workspace().join("deploy/sentinel.yml")).unwrap()
    );
    // The unit where systemd reads it (/lib is /usr/lib on Debian 12), as in deploy/.
    for unit in ["sentinel.service", "sentinel-supervise.service"] {
        let installed = format!("/lib/systemd/system/{unit}");
        assert_eq!(owner_mode(&installed), (0, 0, 0o644));
        let text = std::fs::read_to_string(&installed).unwrap();
        assert_eq!(
            text,
            std::fs::read_to_string(workspace().join("deploy").join(unit)).unwrap()
        );
        supplementary_groups(&directives(&text));
    }
    let binary = std::fs::metadata("/usr/bin/sentinel").unwrap();
    assert!(binary.len() > 0);
    // Enabled: the symlink deb-systemd-helper makes for WantedBy=multi-user.target; the supervisor
    // unit is not enabled.
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants");
    let link = std::fs::read_link(wants.join("sentinel.service"))
        .expect("sentinel.service is not enabled");
    assert!(
        link.ends_with("lib/systemd/system/sentinel.service"),
        "{}",
        link.display()
    );
    assert!(
        wants
            .join("sentinel-supervise.service")
            .symlink_metadata()
            .is_err(),
        "sentinel-supervise.service was enabled"
    );
    // Nothing was started: no process runs as the new user.
    let o = run(Command::new("pgrep").args(["-u", "sentinel", "-l", "."]));
    assert!(!o.status.success(), "started by the install:\n{}", said(&o));
    (uid, gid)
}

/// Starts the unit's ExecStart from the installed files as systemd would (no systemd runs here), with the
/// API on a free loopback port (SENTINEL__API__LISTEN, which the daemon writes to api.addr) and a
/// notification socket standing in for systemd's; checks READY=1, /ready, `sentinel healthcheck`, a clean
/// stop. Returns the daemon's output.
fn run_like_the_unit(dir: &Path) -> String {
    let unit = std::fs::read_to_string("/lib/systemd/system/sentinel.service").unwrap();
    let d = directives(&unit);
    assert_eq!(service(&d, "Type"), Some("notify"));
    let exec: Vec<&str> = service(&d, "ExecStart")
        .expect("ExecStart=")
        .split_whitespace()
        .collect();
    // The binary, the configuration and the data directory line up with the package.
    assert_eq!(
        exec,
        [
            "/usr/bin/sentinel",
            "run",
            "--config",
            "/etc/sentinel/sentinel.yml",
            "--data-dir",
            "/var/lib/sentinel"
        ]
    );
    let workdir = service(&d, "WorkingDirectory").expect("WorkingDirectory=");
    assert_eq!(workdir, "/var/lib/sentinel");
    assert_eq!(service(&d, "StateDirectory"), Some("sentinel"));
    assert_eq!(service(&d, "StateDirectoryMode"), Some("0700"));
    let umask = service(&d, "UMask").unwrap_or("0022");

    // systemd's notification socket: a datagram socket the sentinel user may write to.
    let sock_dir = dir.join("notify");
    std::fs::create_dir(&sock_dir).unwrap();
    std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = sock_dir.join("notify.sock");
    let listener = UnixDatagram::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let _ = std::fs::remove_file("/var/lib/sentinel/api.addr");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask \"$0\" && exec \"$@\"", umask, "setpriv"])
        .args(setpriv_args(&d))
        .arg("--")
        .args(&exec)
        .env_clear()
        .env("PATH", system_path())
        .env("HOME", "/var/lib/sentinel")
        .env("USER", "sentinel")
        .env("LOGNAME", "sentinel")
        .env("NOTIFY_SOCKET", &sock)
        .env("WATCHDOG_USEC", "30000000")
        .env("SENTINEL__API__LISTEN", "127.0.0.1:0")
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the daemon");
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for r in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = out.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
    let mut daemon = Running {
        child: Some(child),
        out,
    };

    // READY=1 once it serves, as Type=notify needs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut notes = Vec::new();
    let mut buf = [0u8; 4096];
    while !notes.iter().any(|n: &String| n == "READY=1") {
        if let Ok(n) = listener.recv(&mut buf) {
            notes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        if let Some(s) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("the daemon exited ({s}):\n{}", daemon.output());
        }
        assert!(
            Instant::now() < deadline,
            "no READY=1 within 60 s (got {notes:?}):\n{}",
            daemon.output()
        );
    }
    let addr = std::fs::read_to_string("/var/lib/sentinel/api.addr")
        .unwrap_or_else(|e| panic!("api.addr: {e}\n{}", daemon.output()));
    let addr = addr.trim();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(get_status(addr, "/ready"), Some(200), "{}", daemon.output());
    let health = run(&mut as_sentinel(&[
        "/usr/bin/sentinel",
        "healthcheck",
        "--config",
        "/etc/sentinel/sentinel.yml",
    ]));
    assert!(
        health.status.success(),
        "healthcheck: {}\n{}\n{}",
        health.status,
        said(&health),
        daemon.output()
    );
    // Its own process runs as the user, with the unit's capabilities only.
    let pid = daemon.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let uid = getent("passwd", "sentinel").unwrap()[2].clone();
    assert!(line("Uid:").iter().all(|u| *u == uid), "{status}");
    // CAP_NET_ADMIN is capability 12: bit 0x1000, nothing else.
    assert_eq!(line("CapAmb:"), ["0000000000001000"], "{status}");
    assert_eq!(line("CapEff:"), ["0000000000001000"], "{status}");
    assert_eq!(line("CapBnd:"), ["0000000000001000"], "{status}");
    assert_eq!(line("NoNewPrivs:"), ["1"], "{status}");
    // The files it made are the user's and private.
    let data_uid: u32 = uid.parse().unwrap();
    for f in ["admin.key", "auth.secret", "sentinel.db", "api.addr"] {
        let p = format!("/var/lib/sentinel/{f}");
        let (u, _, mode) = owner_mode(&p);
        assert_eq!((u, mode & 0o077), (data_uid, 0), "{p}: mode {mode:o}");
    }

    // A clean stop: SIGTERM, STOPPING=1, exit 0.
    ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit:\n{}", daemon.output());
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(status.success(), "{status}:\n{}", daemon.output());
    while let Ok(n) = listener.recv(&mut buf) {
        notes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(notes.iter().any(|n| n == "STOPPING=1"), "{notes:?}");
    daemon.child = None;
    daemon.output()
}

#[test]
fn the_debian_package_installs_runs_and_purges_cleanly() {
    if std::env::var("SENTINEL_SKIP_DEB").as_deref() == Ok("1") {
        println!(
            "SKIPPED: SENTINEL_SKIP_DEB=1 (the Debian package is not built, installed or purged)"
        );
        return;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "this test installs the Debian package with dpkg and needs root (scripts/test runs it as root \
         on a throwaway machine); set SENTINEL_SKIP_DEB=1 to leave it out"
    );
    let v = run(Command::new("cargo").args(["deb", "--version"]));
    assert!(
        v.status.success(),
        "cargo-deb is not installed (scripts/test installs it: cargo install cargo-deb --version 3.8.0 \
         --locked); set SENTINEL_SKIP_DEB=1 to leave this test out\n{}",
        said(&v)
    );
    // Never on a machine where Sentinel is installed or was: the purge at the end would delete it.
    assert_eq!(
        package_status(),
        None,
        "a sentinel package is installed here: this test installs and purges its own; remove it first"
    );
    for p in [
        "/etc/sentinel",
        "/var/lib/sentinel",
        "/var/lib/sentinel-supervise",
        "/usr/bin/sentinel",
    ] {
        assert!(
            Path::new(p).symlink_metadata().is_err(),
            "{p} exists: this machine has Sentinel installed; the test would replace and purge it"
        );
    }
    for db in ["passwd", "group"] {
        assert!(
            getent(db, "sentinel").is_none(),
            "{db} has an entry sentinel: Sentinel is (or was) installed here; the purge would delete it"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(dir.path());
    inspect_package(&deb, dir.path());

    let before = snapshot();
    let _installed = Installed;
    ok(dpkg(&["-i", deb.to_str().unwrap()]).env("PATH", system_path()));
    let (uid, _) = check_installed(None);
    // Installing again (a reinstall, as an upgrade runs the postinst): idempotent.
    ok(dpkg(&["-i", deb.to_str().unwrap()]).env("PATH", system_path()));
    check_installed(Some(uid));

    // The configuration as shipped is valid, and read as the user the daemon runs as.
    let check = run(&mut as_sentinel(&[
        "/usr/bin/sentinel",
        "config",
        "check",
        "--config",
        "/etc/sentinel/sentinel.yml",
    ]));
    let check_said = said(&check);
    assert!(check.status.success(), "{}\n{check_said}", check.status);
    assert!(!check_said.contains("WARNING"), "{check_said}");
    assert!(check_said.contains("mode: observe"), "{check_said}");
    assert!(
        check_said.contains("listen: 127.0.0.1:8000"),
        "{check_said}"
    );

    // The installed units, as systemd would read them.
    let verify = run(Command::new("systemd-analyze").args([
        "verify",
        "/lib/systemd/system/sentinel.service",
        "/lib/systemd/system/sentinel-supervise.service",
    ]));
    let verify_said = said(&verify);
    assert!(verify.status.success(), "{verify_said}");
    assert!(
        !verify_said.contains("sentinel"),
        "systemd-analyze warns:\n{verify_said}"
    );

    let out = run_like_the_unit(dir.path());
    assert!(out.contains("sd_notify_ready"), "{out}");

    // Remove: the program and units go; the configuration (with the administrator's edit), the data and
    // the user stay.
    let mut edited = std::fs::read_to_string("/etc/sentinel/sentinel.yml").unwrap();
    edited.push_str("# edited by the administrator\n");
    std::fs::write("/etc/sentinel/sentinel.yml", &edited).unwrap();
    ok(dpkg(&["--remove", "sentinel"]).env("PATH", system_path()));
    assert_eq!(package_status().as_deref(), Some("rc"));
    for gone in [
        "/usr/bin/sentinel",
        "/usr/lib/systemd/system/sentinel.service",
        "/usr/lib/systemd/system/sentinel-supervise.service",
    ] {
        assert!(
            Path::new(gone).symlink_metadata().is_err(),
            "{gone} survived the removal"
        );
    }
    assert_eq!(
        std::fs::read_to_string("/etc/sentinel/sentinel.yml").unwrap(),
        edited
    );
    for kept in [
        "/var/lib/sentinel/admin.key",
        "/var/lib/sentinel/sentinel.db",
        "/var/lib/sentinel/audit/key.pub",
    ] {
        assert!(
            Path::new(kept).exists(),
            "{kept} did not survive the removal"
        );
    }
    assert!(getent("passwd", "sentinel").is_some());

    // Purge: nothing of the package is left.
    ok(dpkg(&["--purge", "sentinel"]).env("PATH", system_path()));
    assert_eq!(package_status(), None);
    assert!(
        getent("passwd", "sentinel").is_none(),
        "the user survived the purge"
    );
    assert!(
        getent("group", "sentinel").is_none(),
        "the group survived the purge"
    );
    let after = snapshot();
    let added: Vec<&PathBuf> = after.difference(&before).collect();
    let removed: Vec<&PathBuf> = before.difference(&after).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "the purge left {added:?} and took {removed:?}"
    );
}
