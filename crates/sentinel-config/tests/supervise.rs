//! Supervision configuration: a standalone `supervise.yml` (the shipped example included) and the
//! optional `supervise:` section of `sentinel.yml` read into the supervise crate's typed values, every
//! problem reported with its path, and secrets never shown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_config::{
    load_str, load_supervise, load_supervise_str, ConfigErrors, SUPERVISE_DATA_DIR,
};
use sentinel_notify::config::ChannelConfig;
use sentinel_notify::NotifyConfig;
use sentinel_supervise::config::{
    Check, ChildConfig, ContainerTarget, ProbeConfig, ProcessTarget, RestartPolicy,
    SuperviseConfig, Target,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_mentions(e: &ConfigErrors, paths: &[&str]) {
    for p in paths {
        assert!(e.mentions(p), "`{p}` not mentioned in:\n{e}");
    }
}

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/supervise.yml");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn the_shipped_example_loads_into_the_typed_values() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, "example-hook-secret\n").unwrap();
    let file = dir.path().join("supervise.yml");
    std::fs::write(
        &file,
        example().replace("/etc/sentinel/hook.secret", &secret.display().to_string()),
    )
    .unwrap();
    let s = load_supervise(&file, &[]).unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/var/lib/sentinel-supervise"));
    let ChannelConfig::Webhook(w) = &s.notify.channels["ops"] else {
        panic!("ops is not a webhook");
    };
    assert_eq!(w.secret.expose(), "example-hook-secret");
    assert_eq!(s.notify.routes[0].channels, ["ops", "log"]);
    assert_eq!(
        s.supervise,
        SuperviseConfig {
            stop_grace: secs(10),
            output_lines: 20,
            children: vec![
                ChildConfig {
                    name: "sentinel".into(),
                    target: Target::Process(ProcessTarget {
                        command: "/usr/bin/sentinel".into(),
                        args: vec![
                            "run".into(),
                            "--config".into(),
                            "/etc/sentinel/sentinel.yml".into()
                        ],
                        env: BTreeMap::from([("RUST_LOG".to_string(), "info".to_string())]),
                        clear_env: false,
                        cwd: Some(PathBuf::from("/var/lib/sentinel")),
                        user: Some("sentinel".into()),
                    }),
                    probe: Some(ProbeConfig {
                        check: Check::Http {
                            url: "http://127.0.0.1:8000/ready".into()
                        },
                        interval: secs(5),
                        timeout: secs(2),
                        failure_threshold: 3,
                        start_period: secs(10),
                    }),
                    restart: RestartPolicy::default(),
                    stop_grace: Some(secs(15)),
                },
                ChildConfig {
                    name: "web".into(),
                    target: Target::Container(ContainerTarget::Name("web1".into())),
                    probe: Some(ProbeConfig {
                        check: Check::DockerHealth,
                        interval: secs(5),
                        timeout: secs(2),
                        failure_threshold: 3,
                        start_period: secs(10),
                    }),
                    restart: RestartPolicy::default(),
                    stop_grace: None,
                },
                ChildConfig {
                    name: "db".into(),
                    target: Target::Container(ContainerTarget::Label("com.example.role=db".into())),
                    probe: Some(ProbeConfig {
                        check: Check::Tcp {
                            addr: "127.0.0.1:5432".parse().unwrap()
                        },
                        interval: secs(10),
                        timeout: secs(3),
                        failure_threshold: 3,
                        start_period: secs(10),
                    }),
                    restart: RestartPolicy::default(),
                    stop_grace: None,
                },
            ],
        }
    );
    assert!(s.warnings().is_empty(), "{:?}", s.warnings());
    let text = s.effective_yaml();
    assert!(!text.contains("example-hook-secret"), "{text}");
    assert!(text.contains("http://127.0.0.1:8000/ready"), "{text}");
    assert!(text.contains("com.example.role=db"), "{text}");
}

#[test]
fn a_minimal_file_takes_every_default() {
    let s = load_supervise_str(
        "children:\n  - { name: app, process: { command: /bin/true }, probe: { exec: [/bin/true, --ok] } }\n",
        &[],
    )
    .unwrap();
    assert_eq!(s.data_dir, PathBuf::from(SUPERVISE_DATA_DIR));
    assert_eq!(s.notify, NotifyConfig::default());
    assert_eq!(s.supervise.stop_grace, secs(10));
    assert_eq!(s.supervise.output_lines, 20);
    let c = &s.supervise.children[0];
    assert_eq!(
        c.target,
        Target::Process(ProcessTarget {
            command: "/bin/true".into(),
            args: vec![],
            env: BTreeMap::new(),
            clear_env: false,
            cwd: None,
            user: None,
        })
    );
    assert_eq!(
        c.probe.as_ref().map(|p| &p.check),
        Some(&Check::Exec {
            command: "/bin/true".into(),
            args: vec!["--ok".into()]
        })
    );
    assert_eq!(c.restart, RestartPolicy::default());
    assert_eq!(c.stop_grace, None);
    // A child without a probe: alive is healthy.
    let s =
        load_supervise_str("children: [{ name: a, container: { label: role } }]\n", &[]).unwrap();
    assert_eq!(s.supervise.children[0].probe, None);
}

#[test]
fn supervisor_variables_override_and_the_daemons_are_left_alone() {
    let yaml = "notify:\n  channels: { ops: { type: webhook, url: \"https://h.example/\" } }\n  routes: [{ channels: [ops] }]\nchildren: [{ name: a, process: { command: /bin/sleep, args: [1000] } }]\n";
    let vars = env(&[
        (
            "SENTINEL_SUPERVISE__NOTIFY__CHANNELS__OPS__SECRET",
            "env-hook-secret",
        ),
        ("SENTINEL_SUPERVISE__OUTPUT_LINES", "50"),
        ("SENTINEL_SUPERVISE__DATA_DIR", "/srv/sup"),
        // The daemon's own variables (passed on to its child) are not the supervisor's.
        ("SENTINEL__API__LISTEN", "0.0.0.0:1"),
        ("SENTINEL_ALLOW_INSECURE_NO_AUTH", "true"),
    ]);
    let s = load_supervise_str(yaml, &vars).unwrap();
    let ChannelConfig::Webhook(w) = &s.notify.channels["ops"] else {
        panic!("ops is not a webhook");
    };
    assert_eq!(w.secret.expose(), "env-hook-secret");
    assert_eq!(s.supervise.output_lines, 50);
    assert_eq!(s.data_dir, PathBuf::from("/srv/sup"));
    let Target::Process(p) = &s.supervise.children[0].target else {
        panic!("not a process");
    };
    assert_eq!(p.args, ["1000"], "a number is an argument as written");
    let e = load_supervise_str(yaml, &env(&[("SENTINEL_SUPERVISE__OUTPUT_LINES", "many")]))
        .unwrap_err();
    assert_mentions(&e, &["output_lines", "notify.channels.ops.secret"]);
}

#[test]
fn every_child_problem_is_reported_with_its_path() {
    let yaml = r#"
stop_grace: 1h
output_lines: -1
colour: red
children:
  - { name: a, process: { command: /bin/a }, container: { name: a } }
  - { name: a, process: { command: "", args: [x, {y: 1}], env: { "BAD NAME": x, OK: [1] }, cwd: relative/dir, user: "a b", shell: true } }
  - { name: "bad name" }
  - name: p
    process: { command: /bin/p }
    probe: { http: "http://127.0.0.1:8000/ready", tcp: "127.0.0.1:1" }
  - name: q
    process: { command: /bin/q }
    probe: { docker_health: true }
  - name: r
    container: { name: r, label: x }
    probe: { tcp: "localhost:5432", interval: 1s, timeout: 5s, failure_threshold: 0, start_period: 2h }
  - name: s
    container: {}
    probe: { interval: 5s }
    restart: { base: 2m, factor: 0.9, cap: 1m, jitter: 1.5, reset_after: 0s, crash_max: 0, crash_window: 2d, bogus: 1 }
    stop_grace: 0s
  - name: t
    process: { command: /bin/t }
    probe: { exec: [], http: "ftp://x" }
"#;
    let e = load_supervise_str(yaml, &[]).unwrap_err();
    assert_mentions(
        &e,
        &[
            "stop_grace",
            "output_lines",
            "colour",
            "children[0].container",
            "children[1].name",
            "children[1].process.command",
            "children[1].process.args[1]",
            "children[1].process.env.BAD NAME",
            "children[1].process.env.OK",
            "children[1].process.cwd",
            "children[1].process.user",
            "children[1].process.shell",
            "children[2].name",
            "children[2].process",
            "children[3].probe",
            "children[4].probe.docker_health",
            "children[5].container.label",
            "children[5].probe.tcp",
            "children[5].probe.failure_threshold",
            "children[5].probe.start_period",
            "children[6].container.name",
            "children[6].probe",
            "children[6].restart.factor",
            "children[6].restart.cap",
            "children[6].restart.jitter",
            "children[6].restart.reset_after",
            "children[6].restart.crash_max",
            "children[6].restart.crash_window",
            "children[6].restart.bogus",
            "children[6].stop_grace",
            "children[7].probe",
            "children[7].probe.exec",
            "children[7].probe.http",
        ],
    );
    let text = e.to_string();
    assert!(
        text.contains("`a` is also the name of children[0]"),
        "{text}"
    );
    assert!(text.contains("gives http and tcp"), "{text}");
    // An unparsable child still lets the others' problems through; an empty list is refused.
    let e = load_supervise_str("children: []\n", &[]).unwrap_err();
    assert_mentions(&e, &["children"]);
    let e = load_supervise_str("data_dir: /x\n", &[]).unwrap_err();
    assert_mentions(&e, &["children"]);
    // The probe timeout must fit in its interval (checked once both are good).
    let e = load_supervise_str(
        "children: [{ name: a, process: { command: /a }, probe: { tcp: \"127.0.0.1:1\", interval: 1s, timeout: 5s } }]\n",
        &[],
    )
    .unwrap_err();
    assert_mentions(&e, &["children[0].probe.timeout"]);
}

#[test]
fn environment_values_and_notify_secrets_are_never_echoed() {
    let yaml = r#"
notify:
  channels:
    chat: { type: matrix, homeserver: "https://m.example", room: "!r:m.example", access_token: "tok en-secret-9" }
children:
  - { name: a, process: { command: /bin/a, env: { API_KEY: { nested: env-secret-8 } } }, probe: { tcp: nope } }
"#;
    let e = load_supervise_str(yaml, &[]).unwrap_err();
    assert_mentions(
        &e,
        &[
            "notify.channels.chat.access_token",
            "children[0].process.env.API_KEY",
            "children[0].probe.tcp",
        ],
    );
    let text = format!("{e}\n{e:?}");
    assert!(
        !text.contains("secret-9") && !text.contains("secret-8"),
        "{text}"
    );
}

#[test]
fn a_missing_or_broken_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let e = load_supervise(&missing, &[]).unwrap_err();
    assert_mentions(&e, &[&missing.display().to_string()]);
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "children: [\n").unwrap();
    let e = load_supervise(&bad, &[]).unwrap_err();
    assert!(e.to_string().contains("invalid YAML"), "{e}");
    std::fs::write(&bad, "children: []\nchildren: []\n").unwrap();
    let e = load_supervise(&bad, &[]).unwrap_err();
    assert!(e.to_string().contains("duplicate"), "{e}");
}

#[test]
fn the_sentinel_yml_section_is_optional_and_typed() {
    assert_eq!(load_str("", None, &[]).unwrap().supervise, None);
    let yaml = r#"
supervise:
  stop_grace: 20s
  children:
    - name: shop
      container: { label: "com.example.role=shop" }
      probe: { http: "http://127.0.0.1:8080/health", interval: 3s, timeout: 1s, start_period: 0s }
      restart: { base: 500ms, factor: 1.5, cap: 30s, jitter: 0, crash_max: 3, crash_window: 1m }
"#;
    let cfg = load_str(yaml, None, &[]).unwrap();
    let s = cfg.supervise.clone().unwrap();
    assert_eq!(s.stop_grace, secs(20));
    assert_eq!(s.output_lines, 20);
    assert_eq!(
        s.children[0].restart,
        RestartPolicy {
            base: Duration::from_millis(500),
            factor: 1.5,
            cap: secs(30),
            jitter: 0.0,
            reset_after: secs(60),
            crash_max: 3,
            crash_window: secs(60),
        }
    );
    assert_eq!(
        s.children[0].probe.as_ref().unwrap().start_period,
        Duration::ZERO
    );
    // The rendering reads back as the same configuration.
    let again = load_str(&cfg.effective_yaml(), None, &[]).unwrap();
    assert_eq!(again, cfg);
    // Problems are named under `supervise.`; `data_dir` and `notify` belong to sentinel.yml itself.
    let e = load_str(
        "supervise:\n  data_dir: /x\n  children: [{ name: a, container: { name: a }, probe: { exec: [] } }]\n",
        None,
        &[],
    )
    .unwrap_err();
    assert_mentions(
        &e,
        &["supervise.data_dir", "supervise.children[0].probe.exec"],
    );
}

#[test]
fn secret_looking_child_variables_are_masked_when_shown() {
    let yaml = "children:\n  - { name: a, process: { command: /a, env: { SENTINEL_API_KEY: k-123-secret, DB_PASSWORD: p-456-secret, RUST_LOG: info } } }\n";
    let s = load_supervise_str(yaml, &[]).unwrap();
    let text = s.effective_yaml();
    assert!(
        !text.contains("k-123-secret") && !text.contains("p-456-secret"),
        "{text}"
    );
    assert!(text.contains("RUST_LOG: info"), "{text}");
    let cfg = load_str(
        &format!("supervise:\n  {}", yaml.replace('\n', "\n  ")),
        None,
        &[],
    )
    .unwrap();
    let text = cfg.effective_yaml();
    assert!(
        !text.contains("k-123-secret") && !text.contains("p-456-secret"),
        "{text}"
    );
}

#[test]
fn children_whose_crashes_no_route_takes_are_warned_about() {
    let child = "children: [{ name: a, process: { command: /bin/true } }]\n";
    // No route at all: every crash notice would reach the log only.
    let s = load_supervise_str(child, &[]).unwrap();
    let w = s.warnings().join("\n");
    assert!(
        w.contains("no notify.routes entry takes kind `crash`"),
        "{w}"
    );
    // Only crash loops (critical) are routed.
    let s = load_supervise_str(
        &format!("notify:\n  channels: {{ l: {{ type: log }} }}\n  routes: [{{ kinds: [crash], min_severity: critical, channels: [l] }}]\n{child}"),
        &[],
    )
    .unwrap();
    let w = s.warnings().join("\n");
    assert!(w.contains("at severity high"), "{w}");
    // A route taking every kind covers crashes: no warning.
    let s = load_supervise_str(
        &format!("notify:\n  channels: {{ l: {{ type: log }} }}\n  routes: [{{ channels: [l] }}]\n{child}"),
        &[],
    )
    .unwrap();
    assert!(s.warnings().is_empty(), "{:?}", s.warnings());
    // The same check for the `supervise:` section of sentinel.yml.
    let cfg = load_str(
        "notify:\n  channels: { l: { type: log } }\n  routes: [{ kinds: [alert], channels: [l] }]\nsupervise:\n  children: [{ name: a, process: { command: /bin/true } }]\n",
        None,
        &[],
    )
    .unwrap();
    let w = cfg.warnings().join("\n");
    assert!(
        w.contains("no notify.routes entry takes kind `crash`"),
        "{w}"
    );
    // No supervised children: nothing to say.
    let cfg = load_str("notify:\n  channels: { l: { type: log } }\n  routes: [{ kinds: [alert], channels: [l] }]\n", None, &[]).unwrap();
    assert!(!cfg.warnings().join("\n").contains("crash"));
}
