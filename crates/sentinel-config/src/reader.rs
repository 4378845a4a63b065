//! Typed reading of the merged tree: each getter checks one value's type and range and, on failure,
//! records a `ConfigError` at the value's dotted path and returns `None`, so validation carries on and
//! reports every problem. It knows nothing about which keys exist; `validate` decides that.

use crate::error::ConfigError;
use serde_json::Value;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// A value in the tree and its dotted path.
#[derive(Debug, Clone)]
pub(crate) struct Node<'t> {
    pub value: &'t Value,
    pub path: String,
}

impl<'t> Node<'t> {
    /// The root of a tree.
    pub fn root(value: &'t Value) -> Self {
        Self {
            value,
            path: String::new(),
        }
    }

    /// The path of `key` under this node.
    pub fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// Collects problems while reading typed values.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    pub errors: Vec<ConfigError>,
}

/// How a value looks, for "expected X, found Y".
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

impl Reader {
    /// Records a problem at `path`.
    pub fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    fn expected(&mut self, n: &Node<'_>, what: &str) {
        let found = describe(n.value);
        self.fail(&n.path, format!("expected {what}, found {found}"));
    }

    /// The mapping entry `key` of `parent` (required). `None` parents yield `None` silently.
    pub fn get<'t>(&mut self, parent: Option<&Node<'t>>, key: &str) -> Option<Node<'t>> {
        let parent = parent?;
        match parent.value {
            Value::Object(map) => match map.get(key) {
                Some(value) => Some(Node {
                    value,
                    path: parent.child_path(key),
                }),
                None => {
                    self.fail(&parent.child_path(key), "missing key");
                    None
                }
            },
            _ => {
                self.expected(parent, "a mapping");
                None
            }
        }
    }

    /// The mapping entry `key` of `parent`, or `None` when absent or null.
    pub fn optional<'t>(&mut self, parent: &Node<'t>, key: &str) -> Option<Node<'t>> {
        match parent.value {
            Value::Object(map) => match map.get(key) {
                None | Some(Value::Null) => None,
                Some(value) => Some(Node {
                    value,
                    path: parent.child_path(key),
                }),
            },
            _ => {
                self.expected(parent, "a mapping");
                None
            }
        }
    }

    /// Records `unknown key` for every key of the mapping `n` that is not in `known` (and a type
    /// error when `n` is not a mapping); false when `n` is not a mapping.
    pub fn known_keys(&mut self, n: &Node<'_>, known: &[&str]) -> bool {
        let Value::Object(map) = n.value else {
            self.expected(n, "a mapping");
            return false;
        };
        for k in map.keys() {
            if !known.contains(&k.as_str()) {
                self.fail(
                    &n.child_path(k),
                    format!("unknown key (known here: {})", known.join(", ")),
                );
            }
        }
        true
    }

    /// A string.
    pub fn string<'t>(&mut self, n: &Node<'t>) -> Option<&'t str> {
        match n.value {
            Value::String(s) => Some(s.as_str()),
            _ => {
                self.expected(n, "a string");
                None
            }
        }
    }

    /// A string where `null` means "none": `Some(None)` then. The empty string is an error, never
    /// "none" in disguise.
    pub fn optional_string<'t>(&mut self, n: &Node<'t>) -> Option<Option<&'t str>> {
        match n.value {
            Value::Null => Some(None),
            Value::String(s) if s.is_empty() => {
                self.fail(&n.path, "must not be empty (write null for none)");
                None
            }
            Value::String(s) => Some(Some(s.as_str())),
            _ => {
                self.expected(n, "a string");
                None
            }
        }
    }

    /// A path where `null` means "none" (the empty string is an error).
    pub fn optional_path(&mut self, n: &Node<'_>) -> Option<Option<std::path::PathBuf>> {
        self.optional_string(n)
            .map(|s| s.map(std::path::PathBuf::from))
    }

    /// A boolean.
    pub fn boolean(&mut self, n: &Node<'_>) -> Option<bool> {
        match n.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.expected(n, "a boolean");
                None
            }
        }
    }

    /// An integer in `min..=max`, converted to `T`.
    pub fn int<T: TryFrom<u64>>(&mut self, n: &Node<'_>, min: u64, max: u64) -> Option<T> {
        let range = || {
            if max == u64::MAX {
                format!("must be at least {min}")
            } else {
                format!("must be between {min} and {max}")
            }
        };
        match n.value {
            Value::Number(num) => {
                if let Some(u) = num.as_u64() {
                    if (min..=max).contains(&u) {
                        if let Ok(t) = T::try_from(u) {
                            return Some(t);
                        }
                    }
                    self.fail(&n.path, format!("{}, got {u}", range()));
                } else if let Some(i) = num.as_i64() {
                    self.fail(&n.path, format!("{}, got {i}", range()));
                } else {
                    self.expected(n, "an integer");
                }
                None
            }
            _ => {
                self.expected(n, "an integer");
                None
            }
        }
    }

    /// A number (integers are accepted).
    pub fn float(&mut self, n: &Node<'_>) -> Option<f64> {
        match n.value.as_f64() {
            Some(f) => Some(f),
            None => {
                self.expected(n, "a number");
                None
            }
        }
    }

    /// A humantime duration (`50ms`, `4h`, `7d`) greater than zero.
    pub fn duration(&mut self, n: &Node<'_>) -> Option<Duration> {
        let s = self.string(n)?;
        match humantime::parse_duration(s.trim()) {
            Ok(d) if d.is_zero() => {
                self.fail(&n.path, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(_) => {
                self.fail(
                    &n.path,
                    format!("not a duration: {s:?} (write e.g. 50ms, 10s, 4h, 7d)"),
                );
                None
            }
        }
    }

    /// A string parsed as `T`; the error says "not a {what}".
    pub fn parsed<T: FromStr>(&mut self, n: &Node<'_>, what: &str) -> Option<T> {
        let s = self.string(n)?;
        match s.trim().parse::<T>() {
            Ok(t) => Some(t),
            Err(_) => {
                self.fail(&n.path, format!("not {what}: {s:?}"));
                None
            }
        }
    }

    /// A string naming an enum value; the error is the enum's own message.
    pub fn named<T>(&mut self, n: &Node<'_>) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let s = self.string(n)?;
        match s.trim().parse::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail(&n.path, e.to_string());
                None
            }
        }
    }

    /// The elements of a list.
    pub fn list<'t>(&mut self, n: &Node<'t>) -> Option<Vec<Node<'t>>> {
        match n.value {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, value)| Node {
                        value,
                        path: format!("{}[{i}]", n.path),
                    })
                    .collect(),
            ),
            _ => {
                self.expected(n, "a list");
                None
            }
        }
    }

    /// Reads list elements that carry a `name` with `f`, refusing a name used twice (`what` names
    /// them in the error: "asset", "child"); `None` if any element is bad (every element is still
    /// read, so every problem is recorded).
    pub fn unique_named<T>(
        &mut self,
        items: &[Node<'_>],
        what: &str,
        mut f: impl FnMut(&mut Reader, &Node<'_>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut ok = true;
        let mut seen: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(Value::String(name)) = item.value.get("name") {
                if let Some(first) = seen.get(name.as_str()) {
                    self.fail(
                        &format!("{}.name", item.path),
                        format!(
                            "`{name}` is also the name of {first}: {what} names must be unique"
                        ),
                    );
                    ok = false;
                } else {
                    seen.insert(name, &item.path);
                }
            }
            match f(self, item) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Reads every element of a list with `f`; `None` if the list or any element is bad
    /// (every element is still read, so every problem is recorded).
    pub fn each<'t, T>(
        &mut self,
        n: &Node<'t>,
        mut f: impl FnMut(&mut Self, &Node<'t>) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.list(n)?;
        let read: Vec<Option<T>> = items.iter().map(|item| f(self, item)).collect();
        read.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_bad_element_is_reported() {
        let tree = json!({"ports": [0, "x", 80, 70000]});
        let root = Node::root(&tree);
        let mut r = Reader::default();
        let ports = r.get(Some(&root), "ports");
        let got = ports.and_then(|p| r.each(&p, |r, n| r.int::<u16>(n, 1, 65535)));
        assert_eq!(got, None);
        let paths: Vec<&str> = r.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["ports[0]", "ports[1]", "ports[3]"]);
        assert_eq!(
            r.errors[1].message,
            "expected an integer, found string \"x\""
        );
        assert_eq!(
            r.errors[2].message,
            "must be between 1 and 65535, got 70000"
        );
    }

    #[test]
    fn durations_are_humantime_and_positive() {
        let tree = json!({"a": "7d", "b": "0s", "c": "soon"});
        let root = Node::root(&tree);
        let mut r = Reader::default();
        let a = r.get(Some(&root), "a").and_then(|n| r.duration(&n));
        assert_eq!(a, Some(Duration::from_secs(7 * 86400)));
        assert!(r
            .get(Some(&root), "b")
            .and_then(|n| r.duration(&n))
            .is_none());
        assert!(r
            .get(Some(&root), "c")
            .and_then(|n| r.duration(&n))
            .is_none());
        assert_eq!(r.errors.len(), 2);
    }
}
