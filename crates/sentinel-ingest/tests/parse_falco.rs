//! Falco's JSON alerts (format `falco`), on lines Falco really wrote, plus malformed lines and properties.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use proptest::prelude::*;
use sentinel_core::Timestamp;
use sentinel_ingest::parse::falco::Falco;
use sentinel_ingest::parse::Auto;
use sentinel_ingest::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};

/// Falco's documentation, "Output Channels" → "JSON Output" (falcosecurity/falco-website,
/// `content/en/docs/outputs/channels.md`): a container event without `container.name`.
const TERMINAL_SHELL: &str = r#"{"hostname":"falco-xczjd","output":"13:44:05.478445995: Critical A shell was spawned in a container with an attached terminal (user=root user_loginuid=-1 k8s.ns=default k8s.pod=kubecon container=ee97d9c4186f shell=sh parent=runc cmdline=sh -c clear; (bash || ash || sh) terminal=34816 container_id=ee97d9c4186f image=docker.io/library/alpine)","priority":"Critical","rule":"Terminal shell in container","source":"syscall","tags":["container","mitre_execution","shell"],"time":"2023-05-25T13:44:05.478445995Z", "output_fields": {"container.id":"ee97d9c4186f","container.image.repository":"docker.io/library/alpine","evt.time":1685022245478445995,"k8s.ns.name":"default","k8s.pod.name":"kubecon","proc.cmdline":"sh -c clear; (bash || ash || sh)","proc.name":"sh","proc.pname":"runc","proc.tty":34816,"user.loginuid":-1,"user.name":"root"}}"#;

/// Elastic's Falco integration test log, Falco 0.37 `file_output` with `json_output: true`
/// (elastic/integrations, `packages/falco/data_stream/falco_alerts/_dev/test/pipeline/test-falco.log`,
/// first line): a Docker container by id and name.
const SENSITIVE_FILE: &str = r#"{"hostname":"97ade2b595f0","output":"2024-05-07T18:54:19.341081180+0000: Warning Sensitive file opened for reading by non-trusted program (file=/etc/shadow gparent=runc ggparent=init gggparent=init evt_type=openat user=root user_uid=0 user_loginuid=-1 process=event-generator proc_exepath=/bin/event-generator parent=containerd-shim command=event-generator run --loop terminal=0 container_id=9656db3bb358 container_name=elastic-package-service-falco-event-generator-1)","priority":"Warning","rule":"Read sensitive file untrusted","source":"syscall","tags":["T1555","container","filesystem","host","maturity_stable","mitre_credential_access"],"time":"2024-05-07T18:54:19.341081180Z", "output_fields": {"container.id":"9656db3bb358","container.name":"elastic-package-service-falco-event-generator-1","evt.time.iso8601":1715108059341081180,"evt.type":"openat","fd.name":"/etc/shadow","proc.cmdline":"event-generator run --loop","proc.exepath":"/bin/event-generator","proc.name":"event-generator","proc.pname":"containerd-shim","proc.tty":0,"user.loginuid":-1,"user.name":"root","user.uid":0}}"#;

/// The same file, seventh line: `null` values and indexed keys (`proc.aname[7]`).
const UNTRUSTED_SHELL: &str = r#"{"hostname":"a2000de987ff","output":"2024-05-13T13:23:27.021777225+0000: Notice Shell spawned by untrusted binary (parent_exe=/tmp/falco-event-generator2286495765/httpd parent_exepath=/bin/event-generator pcmdline=httpd --loglevel info run ^helper.RunShell$ gparent=event-generator ggparent=containerd-shim aname[4]=runc aname[5]=init aname[6]=init aname[7]=<NA> evt_type=execve user=root user_uid=0 user_loginuid=-1 process=bash proc_exepath=/bin/bash parent=httpd command=bash -c ls > /dev/null terminal=0 exe_flags=EXE_WRITABLE container_id=84c0b936c919 container_name=elastic-package-service-falco-event-generator-1)","priority":"Notice","rule":"Run shell untrusted","source":"syscall","tags":["T1059.004","container","host","maturity_stable","mitre_execution","process","shell"],"time":"2024-05-13T13:23:27.021777225Z", "output_fields": {"container.id":"84c0b936c919","container.name":"elastic-package-service-falco-event-generator-1","evt.arg.flags":"EXE_WRITABLE","evt.time.iso8601":1715606607021777225,"evt.type":"execve","proc.aname[2]":"event-generator","proc.aname[3]":"containerd-shim","proc.aname[4]":"runc","proc.aname[5]":"init","proc.aname[6]":"init","proc.aname[7]":null,"proc.cmdline":"bash -c ls > /dev/null","proc.exepath":"/bin/bash","proc.name":"bash","proc.pcmdline":"httpd --loglevel info run ^helper.RunShell$","proc.pexe":"/tmp/falco-event-generator2286495765/httpd","proc.pexepath":"/bin/event-generator","proc.pname":"httpd","proc.tty":0,"user.loginuid":-1,"user.name":"root","user.uid":0}}"#;

/// The same file, a line carrying the `fd.*` network fields (`fd.rip`, `fd.rport`, …).
const WITH_CONNECTION: &str = r#"{"hostname":"a2000de987ff","output":"2024-05-13T13:23:36.089890892+0000: Warning Sensitive file opened for reading by non-trusted program (file=/etc/shadow gparent=runc ggparent=init gggparent=init evt_type=openat user=root user_uid=0 user_loginuid=-1 process=event-generator proc_exepath=/bin/event-generator parent=containerd-shim command=event-generator run --loop terminal=0 container_id=84c0b936c919 container_name=elastic-package-service-falco-event-generator-1)","priority":"Warning","rule":"Read sensitive file untrusted","source":"syscall","tags":["T1555","container","filesystem","host","maturity_stable","mitre_credential_access"],"time":"2024-05-13T13:23:36.089890892Z", "output_fields": {"container.id":"84c0b936c919","container.name":"elastic-package-service-falco-event-generator-1","evt.time.iso8601":1715606609089890892,"evt.type":"openat","evt.res": "ENOENT","evt.failed":true,"fd.name":"/etc/shadow","fd.directory":"var/log/example","fd.filename":"example.tar.gz","fd.cip":"216.160.83.56","fd.sip":"89.160.20.112","fd.lip":"89.160.20.128","fd.rip":"67.43.156.0","fd.cport":5400,"fd.sport":5700,"fd.lport":5689,"fd.rport":6789,"fd.ino":"567874","proc.aname[2]":"runc","proc.aname[3]":"init","proc.aname[4]":"init","proc.cmdline":"event-generator run --loop","proc.exepath":"/bin/event-generator","proc.name":"event-generator","proc.pname":"containerd-shim","proc.tty":0,"user.loginuid":-1,"user.name":"root","user.uid":0}}"#;

/// Falco's documentation, "Python Client" (falcosecurity/falco-website,
/// `content/en/docs/grpc/client-python.md`), printed there over several lines, here on one: a host
/// event (`container.id` `host`), a lower-case priority, a `+00:00` zone and `<NA>` values.
const HOST_HISTORY: &str = r#"{"time":"2020-03-03T17:50:03.391768+00:00","priority":"warning","source":"syscall","rule":"Delete or rename shell history","output":"18:50:03.391767411: Warning Shell history had been deleted or renamed (user=matt type=unlink command=zsh fd.name=<NA> name=<NA> path=/home/matt/.zsh_history.LOCK oldpath=<NA> host (id=host))","output_fields":{"container.name":"host","user.name":"matt","container.id":"host","fd.name":"<NA>","proc.cmdline":"zsh","evt.arg.path":"/home/matt/.zsh_history.LOCK","evt.arg.name":"<NA>","evt.arg.oldpath":"<NA>","evt.type":"unlink","evt.time":"18:50:03.391767411"},"hostname":"localhost.localdomain"}"#;

/// Falco's text output (`json_output: false`), from the same "Output Channels" page.
const TEXT_OUTPUT: &str = "10:20:05.408091526: Warning Sensitive file opened for reading by non-trusted program (user=root command=cat /etc/shadow file=/etc/shadow)";

const REAL: [&str; 5] = [
    TERMINAL_SHELL,
    SENSITIVE_FILE,
    UNTRUSTED_SHELL,
    WITH_CONNECTION,
    HOST_HISTORY,
];

fn parse(line: &str) -> Result<Parsed, Unparsed> {
    Falco.parse(line, &ParseCtx::default())
}

fn ms(rfc3339: &str) -> i64 {
    Timestamp::parse_rfc3339(rfc3339).unwrap().as_millis()
}

#[test]
fn a_container_alert_by_id() {
    let p = parse(TERMINAL_SHELL).unwrap();
    assert_eq!(
        (p.kind, p.service.as_ref()),
        (LogKind::RuntimeAlert, "falco")
    );
    assert_eq!(p.src_ip, None, "Falco alerts name no source address");
    assert_eq!(p.ts.unwrap().as_millis(), ms("2023-05-25T13:44:05.478Z"));
    for (field, want) in [
        ("rule", "Terminal shell in container"),
        ("priority", "Critical"),
        ("container_id", "ee97d9c4186f"),
        ("container_image", "docker.io/library/alpine"),
        ("proc_cmdline", "sh -c clear; (bash || ash || sh)"),
        ("proc_name", "sh"),
        ("proc_pname", "runc"),
        ("user", "root"),
        ("k8s_ns", "default"),
        ("k8s_pod", "kubecon"),
        ("hostname", "falco-xczjd"),
        ("falco_source", "syscall"),
        ("tags", "container,mitre_execution,shell"),
    ] {
        assert_eq!(p.get(field), Some(want), "{field}");
    }
    assert_eq!(p.get("container_name"), None);
    assert!(p
        .get("output")
        .unwrap()
        .starts_with("13:44:05.478445995: Critical A shell was spawned"));
}

#[test]
fn a_docker_container_by_id_and_name() {
    let p = parse(SENSITIVE_FILE).unwrap();
    assert_eq!(p.get("priority"), Some("Warning"));
    assert_eq!(p.get("rule"), Some("Read sensitive file untrusted"));
    assert_eq!(p.get("container_id"), Some("9656db3bb358"));
    assert_eq!(
        p.get("container_name"),
        Some("elastic-package-service-falco-event-generator-1")
    );
    assert_eq!(p.get("fd_name"), Some("/etc/shadow"));
    assert_eq!(p.get("evt_type"), Some("openat"));
    assert_eq!(p.ts.unwrap().as_millis(), ms("2024-05-07T18:54:19.341Z"));

    let p = parse(UNTRUSTED_SHELL).unwrap();
    assert_eq!(p.get("priority"), Some("Notice"));
    assert_eq!(p.get("proc_cmdline"), Some("bash -c ls > /dev/null"));
    assert_eq!(p.get("proc_exepath"), Some("/bin/bash"));
}

#[test]
fn connection_fields_are_kept_as_fields_not_as_the_source() {
    let p = parse(WITH_CONNECTION).unwrap();
    assert_eq!(p.src_ip, None);
    for (field, want) in [
        ("fd_rip", "67.43.156.0"),
        ("fd_rport", "6789"),
        ("fd_sip", "89.160.20.112"),
        ("fd_cip", "216.160.83.56"),
    ] {
        assert_eq!(p.get(field), Some(want), "{field}");
    }
}

#[test]
fn a_host_event_with_na_values() {
    let p = parse(HOST_HISTORY).unwrap();
    assert_eq!(p.get("priority"), Some("Warning"), "lower case accepted");
    assert_eq!(p.get("container_id"), Some("host"));
    assert_eq!(p.get("container_name"), Some("host"));
    assert_eq!(p.get("fd_name"), None, "<NA> is absent");
    assert_eq!(p.get("user"), Some("matt"));
    assert_eq!(p.ts.unwrap().as_millis(), ms("2020-03-03T17:50:03.391Z"));
}

#[test]
fn every_priority_is_read() {
    for (given, want) in [
        ("Emergency", "Emergency"),
        ("ALERT", "Alert"),
        ("critical", "Critical"),
        ("Error", "Error"),
        ("Warning", "Warning"),
        ("Notice", "Notice"),
        ("Informational", "Informational"),
        ("info", "Informational"),
        ("Debug", "Debug"),
    ] {
        let line = SENSITIVE_FILE.replace(
            r#""priority":"Warning""#,
            &format!(r#""priority":"{given}""#),
        );
        assert_eq!(parse(&line).unwrap().get("priority"), Some(want), "{given}");
    }
}

#[test]
fn malformed_lines_name_their_reason() {
    let cases: Vec<(String, &str)> = vec![
        (TEXT_OUTPUT.to_owned(), "falco_not_json"),
        ("".to_owned(), "falco_not_json"),
        (TERMINAL_SHELL[..200].to_owned(), "bad_json"),
        (
            TERMINAL_SHELL.replace(r#""rule":"Terminal shell in container","#, ""),
            "falco_no_rule",
        ),
        (
            TERMINAL_SHELL.replace(r#""rule":"Terminal shell in container""#, r#""rule":"  ""#),
            "falco_no_rule",
        ),
        (
            TERMINAL_SHELL.replace(r#""priority":"Critical""#, r#""priority":"Severe""#),
            "falco_bad_priority",
        ),
        (
            TERMINAL_SHELL.replace(r#""priority":"Critical","#, ""),
            "falco_bad_priority",
        ),
        (
            TERMINAL_SHELL.replace("2023-05-25T13:44:05.478445995Z", "yesterday"),
            "bad_timestamp",
        ),
        (
            r#"{"rule":"r","priority":"Notice","output_fields":"container.id=abc"}"#.to_owned(),
            "falco_bad_output_fields",
        ),
    ];
    for (line, reason) in cases {
        assert_eq!(parse(&line), Err(Unparsed::Malformed(reason)), "{line}");
    }
    // Without a time or output fields, an alert still parses (the time is taken on arrival).
    let p = parse(r#"{"rule":"r","priority":"Notice"}"#).unwrap();
    assert_eq!((p.ts, p.get("rule")), (None, Some("r")));
}

#[test]
fn auto_recognises_falco_alerts_among_other_json() {
    let auto = Auto::default();
    for line in REAL {
        let p = auto.parse(line, &ParseCtx::default()).unwrap();
        assert_eq!(
            (p.kind, p.service.as_ref()),
            (LogKind::RuntimeAlert, "falco"),
            "{line}"
        );
    }
    let other = auto
        .parse(
            r#"{"ts":1700000000,"rule":"r","msg":"x"}"#,
            &ParseCtx::default(),
        )
        .unwrap();
    assert_eq!(other.kind, LogKind::Other);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC*") {
        let _ = parse(&s);
        let _ = parse(&format!(r#"{{"rule":"r","priority":"Notice","output_fields":{s}}}"#));
    }

    /// A real line cut, spliced or extended anywhere never panics, and whatever parses says the rule
    /// and priority the line holds.
    #[test]
    fn mutated_lines(line in proptest::sample::select(REAL.to_vec()),
                     at in any::<prop::sample::Index>(), cut in 0usize..8, ins in "\\PC{0,6}") {
        let mut chars: Vec<char> = line.chars().collect();
        let i = at.index(chars.len() + 1);
        let end = (i + cut).min(chars.len());
        chars.splice(i..end, ins.chars());
        let m: String = chars.into_iter().collect();
        if let Ok(p) = parse(&m) {
            // (An inserted backslash may start an escape: the rule read then differs from the text.)
            prop_assert!(m.contains('\\') || m.contains(p.get("rule").unwrap()), "{m}");
            prop_assert_eq!(p.kind, LogKind::RuntimeAlert);
        }
    }
}
