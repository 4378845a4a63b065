//! Unknown-key detection: walks the merged tree against the defaults tree (and, inside lists of
//! structs such as `policy.rules`, against each element's known keys) and names every key that is not
//! part of the configuration. It reports only unknown keys; types and values are checked by `validate`.

use crate::error::ConfigError;
use serde_json::Value;

/// Known keys of list elements that are structs, by schema path (a list element is written `[]`).
const LIST_ELEMENTS: &[(&str, &[&str])] = &[
    (
        "policy.rules[]",
        &[
            "name",
            "scenario",
            "severity",
            "risk",
            "confidence",
            "actions",
        ],
    ),
    ("policy.rules[].actions[]", &["kind", "ttl", "params"]),
    (
        "sources[]",
        &[
            "type",
            "paths",
            "format",
            "from_beginning",
            "fail2ban_filter",
            "mode",
            "poll_interval",
            "udp",
            "tcp",
            "command",
            "allowed_peers",
            "fail2ban_vars",
            "jail",
            "dir",
        ],
    ),
    (
        "intel.feeds[]",
        &["name", "path", "format", "verdict", "score", "csv"],
    ),
    (
        "intel.feeds[].csv",
        &[
            "ip_column",
            "score_column",
            "reason_column",
            "delimiter",
            "header",
        ],
    ),
    (
        "intel.assets[]",
        &["name", "targets", "nets", "criticality"],
    ),
];

/// Paths whose contents are free-form (passed through to an actuator).
const FREE_FORM: &[&str] = &[
    "policy.rules[].actions[].params",
    "sources[].fail2ban_vars",
    "detect.scenarios.define",
    // Read, keys included, by `notify.rs` and `supervise.rs` (channel names are the operator's).
    "notify",
    "supervise",
];

/// Every key in `tree` that the configuration does not know, as an `unknown key` error.
pub(crate) fn unknown_keys(tree: &Value, defaults: &Value) -> Vec<ConfigError> {
    let mut out = Vec::new();
    walk(tree, Some(defaults), "", "", &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn element_keys(schema: &str) -> Option<&'static [&'static str]> {
    LIST_ELEMENTS
        .iter()
        .find(|(p, _)| *p == schema)
        .map(|(_, keys)| *keys)
}

fn walk(
    user: &Value,
    default: Option<&Value>,
    path: &str,
    schema: &str,
    out: &mut Vec<ConfigError>,
) {
    if FREE_FORM.contains(&schema) {
        return;
    }
    match user {
        Value::Object(map) => {
            if let Some(Value::Object(known)) = default {
                for (k, v) in map {
                    match known.get(k) {
                        Some(d) => walk(v, Some(d), &join(path, k), &join(schema, k), out),
                        None => out.push(ConfigError::new(join(path, k), "unknown key")),
                    }
                }
            } else if let Some(keys) = element_keys(schema) {
                for (k, v) in map {
                    if keys.contains(&k.as_str()) {
                        walk(v, None, &join(path, k), &join(schema, k), out);
                    } else {
                        out.push(ConfigError::new(join(path, k), "unknown key"));
                    }
                }
            }
        }
        Value::Array(items) => {
            let elem_schema = format!("{schema}[]");
            if element_keys(&elem_schema).is_some() {
                for (i, item) in items.iter().enumerate() {
                    walk(item, None, &format!("{path}[{i}]"), &elem_schema, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_unknown_keys_at_any_depth_and_in_list_elements() {
        let defaults = json!({"api": {"listen": "x"}, "policy": {"rules": []}});
        let tree = json!({
            "api": {"listen": "x", "lisen": 1},
            "apii": {},
            "policy": {"rules": [
                {"severity": "any", "colour": "red", "actions": [{"kind": "block_ip", "tll": "1h", "params": {"anything": 1}}]}
            ]}
        });
        let mut paths: Vec<String> = unknown_keys(&tree, &defaults)
            .into_iter()
            .map(|e| e.path)
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "api.lisen",
                "apii",
                "policy.rules[0].actions[0].tll",
                "policy.rules[0].colour"
            ]
        );
    }
}
