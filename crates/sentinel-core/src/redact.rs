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

impl Redactor {
    /// Masks `key=value` and `key: value` pairs in free text (log lines) whose key looks secret.
    /// The value runs to the next space, `&`, `,`, `;` or quote; `Bearer`/`Basic` schemes mask the
    /// credential after them too. Text without such pairs is returned unchanged, without copying.
    pub fn redact_text<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let lower = text.to_ascii_lowercase();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for f in &self.fragments {
            let mut from = 0;
            while let Some(pos) = lower[from..].find(f.as_str()) {
                let start = from + pos;
                from = start + f.len();
                let bytes = lower.as_bytes();
                // The rest of the key (e.g. `password_hash`), then `=` or `:` with optional quotes/spaces.
                let mut i = from;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'-')
                {
                    i += 1;
                }
                while i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                    i += 1;
                }
                if i >= bytes.len() || !(bytes[i] == b'=' || bytes[i] == b':') {
                    continue;
                }
                i += 1;
                while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'"' || bytes[i] == b'\'')
                {
                    i += 1;
                }
                let token_end = |mut j: usize| {
                    while j < bytes.len()
                        && !matches!(bytes[j], b' ' | b'&' | b',' | b';' | b'"' | b'\'')
                    {
                        j += 1;
                    }
                    j
                };
                let mut end = token_end(i);
                let word = &lower[i..end];
                if (word == "bearer" || word == "basic") && end < bytes.len() && bytes[end] == b' '
                {
                    end = token_end(end + 1);
                }
                if end > i {
                    spans.push((i, end));
                }
            }
        }
        if spans.is_empty() {
            return std::borrow::Cow::Borrowed(text);
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, e) in spans {
            if s < at {
                continue;
            }
            out.push_str(&text[at..s]);
            out.push_str(MASK);
            at = e;
        }
        out.push_str(&text[at..]);
        std::borrow::Cow::Owned(out)
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
    fn free_text_pairs_are_masked() {
        let r = Redactor::default();
        assert_eq!(
            r.redact_text("login failed user=bob password=hunter2 from 203.0.113.7"),
            "login failed user=bob password=*** from 203.0.113.7"
        );
        assert_eq!(
            r.redact_text(r#"GET /cb?token=abc123&x=1 "Authorization: Bearer eyJhbGc" ok"#),
            r#"GET /cb?token=***&x=1 "Authorization: ***" ok"#
        );
        assert_eq!(
            r.redact_text("{\"api_key\": \"k-1\"}"),
            "{\"api_key\": \"***\"}"
        );
        let plain = "Failed password for root from 203.0.113.7 port 22 ssh2";
        assert!(matches!(
            r.redact_text(plain),
            std::borrow::Cow::Borrowed(_)
        ));
        // Non-ASCII text around a secret stays intact.
        assert_eq!(r.redact_text("ü secret=x ü"), "ü secret=*** ü");
    }

    #[test]
    fn custom_keys_are_normalised() {
        let r = Redactor::from_list(" Private-Note , ,");
        assert!(r.is_secret_key("private_note"));
        assert!(r.is_secret_key("my-PRIVATE-NOTE"));
        assert!(!r.is_secret_key("note"));
    }
}
