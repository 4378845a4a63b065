//! Redaction of secrets: the one redactor every event, log line, manual decision and error message
//! passes before it is stored, logged or answered. It owns the rules (which keys are secret, which
//! shapes in text are credentials) and must not do I/O.
//!
//! # What is masked
//!
//! **Keys.** A key is normalised (camelCase split into words, lower-cased, `-`, `.`, ` ` and `/` read
//! as `_`) and is secret when
//! - it contains a fragment of [`BUILTIN_KEYS`] (`password`, `secret`, `api_key`, `credential`,
//!   `private_key`, `access_key`, `cookie`, …) or one added by `logging.redact_keys`, or
//! - one of its words is in [`BUILTIN_WORDS`] (`pass`, `pwd`, `auth`, `session`, `token`, `otp`, `pin`,
//!   …) or ends with `token` (`accessToken`, `csrftoken`),
//!
//! unless its last word says it describes a secret rather than holds one ([`DESCRIPTOR_WORDS`]:
//! `token_count`, `auth_type`, `session_ttl`, `password_policy`). Words match whole, so `author`,
//! `authority`, `bypass`, `passenger`, `max_tokens` and `tokenizer` are not secret. The value under a
//! secret key is replaced whole (objects and arrays too) by `***`; a string that starts with an
//! authorization scheme keeps it (`Bearer ***`); booleans and nulls are left alone (`auth: true`).
//!
//! **Text.** Every other string, at any depth, is searched for:
//! - `key=value`, `key: value`, `key="value"`, `key='value'`, `"key": "value"`, `key => value` with a
//!   secret key (so URL queries `?token=…&password=…` and header lines `X-Api-Key: …` too);
//! - `Bearer <credential>` anywhere, and the credential after `Authorization: Basic`/`Bearer`;
//! - URL userinfo: `https://user:***@host` (without `:`, the whole userinfo);
//! - JWTs (`eyJ….….…`), the body of PEM private keys (`-----BEGIN … PRIVATE KEY-----`);
//! - AWS access key ids (`AKIA`/`ASIA` + 16, shown as `AKIA***`), a 40-character secret key within
//!   128 bytes after `aws`, GCP API keys (`AIza***`), GitHub tokens (`ghp_***`, `github_pat_***`, …),
//!   Slack tokens (`xoxb-***`, …) and Slack webhook paths;
//! - a string that is itself JSON is parsed, redacted by these same rules and written back.
//!
//! Masking is idempotent (`***` is never masked again) and every mask is counted.
//!
//! # Speed
//!
//! `memchr` finds `=` and `:` and a case-sensitive, SIMD-prefiltered Aho-Corasick pass finds the token
//! shapes; only then does any rule run. Text without a trigger is returned as it is, without copying
//! (`cargo bench -p sentinel-core --bench redact`).

mod scan;

use scan::Scanner;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The text that replaces a redacted value.
pub const MASK: &str = "***";

/// Key fragments that make a key secret wherever they appear in it.
pub const BUILTIN_KEYS: [&str; 20] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
    "privatekey",
    "access_key",
    "accesskey",
    "sessionid",
    "sessid",
    "session_key",
    "signing_key",
    "encryption_key",
    "auth_token",
    "x_amz_security_token",
];

/// Words that make a key secret when one of the key's words is exactly this.
pub const BUILTIN_WORDS: [&str; 15] = [
    "pass", "pwd", "pw", "auth", "session", "sess", "sessid", "token", "otp", "pin", "jwt", "psk",
    "creds", "cred", "passcode",
];

/// A key whose last word is one of these describes a secret rather than holds one (built-in rules
/// only; fragments added by configuration always match).
pub const DESCRIPTOR_WORDS: [&str; 24] = [
    "count",
    "counts",
    "len",
    "length",
    "size",
    "type",
    "kind",
    "limit",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "at",
    "in",
    "policy",
    "required",
    "enabled",
    "name",
    "method",
    "scheme",
    "algorithm",
    "alg",
    "format",
    "status",
];

/// Decides which keys are secret and masks their values and every secret-shaped string.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Built-in fragments followed by the configured ones.
    fragments: Vec<String>,
    /// The configured fragments only.
    extra: Vec<String>,
    scanner: Option<Scanner>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(std::iter::empty::<&str>())
    }
}

impl Redactor {
    /// The built-in rules plus `extra` key fragments (for example from `REDACT_KEYS`).
    pub fn new<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut fragments: Vec<String> = BUILTIN_KEYS.iter().map(|s| s.to_string()).collect();
        let mut added = Vec::new();
        for s in extra {
            let s = normalise(s.as_ref().trim());
            if !s.is_empty() && !fragments.contains(&s) {
                fragments.push(s.clone());
                added.push(s);
            }
        }
        // A configured fragment is found in text by each of its words (`private_note` by `private`
        // and `note`), so `Private-Note`, `privateNote` and `private.note` all reach the key check.
        let mut triggers: Vec<String> = Vec::new();
        for f in &added {
            let words: Vec<&str> = f.split('_').filter(|w| w.len() >= 2).collect();
            if words.is_empty() {
                triggers.push(f.clone());
            }
            triggers.extend(words.into_iter().map(str::to_owned));
        }
        Self {
            fragments,
            extra: added,
            scanner: Scanner::new(&triggers),
        }
    }

    /// From a comma-separated list such as the `REDACT_KEYS` variable.
    pub fn from_list(list: &str) -> Self {
        Self::new(list.split(','))
    }

    /// The key fragments in use (built-in and configured).
    pub fn fragments(&self) -> &[String] {
        &self.fragments
    }

    /// Whether values under this key must be masked (see the module documentation for the rule).
    pub fn is_secret_key(&self, key: &str) -> bool {
        if let Some(s) = &self.scanner {
            if !s.key_trigger(key) {
                return false;
            }
        }
        // `user%5Bpassword%5D` is `user[password]`.
        let k = if key.contains('%') {
            normalise(&percent_decode(key))
        } else {
            normalise(key)
        };
        if self.extra.iter().any(|f| k.contains(f.as_str())) {
            return true;
        }
        let mut words = k.split('_').filter(|w| !w.is_empty()).peekable();
        let mut last = "";
        let mut n = 0;
        let mut word_hit = false;
        while let Some(w) = words.next() {
            n += 1;
            word_hit |= BUILTIN_WORDS.contains(&w) || w.ends_with("token");
            if words.peek().is_none() {
                last = w;
            }
        }
        if n > 1 && DESCRIPTOR_WORDS.contains(&last) {
            return false;
        }
        word_hit || BUILTIN_KEYS.iter().any(|f| k.contains(f))
    }

    /// Masks, in place, every value under a secret key and every secret inside any string, at any
    /// depth. Returns how many values or spans were masked.
    pub fn redact(&self, v: &mut Value) -> usize {
        match v {
            Value::Object(map) => self.redact_map(map),
            Value::Array(items) => self.redact_array(items),
            Value::String(s) => match self.mask(s) {
                Some((masked, n)) => {
                    *s = masked;
                    n
                }
                None => 0,
            },
            _ => 0,
        }
    }

    /// Masks secrets in an array; a name and its value side by side count as a key: each pair of a
    /// list of pairs (`[["Authorization", "Basic …"]]`), and a flag followed by its value
    /// (`["--password", "…"]`).
    fn redact_array(&self, items: &mut [Value]) -> usize {
        // A list of pairs (`[["Host", …], ["Authorization", …]]`): each pair is a name and a value.
        // A lone two-item list is not a pair (`["auth", "failure"]` may be tags).
        let pairs = !items.is_empty()
            && items
                .iter()
                .all(|i| matches!(i, Value::Array(p) if p.len() == 2 && p[0].is_string()));
        if pairs {
            let mut n = 0;
            for item in items.iter_mut() {
                if let Value::Array(p) = item {
                    let secret = p[0].as_str().is_some_and(|k| self.is_secret_key(k));
                    n += if secret {
                        mask_whole(&mut p[1])
                    } else {
                        self.redact(&mut p[1])
                    };
                }
            }
            return n;
        }
        let mut n = 0;
        let mut mask_next = false;
        for item in items.iter_mut() {
            if std::mem::take(&mut mask_next) {
                n += mask_whole(item);
                continue;
            }
            if let Value::String(s) = item {
                let flag = s.strip_prefix('-').map(|f| f.trim_start_matches('-'));
                mask_next = flag.is_some_and(|f| !f.contains('=') && self.is_secret_key(f));
            }
            n += self.redact(item);
        }
        n
    }

    /// Masks secrets inside a map of attributes (as [`Redactor::redact`] does for an object). An
    /// object naming a secret (`{"name": "password", "value": …}`) has its value masked.
    pub fn redact_map(&self, m: &mut Map<String, Value>) -> usize {
        let mut n = 0;
        let named = PAIR_NAMES.iter().any(|k| {
            m.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| self.is_secret_key(s))
        });
        for (k, child) in m.iter_mut() {
            if self.is_secret_key(k) || (named && PAIR_VALUES.contains(&k.as_str())) {
                n += mask_whole(child);
            } else {
                n += self.redact(child);
            }
        }
        n
    }

    /// Masks secrets in free text (a log line, a reason, an error message). Text without any is
    /// returned unchanged, without copying.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_text_counted(text).0
    }

    /// [`Redactor::redact_text`], with how many secrets were masked.
    pub fn redact_text_counted<'a>(&self, text: &'a str) -> (Cow<'a, str>, usize) {
        match self.mask(text) {
            Some((masked, n)) => (Cow::Owned(masked), n),
            None => (Cow::Borrowed(text), 0),
        }
    }

    /// The masked text and the count, or `None` when nothing in `text` is secret.
    fn mask(&self, text: &str) -> Option<(String, usize)> {
        let Some(scanner) = &self.scanner else {
            // The trigger automaton could not be built (it always can for the fixed patterns): fail
            // closed rather than let text through unexamined.
            return (text != MASK && !text.is_empty()).then(|| (MASK.to_owned(), 1));
        };
        let found = scanner.scan(text, |k| self.is_secret_key(k));
        let t = text.trim_start();
        let json_like = t.starts_with('{') || t.starts_with('[');
        // A key may hide behind JSON escapes (`"\u0070assword"`): such JSON is always parsed.
        // and a secret may be named by a value (`{"name": "password", "value": …}`).
        if !found.triggered
            && !(json_like
                && (scanner.key_trigger(text)
                    || memchr::memmem::find(text.as_bytes(), b"\\u").is_some()))
        {
            return None;
        }
        if json_like {
            if let Ok(mut v) = serde_json::from_str::<Value>(text) {
                let n = self.redact(&mut v);
                return (n > 0).then(|| (v.to_string(), n));
            }
        }
        let spans = found.spans;
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for &(s, e) in &spans {
            // Spans start and end next to ASCII bytes or at the ends of the text, so on char
            // boundaries; were one not, the whole text is masked rather than risk printing it.
            let (Some(keep), true) = (text.get(at..s), text.is_char_boundary(e)) else {
                return Some((MASK.to_owned(), spans.len()));
            };
            out.push_str(keep);
            out.push_str(MASK);
            at = e;
        }
        out.push_str(text.get(at..).unwrap_or(""));
        Some((out, spans.len()))
    }
}

/// Keys that name the entry of a name/value object (`{"name": "password", "value": …}`).
const PAIR_NAMES: [&str; 6] = ["name", "key", "header", "field", "param", "Name"];

/// Keys that hold the value of a name/value object.
const PAIR_VALUES: [&str; 6] = ["value", "val", "values", "content", "data", "Value"];

/// `%XX` sequences decoded (invalid ones kept as they are), for reading an encoded key.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces a value under a secret key; returns 1 if it changed. Booleans and nulls say nothing secret
/// and are kept; a string starting with an authorization scheme keeps the scheme.
fn mask_whole(v: &mut Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 0,
        Value::String(s) => {
            let masked = match s.split_once(' ') {
                Some((w, _)) if scan::SCHEMES.iter().any(|sc| sc.eq_ignore_ascii_case(w)) => {
                    format!("{w} {MASK}")
                }
                _ => MASK.to_owned(),
            };
            if *s == masked {
                return 0;
            }
            *s = masked;
            1
        }
        other => {
            *other = Value::String(MASK.into());
            1
        }
    }
}

/// Lower-case words joined by `_`: `X-Api-Key` → `x_api_key`, `accessToken` → `access_token`.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if matches!(c, '-' | '.' | ' ' | '/' | '[' | ']') {
            out.push('_');
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// A redactor with the built-in rules only, for places that have no configured one (error messages
/// at the HTTP edge).
pub fn builtin() -> &'static Redactor {
    static R: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
    R.get_or_init(Redactor::default)
}

#[cfg(test)]
mod tests;
