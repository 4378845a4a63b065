//! The pure `validate` step: takes a merged `RawConfig`, reports unknown keys, wrong types and
//! out-of-range or unparsable values all together, and builds the typed `ValidatedConfig`.
//! It reads no process state and no files but the secret files `intel.<provider>.key_file` and
//! `notify.channels.<name>.<secret>_file` name. The `policy` section is read in `policy.rs`.

use crate::defaults::defaults_tree;
use crate::error::{dedup, ConfigError, ConfigErrors};
use crate::layers::RawConfig;
use crate::model::{
    ApiConfig, AuditConfig, DetectConfig, FalcoConfig, HeuristicConfig, LogLevel, LoggingConfig,
    PipelineConfig, StoreConfig, StoreSync, ValidatedConfig, WitnessConfig,
};
use crate::policy::policy;
use crate::reader::{Node, Reader};
use crate::schema::unknown_keys;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;

const MIB: u64 = 1024 * 1024;

/// Checks a merged configuration and builds the typed one, reporting every problem at once.
///
/// Pure but for one read: a key file named by `intel.<provider>.key_file` (its path is named when it
/// cannot be read; its contents never are). Problems met while layering (`raw.layer_errors`) come first, then unknown keys, then
/// type and value problems in section order.
pub fn validate(raw: &RawConfig) -> Result<ValidatedConfig, ConfigErrors> {
    let mut errors = raw.layer_errors.clone();
    match defaults_tree() {
        Ok(defaults) => errors.extend(unknown_keys(&raw.tree, &defaults)),
        Err(e) => errors.push(e),
    }
    let mut reader = Reader::default();
    let built = build(&mut reader, &raw.tree);
    errors.extend(reader.errors);
    let mut errors = dedup(errors);
    match built {
        Some(config) if errors.is_empty() => Ok(config),
        _ => {
            if errors.is_empty() {
                errors.push(ConfigError::new("(root)", "invalid configuration"));
            }
            Err(ConfigErrors(errors))
        }
    }
}

fn build(r: &mut Reader, tree: &Value) -> Option<ValidatedConfig> {
    let root = Node::root(tree);
    let root = Some(&root);
    if !tree.is_object() {
        r.fail("(root)", "expected a mapping at the top level");
        return None;
    }
    let data_dir = r.get(root, "data_dir").and_then(|n| {
        let s = r.string(&n)?;
        if s.trim().is_empty() {
            r.fail(&n.path, "must not be empty");
            return None;
        }
        Some(PathBuf::from(s))
    });
    let section = r.get(root, "api");
    let api = api(r, section.as_ref());
    let section = r.get(root, "pipeline");
    let pipeline = pipeline(r, section.as_ref());
    let section = r.get(root, "store");
    let store = store(r, section.as_ref());
    let section = r.get(root, "logging");
    let logging = logging(r, section.as_ref());
    let section = r.get(root, "audit");
    let audit = audit(r, section.as_ref());
    let section = r.get(root, "detect");
    let detect = detect(r, section.as_ref());
    let section = r.get(root, "policy");
    let policy = policy(r, section.as_ref());
    let section = r.get(root, "respond");
    let respond = crate::respond::respond(r, section.as_ref());
    let section = r.get(root, "intel");
    let intel = crate::intel::intel(r, section.as_ref());
    let section = r.get(root, "notify");
    let notify = crate::notify::notify(r, section.as_ref());
    let section = root.and_then(|n| r.optional(n, "supervise"));
    let supervise = crate::supervise::section(r, section.as_ref());
    let section = r.get(root, "tracing");
    let tracing = crate::otlp::tracing(r, section.as_ref());
    let bus = r.get(root, "bus").and_then(|n| crate::fleet::bus(r, &n));
    let node = r.get(root, "node").and_then(|n| crate::fleet::node(r, &n));
    let section = r.get(root, "fleet");
    let fleet = crate::fleet::fleet(r, section.as_ref());
    let sources = r
        .get(root, "sources")
        .and_then(|n| r.each(&n, crate::sources::source));
    if let Some(resp) = &respond {
        quarantine_enforceable(r, resp);
    }
    if let (Some(i), Some(p), Some(a)) = (&intel, &pipeline, &api) {
        decision_waits_for_intel(r, i, p, a);
    }
    Some(ValidatedConfig {
        data_dir: data_dir?,
        api: api?,
        pipeline: pipeline?,
        store: store?,
        logging: logging?,
        audit: audit?,
        detect: detect?,
        policy: policy?,
        respond: respond?,
        sources: sources?,
        intel: intel?,
        notify: notify?,
        supervise: supervise?,
        tracing: tracing?,
        bus: bus?,
        node: node?,
        fleet: fleet?,
    })
}

fn api(r: &mut Reader, s: Option<&Node<'_>>) -> Option<ApiConfig> {
    let listen = r
        .get(s, "listen")
        .and_then(|n| r.parsed::<SocketAddr>(&n, "a socket address"));
    let max_body_bytes = r
        .get(s, "max_body_bytes")
        .and_then(|n| r.int(&n, 1, 64 * MIB));
    let request_timeout = r.get(s, "request_timeout").and_then(|n| r.duration(&n));
    let allow_insecure_no_auth = r
        .get(s, "allow_insecure_no_auth")
        .and_then(|n| r.boolean(&n));
    let tls_terminated_by_proxy = r
        .get(s, "tls_terminated_by_proxy")
        .and_then(|n| r.boolean(&n));
    let max_connections = r
        .get(s, "max_connections")
        .and_then(|n| r.int(&n, 1, u64::MAX));
    let grpc_listen = crate::api_grpc::grpc_listen(r, s);
    if let (Some(allow), Some(listen)) = (allow_insecure_no_auth, listen) {
        if let Some(e) = crate::bypass::listen_problem(allow, listen) {
            r.fail(&e.path, e.message);
        }
    }
    if let (Some(allow), Some(Some(grpc))) = (allow_insecure_no_auth, grpc_listen) {
        if let Some(e) = crate::bypass::grpc_problem(allow, grpc) {
            r.fail(&e.path, e.message);
        }
    }
    let jwt = crate::api_jwt::read(r, s);
    let tls = crate::api_tls::read(r, s);
    let max_page_bytes = r
        .get(s, "max_page_bytes")
        .and_then(|n| r.int(&n, 4096, 64 * MIB));
    let rate_limit = crate::ratehook::rate_limit(r, s);
    let webhooks = crate::ratehook::webhooks(r, s);
    let edge = crate::api_edge::api_edge(r, s);
    let stream = crate::api_stream::api_stream(r, s);
    let ui = crate::api_ui::api_ui(r, s);
    Some(ApiConfig {
        listen: listen?,
        max_body_bytes: max_body_bytes?,
        request_timeout: request_timeout?,
        allow_insecure_no_auth: allow_insecure_no_auth?,
        tls_terminated_by_proxy: tls_terminated_by_proxy?,
        max_connections: max_connections?,
        grpc_listen: grpc_listen?,
        jwt: jwt?,
        tls: tls?,
        max_page_bytes: max_page_bytes?,
        rate_limit: rate_limit?,
        webhooks: webhooks?,
        edge: edge?,
        stream: stream?,
        ui: ui?,
    })
}

fn pipeline(r: &mut Reader, s: Option<&Node<'_>>) -> Option<PipelineConfig> {
    let queue_capacity = r
        .get(s, "queue_capacity")
        .and_then(|n| r.int(&n, 1, 1_000_000));
    let defend_timeout = r.get(s, "defend_timeout").and_then(|n| r.duration(&n));
    Some(PipelineConfig {
        queue_capacity: queue_capacity?,
        defend_timeout: defend_timeout?,
    })
}

fn store(r: &mut Reader, s: Option<&Node<'_>>) -> Option<StoreConfig> {
    let batch_size = r.get(s, "batch_size").and_then(|n| r.int(&n, 1, 10_000));
    let flush_interval = r.get(s, "flush_interval").and_then(|n| r.duration(&n));
    let event_retention = r.get(s, "event_retention").and_then(|n| r.duration(&n));
    let max_events = r
        .get(s, "max_events")
        .and_then(|n| r.int(&n, 1000, u64::MAX));
    let sync = r.get(s, "sync").and_then(|n| r.named::<StoreSync>(&n));
    let url = r.get(s, "url").and_then(|n| {
        let url = r.optional_string(&n)?;
        match url {
            Some(u) if !postgres_url(u) => {
                r.fail(
                    &n.path,
                    "must be a PostgreSQL URL (postgres://[user[:password]@]host[:port]/database), \
                     or null for the SQLite file in the data directory",
                );
                None
            }
            Some(u) if crate::otlp::has_masked_credentials(u) => {
                r.fail(
                    &n.path,
                    "`***` in the URL is the mask a shown configuration puts in place of the \
                     credentials, not credentials: write the real ones",
                );
                None
            }
            u => Some(u.map(str::to_owned)),
        }
    });
    Some(StoreConfig {
        batch_size: batch_size?,
        flush_interval: flush_interval?,
        event_retention: event_retention?,
        max_events: max_events?,
        sync: sync?,
        url: url?,
    })
}

/// `postgres://` or `postgresql://`, a host, and a database name after it; no whitespace or
/// control characters. The rest (options in the query) is PostgreSQL's to judge when connecting.
fn postgres_url(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("postgres://")
        .or_else(|| u.strip_prefix("postgresql://"))
    else {
        return false;
    };
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let db = rest[authority_end..]
        .strip_prefix('/')
        .map(|d| d.split(['?', '#']).next().unwrap_or(""));
    !host.is_empty() && !host.starts_with(':') && db.is_some_and(|d| !d.is_empty())
}

fn logging(r: &mut Reader, s: Option<&Node<'_>>) -> Option<LoggingConfig> {
    let level = r.get(s, "level").and_then(|n| r.named::<LogLevel>(&n));
    let redact_keys = r.get(s, "redact_keys").and_then(|n| {
        r.each(&n, |r, item| {
            let key = r.string(item)?.trim();
            if key.is_empty() {
                r.fail(&item.path, "must not be empty");
                return None;
            }
            Some(key.to_string())
        })
    });
    let chain_every = r.get(s, "chain_every").and_then(|n| r.int(&n, 0, u64::MAX));
    Some(LoggingConfig {
        level: level?,
        redact_keys: redact_keys?,
        chain_every: chain_every?,
    })
}

fn audit(r: &mut Reader, s: Option<&Node<'_>>) -> Option<AuditConfig> {
    let origin = r.get(s, "origin").and_then(|n| {
        let o = r.optional_string(&n)?;
        if let Some(o) = o {
            if o.chars()
                .any(|c| c == '+' || c.is_whitespace() || c.is_control())
            {
                r.fail(
                    &n.path,
                    "must not contain '+', spaces or control characters",
                );
                return None;
            }
        }
        Some(o.map(str::to_owned))
    });
    let checkpoint_every = r
        .get(s, "checkpoint_every")
        .and_then(|n| r.int(&n, 1, 1_000_000));
    let checkpoint_interval = r.get(s, "checkpoint_interval").and_then(|n| r.duration(&n));
    let segment_bytes = r
        .get(s, "segment_bytes")
        .and_then(|n| r.int(&n, MIB, 1024 * MIB));
    let url = r
        .get(s, "witness_url")
        .and_then(|n| Some((r.optional_string(&n)?, n.path)));
    let secret = r
        .get(s, "witness_secret")
        .and_then(|n| Some((r.optional_string(&n)?, n.path)));
    let witness = match (url?, secret?) {
        ((None, _), (None, _)) => None,
        ((Some(url), path), (Some(secret), _)) => {
            if !witness_url_ok(url) {
                r.fail(
                    &path,
                    format!(
                        "`{url}` must be an https:// URL with a host (http:// only to a loopback \
                         host), a port from 1 to 65535 if any, and no spaces or backslashes"
                    ),
                );
                return None;
            }
            Some(WitnessConfig {
                url: url.to_owned(),
                secret: secret.to_owned(),
            })
        }
        ((Some(_), _), (None, path)) => {
            r.fail(
                &path,
                "witness_url is set: the witness needs a secret to sign with",
            );
            return None;
        }
        ((None, path), (Some(_), _)) => {
            r.fail(&path, "witness_secret is set but there is no witness_url");
            return None;
        }
    };
    Some(AuditConfig {
        origin: origin?,
        checkpoint_every: checkpoint_every?,
        checkpoint_interval: checkpoint_interval?,
        segment_bytes: segment_bytes?,
        witness,
    })
}

/// An https URL, or an http one whose host is loopback (a witness on the same machine), with a host
/// (and, if given, a port from 1 to 65535).
fn witness_url_ok(url: &str) -> bool {
    http_url(url).is_some_and(|u| u.https || u.loopback)
}

/// What [`http_url`] found in a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    /// `https://` (else `http://`).
    pub https: bool,
    /// The host is `localhost` or a loopback address.
    pub loopback: bool,
}

/// Reads an `http://` or `https://` URL with a host (and, if given, a port from 1 to 65535); `None`
/// when it is not one. Spaces, control characters and backslashes are refused: URL parsers read them
/// differently (a backslash is a path separator to some), and a URL this check reads one way must not
/// be sent somewhere else.
pub(crate) fn http_url(url: &str) -> Option<HttpUrl> {
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return None;
    }
    let (rest, https) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (rest, true),
        (None, Some(rest)) => (rest, false),
        (None, None) => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // user:password@ before the host (a server behind basic auth) is allowed.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, tail)) => (h, Some(tail.strip_prefix(':')?)),
            None => return None,
        },
        None => match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    if host.is_empty() || port.is_some_and(|p| !p.parse::<u16>().is_ok_and(|p| p > 0)) {
        return None;
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Some(HttpUrl { https, loopback })
}

fn detect(r: &mut Reader, s: Option<&Node<'_>>) -> Option<DetectConfig> {
    let h = r.get(s, "heuristic");
    let h = h.as_ref();
    let min_score = r.get(h, "min_score").and_then(|n| r.int(&n, 1, 100));
    let failed_logins_threshold = r
        .get(h, "failed_logins_threshold")
        .and_then(|n| r.int(&n, 1, u64::MAX));
    let request_rate_threshold = r
        .get(h, "request_rate_threshold")
        .and_then(|n| r.int(&n, 1, u64::MAX));
    let bytes_out_threshold = r
        .get(h, "bytes_out_threshold")
        .and_then(|n| r.int(&n, 1, u64::MAX));
    let bad_ports = r
        .get(h, "bad_ports")
        .and_then(|n| r.each(&n, |r, p| r.int(p, 1, 65535)));
    let sc = r.get(s, "scenarios");
    let scenarios = crate::sources::scenarios(r, sc.as_ref());
    let falco = r.get(s, "falco");
    let ignore_rules = r.get(falco.as_ref(), "ignore_rules").and_then(|n| {
        r.each(&n, |r, item| {
            let v = r.string(item)?.trim();
            if v.is_empty() {
                r.fail(&item.path, "must not be empty");
                return None;
            }
            Some(v.to_owned())
        })
    });
    Some(DetectConfig {
        scenarios: scenarios?,
        falco: FalcoConfig {
            ignore_rules: ignore_rules?,
        },
        heuristic: HeuristicConfig {
            min_score: min_score?,
            failed_logins_threshold: failed_logins_threshold?,
            request_rate_threshold: request_rate_threshold?,
            bytes_out_threshold: bytes_out_threshold?,
            bad_ports: bad_ports?,
        },
    })
}

/// When `quarantine_file` is set to enforce, what its actuator would refuse at start-up (no root, a
/// relative directory, a directory inside a root) is a configuration error now. The default directory
/// (`<data_dir>/quarantine`) is made absolute only when the actuator is built. (Enforcing only through
/// `policy.mode` is not checked here: such configurations were accepted before; see the open question in
/// the pipeline's actuator preflight.)
/// A caller waiting on a decision (`/v1/defend`, an API request) must not give up before the
/// investigation's deadline has passed and the decision is made.
fn decision_waits_for_intel(
    r: &mut Reader,
    intel: &sentinel_intel::IntelConfig,
    pipeline: &PipelineConfig,
    api: &ApiConfig,
) {
    let d = intel.deadline;
    for (path, wait) in [
        ("pipeline.defend_timeout", pipeline.defend_timeout),
        ("api.request_timeout", api.request_timeout),
    ] {
        if d >= wait {
            r.fail(
                "intel.deadline",
                format!(
                    "{} must be shorter than {path} ({}): callers would give up before the \
                     investigation ends and its decision is made",
                    humantime::format_duration(d),
                    humantime::format_duration(wait)
                ),
            );
        }
    }
}

fn quarantine_enforceable(r: &mut Reader, resp: &crate::respond::RespondConfig) {
    let kind = sentinel_core::ActionKind::QuarantineFile;
    if resp.actuator(kind).and_then(|a| a.mode) != Some(sentinel_core::Mode::Enforce) {
        return;
    }
    if resp.quarantine_roots.is_empty() {
        r.fail(
            "respond.quarantine_roots",
            "quarantine_file enforces but no root is listed: name the directories files may be taken from",
        );
    }
    if let Some(d) = &resp.quarantine_dir {
        if !d.is_absolute() {
            r.fail(
                "respond.quarantine_dir",
                format!("`{}` must be an absolute path", d.display()),
            );
        }
        for root in resp
            .quarantine_roots
            .iter()
            .filter(|root| d.starts_with(root))
        {
            r.fail(
                "respond.quarantine_dir",
                format!(
                    "`{}` must not be inside the quarantine root `{}`",
                    d.display(),
                    root.display()
                ),
            );
        }
    }
}
