//! The Falco detector on events made by the real `falco` parser from lines Falco really wrote: which
//! alerts raise what (subject, scenario, severity), and what is skipped and counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sentinel_core::{Alert, Detector, Event, Redactor, Severity, Subject, Timestamp};
use sentinel_detect::falco::{severity_of, CONFIDENCE, CONTAINER_SCENARIO, HOST_SCENARIO};
use sentinel_detect::{FalcoDetector, FalcoSettings};
use sentinel_ingest::parse::falco::Falco;
use sentinel_ingest::{LineParser, ParseCtx};

/// Falco's documentation, "Output Channels" → "JSON Output" (falcosecurity/falco-website,
/// `content/en/docs/outputs/channels.md`): Critical, a container by id only.
const TERMINAL_SHELL: &str = r#"{"hostname":"falco-xczjd","output":"13:44:05.478445995: Critical A shell was spawned in a container with an attached terminal (user=root user_loginuid=-1 k8s.ns=default k8s.pod=kubecon container=ee97d9c4186f shell=sh parent=runc cmdline=sh -c clear; (bash || ash || sh) terminal=34816 container_id=ee97d9c4186f image=docker.io/library/alpine)","priority":"Critical","rule":"Terminal shell in container","source":"syscall","tags":["container","mitre_execution","shell"],"time":"2023-05-25T13:44:05.478445995Z", "output_fields": {"container.id":"ee97d9c4186f","container.image.repository":"docker.io/library/alpine","evt.time":1685022245478445995,"k8s.ns.name":"default","k8s.pod.name":"kubecon","proc.cmdline":"sh -c clear; (bash || ash || sh)","proc.name":"sh","proc.pname":"runc","proc.tty":34816,"user.loginuid":-1,"user.name":"root"}}"#;

/// Elastic's Falco integration test log (elastic/integrations,
/// `packages/falco/data_stream/falco_alerts/_dev/test/pipeline/test-falco.log`, first line): Warning, a
/// Docker container by id and name.
const SENSITIVE_FILE: &str = r#"{"hostname":"97ade2b595f0","output":"2024-05-07T18:54:19.341081180+0000: Warning Sensitive file opened for reading by non-trusted program (file=/etc/shadow gparent=runc ggparent=init gggparent=init evt_type=openat user=root user_uid=0 user_loginuid=-1 process=event-generator proc_exepath=/bin/event-generator parent=containerd-shim command=event-generator run --loop terminal=0 container_id=9656db3bb358 container_name=elastic-package-service-falco-event-generator-1)","priority":"Warning","rule":"Read sensitive file untrusted","source":"syscall","tags":["T1555","container","filesystem","host","maturity_stable","mitre_credential_access"],"time":"2024-05-07T18:54:19.341081180Z", "output_fields": {"container.id":"9656db3bb358","container.name":"elastic-package-service-falco-event-generator-1","evt.time.iso8601":1715108059341081180,"evt.type":"openat","fd.name":"/etc/shadow","proc.cmdline":"event-generator run --loop","proc.exepath":"/bin/event-generator","proc.name":"event-generator","proc.pname":"containerd-shim","proc.tty":0,"user.loginuid":-1,"user.name":"root","user.uid":0}}"#;

/// Falco's documentation, "Python Client" (falcosecurity/falco-website,
/// `content/en/docs/grpc/client-python.md`), on one line: a host event (`container.id` `host`).
const HOST_HISTORY: &str = r#"{"time":"2020-03-03T17:50:03.391768+00:00","priority":"warning","source":"syscall","rule":"Delete or rename shell history","output":"18:50:03.391767411: Warning Shell history had been deleted or renamed (user=matt type=unlink command=zsh fd.name=<NA> name=<NA> path=/home/matt/.zsh_history.LOCK oldpath=<NA> host (id=host))","output_fields":{"container.name":"host","user.name":"matt","container.id":"host","fd.name":"<NA>","proc.cmdline":"zsh","evt.arg.path":"/home/matt/.zsh_history.LOCK","evt.arg.name":"<NA>","evt.arg.oldpath":"<NA>","evt.type":"unlink","evt.time":"18:50:03.391767411"},"hostname":"localhost.localdomain"}"#;

/// The event the daemon makes of a line (parsed, redacted).
fn event(line: &str) -> Event {
    let p = Falco.parse(line, &ParseCtx::default()).unwrap();
    p.to_event(
        "file:/var/log/falco/events.json",
        line,
        Timestamp::now(),
        &Redactor::default(),
    )
}

fn run(d: &mut FalcoDetector, ev: &Event) -> Vec<Alert> {
    let mut out = Vec::new();
    d.observe(ev, &mut out);
    out
}

fn tally(d: &FalcoDetector, outcome: &str) -> u64 {
    d.tally()
        .read()
        .into_iter()
        .find(|(o, _)| *o == outcome)
        .unwrap()
        .1
}

#[test]
fn a_critical_alert_in_a_container_is_about_that_container() {
    let mut d = FalcoSettings::default().build();
    let ev = event(TERMINAL_SHELL);
    let out = run(&mut d, &ev);
    assert_eq!(out.len(), 1, "{out:?}");
    let a = &out[0];
    assert_eq!(a.subject, Subject::Container("ee97d9c4186f".into()));
    assert_eq!(a.scenario, CONTAINER_SCENARIO);
    assert_eq!(a.detector, "falco");
    assert_eq!((a.severity, a.score), (Severity::Critical, 95));
    assert!((a.confidence - CONFIDENCE).abs() < f32::EPSILON);
    assert_eq!(a.ts, ev.ts);
    assert_eq!(a.trace_id, ev.trace_id);
    assert_eq!(a.evidence.len(), 1);
    assert_eq!(a.evidence[0].id, ev.id, "the evidence is the event");
    let r = &a.reasons[0];
    assert_eq!(r.code, "falco_rule");
    assert!(
        r.detail.starts_with(
            "Falco rule `Terminal shell in container` (Critical) in container ee97d9c4186f: \
             13:44:05.478445995: Critical A shell"
        ),
        "{}",
        r.detail
    );
    assert_eq!(tally(&d, "container_alert"), 1);
}

#[test]
fn a_named_container_is_the_subject_by_name() {
    let mut d = FalcoSettings::default().build();
    let out = run(&mut d, &event(SENSITIVE_FILE));
    let a = &out[0];
    assert_eq!(
        a.subject,
        Subject::Container("elastic-package-service-falco-event-generator-1".into())
    );
    assert_eq!((a.severity, a.score), (Severity::Medium, 50));
    assert!(
        a.reasons[0].detail.contains(
            "in container elastic-package-service-falco-event-generator-1 (id 9656db3bb358)"
        ),
        "{}",
        a.reasons[0].detail
    );
}

#[test]
fn the_host_is_never_a_subject() {
    let mut d = FalcoSettings::default().build();
    // A host event without a connection: nothing to act on, skipped and counted.
    assert!(run(&mut d, &event(HOST_HISTORY)).is_empty());
    assert_eq!(tally(&d, "host_without_address"), 1);
    // The same event with a connection's remote end (`fd.rip` added to the real line): that address is
    // the subject, never the host.
    let with_peer = HOST_HISTORY.replace(
        r#""evt.type":"unlink""#,
        r#""evt.type":"connect","fd.rip":"::ffff:203.0.113.9""#,
    );
    let out = run(&mut d, &event(&with_peer));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].subject, Subject::Ip("203.0.113.9".parse().unwrap()));
    assert_eq!(out[0].scenario, HOST_SCENARIO);
    assert!(out[0].reasons[0]
        .detail
        .contains("on localhost.localdomain, remote address 203.0.113.9"));
    assert_eq!(tally(&d, "host_alert"), 1);
    // A container event with no container fields at all is a host event too.
    let bare = r#"{"rule":"r","priority":"Critical","output_fields":{"proc.name":"sh"}}"#;
    assert!(run(&mut d, &event(bare)).is_empty());
    assert_eq!(tally(&d, "host_without_address"), 2);
}

#[test]
fn ignored_rules_and_unusable_containers_raise_nothing_and_are_counted() {
    let mut d = FalcoSettings {
        ignore_rules: vec!["Read sensitive file untrusted".into()],
    }
    .build();
    assert!(run(&mut d, &event(SENSITIVE_FILE)).is_empty());
    assert_eq!(tally(&d, "ignored_rule"), 1);
    assert_eq!(
        run(&mut d, &event(TERMINAL_SHELL)).len(),
        1,
        "other rules still alert"
    );

    let odd = TERMINAL_SHELL.replace(
        r#""container.id":"ee97d9c4186f""#,
        r#""container.id":"../x""#,
    );
    assert!(run(&mut d, &event(&odd)).is_empty());
    assert_eq!(tally(&d, "unusable_container"), 1);
}

#[test]
fn other_events_are_not_looked_at() {
    let mut d = FalcoSettings::default().build();
    let ssh = sentinel_ingest::parse::by_name("sshd")
        .unwrap()
        .parse(
            "2026-11-27T19:56:49Z h sshd[1]: Invalid user bob from 203.0.113.4 port 22",
            &ParseCtx::default(),
        )
        .unwrap()
        .to_event("t", "l", Timestamp::now(), &Redactor::default());
    assert!(run(&mut d, &ssh).is_empty());
    // An event calling itself a runtime alert from another service is not Falco's either.
    let mut ev = event(TERMINAL_SHELL);
    ev.attrs.insert("service".into(), "json".into());
    assert!(run(&mut d, &ev).is_empty());
    assert!(d.tally().read().iter().all(|(_, n)| *n == 0));
}

#[test]
fn priorities_map_to_severities() {
    for (p, s) in [
        ("Emergency", Severity::Critical),
        ("Alert", Severity::Critical),
        ("Critical", Severity::Critical),
        ("Error", Severity::High),
        ("Warning", Severity::Medium),
        ("Notice", Severity::Low),
        ("Informational", Severity::Low),
        ("Debug", Severity::Low),
        ("warning", Severity::Medium),
    ] {
        assert_eq!(severity_of(p), Some(s), "{p}");
    }
    assert_eq!(severity_of("Severe"), None);
    // Error is high, as a real line with its priority changed shows end to end.
    let mut d = FalcoSettings::default().build();
    let error = SENSITIVE_FILE.replace(r#""priority":"Warning""#, r#""priority":"Error""#);
    assert_eq!(run(&mut d, &event(&error))[0].severity, Severity::High);
}
