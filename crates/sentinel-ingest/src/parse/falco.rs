//! Falco's JSON alerts (format `falco`): the one-object-per-line output Falco writes with
//! `json_output: true` to its `file_output`, `stdout_output` or `program_output`, and that falcosidekick
//! forwards unchanged. Top-level keys read: `time`, `rule`, `priority`, `output`, `hostname`, `source`,
//! `tags`, `uuid` (falcosidekick) and `output_fields`, of which a fixed set of container, process, user,
//! file-descriptor and Kubernetes fields is kept (see [`OUTPUT_FIELDS`]); a value `<NA>`, `null` or
//! empty is absent.
//!
//! Every alert parses to kind [`LogKind::RuntimeAlert`], service `falco`, no source address (Falco's
//! `fd.rip` is the other end of a connection, which may be the destination: it is kept as field `fd_rip`
//! and detection decides what it means). The parser reports what the alert says; whether the container
//! or the host is the subject is detection's job.
//!
//! Malformed lines are counted by reason: `falco_not_json` (a line that is not a JSON object, e.g. Falco's
//! text output: set `json_output: true`), `bad_json`, `falco_no_rule`, `falco_bad_priority`,
//! `bad_timestamp`, `falco_bad_output_fields` (not an object).

use super::clock;
use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Falco's priorities, most severe first, as its JSON output spells them.
pub const PRIORITIES: [&str; 8] = [
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
];

/// The `output_fields` kept, and the field each becomes.
pub const OUTPUT_FIELDS: [(&str, &str); 16] = [
    ("container.id", "container_id"),
    ("container.name", "container_name"),
    ("container.image.repository", "container_image"),
    ("evt.type", "evt_type"),
    ("proc.name", "proc_name"),
    ("proc.cmdline", "proc_cmdline"),
    ("proc.pname", "proc_pname"),
    ("proc.exepath", "proc_exepath"),
    ("user.name", "user"),
    ("fd.name", "fd_name"),
    ("fd.rip", "fd_rip"),
    ("fd.rport", "fd_rport"),
    ("fd.sip", "fd_sip"),
    ("fd.cip", "fd_cip"),
    ("k8s.ns.name", "k8s_ns"),
    ("k8s.pod.name", "k8s_pod"),
];

/// The Falco JSON alert parser (format name `falco`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Falco;

/// Whether a line looks like a Falco JSON alert (cheap test for `auto`).
pub(crate) fn looks_like_alert(line: &str) -> bool {
    let b = line.as_bytes();
    line.starts_with('{')
        && memchr::memmem::find(b, b"\"output_fields\"").is_some()
        && memchr::memmem::find(b, b"\"rule\"").is_some()
}

/// Falco's spelling of a priority given in any case (`warning`, `WARNING`; `info` for `Informational`).
pub fn priority_named(s: &str) -> Option<&'static str> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("info") {
        return Some("Informational");
    }
    PRIORITIES.into_iter().find(|p| p.eq_ignore_ascii_case(s))
}

/// A value as text: strings as they are, numbers and booleans as JSON; `null`, `""`, `<NA>`, arrays and
/// objects are absent.
fn scalar(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) if s.is_empty() || s == "<NA>" => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

impl LineParser for Falco {
    fn name(&self) -> &str {
        "falco"
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let line = line.trim();
        if !line.starts_with('{') {
            return Err(Unparsed::Malformed("falco_not_json"));
        }
        let obj: Map<String, Value> =
            serde_json::from_str(line).map_err(|_| Unparsed::Malformed("bad_json"))?;
        let rule = obj
            .get("rule")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or(Unparsed::Malformed("falco_no_rule"))?;
        let priority = obj
            .get("priority")
            .and_then(Value::as_str)
            .and_then(priority_named)
            .ok_or(Unparsed::Malformed("falco_bad_priority"))?;
        let ts = match obj.get("time") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(
                clock::iso(t, ctx.utc_offset_secs).ok_or(Unparsed::Malformed("bad_timestamp"))?,
            ),
            Some(_) => return Err(Unparsed::Malformed("bad_timestamp")),
        };
        let mut fields = vec![("rule", rule.to_owned()), ("priority", priority.to_owned())];
        for (key, name) in [
            ("output", "output"),
            ("hostname", "hostname"),
            ("source", "falco_source"),
            ("uuid", "uuid"),
        ] {
            if let Some(v) = obj.get(key).and_then(scalar) {
                fields.push((name, v.into_owned()));
            }
        }
        if let Some(Value::Array(tags)) = obj.get("tags") {
            let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
            if !tags.is_empty() {
                fields.push(("tags", tags.join(",")));
            }
        }
        match obj.get("output_fields") {
            None | Some(Value::Null) => {}
            Some(Value::Object(of)) => {
                for (key, name) in OUTPUT_FIELDS {
                    if let Some(v) = of.get(key).and_then(scalar) {
                        fields.push((name, v.into_owned()));
                    }
                }
            }
            Some(_) => return Err(Unparsed::Malformed("falco_bad_output_fields")),
        }
        Ok(Parsed {
            ts,
            service: Cow::Borrowed("falco"),
            kind: LogKind::RuntimeAlert,
            src_ip: None,
            fields,
            extra: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_in_any_case() {
        assert_eq!(priority_named("warning"), Some("Warning"));
        assert_eq!(priority_named("CRITICAL"), Some("Critical"));
        assert_eq!(priority_named("info"), Some("Informational"));
        assert_eq!(priority_named("Informational"), Some("Informational"));
        assert_eq!(priority_named("severe"), None);
    }

    #[test]
    fn recognised_by_its_keys() {
        assert!(looks_like_alert(
            r#"{"output":"x","output_fields":{},"priority":"Notice","rule":"r"}"#
        ));
        assert!(!looks_like_alert(r#"{"rule":"r","msg":"x"}"#));
        assert!(!looks_like_alert("13:44:05.478445995: Critical A shell"));
    }
}
