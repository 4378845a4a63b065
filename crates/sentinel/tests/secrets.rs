//! Secret search: generated secrets of every shape the redactor knows (passwords, bearer and basic
//! credentials, JWTs, PEM private keys, AWS, GCP, GitHub and Slack tokens, Slack webhooks, URL
//! userinfo), with random bodies, are sent through every intake of a real daemon — every field of
//! `/v1/events`, `/v1/events/stream` and `/v1/defend`, a manual decision's `reason` and `params`, and
//! lines of tailed log files — in clear, as `key=value` text, in nested JSON, as JSON inside a string,
//! in a URL query and in header-like text. Then the whole data directory (database, WAL, source state),
//! the daemon's stdout and stderr, and every API answer (the intake answers and `GET /v1/events`,
//! `/v1/alerts`, `/v1/actions`, `/v1/decisions`, `/v1/audit`) are searched for each raw secret: there
//! must be none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Cases: each sends ~115 events, a defend request, a manual decision and two log lines.
const CASES: u32 = 64;

/// One generated secret: how it reads in text, the value put under a secret key, and the raw
/// substrings that must never be found anywhere.
#[derive(Debug, Clone)]
struct Secret {
    shape: &'static str,
    text: String,
    value: String,
    raw: Vec<String>,
}

fn s(shape: &'static str, text: String, value: String, raw: Vec<String>) -> Secret {
    Secret {
        shape,
        text,
        value,
        raw,
    }
}

fn secret() -> impl Strategy<Value = Secret> {
    prop_oneof![
        // Passwords with the symbols people use (all but quotes, separators and spaces).
        "[A-Za-z0-9][A-Za-z0-9!@#$%^()_+=:/?.~-]{15,23}"
            .prop_map(|v| s("password", format!("password={v}"), v.clone(), vec![v])),
        "[A-Za-z0-9]{20,40}".prop_map(|v| s("bearer", format!("Bearer {v}"), v.clone(), vec![v])),
        "[A-Za-z0-9+/]{16,32}".prop_map(|v| s(
            "basic",
            format!("Authorization: Basic {v}=="),
            format!("{v}=="),
            vec![v]
        )),
        ("[A-Za-z0-9_-]{16,30}", "[A-Za-z0-9_-]{16,40}", "[A-Za-z0-9_-]{20,43}").prop_map(
            |(h, p, sig)| {
                let jwt = format!("eyJ{h}.eyJ{p}.{sig}");
                s("jwt", jwt.clone(), jwt, vec![h, p, sig])
            }
        ),
        (
            prop::sample::select(vec!["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""]),
            "[A-Za-z0-9+/]{48,64}"
        )
            .prop_map(|(label, body)| {
                let pem = format!(
                    "-----BEGIN {label}PRIVATE KEY-----\n{body}\n-----END {label}PRIVATE KEY-----"
                );
                s("pem", pem.clone(), pem, vec![body])
            }),
        (prop::sample::select(vec!["AKIA", "ASIA"]), "[A-Z0-9]{16}").prop_map(|(p, v)| {
            let id = format!("{p}{v}");
            s("aws_key_id", id.clone(), id, vec![v])
        }),
        "[A-Za-z0-9/+]{40}".prop_map(|v| s(
            "aws_secret",
            format!("aws secret access key {v}"),
            v.clone(),
            vec![v]
        )),
        "[A-Za-z0-9_-]{35}".prop_map(|v| {
            let k = format!("AIza{v}");
            s("gcp_api_key", k.clone(), k, vec![v])
        }),
        ("[0-9a-f]{40}", "[A-Za-z0-9+/]{48,64}").prop_map(|(id, body)| {
            let sa = json!({
                "type": "service_account",
                "project_id": "demo",
                "private_key_id": id,
                "private_key": format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
                "client_email": "svc@demo.iam.gserviceaccount.com",
            })
            .to_string();
            s("gcp_service_account", sa.clone(), sa, vec![id, body])
        }),
        (
            prop::sample::select(vec!["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
            "[A-Za-z0-9]{36}"
        )
            .prop_map(|(p, v)| {
                let t = format!("{p}{v}");
                s("github", t.clone(), t, vec![v])
            }),
        "[A-Za-z0-9]{22}_[A-Za-z0-9]{59}".prop_map(|v| {
            let t = format!("github_pat_{v}");
            s("github_pat", t.clone(), t, vec![v])
        }),
        (
            prop::sample::select(vec!["b", "p", "a", "r", "s"]),
            "[0-9]{10,12}-[0-9]{10,12}-[A-Za-z0-9]{24}"
        )
            .prop_map(|(k, v)| {
                let t = format!("xox{k}-{v}");
                s("slack", t.clone(), t, vec![v])
            }),
        ("[A-Z0-9]{8}", "[A-Z0-9]{8}", "[A-Za-z0-9]{24}").prop_map(|(t, b, v)| {
            let u = format!("https://hooks.slack.com/services/T{t}/B{b}/{v}");
            s("slack_webhook", u.clone(), u, vec![v])
        }),
        ("[a-z]{4,8}", "[A-Za-z0-9]{16,24}").prop_map(|(user, pw)| {
            let u = format!("postgres://{user}:{pw}@db.example.net:5432/app");
            s("url_userinfo", u.clone(), u, vec![pw])
        }),
    ]
}

fn secret_key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "password",
        "pass",
        "pwd",
        "passphrase",
        "auth",
        "credentials",
        "access_key",
        "private_key",
        "secret_key",
        "session",
        "token",
        "api_key",
        "apiKey",
        "X-Auth-Token",
        "client_secret",
        "db_password",
    ])
}

/// The secret written every way a caller might write it, each as one string.
fn forms(sec: &Secret, key: &str) -> Vec<String> {
    let v = &sec.value;
    vec![
        sec.text.clone(),
        format!("login user=alice {key}={v} from=web"),
        json!({ key: v, "msg": sec.text }).to_string(),
        format!("https://app.example.org/cb?{key}={v}&next=%2Fhome"),
        format!("Authorization: Bearer {v}\nX-Api-Key: {v}\nCookie: session={v}; theme=dark"),
    ]
}

const FIELDS: &[&str] = &[
    "payload",
    "path",
    "url",
    "query",
    "headers",
    "user_agent",
    "user",
    "target",
    "source",
    "kind",
    "note",
];

/// Telemetry objects: every field with every form, plus secrets in nested JSON.
fn telemetry(sec: &Secret, key: &str, ip: &str) -> Vec<Value> {
    let mut items = Vec::new();
    for f in FIELDS {
        for form in forms(sec, key) {
            items.push(json!({ "src_ip": ip, *f: form }));
        }
    }
    // Refused items: their errors (in the answer) must not quote the secret either.
    items.push(json!({ "src_ip": ip, "failed_logins": sec.text }));
    items.push(json!({ "src_ip": ip, "dst_port": sec.text, "ts": sec.text }));
    items.push(json!({
        "src_ip": ip,
        "ctx": {"deep": [{ key: sec.value }], "note": sec.text, "body": json!({ key: sec.value }).to_string()},
        "headers": { "Authorization": format!("Bearer {}", sec.value), key: sec.value },
    }));
    items
}

struct Probe {
    rt: tokio::runtime::Runtime,
    d: Daemon,
    logs: std::path::PathBuf,
    /// Every raw secret sent, with what it was.
    sent: Vec<(String, String)>,
    /// The trace of every request, for `/v1/audit`.
    traces: Vec<String>,
}

impl Probe {
    fn check(&self, what: &str, text: &str) -> Result<(), TestCaseError> {
        for (raw, shape) in &self.sent {
            prop_assert!(
                !text.contains(raw.as_str()),
                "{shape} secret {raw} in {what}: {text}"
            );
        }
        Ok(())
    }

    fn post(&mut self, path: &str, ct: &str, body: String) -> (u16, String) {
        let (status, text, trace) = self.post_traced(path, ct, body);
        self.traces.extend(trace);
        (status, text)
    }

    fn post_traced(&self, path: &str, ct: &str, body: String) -> (u16, String, Option<String>) {
        self.rt.block_on(async {
            let r = self
                .d
                .client()
                .post(self.d.url(path))
                .bearer_auth(&self.d.key)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let trace = r
                .headers()
                .get("x-trace-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (r.status().as_u16(), r.text().await.unwrap(), trace)
        })
    }

    fn get_one(&self, path: &str) -> String {
        self.rt.block_on(async {
            let r = self
                .d
                .client()
                .get(self.d.url(path))
                .bearer_auth(&self.d.key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        })
    }

    fn get_all(&self, path: &str) -> Vec<String> {
        self.rt.block_on(async {
            let mut pages = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let sep = if path.contains('?') { '&' } else { '?' };
                let url = match &cursor {
                    Some(c) => format!("{path}{sep}limit=1000&cursor={c}"),
                    None if path == "/v1/decisions" => path.to_owned(),
                    None => format!("{path}{sep}limit=1000"),
                };
                let r = self
                    .d
                    .client()
                    .get(self.d.url(&url))
                    .bearer_auth(&self.d.key)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{url}");
                let text = r.text().await.unwrap();
                let next = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                    v.get("next_cursor")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                pages.push(text);
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            pages
        })
    }

    fn one_case(&mut self, n: u8, sec: &Secret, key: &str) -> Result<(), TestCaseError> {
        for r in &sec.raw {
            self.sent.push((r.clone(), sec.shape.to_owned()));
        }
        let ip = format!("203.0.113.{}", 1 + n % 250);
        let items = telemetry(sec, key, &ip);
        let (st, body) = self.post(
            "/v1/events",
            "application/json",
            Value::Array(items.clone()).to_string(),
        );
        prop_assert_eq!(st, 200, "{}", body);
        prop_assert!(body.contains("\"rejected\":2"), "{}", body);
        self.check("the /v1/events answer", &body)?;
        let ndjson: String = items.iter().map(|i| format!("{i}\n")).collect();
        let (st, body) = self.post("/v1/events/stream", "application/x-ndjson", ndjson);
        prop_assert_eq!(st, 200, "{}", body);
        self.check("the /v1/events/stream answer", &body)?;

        // `/v1/defend`: one event with every field holding a different form, and enough failures to
        // raise an alert (whose evidence and plan are stored and served back).
        let f = forms(sec, key);
        let mut ev = json!({"src_ip": ip, "failed_logins": 40, "ctx": {key: sec.value}});
        // (`source` too: API telemetry is scored and answered whatever source it names.)
        for (i, field) in FIELDS.iter().enumerate() {
            ev[*field] = f[(i + usize::from(n)) % f.len()].clone().into();
        }
        let (st, body) = self.post("/v1/defend", "application/json", ev.to_string());
        prop_assert_eq!(st, 200, "{}\n{}", body, self.d.output());
        self.check("the /v1/defend answer", &body)?;

        let bad = json!({"src_ip": ip, "failed_logins": sec.text, "kind": sec.text});
        let (st, body) = self.post("/v1/defend", "application/json", bad.to_string());
        prop_assert_eq!(st, 400, "{}", body);
        self.check("a /v1/defend error", &body)?;

        // A manual decision with the secret in the reason and in params.
        let decision = json!({
            "ip": format!("198.51.100.{}", 1 + n % 250),
            "duration": "1h",
            "reason": f[usize::from(n) % f.len()],
            "params": {key: sec.value, "note": sec.text, "nested": {"deep": f[1], "json": f[2]}, "url": f[3]},
        });
        let (_, body) = self.post("/v1/decisions", "application/json", decision.to_string());
        self.check("the /v1/decisions answer", &body)?;
        // And one with the secret in the reason only (no kind-specific params to refuse).
        let decision = json!({
            "ip": format!("198.51.100.{}", 1 + (n % 100) + 100),
            "duration": "1h",
            "reason": format!("{} / {}", f[usize::from(n) % f.len()], sec.text),
        });
        let (st, body) = self.post("/v1/decisions", "application/json", decision.to_string());
        prop_assert_eq!(st, 201, "{}", body);
        self.check("the /v1/decisions answer", &body)?;
        // A malformed decision whose error could quote the secret.
        let bad = json!({"ip": sec.text, "duration": sec.value, "reason": 1});
        let (st, body) = self.post("/v1/decisions", "application/json", bad.to_string());
        prop_assert_eq!(st, 400, "{}", body);
        self.check("a /v1/decisions error", &body)?;

        // Log lines: a JSON line and a web access line with the secret in its query.
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.logs.join("app.log"))
            .unwrap();
        let now = sentinel_core::Timestamp::now().to_rfc3339();
        let line = json!({"ts": now, "src_ip": ip, "kind": "auth_failure", "user": "bob", "message": f[usize::from(n) % f.len()], "detail": sec.text});
        writeln!(log, "{line}").unwrap();
        let mut web = std::fs::OpenOptions::new()
            .append(true)
            .open(self.logs.join("access.log"))
            .unwrap();
        writeln!(
            web,
            "{ip} - - [01/Jan/2026:00:00:00 +0000] \"GET /login?{key}={} HTTP/1.1\" 401 12 \"-\" \"curl/8\"",
            sec.value.replace(['\n', ' ', '"'], "")
        )
        .unwrap();
        Ok(())
    }
}

fn search_dir(dir: &Path, sent: &[(String, String)]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            // The API's socket (api.sock) holds no bytes to read.
            if !p.is_file() {
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&p).unwrap();
            for (raw, shape) in sent {
                if bytes.windows(raw.len()).any(|w| w == raw.as_bytes()) {
                    hits.push(format!("{shape} secret {raw} in {}", p.display()));
                }
            }
        }
    }
    assert!(files > 0, "nothing to search in {}", dir.display());
    hits
}

#[test]
fn no_secret_reaches_the_store_the_logs_or_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("app.log"), "").unwrap();
    std::fs::write(logs.join("access.log"), "").unwrap();
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!(
            "sources:\n  - {{ type: file, paths: [\"{}\"], format: json, poll_interval: 50ms }}\n  - {{ type: file, paths: [\"{}\"], format: nginx, poll_interval: 50ms }}\n",
            logs.join("app.log").display(),
            logs.join("access.log").display(),
        ),
    )
    .unwrap();
    let d = Daemon::start_in(dir, &[]);
    let probe = Probe {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        d,
        logs,
        sent: Vec::new(),
        traces: Vec::new(),
    };
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::cell::Cell::new(0u8);
    let cell = std::cell::RefCell::new(probe);
    runner
        .run(&(secret(), secret_key()), |(sec, key)| {
            n.set(n.get().wrapping_add(1));
            cell.borrow_mut().one_case(n.get(), &sec, key)
        })
        .unwrap();
    let probe = cell.into_inner();
    assert!(probe.sent.len() >= CASES as usize);

    // Wait for the tailed lines to be stored: every JSON line becomes an event.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pages = probe.get_all("/v1/events?kind=auth_failure");
        let lines: usize = pages
            .iter()
            .map(|p| {
                serde_json::from_str::<Value>(p).unwrap()["items"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .sum();
        if lines >= CASES as usize {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {lines} log-line events stored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every answer the API gives about what was sent.
    let mut answers = 0;
    for path in ["/v1/events", "/v1/alerts", "/v1/actions", "/v1/decisions"] {
        for page in probe.get_all(path) {
            answers += page.len();
            probe.check(path, &page).unwrap();
        }
    }
    let mut audited = 0;
    for t in &probe.traces {
        let page = probe.get_one(&format!("/v1/audit?trace_id={t}"));
        audited += usize::from(page.len() > 2);
        probe.check("/v1/audit", &page).unwrap();
    }
    assert!(
        audited >= CASES as usize,
        "only {audited} traces with audit records"
    );
    assert!(answers > 100_000, "the API answered only {answers} bytes");
    // Masks are visible where secrets were.
    let events = probe.get_all("/v1/events").concat();
    assert!(events.contains("***"));
    assert!(events.contains("Bearer ***"));
    assert!(
        events.contains("GET /login?"),
        "no access-log line was stored"
    );
    // Paged like every listing: count the items of every page.
    let listed: usize = probe
        .get_all("/v1/decisions")
        .iter()
        .map(|page| {
            serde_json::from_str::<Value>(page).unwrap()["items"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .sum();
    assert!(
        listed >= CASES.min(100) as usize,
        "only {listed} decisions listed"
    );

    // The data directory while running (the WAL holds the recent pages), then after a clean stop.
    let hits = search_dir(&probe.d.data(), &probe.sent);
    assert!(hits.is_empty(), "{}", hits.join("\n"));
    // Every masking was counted.
    let metrics = probe.rt.block_on(async {
        let r = probe
            .d
            .client()
            .get(probe.d.url("/metrics"))
            .bearer_auth(&probe.d.key)
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    });
    let masked: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sentinel_secrets_redacted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        masked >= u64::from(CASES) * 100,
        "secrets_redacted = {masked}\n{metrics}"
    );
    let Probe { d, sent, .. } = probe;
    let (dir, output) = d.stop();
    let hits = search_dir(&dir.path().join("data"), &sent);
    assert!(hits.is_empty(), "{}", hits.join("\n"));
    for (raw, shape) in &sent {
        assert!(
            !output.contains(raw.as_str()),
            "{shape} secret {raw} in the daemon's output"
        );
    }
}

/// A configuration problem quotes the value it refuses; a secret pasted into the wrong setting is
/// masked in what `sentinel config check` and `sentinel run` print.
#[test]
fn config_problems_do_not_quote_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let token = "ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6";
    std::fs::write(
        dir.path().join("sentinel.yml"),
        format!("api:\n  listen: \"{token}\"\n"),
    )
    .unwrap();
    for args in [&["config", "check"][..], &["run", "--data-dir", "data"][..]] {
        let out = common::command(dir.path()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("api.listen"), "{args:?}: {text}");
        assert!(!text.contains(&token[4..]), "{args:?}: {text}");
    }
}
