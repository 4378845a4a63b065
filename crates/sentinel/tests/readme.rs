//! The README works as typed: every shell block of README.md runs, in order, against a real daemon,
//! so a changed flag, subcommand or endpoint breaks the build, not the reader.
//!
//! The rules (they are README.md's too):
//! - A block fenced ```` ```sh ````, ```` ```bash ```` or ```` ```shell ```` is run. Any other fence
//!   (```` ```text ````, ```` ```yaml ````, ```` ```json ````, ```` ```python ````, none) is not; one with a
//!   line that starts like a command (`sentinel <subcommand>`, `sudo`, `cargo`, `curl`, `$ `) is an
//!   error: a command meant to be typed goes in a shell fence, so it is run.
//! - `<!-- readme-test: skip (REASON) -->` on the line directly above a shell fence skips that block
//!   (installing, systemctl, a process that runs until stopped, a service the test has not got). The
//!   reason is required; the skipped blocks are counted and printed with it. A marker that has no
//!   reason, or is not directly followed by a shell fence, or says anything but `skip`, is an error.
//! - The blocks run in README order, each as `bash -euo pipefail BLOCK` (stdin empty, 60 s at most,
//!   its process group killed after it), in one temporary directory holding one daemon: `sentinel run`
//!   (the binary cargo built for this test, on PATH as `sentinel`) with its data in `./data`, its
//!   configuration in `./sentinel.yml` (a free loopback port; `api.jwt`, the generic webhook and a
//!   notification channel `ops`, which the blocks use; a checkpoint every second, so the audit block's
//!   `--proof` finds one at test speed, where a reader is slower than the default 10 s) and its JSON
//!   log (stdout) in `./sentinel.json`. It runs in `observe` mode (the default): no block changes the
//!   host's firewall.
//!   Environment: PATH, HOME (the directory) and KEY (the admin key, as the tour sets it).
//! - Two rewrites before a block runs, so the README keeps the addresses and paths a reader uses and the
//!   test never touches the host: `localhost:8000` and `127.0.0.1:8000` become the daemon's address,
//!   and `/etc/sentinel/` becomes `./etc/sentinel/` in the directory, where the test put the files the
//!   configuration names (`jwt.secret`, `jwks.json`, `generic.secret`).
//! - A failing block is reported with its README line, its text (as run) and its output; every block
//!   runs, so one run lists every broken example. A few outputs are checked too ([`CHECKS`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../README.md");

/// How long one block may run.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Outputs checked besides the exit status: the block that contains the first text, and what its
/// output must contain (a text listed n times must be there at least n times). The README's own `# →`
/// comments say the same.
const CHECKS: &[(&str, &[&str])] = &[
    (
        // The tour: no key, no answer; the plan the README describes; the password masked; the
        // NDJSON intake's report of a bad line.
        "localhost:8000/v1/defend",
        &[
            "401\n",
            "\"score\":70",
            "\"severity\":\"high\"",
            "{\"code\":\"failed_logins\"",
            "{\"code\":\"scanner_agent\"",
            "\"actions\":[{\"kind\":\"block_ip\",\"subject\":{\"type\":\"ip\",\"value\":\"203.0.113.7\"},\"ttl_secs\":14400}]",
            "\"mode\":\"observe\"",
            "\"password\":\"***\"",
            "\"accepted\":1,\"rejected\":1,\"errors\":[{\"line\":2,\"error\":\"malformed JSON at line 1 column 2",
        ],
    ),
    (
        "sentinel decisions add --ip 2001:db8:1:2::/64",
        &["add element inet sentinel blocked_net_v6 { 2001:db8:1:2::/64 timeout 3600s }"],
    ),
    (
        "sentinel audit verify --checkpoint saved.note",
        &[
            "audit log ./data/audit: OK",
            "1 checkpoint(s) consistent with the log (saved.note)",
            "proof verifies against checkpoint",
            "sentinel.json: intact",
            "the copy verifies",
        ],
    ),
    (
        // Both tokens, HS256 and EdDSA, are accepted (a refused one answers an error, not the version).
        "openssl genpkey -algorithm ed25519",
        &["\"name\":\"sentinel\"", "\"name\":\"sentinel\""],
    ),
    ("localhost:8000/webhook/generic", &["\"accepted\":true"]),
    ("/v1/system/heartbeat", &["\"status\":\"ok\""]),
];

/// The fences whose blocks are run.
const SHELL: &[&str] = &["sh", "bash", "shell"];

/// A fenced block of the README.
#[derive(Debug, PartialEq)]
struct Block {
    /// The README line of its opening fence (1-based).
    line: usize,
    /// The fence's language (`""` for none).
    lang: String,
    /// Its text, the fence's indentation removed.
    text: String,
    /// `Some(reason)` when a skip marker stands directly above it.
    skip: Option<String>,
}

impl Block {
    fn is_shell(&self) -> bool {
        SHELL.contains(&self.lang.as_str())
    }
}

/// A `<!-- readme-test: … -->` line: `Some(Ok(reason))` for a good skip marker, `Some(Err(problem))`
/// for a bad one, `None` for any other line.
fn marker(line: &str) -> Option<Result<String, &'static str>> {
    let rest = line.trim().strip_prefix("<!-- readme-test:")?;
    let Some(body) = rest.strip_suffix("-->").map(str::trim) else {
        return Some(Err("a readme-test marker is one line ending in `-->`"));
    };
    let Some(reason) = body.strip_prefix("skip") else {
        return Some(Err(
            "unknown readme-test marker (the only one is `<!-- readme-test: skip (REASON) -->`)",
        ));
    };
    let reason = reason.trim();
    Some(
        reason
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .ok_or("a skip marker needs a reason: `<!-- readme-test: skip (REASON) -->`"),
    )
}

/// Every fenced block of `md`, or every violation of the rules above (all of them, by line).
/// `subcommands` are the CLI's, to tell a `sentinel` command from other text in a non-shell block.
fn blocks(md: &str, subcommands: &[String]) -> Result<Vec<Block>, Vec<String>> {
    let lines: Vec<&str> = md.lines().collect();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    // The marker on the line above, if any: its line and its reason (None when it was bad).
    let mut above: Option<(usize, Option<String>)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let marked = above.take();
        if let Some(m) = marker(line) {
            let reason = m
                .map_err(|e| problems.push(format!("README.md:{}: {e}", i + 1)))
                .ok();
            above = Some((i + 1, reason));
        }
        let Some(info) = trimmed.strip_prefix("```") else {
            if let Some((at, _)) = marked {
                problems.push(format!(
                    "README.md:{at}: a readme-test marker must stand directly above a shell fence"
                ));
            }
            i += 1;
            continue;
        };
        let indent = line.len() - trimmed.len();
        let ticks = 3 + info.chars().take_while(|&c| c == '`').count();
        let lang = info
            .trim_start_matches('`')
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        let mut text = String::new();
        let mut j = i + 1;
        while j < lines.len() {
            let l = lines[j];
            let t = l.trim();
            if t.len() >= ticks && t.chars().all(|c| c == '`') {
                break;
            }
            // The fence's own indentation is not part of the block (CommonMark).
            let strip = (l.len() - l.trim_start().len()).min(indent);
            text.push_str(&l[strip..]);
            text.push('\n');
            j += 1;
        }
        if j == lines.len() {
            problems.push(format!("README.md:{}: the fence is never closed", i + 1));
        }
        let block = Block {
            line: i + 1,
            lang,
            text,
            skip: marked.as_ref().and_then(|(_, r)| r.clone()),
        };
        match marked {
            _ if block.is_shell() => {}
            Some((at, _)) => problems.push(format!(
                "README.md:{at}: a readme-test marker must stand directly above a shell fence, not ```{}",
                block.lang
            )),
            None => {
                for (n, l) in block.text.lines().enumerate() {
                    if looks_like_a_command(l, subcommands) {
                        problems.push(format!(
                            "README.md:{}: a command in a ```{} block, which is not run (fence it ```sh, \
                             with a skip marker if it cannot run in a test): {l}",
                            block.line + 1 + n,
                            block.lang
                        ));
                    }
                }
            }
        }
        out.push(block);
        i = j + 1;
    }
    if let Some((at, _)) = above {
        problems.push(format!(
            "README.md:{at}: a readme-test marker must stand directly above a shell fence"
        ));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// A line a reader would type: `sentinel <subcommand>`, `sudo …`, `cargo …`, `curl …`, `$ …`.
fn looks_like_a_command(line: &str, subcommands: &[String]) -> bool {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("sudo" | "cargo" | "curl" | "$") => true,
        Some("sentinel") => words
            .next()
            .is_some_and(|w| subcommands.iter().any(|s| s == w)),
        _ => false,
    }
}

/// The CLI's subcommands, from `sentinel --help`.
fn subcommands() -> Vec<String> {
    let out = Command::new(common::BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let list: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_owned)
        .collect();
    assert!(
        list.iter().any(|s| s == "run") && list.len() > 5,
        "no subcommands in `sentinel --help`:\n{help}"
    );
    list
}

/// The daemon the blocks talk to; killed on drop, so it never outlives the test.
struct Daemon {
    child: std::process::Child,
    addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files the configuration names under `./etc/sentinel/` (README paths `/etc/sentinel/…`).
fn write_etc(dir: &Path) -> PathBuf {
    let etc = dir.join("etc/sentinel");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("jwt.secret"),
        "0f3c9a6d2b8e4f71a5c0d9e3b7f2a6c18e4d0b9f3a7c2e6d1b5f9a3c7e2d6b0a\n",
    )
    .unwrap();
    std::fs::write(etc.join("jwks.json"), "{\"keys\":[]}\n").unwrap();
    std::fs::write(
        etc.join("generic.secret"),
        "5e1b9d3f7a2c6e0b4d8f2a6c0e4b8d2f\n",
    )
    .unwrap();
    etc
}

/// Starts `sentinel run` in `dir` and waits until it is ready.
fn start(dir: &Path, etc: &Path) -> Daemon {
    let e = |f: &str| etc.join(f).display().to_string();
    std::fs::write(
        dir.join("sentinel.yml"),
        format!(
            "api:
  listen: 127.0.0.1:0
  jwt:
    issuer: https://idp.example.com
    audience: sentinel
    hs256_secret_file: {}
    jwks_file: {}
  webhooks:
    generic: {{ secret_file: {} }}
audit:
  checkpoint_interval: 1s
notify:
  channels:
    ops: {{ type: log }}
  routes:
    - {{ channels: [ops], group_wait: 0s }}
",
            e("jwt.secret"),
            e("jwks.json"),
            e("generic.secret")
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("sentinel.json")).unwrap();
    let err = std::fs::File::create(dir.join("sentinel.stderr")).unwrap();
    let mut daemon = Daemon {
        child: Command::new(common::BIN)
            .arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap(),
        addr: String::new(),
    };
    let output = || {
        format!(
            "{}{}",
            std::fs::read_to_string(dir.join("sentinel.stderr")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("sentinel.json")).unwrap_or_default()
        )
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(s)) = daemon.child.try_wait() {
            panic!("sentinel run exited early ({s}):\n{}", output());
        }
        if daemon.addr.is_empty() {
            if let Ok(a) = std::fs::read_to_string(dir.join("data/api.addr")) {
                if a.ends_with('\n') {
                    daemon.addr = a.trim().to_owned();
                }
            }
        }
        if !daemon.addr.is_empty()
            && common::blocking_get_status(&format!("http://{}/ready", daemon.addr)) == Some(200)
        {
            return daemon;
        }
        assert!(Instant::now() < deadline, "never ready:\n{}", output());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a block ran and what it printed, when it failed.
struct Failure {
    line: usize,
    script: String,
    why: String,
    output: String,
}

/// Runs one block as `bash -euo pipefail` in `dir`: its exit status (None when it timed out) and its
/// output (stdout and stderr, interleaved as written).
fn run_block(dir: &Path, bin: &Path, key: &str, n: usize, script: &str) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let scripts = dir.join(".readme");
    std::fs::create_dir_all(&scripts).unwrap();
    let file = scripts.join(format!("block-{n}.sh"));
    std::fs::write(&file, script).unwrap();
    let out_path = scripts.join(format!("block-{n}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail"])
        .arg(&file)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .env("KEY", key)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + BLOCK_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the block left running (or all of it, on a time-out) goes with it.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    (
        status,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
    )
}

/// What [`CHECKS`] wants of this block's output and it lacks.
fn missing(block: &str, output: &str) -> Vec<String> {
    let wants: Vec<&str> = CHECKS
        .iter()
        .filter(|(needle, _)| block.contains(needle))
        .flat_map(|(_, wants)| wants.iter().copied())
        .collect();
    let mut lacks: Vec<String> = Vec::new();
    for w in &wants {
        let times = wants.iter().filter(|x| *x == w).count();
        let found = output.matches(w).count();
        let said = format!("its output lacks {w:?} (wanted {times} time(s), found {found})");
        if found < times && !lacks.contains(&said) {
            lacks.push(said);
        }
    }
    lacks
}

/// The README's addresses and paths, pointed at this test's daemon and directory.
fn rewrite(text: &str, addr: &str, dir: &Path) -> String {
    text.replace("localhost:8000", addr)
        .replace("127.0.0.1:8000", addr)
        .replace(
            "/etc/sentinel/",
            &format!("{}/etc/sentinel/", dir.display()),
        )
}

#[test]
fn every_shell_block_of_the_readme_runs() {
    let started = Instant::now();
    let all = blocks(README, &subcommands()).unwrap_or_else(|p| {
        panic!(
            "README.md breaks the readme-test rules (crates/sentinel/tests/readme.rs):\n{}",
            p.join("\n")
        )
    });
    let shell: Vec<&Block> = all.iter().filter(|b| b.is_shell()).collect();
    let skipped: Vec<&&Block> = shell.iter().filter(|b| b.skip.is_some()).collect();
    for (needle, _) in CHECKS {
        assert!(
            shell
                .iter()
                .any(|b| b.skip.is_none() && b.text.contains(needle)),
            "CHECKS names a block containing {needle:?}: no shell block that runs has it"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bin = dir.join(".readme/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(common::BIN, bin.join("sentinel")).unwrap();
    let etc = write_etc(dir);
    let daemon = start(dir, &etc);
    let key = std::fs::read_to_string(dir.join("data/admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("snl_"), "admin key: {key}");

    let mut failures = Vec::new();
    let mut ran = 0;
    for b in shell.iter().filter(|b| b.skip.is_none()) {
        let script = rewrite(&b.text, &daemon.addr, dir);
        let t = Instant::now();
        let (status, output) = run_block(dir, &bin, &key, b.line, &script);
        ran += 1;
        println!(
            "README.md:{} ran in {:.1}s: {}",
            b.line,
            t.elapsed().as_secs_f64(),
            match status {
                Some(c) => format!("exit {c}"),
                None => "timed out".into(),
            }
        );
        let why = match status {
            Some(0) => missing(&b.text, &output).join("; "),
            Some(c) => format!("exit status {c}"),
            None => format!("still running after {BLOCK_TIMEOUT:?}"),
        };
        if !why.is_empty() {
            failures.push(Failure {
                line: b.line,
                script,
                why,
                output,
            });
        }
    }

    println!(
        "README.md: {} shell blocks: {ran} run, {} skipped ({:.1}s)",
        shell.len(),
        skipped.len(),
        started.elapsed().as_secs_f64()
    );
    for b in &skipped {
        println!(
            "  skipped README.md:{}: {}",
            b.line,
            b.skip.as_deref().unwrap_or_default()
        );
    }
    assert!(ran > 0, "no shell block of README.md ran");
    if !failures.is_empty() {
        let report: Vec<String> = failures
            .iter()
            .map(|f| {
                format!(
                    "--- README.md:{}: {}\n--- the block (as run):\n{}--- its output:\n{}",
                    f.line, f.why, f.script, f.output
                )
            })
            .collect();
        let log = std::fs::read_to_string(dir.join("sentinel.json")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "{} of {ran} README shell blocks failed\n{}\n--- the daemon's last log lines:\n{}",
            failures.len(),
            report.join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    drop(daemon);
}

/// The rules refuse what they should: a marker without a reason, a marker not above a shell fence, an
/// unknown marker, a command in a fence that is not run; and they read a good README as meant.
#[test]
fn the_block_rules_refuse_what_they_should() {
    let subs = vec!["run".to_owned(), "replay".to_owned()];
    let good = "text\n<!-- readme-test: skip (runs forever) -->\n```sh\nsentinel run\n```\n\n  ```bash\n  curl -s x\n  ```\n```text\nsentinel  process  running\n```\n";
    let b = blocks(good, &subs).unwrap();
    assert_eq!(
        b,
        vec![
            Block {
                line: 3,
                lang: "sh".into(),
                text: "sentinel run\n".into(),
                skip: Some("runs forever".into()),
            },
            Block {
                line: 7,
                lang: "bash".into(),
                text: "curl -s x\n".into(),
                skip: None,
            },
            Block {
                line: 10,
                lang: "text".into(),
                text: "sentinel  process  running\n".into(),
                skip: None,
            },
        ]
    );
    let refused = |md: &str, want: &str| {
        let p = blocks(md, &subs).expect_err(md);
        assert!(
            p.iter().any(|p| p.contains(want)),
            "{md:?}: {p:?} lacks {want:?}"
        );
    };
    refused(
        "<!-- readme-test: skip -->\n```sh\ntrue\n```\n",
        "README.md:1: a skip marker needs a reason",
    );
    refused(
        "<!-- readme-test: skip () -->\n```sh\ntrue\n```\n",
        "README.md:1: a skip marker needs a reason",
    );
    refused(
        "<!-- readme-test: skip (why) -->\n\n```sh\ntrue\n```\n",
        "README.md:1: a readme-test marker must stand directly above a shell fence",
    );
    refused(
        "<!-- readme-test: skip (why) -->\n```yaml\na: 1\n```\n",
        "README.md:1: a readme-test marker must stand directly above a shell fence, not ```yaml",
    );
    refused(
        "x\n<!-- readme-test: skip (why) -->",
        "README.md:2: a readme-test marker must stand directly above a shell fence",
    );
    refused(
        "<!-- readme-test: setup (x) -->\n```sh\ntrue\n```\n",
        "README.md:1: unknown readme-test marker",
    );
    refused(
        "```text\nsentinel replay auth.log\n```\n",
        "README.md:2: a command in a ```text block",
    );
    refused(
        "```\n$ curl -s x\n```\n",
        "README.md:2: a command in a ``` block",
    );
    refused("```sh\ntrue\n", "README.md:1: the fence is never closed");
}
