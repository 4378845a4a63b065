//! JSON lines: one object per line, read through a configurable [`JsonMapping`] of dotted paths to the
//! time, source address, kind, user and further fields. Lines that do not start with `{` are
//! [`Unparsed::NoMatch`], objects that do not parse `Malformed("bad_json")`.

use super::{clock, scan};
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use sentinel_core::Timestamp;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Where a JSON line keeps each part. Every list holds dotted paths (`source.ip`) tried in order; a key
/// that itself contains dots (`"source.ip": …`, as flattened ECS writes) is matched before descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonMapping {
    /// The line's time: an RFC 3339 string, or epoch seconds or milliseconds as a number.
    pub ts: Vec<String>,
    /// The remote address (`1.2.3.4`, `2001:db8::1`, `[2001:db8::1]:443`, `1.2.3.4:80`).
    pub src_ip: Vec<String>,
    /// The kind: a [`LogKind`] name (`auth_failure`, …); anything else becomes [`LogKind::Other`] with the
    /// text kept in field `kind`. Absent → `Other`.
    pub kind: Vec<String>,
    /// The user, kept in field `user`.
    pub user: Vec<String>,
    /// The reporting service; absent → [`JsonMapping::default_service`].
    pub service: Vec<String>,
    /// Further fields: field name and path (non-string values are kept as their JSON text).
    pub fields: Vec<(&'static str, String)>,
    /// The service when the line names none.
    pub default_service: Cow<'static, str>,
}

impl Default for JsonMapping {
    fn default() -> Self {
        let paths = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Self {
            ts: paths(&["ts", "timestamp", "@timestamp", "time"]),
            src_ip: paths(&["src_ip", "client_ip", "remote_addr", "ip"]),
            kind: paths(&["kind", "event", "type"]),
            user: paths(&["user", "username"]),
            service: paths(&["service"]),
            fields: Vec::new(),
            default_service: Cow::Borrowed("json"),
        }
    }
}

/// The JSON-lines parser (format name `json`). A line without an address parses with `src_ip: None`.
#[derive(Debug, Clone, Default)]
pub struct JsonLines {
    mapping: JsonMapping,
}

impl JsonLines {
    /// A parser reading lines through `mapping`.
    pub fn new(mapping: JsonMapping) -> Self {
        Self { mapping }
    }
}

impl LineParser for JsonLines {
    fn name(&self) -> &str {
        "json"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let line = line.trim();
        if !line.starts_with('{') {
            return Err(Unparsed::NoMatch);
        }
        let obj: Map<String, Value> =
            serde_json::from_str(line).map_err(|_| Unparsed::Malformed("bad_json"))?;
        let m = &self.mapping;
        let ts = match first(&obj, &m.ts) {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                timestamp(v, ctx.utc_offset_secs).ok_or(Unparsed::Malformed("bad_timestamp"))?,
            ),
        };
        let src_ip = match first(&obj, &m.src_ip) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                scan::ip_with_port(s)
                    .ok_or(Unparsed::Malformed("bad_address"))?
                    .0,
            ),
            Some(_) => return Err(Unparsed::Malformed("bad_address")),
        };
        let mut fields = Vec::new();
        let kind = match first(&obj, &m.kind).and_then(text) {
            None => LogKind::Other,
            Some(k) => match kind_named(&k) {
                Some(kind) => kind,
                None => {
                    fields.push(("kind", k.into_owned()));
                    LogKind::Other
                }
            },
        };
        if let Some(user) = first(&obj, &m.user).and_then(text) {
            fields.push(("user", user.into_owned()));
        }
        for (name, path) in &m.fields {
            if let Some(v) = lookup(&obj, path).and_then(text) {
                fields.push((*name, v.into_owned()));
            }
        }
        let service = match first(&obj, &m.service).and_then(text) {
            Some(s) => Cow::Owned(s.into_owned()),
            None => m.default_service.clone(),
        };
        Ok(Parsed {
            ts,
            service,
            kind,
            src_ip,
            fields,
            extra: Vec::new(),
        })
    }
}

/// The [`LogKind`] whose snake_case name is `name`.
fn kind_named(name: &str) -> Option<LogKind> {
    use LogKind::*;
    [
        AuthFailure,
        InvalidUser,
        AuthSuccess,
        PreauthDisconnect,
        TooManyAuthFailures,
        ProtocolProbe,
        HttpRequest,
        HttpAuthFailure,
        HttpRateLimited,
        MailAuthFailure,
        RuleMatch,
        RuntimeAlert,
        Other,
    ]
    .into_iter()
    .find(|k| k.as_str() == name)
}

fn first<'v>(obj: &'v Map<String, Value>, paths: &[String]) -> Option<&'v Value> {
    paths.iter().find_map(|p| lookup(obj, p))
}

/// A dotted path: the whole key first, then descent through nested objects.
fn lookup<'v>(obj: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match obj.get(head)? {
        Value::Object(inner) => lookup(inner, rest),
        _ => None,
    }
}

/// A value as text: strings as they are, other scalars and containers as JSON; `null` is absent.
fn text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// RFC 3339 text, or epoch seconds (below 10^11) / milliseconds, as a number or digit string.
fn timestamp(v: &Value, offset: i32) -> Option<Timestamp> {
    let epoch = |x: f64| -> Option<Timestamp> {
        if !x.is_finite() || x.abs() > 1e15 {
            return None;
        }
        let ms = if x.abs() < 1e11 { x * 1000.0 } else { x };
        Some(Timestamp::from_millis(ms.round() as i64))
    };
    match v {
        Value::Number(n) => epoch(n.as_f64()?),
        Value::String(s) => clock::iso(s, offset).or_else(|| {
            s.parse::<f64>()
                .ok()
                .filter(|_| s.bytes().all(|c| c.is_ascii_digit() || c == b'.'))
                .and_then(epoch)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mapping_reads_common_keys() {
        let p = JsonLines::default();
        let ctx = ParseCtx::default();
        let r = p.parse(r#"{"@timestamp":"2026-11-27T19:56:49.5Z","remote_addr":"::ffff:10.0.0.1","event":"auth_failure","username":"bob"}"#, &ctx).unwrap();
        assert_eq!(r.ts.unwrap().to_rfc3339(), "2026-11-27T19:56:49.500Z");
        assert_eq!(r.src_ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!((r.kind, r.get("user")), (LogKind::AuthFailure, Some("bob")));
        let r = p
            .parse(r#"{"ts":1700000000,"kind":"weird","src_ip":null}"#, &ctx)
            .unwrap();
        assert_eq!(
            (r.ts.unwrap().as_millis(), r.kind, r.get("kind")),
            (1_700_000_000_000, LogKind::Other, Some("weird"))
        );
        let r = p.parse(r#"{"ts":1700000000123}"#, &ctx).unwrap();
        assert_eq!(r.ts.unwrap().as_millis(), 1_700_000_000_123);
    }

    #[test]
    fn nested_and_flattened_paths() {
        let mapping = JsonMapping {
            src_ip: vec!["source.ip".into()],
            fields: vec![("path", "http.request.path".into())],
            ..JsonMapping::default()
        };
        let p = JsonLines::new(mapping);
        let ctx = ParseCtx::default();
        let r = p
            .parse(
                r#"{"source":{"ip":"1.2.3.4"},"http":{"request":{"path":"/x"}}}"#,
                &ctx,
            )
            .unwrap();
        assert_eq!(
            (r.src_ip, r.get("path")),
            (Some("1.2.3.4".parse().unwrap()), Some("/x"))
        );
        let r = p
            .parse(r#"{"source.ip":"[2001:db8::1]:443"}"#, &ctx)
            .unwrap();
        assert_eq!(r.src_ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(p.parse("{", &ctx), Err(Unparsed::Malformed("bad_json")));
        assert_eq!(p.parse("[1]", &ctx), Err(Unparsed::NoMatch));
        assert_eq!(
            p.parse(r#"{"source":{"ip":"nope"}}"#, &ctx),
            Err(Unparsed::Malformed("bad_address"))
        );
    }
}
