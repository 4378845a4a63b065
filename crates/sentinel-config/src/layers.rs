//! Layering: embedded defaults < YAML file < `.env` file < process environment, merged as JSON trees
//! into a `RawConfig`. Environment strings are coerced to the JSON type of the default at the same
//! path. This module reads no files and no process state itself: callers hand it text and variables.
//! It does not judge values beyond coercion; `validate` does that.

use crate::defaults::defaults_tree;
use crate::error::ConfigError;
use serde_json::{Map, Value};

/// Prefix of variables that set a config path (`SENTINEL__API__LISTEN` sets `api.listen`).
pub const ENV_PREFIX: &str = "SENTINEL__";
/// Prefix of variables that set a path in a standalone `supervise.yml`
/// (`SENTINEL_SUPERVISE__NOTIFY__CHANNELS__OPS__SECRET` sets `notify.channels.ops.secret`). It differs
/// from [`ENV_PREFIX`] so the daemon's own variables, which a supervisor passes on to it, are not read
/// as the supervisor's.
pub const SUPERVISE_ENV_PREFIX: &str = "SENTINEL_SUPERVISE__";
/// Plain variable that sets `api.allow_insecure_no_auth`.
pub const ALLOW_INSECURE_VAR: &str = "SENTINEL_ALLOW_INSECURE_NO_AUTH";
/// Plain variable that sets `bus` (`memory`, `redis` or a `redis://` URL).
pub const BUS_VAR: &str = "BUS";
/// Plain variable whose comma-separated fragments are appended to `logging.redact_keys`.
pub const REDACT_KEYS_VAR: &str = "REDACT_KEYS";

/// A named piece of configuration text (the name is used in error messages).
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    /// File name or other label, e.g. `sentinel.yml`.
    pub name: &'a str,
    /// The contents.
    pub body: &'a str,
}

/// The merged, not yet validated configuration tree, with problems met while layering
/// (parse errors, values that could not be coerced). `validate` reports both together.
#[derive(Debug, Clone, PartialEq)]
pub struct RawConfig {
    /// Defaults with every layer merged on top.
    pub tree: Value,
    /// Problems found while reading and merging the layers.
    pub layer_errors: Vec<ConfigError>,
}

impl RawConfig {
    /// The defaults alone.
    pub fn defaults() -> Self {
        Self::from_layers(None, None, &[])
    }

    /// Merges YAML text, `.env` text and environment variables onto the defaults.
    pub fn from_layers(
        yaml: Option<Text<'_>>,
        dotenv: Option<Text<'_>>,
        env: &[(String, String)],
    ) -> Self {
        let mut errors = Vec::new();
        let defaults = match defaults_tree() {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                Value::Object(Map::new())
            }
        };
        let mut tree = defaults.clone();
        if let Some(text) = yaml {
            apply_yaml(&mut tree, text, &mut errors);
        }
        if let Some(text) = dotenv {
            let vars = parse_dotenv(text, &mut errors);
            let vars = crate::bypass::refuse_in_dotenv(text.name, vars, &mut errors);
            let origin = format!("in {}", text.name);
            let bypass_before = crate::bypass::value_in(&tree);
            apply_vars(
                &mut tree,
                &defaults,
                &vars,
                ENV_PREFIX,
                &origin,
                &mut errors,
            );
            crate::bypass::undo_dotenv_change(text.name, bypass_before, &mut tree, &mut errors);
        }
        apply_vars(
            &mut tree,
            &defaults,
            env,
            ENV_PREFIX,
            "in the environment",
            &mut errors,
        );
        Self {
            tree,
            layer_errors: errors,
        }
    }
}

/// Merges `overlay` into `base`: mappings merge key by key, anything else replaces; null keeps `base`.
pub(crate) fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (_, Value::Null) => {}
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The paths where `overlay` holds null over a value `base` has.
fn null_over_value(base: &Value, overlay: &Value, path: &str, out: &mut Vec<String>) {
    if let (Value::Object(b), Value::Object(o)) = (base, overlay) {
        for (k, v) in o {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match (b.get(k), v) {
                (Some(slot), Value::Null) if !slot.is_null() => out.push(child),
                (Some(slot), v) => null_over_value(slot, v, &child, out),
                (None, _) => {}
            }
        }
    }
}

fn apply_yaml(tree: &mut Value, text: Text<'_>, errors: &mut Vec<ConfigError>) {
    // Read into JSON values, a key given twice would silently keep the last one (a rule's `cidr`, a
    // `mode`); YAML's own mapping refuses duplicates, so it is asked first.
    if let Err(e) = serde_norway::from_str::<serde_norway::Value>(text.body) {
        if e.to_string().contains("duplicate entry") {
            errors.push(ConfigError::new(text.name, format!("invalid YAML: {e}")));
            return;
        }
    }
    match serde_norway::from_str::<Value>(text.body) {
        Ok(Value::Null) => {}
        Ok(v @ Value::Object(_)) => {
            // A key written without a value (`mode:`) over one that has a default would silently keep
            // the default: say so instead. Where the default is itself null (an optional setting),
            // null is how "none" is written.
            let mut nulls = Vec::new();
            null_over_value(tree, &v, "", &mut nulls);
            for path in nulls {
                errors.push(ConfigError::new(
                    path,
                    format!(
                        "has no value (in {}); give one, or leave the key out for the default",
                        text.name
                    ),
                ));
            }
            merge(tree, v)
        }
        Ok(_) => errors.push(ConfigError::new(
            text.name,
            "expected a mapping at the top level",
        )),
        Err(e) => errors.push(ConfigError::new(text.name, format!("invalid YAML: {e}"))),
    }
}

/// Parses `.env` text into variables. Parse errors name the line but never echo it (it may hold a secret).
fn parse_dotenv(text: Text<'_>, errors: &mut Vec<ConfigError>) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for item in dotenvy::from_read_iter(text.body.as_bytes()) {
        match item {
            Ok(kv) => vars.push(kv),
            Err(dotenvy::Error::LineParse(line, _)) => {
                let first = line.lines().next().unwrap_or("");
                let message = match text.body.find(first) {
                    Some(pos) if !first.is_empty() => {
                        let n = text.body[..pos].matches('\n').count() + 1;
                        format!("cannot parse line {n}")
                    }
                    _ => "cannot parse a line".to_string(),
                };
                errors.push(ConfigError::new(text.name, message));
            }
            Err(e) => errors.push(ConfigError::new(text.name, format!("cannot read: {e}"))),
        }
    }
    vars
}

/// A standalone `supervise.yml` merged with the `SENTINEL_SUPERVISE__` variables of `env`, and the
/// problems met doing so. There is no defaults layer: the reader supplies each default.
pub(crate) fn supervise_tree(
    text: Text<'_>,
    env: &[(String, String)],
) -> (Value, Vec<ConfigError>) {
    let mut errors = Vec::new();
    // Only for reading variables as the right JSON type.
    let mut types = serde_json::json!({
        "data_dir": "", "stop_grace": "10s", "output_lines": 20, "children": [], "notify": {},
    });
    match defaults_tree() {
        Ok(d) => {
            if let Some(n) = d.get("notify") {
                types["notify"] = n.clone();
            }
        }
        Err(e) => errors.push(e),
    }
    let mut tree = Value::Object(Map::new());
    apply_yaml(&mut tree, text, &mut errors);
    apply_vars(
        &mut tree,
        &types,
        env,
        SUPERVISE_ENV_PREFIX,
        "in the environment",
        &mut errors,
    );
    (tree, errors)
}

/// Applies one layer of variables (in name order, so the result does not depend on their order).
/// Only variables starting with `prefix` set paths; the daemon's plain variables are read only
/// with [`ENV_PREFIX`].
fn apply_vars(
    tree: &mut Value,
    defaults: &Value,
    vars: &[(String, String)],
    prefix: &str,
    origin: &str,
    errors: &mut Vec<ConfigError>,
) {
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in sorted {
        let daemon = prefix == ENV_PREFIX;
        let segments: Vec<String> = if let Some(rest) = name.strip_prefix(prefix) {
            let segs: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if segs.iter().any(String::is_empty) {
                errors.push(ConfigError::new(
                    name.as_str(),
                    format!("empty path segment in variable name ({origin})"),
                ));
                continue;
            }
            segs
        } else if daemon && name == ALLOW_INSECURE_VAR {
            vec!["api".into(), "allow_insecure_no_auth".into()]
        } else if daemon && name == BUS_VAR {
            vec!["bus".into()]
        } else if daemon && name == REDACT_KEYS_VAR {
            append_redact_keys(tree, value);
            continue;
        } else {
            continue;
        };
        let path = segments.join(".");
        let coerced = match lookup(defaults, &segments) {
            Some(default) => coerce(value, default, &path),
            None => Ok(Value::String(value.clone())),
        };
        match coerced {
            Ok(v) => {
                if !set_path(tree, &segments, v) {
                    errors.push(ConfigError::new(path, "unknown key"));
                }
            }
            Err(mut e) => {
                e.message = format!("{} (set by {name} {origin})", e.message);
                errors.push(e);
            }
        }
    }
}

fn append_redact_keys(tree: &mut Value, list: &str) {
    let Some(Value::Array(keys)) = tree
        .get_mut("logging")
        .and_then(|l| l.get_mut("redact_keys"))
    else {
        return;
    };
    for frag in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let v = Value::String(frag.to_string());
        if !keys.contains(&v) {
            keys.push(v);
        }
    }
}

fn lookup<'a>(tree: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments
        .iter()
        .try_fold(tree, |node, seg| node.get(seg.as_str()))
}

/// Sets `segments` in `tree`, creating mappings on the way. False when a step is not a mapping.
fn set_path(tree: &mut Value, segments: &[String], value: Value) -> bool {
    let mut node = tree;
    for seg in segments {
        let Value::Object(map) = node else {
            return false;
        };
        node = map
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if node.is_object() && value.is_object() {
        merge(node, value);
    } else {
        *node = value;
    }
    true
}

/// Reads an environment string as the JSON type of `default`.
pub(crate) fn coerce(raw: &str, default: &Value, path: &str) -> Result<Value, ConfigError> {
    let fail = |what: &str| ConfigError::new(path, format!("not {what}: {raw:?}"));
    let s = raw.trim();
    match default {
        Value::Bool(_) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(fail("a boolean")),
        },
        Value::Number(n) if n.is_f64() => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| fail("a number")),
        Value::Number(_) => {
            if let Ok(u) = s.parse::<u64>() {
                Ok(Value::from(u))
            } else if let Ok(i) = s.parse::<i64>() {
                Ok(Value::from(i))
            } else {
                Err(fail("an integer"))
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            match serde_norway::from_str::<Value>(raw) {
                Ok(v @ Value::Array(_)) => Ok(v),
                Ok(_) => Err(fail("a YAML list")),
                Err(e) => Err(ConfigError::new(path, format!("invalid YAML list: {e}"))),
            }
        }
        Value::Array(items) => {
            let elem = items
                .first()
                .cloned()
                .unwrap_or_else(|| Value::String(String::new()));
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .enumerate()
                .map(|(i, part)| coerce(part, &elem, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Value::Object(_) => match serde_norway::from_str::<Value>(raw) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(fail("a YAML mapping")),
            Err(e) => Err(ConfigError::new(path, format!("invalid YAML mapping: {e}"))),
        },
        Value::String(_) | Value::Null => Ok(Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn coerces_to_the_type_of_the_default() {
        assert_eq!(coerce("yes", &json!(false), "p").unwrap(), json!(true));
        assert_eq!(coerce("0", &json!(true), "p").unwrap(), json!(false));
        assert_eq!(coerce("30", &json!(20), "p").unwrap(), json!(30));
        assert_eq!(coerce("0.9", &json!(0.5), "p").unwrap(), json!(0.9));
        assert_eq!(coerce("1", &json!(0.5), "p").unwrap(), json!(1.0));
        assert_eq!(coerce("22, 23", &json!([1]), "p").unwrap(), json!([22, 23]));
        assert_eq!(coerce("a,b", &json!([]), "p").unwrap(), json!(["a", "b"]));
        assert_eq!(coerce("", &json!([]), "p").unwrap(), json!([]));
        let e = coerce("22,x", &json!([1]), "ports").unwrap_err();
        assert_eq!(e.path, "ports[1]");
        assert_eq!(
            coerce("maybe", &json!(true), "p").unwrap_err().message,
            "not a boolean: \"maybe\""
        );
        assert!(coerce("many", &json!(5), "p").is_err());
    }

    #[test]
    fn env_paths_are_lower_cased_and_single_underscore_names_ignored() {
        let raw = RawConfig::from_layers(
            None,
            None,
            &vars(&[
                ("SENTINEL__DETECT__HEURISTIC__MIN_SCORE", "30"),
                ("SENTINEL_CONFIG", "/etc/sentinel.yml"),
                ("SENTINEL_API_KEY", "k"),
                ("PATH", "/bin"),
            ]),
        );
        assert!(raw.layer_errors.is_empty(), "{:?}", raw.layer_errors);
        assert_eq!(raw.tree["detect"]["heuristic"]["min_score"], json!(30));
        assert_eq!(raw.tree, {
            let mut d = RawConfig::defaults().tree;
            d["detect"]["heuristic"]["min_score"] = json!(30);
            d
        });
    }

    #[test]
    fn setting_below_a_leaf_is_an_unknown_key() {
        let raw =
            RawConfig::from_layers(None, None, &vars(&[("SENTINEL__API__LISTEN__PORT", "1")]));
        assert_eq!(
            raw.layer_errors,
            [ConfigError::new("api.listen.port", "unknown key")]
        );
    }

    #[test]
    fn dotenv_parse_errors_name_the_line_without_echoing_it() {
        let text = Text {
            name: ".env",
            body: "A=1\nSENTINEL_API_KEY hunter2\n",
        };
        let raw = RawConfig::from_layers(None, Some(text), &[]);
        assert_eq!(raw.layer_errors.len(), 1);
        let shown = raw.layer_errors[0].to_string();
        assert!(shown.contains("line 2"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn yaml_errors_carry_line_and_column() {
        let text = Text {
            name: "sentinel.yml",
            body: "api:\n  listen: [1,\n",
        };
        let raw = RawConfig::from_layers(Some(text), None, &[]);
        let shown = raw.layer_errors[0].to_string();
        assert!(shown.starts_with("`sentinel.yml`: invalid YAML"), "{shown}");
        assert!(
            shown.contains("line 3") || shown.contains("line 2"),
            "{shown}"
        );
        assert!(shown.contains("column"), "{shown}");
    }
}
