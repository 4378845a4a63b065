//! `config check`'s preflight finds, before the daemon starts, every problem the daemon would meet while
//! building its components from a valid configuration: a scenario directory it cannot read, a fail2ban
//! filter that does not load, a whitelist host name that does not resolve, an enforcing quarantine whose
//! root does not exist. A configuration without such problems passes.

use sentinel_pipeline::sources::preflight;

fn load(yaml: &str) -> sentinel_config::ValidatedConfig {
    sentinel_config::load_str(yaml, None, &[]).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

#[test]
fn every_build_time_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let filter = dir.path().join("broken.conf");
    std::fs::write(&filter, "[Definition]\nfailregex = ^fail (<HOST>$\n").unwrap();
    let missing = dir.path().join("no-such-dir");
    let yaml = format!(
        r#"
data_dir: {data}
sources:
  - {{ type: file, paths: ["{data}/x.log"], fail2ban_filter: "{filter}" }}
detect:
  scenarios:
    dir: "{missing}"
    whitelist: [192.0.2.0/24, no-such-host.invalid]
respond:
  quarantine_roots: ["{missing}/uploads"]
  actuators:
    quarantine_file: {{ mode: enforce, max_live: 10 }}
"#,
        data = dir.path().display(),
        filter = filter.display(),
        missing = missing.display(),
    );
    let (_notes, errors) = preflight(&load(&yaml));
    let all = errors.join("\n");
    for want in [
        "broken.conf",
        "no-such-dir",
        "no-such-host.invalid",
        "respond.quarantine_roots",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert_eq!(errors.len(), 4, "{all}");
}

#[test]
fn a_buildable_configuration_passes() {
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("uploads");
    std::fs::create_dir(&roots).unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("mine.yaml"),
        "- name: my_trigger\n  counting: { type: trigger }\n  severity: low\n",
    )
    .unwrap();
    let yaml = format!(
        r#"
data_dir: {data}/data
sources:
  - {{ type: file, paths: ["{data}/*.log"], format: sshd }}
detect:
  scenarios: {{ dir: "{scenarios}", whitelist: [192.0.2.0/24, localhost] }}
respond:
  quarantine_roots: ["{roots}"]
  actuators:
    quarantine_file: {{ mode: enforce, max_live: 10 }}
"#,
        data = dir.path().display(),
        scenarios = scenarios.display(),
        roots = roots.display(),
    );
    let (_notes, errors) = preflight(&load(&yaml));
    assert!(errors.is_empty(), "{errors:?}");
}
