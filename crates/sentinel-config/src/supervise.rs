//! `supervise`: the children the supervisor runs (processes and Docker containers), their health
//! probes and restart policies, read and checked into the supervise crate's [`SuperviseConfig`];
//! and a standalone `supervise.yml` ([`SuperviseFile`]: the same plus its own `data_dir` and
//! `notify`). Every key is checked here (the schema walk leaves the section alone). It reads no files;
//! a child's command, directory and user are looked up by the supervisor when it starts the child.

use crate::notify::{bounded, factor, or_default};
use crate::reader::{Node, Reader};
use crate::validate::http_url;
use sentinel_notify::NotifyConfig;
use sentinel_supervise::config::{
    Check, ChildConfig, ContainerTarget, ProbeConfig, ProcessTarget, RestartPolicy,
    SuperviseConfig, Target,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where a standalone supervisor keeps its outbox when `data_dir` is not given.
pub const SUPERVISE_DATA_DIR: &str = "/var/lib/sentinel-supervise";
/// The longest SIGTERM-to-SIGKILL grace.
const MAX_GRACE: Duration = Duration::from_secs(600);
/// The longest probe interval, start period and probe timeout.
const MAX_PROBE: Duration = Duration::from_secs(3600);
/// The longest restart wait, reset time and crash window.
const MAX_RESTART: Duration = Duration::from_secs(24 * 3600);
/// Most children one supervisor runs.
const MAX_CHILDREN: usize = 256;

/// A standalone `supervise.yml`, checked and typed.
#[derive(Debug, Clone, PartialEq)]
pub struct SuperviseFile {
    /// Where the supervisor keeps its own store (the notification outbox).
    pub data_dir: PathBuf,
    /// Where the supervisor's notices (crashes, crash loops) go.
    pub notify: NotifyConfig,
    /// What it runs.
    pub supervise: SuperviseConfig,
}

impl SuperviseFile {
    /// The effective configuration as YAML (secrets as `***`).
    pub fn effective_yaml(&self) -> String {
        let mut tree = to_tree(&self.supervise);
        if let Value::Object(m) = &mut tree {
            m.insert(
                "data_dir".into(),
                json!(self.data_dir.display().to_string()),
            );
            m.insert("notify".into(), crate::notify::to_tree(&self.notify));
        }
        sentinel_core::Redactor::default().redact(&mut tree);
        serde_norway::to_string(&tree)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    /// One line per unsafe or useless setting (the caller prefixes `WARNING: `).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        crate::notify::warnings(&self.notify, "notify", &mut out);
        crate::notify::crash_route_warnings(
            &self.notify,
            "notify",
            self.supervise.children.len(),
            &mut out,
        );
        out
    }
}

/// The keys of the section in `sentinel.yml`.
const SECTION_KEYS: &[&str] = &["stop_grace", "output_lines", "children"];
/// The keys of a standalone file.
const FILE_KEYS: &[&str] = &[
    "data_dir",
    "notify",
    "stop_grace",
    "output_lines",
    "children",
];

/// A standalone file's tree.
pub(crate) fn supervise_file(r: &mut Reader, root: &Node<'_>) -> Option<SuperviseFile> {
    if !r.known_keys(root, FILE_KEYS) {
        return None;
    }
    let data_dir = or_default(
        r,
        root,
        "data_dir",
        PathBuf::from(SUPERVISE_DATA_DIR),
        |r, n| {
            let s = r.string(n)?;
            if s.trim().is_empty() {
                r.fail(&n.path, "must not be empty");
                return None;
            }
            Some(PathBuf::from(s))
        },
    );
    let n = r.optional(root, "notify");
    let notify = crate::notify::notify(r, n.as_ref());
    let supervise = body(r, root);
    Some(SuperviseFile {
        data_dir: data_dir?,
        notify: notify?,
        supervise: supervise?,
    })
}

/// The optional `supervise` section of `sentinel.yml`.
pub(crate) fn section(r: &mut Reader, s: Option<&Node<'_>>) -> Option<Option<SuperviseConfig>> {
    let Some(s) = s.filter(|s| !s.value.is_null()) else {
        return Some(None);
    };
    if !r.known_keys(s, SECTION_KEYS) {
        return None;
    }
    body(r, s).map(Some)
}

fn body(r: &mut Reader, s: &Node<'_>) -> Option<SuperviseConfig> {
    let d = SuperviseConfig::default();
    let stop_grace = or_default(r, s, "stop_grace", d.stop_grace, |r, n| {
        bounded(r, n, MAX_GRACE, false)
    });
    let output_lines = or_default(r, s, "output_lines", d.output_lines, |r, n| {
        r.int(n, 0, 10_000)
    });
    let children = r.get(Some(s), "children").and_then(|n| children(r, &n));
    Some(SuperviseConfig {
        children: children?,
        stop_grace: stop_grace?,
        output_lines: output_lines?,
    })
}

/// A child name: 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-` and `.`.
fn child_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn children(r: &mut Reader, n: &Node<'_>) -> Option<Vec<ChildConfig>> {
    let items = r.list(n)?;
    let mut ok = true;
    if items.is_empty() {
        r.fail(
            &n.path,
            "lists no child: name at least one process or container",
        );
        ok = false;
    }
    if items.len() > MAX_CHILDREN {
        r.fail(
            &n.path,
            format!("lists {} children; at most {MAX_CHILDREN}", items.len()),
        );
        ok = false;
    }
    r.unique_named(&items, "child", child).filter(|_| ok)
}

fn child(r: &mut Reader, e: &Node<'_>) -> Option<ChildConfig> {
    if !r.known_keys(
        e,
        &[
            "name",
            "process",
            "container",
            "probe",
            "restart",
            "stop_grace",
        ],
    ) {
        return None;
    }
    let name = r.get(Some(e), "name").and_then(|n| {
        let v = r.string(&n)?;
        if !child_name_ok(v) {
            r.fail(
                &n.path,
                format!("{v:?} must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-` and `.`"),
            );
            return None;
        }
        Some(v.to_owned())
    });
    let target = match (r.optional(e, "process"), r.optional(e, "container")) {
        (Some(p), None) => process(r, &p).map(Target::Process),
        (None, Some(c)) => container(r, &c).map(Target::Container),
        (Some(_), Some(c)) => {
            r.fail(
                &c.path,
                "`process` is set too: a child is one process or one container, not both",
            );
            None
        }
        (None, None) => {
            r.fail(
                &e.child_path("process"),
                "missing: give `process` (a program to run) or `container` (a Docker container)",
            );
            None
        }
    };
    let is_container = e.value.get("container").is_some_and(|v| !v.is_null());
    let probe = or_default(r, e, "probe", None, |r, n| {
        probe(r, n, is_container).map(Some)
    });
    let restart = or_default(r, e, "restart", RestartPolicy::default(), restart);
    let stop_grace = or_default(r, e, "stop_grace", None, |r, n| {
        bounded(r, n, MAX_GRACE, false).map(Some)
    });
    Some(ChildConfig {
        name: name?,
        target: target?,
        probe: probe?,
        restart: restart?,
        stop_grace: stop_grace?,
    })
}

/// A non-empty string without NUL (an argument, a command).
fn arg(r: &mut Reader, n: &Node<'_>, what: &str) -> Option<String> {
    let v = r.string(n)?;
    if v.trim().is_empty() || v.contains('\0') {
        r.fail(&n.path, format!("must be a non-empty {what} without NUL"));
        return None;
    }
    Some(v.to_owned())
}

fn process(r: &mut Reader, p: &Node<'_>) -> Option<ProcessTarget> {
    if !r.known_keys(p, &["command", "args", "env", "clear_env", "cwd", "user"]) {
        return None;
    }
    let command = r
        .get(Some(p), "command")
        .and_then(|n| arg(r, &n, "program"));
    let args = or_default(r, p, "args", Vec::new(), |r, n| {
        r.each(n, |r, a| match a.value {
            // An argument may be empty (`""`) but not NUL; numbers are written as they read.
            Value::String(s) if !s.contains('\0') => Some(s.clone()),
            Value::Number(x) => Some(x.to_string()),
            _ => {
                r.fail(&a.path, "must be a string without NUL");
                None
            }
        })
    });
    let env = or_default(r, p, "env", BTreeMap::new(), env);
    let clear_env = or_default(r, p, "clear_env", false, |r, n| r.boolean(n));
    let cwd = or_default(r, p, "cwd", None, |r, n| {
        let path = r.optional_path(n)?;
        if path.as_ref().is_some_and(|d| !d.is_absolute()) {
            r.fail(&n.path, "must be an absolute path");
            return None;
        }
        Some(path)
    });
    let user = or_default(r, p, "user", None, |r, n| {
        let v = r.string(n)?.trim();
        if v.is_empty()
            || v.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ':')
        {
            r.fail(&n.path, format!("{v:?} must be a user name or a uid"));
            return None;
        }
        Some(Some(v.to_owned()))
    });
    Some(ProcessTarget {
        command: command?,
        args: args?,
        env: env?,
        clear_env: clear_env?,
        cwd: cwd?,
        user: user?,
    })
}

/// Environment variables: names without `=` or NUL; values are strings (numbers and booleans are
/// written as they read). Values are never echoed: they may be credentials.
fn env(r: &mut Reader, n: &Node<'_>) -> Option<BTreeMap<String, String>> {
    let Value::Object(map) = n.value else {
        r.fail(&n.path, "expected a mapping of variable names to values");
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in map {
        let path = n.child_path(k);
        if k.is_empty() || k.contains(['=', '\0']) || k.chars().any(char::is_whitespace) {
            r.fail(
                &path,
                "a variable name must be non-empty, without `=`, spaces or NUL",
            );
            ok = false;
            continue;
        }
        let value = match v {
            Value::String(s) if !s.contains('\0') => s.clone(),
            Value::Number(x) => x.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                r.fail(
                    &path,
                    "must be a string without NUL (the value is not shown)",
                );
                ok = false;
                continue;
            }
        };
        out.insert(k.clone(), value);
    }
    ok.then_some(out)
}

fn container(r: &mut Reader, c: &Node<'_>) -> Option<ContainerTarget> {
    if !r.known_keys(c, &["name", "label"]) {
        return None;
    }
    let text = |r: &mut Reader, n: &Node<'_>| -> Option<String> {
        let v = r.string(n)?.trim();
        if v.is_empty() || v.starts_with('=') || v.chars().any(|c| c.is_control()) {
            r.fail(
                &n.path,
                "must not be empty (a label is `key` or `key=value`)",
            );
            return None;
        }
        Some(v.to_owned())
    };
    match (r.optional(c, "name"), r.optional(c, "label")) {
        (Some(n), None) => text(r, &n).map(ContainerTarget::Name),
        (None, Some(l)) => text(r, &l).map(ContainerTarget::Label),
        (Some(_), Some(l)) => {
            r.fail(
                &l.path,
                "`name` is set too: give a container name or a label, not both",
            );
            None
        }
        (None, None) => {
            r.fail(
                &c.child_path("name"),
                "missing: give `name` (one container) or `label` (every container carrying it)",
            );
            None
        }
    }
}

const PROBE_KINDS: &str = "http, tcp, exec, docker_health";

fn probe(r: &mut Reader, p: &Node<'_>, is_container: bool) -> Option<ProbeConfig> {
    if !r.known_keys(
        p,
        &[
            "http",
            "tcp",
            "exec",
            "docker_health",
            "interval",
            "timeout",
            "failure_threshold",
            "start_period",
        ],
    ) {
        return None;
    }
    let mut checks: Vec<(String, Option<Check>)> = Vec::new();
    if let Some(n) = r.optional(p, "http") {
        let check = r.string(&n).and_then(|u| {
            let u = u.trim();
            if http_url(u).is_none() {
                r.fail(
                    &n.path,
                    format!("`{u}` must be an http(s) URL with a host and a port from 1 to 65535 if any"),
                );
                return None;
            }
            Some(Check::Http { url: u.to_owned() })
        });
        checks.push((n.path, check));
    }
    if let Some(n) = r.optional(p, "tcp") {
        let check =
            r.string(&n)
                .and_then(|a| match a.trim().parse::<SocketAddr>() {
                    Ok(addr) if addr.port() != 0 => Some(Check::Tcp { addr }),
                    _ => {
                        r.fail(
                    &n.path,
                    format!("{a:?} must be an address and port, e.g. 127.0.0.1:5432 or [::1]:5432"),
                );
                        None
                    }
                });
        checks.push((n.path, check));
    }
    if let Some(n) = r.optional(p, "exec") {
        let check = r.each(&n, |r, a| arg(r, a, "argument")).and_then(|argv| {
            let Some((command, args)) = argv.split_first() else {
                r.fail(&n.path, "must name a command: [program, arguments…]");
                return None;
            };
            Some(Check::Exec {
                command: command.clone(),
                args: args.to_vec(),
            })
        });
        checks.push((n.path, check));
    }
    if let Some(n) = r.optional(p, "docker_health") {
        match r.boolean(&n) {
            Some(true) if !is_container => {
                r.fail(
                    &n.path,
                    "is for containers (their own HEALTHCHECK); a process has none: use http, tcp or exec",
                );
                checks.push((n.path, None));
            }
            Some(true) => checks.push((n.path, Some(Check::DockerHealth))),
            Some(false) => {}
            None => checks.push((n.path, None)),
        }
    }
    let check = match checks.len() {
        0 => {
            r.fail(
                &p.path,
                format!("names no check: give exactly one of {PROBE_KINDS}"),
            );
            None
        }
        1 => checks.pop().and_then(|(_, c)| c),
        _ => {
            let given: Vec<&str> = checks
                .iter()
                .filter_map(|(path, _)| path.rsplit('.').next())
                .collect();
            r.fail(
                &p.path,
                format!(
                    "gives {}: a probe checks one thing (one of {PROBE_KINDS})",
                    given.join(" and ")
                ),
            );
            None
        }
    };
    let interval = or_default(r, p, "interval", Duration::from_secs(5), |r, n| {
        bounded(r, n, MAX_PROBE, false)
    });
    let timeout = match r.optional(p, "timeout") {
        None => Some((Duration::from_secs(2), p.child_path("timeout"))),
        Some(n) => bounded(r, &n, MAX_PROBE, false).map(|t| (t, n.path)),
    };
    let failure_threshold = or_default(r, p, "failure_threshold", 3, |r, n| r.int(n, 1, 1000));
    let start_period = or_default(r, p, "start_period", Duration::from_secs(10), |r, n| {
        bounded(r, n, MAX_PROBE, true)
    });
    let (interval, (timeout, timeout_path)) = (interval?, timeout?);
    if timeout > interval {
        r.fail(
            &timeout_path,
            format!(
                "{} is longer than the interval ({}): probes would overlap",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        );
        return None;
    }
    Some(ProbeConfig {
        check: check?,
        interval,
        timeout,
        failure_threshold: failure_threshold?,
        start_period: start_period?,
    })
}

fn restart(r: &mut Reader, n: &Node<'_>) -> Option<RestartPolicy> {
    let d = RestartPolicy::default();
    if !r.known_keys(
        n,
        &[
            "base",
            "factor",
            "cap",
            "jitter",
            "reset_after",
            "crash_max",
            "crash_window",
        ],
    ) {
        return None;
    }
    let span = |r: &mut Reader, x: &Node<'_>| bounded(r, x, MAX_RESTART, false);
    let base = or_default(r, n, "base", d.base, span);
    let factor = or_default(r, n, "factor", d.factor, factor);
    let cap = match r.optional(n, "cap") {
        None => Some((d.cap, n.child_path("cap"))),
        Some(c) => span(r, &c).map(|v| (v, c.path)),
    };
    let jitter = or_default(r, n, "jitter", d.jitter, |r, j| {
        let v = r.float(j)?;
        if !(0.0..=1.0).contains(&v) {
            r.fail(
                &j.path,
                format!("must be between 0 and 1 (a fraction of each wait), got {v}"),
            );
            return None;
        }
        Some(v)
    });
    let reset_after = or_default(r, n, "reset_after", d.reset_after, span);
    let crash_max = or_default(r, n, "crash_max", d.crash_max, |r, c| r.int(c, 1, 1000));
    let crash_window = or_default(r, n, "crash_window", d.crash_window, span);
    let (base, (cap, cap_path)) = (base?, cap?);
    if cap < base {
        r.fail(
            &cap_path,
            format!(
                "must be at least base ({}), got {}",
                humantime::format_duration(base),
                humantime::format_duration(cap)
            ),
        );
        return None;
    }
    Some(RestartPolicy {
        base,
        factor: factor?,
        cap,
        jitter: jitter?,
        reset_after: reset_after?,
        crash_max: crash_max?,
        crash_window: crash_window?,
    })
}

fn dur(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

/// The section as written in a configuration file.
pub(crate) fn to_tree(c: &SuperviseConfig) -> Value {
    let children: Vec<Value> = c.children.iter().map(child_tree).collect();
    json!({
        "stop_grace": dur(c.stop_grace),
        "output_lines": c.output_lines,
        "children": children,
    })
}

fn child_tree(c: &ChildConfig) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(c.name));
    match &c.target {
        Target::Process(p) => {
            m.insert(
                "process".into(),
                json!({
                    "command": p.command,
                    "args": p.args,
                    "env": p.env,
                    "clear_env": p.clear_env,
                    "cwd": p.cwd.as_ref().map(|d| d.display().to_string()),
                    "user": p.user,
                }),
            );
        }
        Target::Container(ContainerTarget::Name(n)) => {
            m.insert("container".into(), json!({"name": n}));
        }
        Target::Container(ContainerTarget::Label(l)) => {
            m.insert("container".into(), json!({"label": l}));
        }
        // A target added to the supervise crate is shown by its debug form until it is read here.
        other => {
            m.insert("target".into(), json!(format!("{other:?}")));
        }
    }
    if let Some(p) = &c.probe {
        let mut pm = Map::new();
        match &p.check {
            Check::Http { url } => {
                pm.insert("http".into(), json!(url));
            }
            Check::Tcp { addr } => {
                pm.insert("tcp".into(), json!(addr.to_string()));
            }
            Check::Exec { command, args } => {
                let argv: Vec<&String> = std::iter::once(command).chain(args).collect();
                pm.insert("exec".into(), json!(argv));
            }
            Check::DockerHealth => {
                pm.insert("docker_health".into(), json!(true));
            }
            other => {
                pm.insert("check".into(), json!(format!("{other:?}")));
            }
        }
        pm.insert("interval".into(), dur(p.interval));
        pm.insert("timeout".into(), dur(p.timeout));
        pm.insert("failure_threshold".into(), json!(p.failure_threshold));
        pm.insert("start_period".into(), dur(p.start_period));
        m.insert("probe".into(), Value::Object(pm));
    }
    let rp = &c.restart;
    m.insert(
        "restart".into(),
        json!({
            "base": dur(rp.base),
            "factor": rp.factor,
            "cap": dur(rp.cap),
            "jitter": rp.jitter,
            "reset_after": dur(rp.reset_after),
            "crash_max": rp.crash_max,
            "crash_window": dur(rp.crash_window),
        }),
    );
    m.insert("stop_grace".into(), json!(c.stop_grace.map(dur)));
    Value::Object(m)
}

/// Serialises `ValidatedConfig.supervise` in the configuration's own shape ([`to_tree`]).
pub(crate) fn serialize<S: serde::Serializer>(
    c: &Option<SuperviseConfig>,
    s: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&c.as_ref().map(to_tree), s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_names_allow_dots_and_capitals_but_not_spaces() {
        assert!(child_name_ok("Sentinel.main-1"));
        assert!(!child_name_ok(""));
        assert!(!child_name_ok("a b"));
        assert!(!child_name_ok(&"x".repeat(65)));
    }
}
