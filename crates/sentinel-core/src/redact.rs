//! Redaction of secrets: values of keys that look secret become `***`, at any depth.

use serde_json::Value;

/// The text that replaces a redacted value.
pub const MASK: &str = "***";

/// Key fragments that are always redacted.
pub const BUILTIN_KEYS: [&str; 8] = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
];

/// Decides which keys are secret and masks their values.
///
/// A key matches when, lower-cased with `-` read as `_`, it contains one of the fragments
/// (so `X-Api-Key`, `db_password` and `refresh_token` all match).
#[derive(Debug, Clone)]
pub struct Redactor {
    fragments: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(std::iter::empty::<&str>())
    }
}

impl Redactor {
    /// The built-in fragments plus `extra` (for example from `REDACT_KEYS`).
    pub fn new<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut fragments: Vec<String> = BUILTIN_KEYS.iter().map(|s| s.to_string()).collect();
        for s in extra {
            let s = normalise(s.as_ref().trim());
            if !s.is_empty() && !fragments.contains(&s) {
                fragments.push(s);
            }
        }
        Self { fragments }
    }

    /// From a comma-separated list such as the `REDACT_KEYS` variable.
    pub fn from_list(list: &str) -> Self {
        Self::new(list.split(','))
    }

    /// The fragments in use.
    pub fn fragments(&self) -> &[String] {
        &self.fragments
    }

    /// Whether values under this key must be masked.
    pub fn is_secret_key(&self, key: &str) -> bool {
        let k = normalise(key);
        self.fragments.iter().any(|f| k.contains(f.as_str()))
    }

    /// Masks, in place, every value under a secret key, at any depth.
    /// Returns how many values were masked.
    pub fn redact(&self, v: &mut Value) -> usize {
        match v {
            Value::Object(map) => {
                let mut n = 0;
                for (k, child) in map.iter_mut() {
                    if self.is_secret_key(k) {
                        if *child != Value::String(MASK.into()) {
                            *child = Value::String(MASK.into());
                            n += 1;
                        }
                    } else {
                        n += self.redact(child);
                    }
                }
                n
            }
            Value::Array(items) => items.iter_mut().map(|c| self.redact(c)).sum(),
            _ => 0,
        }
    }

    /// Masks secrets inside a map of attributes.
    pub fn redact_map(&self, m: &mut serde_json::Map<String, Value>) -> usize {
        let mut n = 0;
        for (k, child) in m.iter_mut() {
            if self.is_secret_key(k) {
                *child = Value::String(MASK.into());
                n += 1;
            } else {
                n += self.redact(child);
            }
        }
        n
    }
}

fn normalise(s: &str) -> String {
    s.to_ascii_lowercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_at_any_depth() {
        let r = Redactor::from_list("session_id");
        let mut v = json!({
            "user": "alice",
            "Password": "hunter2",
            "nested": {"list": [{"api-key": "k1"}, {"ok": 1, "SESSION_ID": "s"}]},
            "headers": {"Authorization": "Bearer x", "X-Api-Key": "y"}
        });
        assert_eq!(r.redact(&mut v), 5);
        let text = v.to_string();
        for secret in ["hunter2", "k1", "Bearer x", "\"y\"", "\"s\""] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
        assert_eq!(v["user"], "alice");
        assert_eq!(v["nested"]["list"][1]["ok"], 1);
    }

    #[test]
    fn custom_keys_are_normalised() {
        let r = Redactor::from_list(" Private-Note , ,");
        assert!(r.is_secret_key("private_note"));
        assert!(r.is_secret_key("my-PRIVATE-NOTE"));
        assert!(!r.is_secret_key("note"));
    }
}
