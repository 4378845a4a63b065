//! Finding secrets in free text, in two cheap passes that touch nothing on clean text:
//! - `=` and `:` are found with `memchr`; the word just before each is checked against the key
//!   triggers (a tiny case-insensitive automaton on a few bytes) and, if it is a secret key, the value
//!   after the separator is masked;
//! - one case-sensitive multi-pattern pass finds the token shapes (`Bearer`, `://`,
//!   `eyJ`, `-----BEGIN `, `AKIA`, `AIza`, `ghp_`, `xoxb-`, …) with Teddy; a hand-written check at
//!   each hit decides.
//!
//! It only reports byte spans to mask; [`super::Redactor`] decides about keys and builds the output.

use aho_corasick::{AhoCorasick, MatchKind};

/// What a shape trigger announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// `Bearer <credential>` anywhere.
    Bearer,
    /// `Basic <base64 of user:password>` anywhere.
    Basic,
    /// `scheme://user:password@host`.
    Url,
    /// `eyJ….….…`.
    Jwt,
    /// `-----BEGIN … PRIVATE KEY-----`.
    Pem,
    /// `AKIA`/`ASIA` + 16.
    AwsKeyId,
    /// `aws` near a 40-character secret access key.
    AwsName,
    /// `AIza` + 35.
    GcpKey,
    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`.
    GitHub,
    /// `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`.
    Slack,
    /// `hooks.slack.com/services/…`.
    SlackHook,
}

/// Fragments that start a key check (matched without regard to ASCII case). Every built-in key
/// fragment and word of [`super`] contains one of them.
const KEY_TRIGGERS: &[&str] = &[
    "pass",
    "pw",
    "auth",
    "sess",
    "secret",
    "token",
    "cookie",
    "cred",
    "apikey",
    "api_key",
    "api-key",
    "private",
    "access",
    "otp",
    "pin",
    "jwt",
    "psk",
    "signing",
    "encryption",
];

/// Token shapes, case-sensitive as they are written (the few written in several cases are listed so).
const SHAPE_TRIGGERS: &[(&str, Trigger)] = &[
    ("Bearer", Trigger::Bearer),
    ("bearer", Trigger::Bearer),
    ("BEARER", Trigger::Bearer),
    ("Basic ", Trigger::Basic),
    ("basic ", Trigger::Basic),
    ("BASIC ", Trigger::Basic),
    ("://", Trigger::Url),
    ("eyJ", Trigger::Jwt),
    ("-----BEGIN ", Trigger::Pem),
    ("AKIA", Trigger::AwsKeyId),
    ("ASIA", Trigger::AwsKeyId),
    ("aws", Trigger::AwsName),
    ("AWS", Trigger::AwsName),
    ("Aws", Trigger::AwsName),
    ("AIza", Trigger::GcpKey),
    ("ghp_", Trigger::GitHub),
    ("gho_", Trigger::GitHub),
    ("ghu_", Trigger::GitHub),
    ("ghs_", Trigger::GitHub),
    ("ghr_", Trigger::GitHub),
    ("github_pat_", Trigger::GitHub),
    ("xoxb-", Trigger::Slack),
    ("xoxp-", Trigger::Slack),
    ("xoxa-", Trigger::Slack),
    ("xoxr-", Trigger::Slack),
    ("xoxs-", Trigger::Slack),
    ("hooks.slack.com", Trigger::SlackHook),
];

/// Authorization schemes kept in front of a masked credential (`Bearer ***`).
pub(super) const SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "bot", "negotiate"];

/// The longest key read in front of a separator.
const MAX_KEY: usize = 128;

/// The longest URL userinfo looked at (a longer one is not a credential in a URL).
const MAX_USERINFO: usize = 1024;

/// How far after `aws` a 40-character secret access key is looked for.
const AWS_WINDOW: usize = 128;

/// The trigger automata and what each shape pattern announces.
#[derive(Debug, Clone)]
pub(super) struct Scanner {
    keys: AhoCorasick,
    shapes: Shapes,
    kinds: Vec<Trigger>,
}

/// The shape searcher: Teddy (SIMD) where the CPU has it, an automaton elsewhere.
#[derive(Debug, Clone)]
enum Shapes {
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl Shapes {
    /// Every hit as (pattern, start, end); a hit inside another is not reported (the triggers do not
    /// overlap in practice: they are distinct prefixes).
    fn each(&self, text: &str, mut f: impl FnMut(usize, usize, usize)) {
        match self {
            Shapes::Packed(s) => {
                for m in s.find_iter(text) {
                    f(m.pattern().as_usize(), m.start(), m.end());
                }
            }
            Shapes::Automaton(a) => {
                for m in a.find_iter(text) {
                    f(m.pattern().as_usize(), m.start(), m.end());
                }
            }
        }
    }
}

/// What a scan found.
pub(super) struct Found {
    /// Spans to mask, sorted and merged.
    pub(super) spans: Vec<(usize, usize)>,
    /// Whether any trigger fired (a secret key before a separator, or a token shape), even if no
    /// span came of it: text that is JSON is then worth parsing.
    pub(super) triggered: bool,
}

impl Scanner {
    /// The built-in triggers plus `extra` key triggers. `None` only if an automaton cannot be built,
    /// which for this handful of short patterns does not happen.
    pub(super) fn new(extra: &[String]) -> Option<Scanner> {
        let mut keys: Vec<String> = KEY_TRIGGERS.iter().map(|t| (*t).to_owned()).collect();
        for t in extra {
            if !keys.contains(t) {
                keys.push(t.clone());
            }
        }
        let keys = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&keys)
            .ok()?;
        let mut packed = aho_corasick::packed::Config::new().builder();
        for (t, _) in SHAPE_TRIGGERS {
            packed.add(t);
        }
        let shapes = match packed.build() {
            Some(p) => Shapes::Packed(p),
            None => Shapes::Automaton(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(SHAPE_TRIGGERS.iter().map(|(t, _)| *t))
                    .ok()?,
            ),
        };
        Some(Scanner {
            keys,
            shapes,
            kinds: SHAPE_TRIGGERS.iter().map(|(_, k)| *k).collect(),
        })
    }

    /// Whether `key` holds a key trigger (the cheap pre-check before the key rule).
    #[inline]
    pub(super) fn key_trigger(&self, key: &str) -> bool {
        self.keys.is_match(key)
    }

    /// What to mask in `text`. `secret_key` decides about a word found in front of `=` or `:`.
    pub(super) fn scan(&self, text: &str, secret_key: impl Fn(&str) -> bool) -> Found {
        let b = text.as_bytes();
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut triggered = false;
        // A separator inside a value already masked is skipped: each byte is looked at a bounded
        // number of times (`password=password=…` must not be quadratic).
        let mut covered = 0;
        for q in memchr::memchr3_iter(b'=', b':', b'%', b) {
            if q < covered {
                continue;
            }
            // `%3D` and `%3A` are separators too (`password%3D…` in a URL-encoded query or body).
            let sep = match b[q] {
                b'%' => match b.get(q + 1..q + 3) {
                    Some([b'3', b'D' | b'd' | b'A' | b'a']) => Sep::Encoded,
                    _ => continue,
                },
                b':' => Sep::Colon,
                _ => Sep::Equals,
            };
            let Some((ks, ke)) = key_before(b, q) else {
                continue;
            };
            // `ks..ke` is bounded by ASCII bytes or the ends of the text: on char boundaries.
            let Some(key) = text.get(ks..ke) else {
                continue;
            };
            if !self.keys.is_match(key) {
                continue;
            }
            triggered = true;
            if !secret_key(key) {
                continue;
            }
            if let Some(v) = value_start(b, q, sep) {
                if let Some(span) = value_span(b, v, sep) {
                    covered = span.1;
                    spans.push(span);
                }
            }
        }
        // Per shape: a hit inside a span the same shape already masked is skipped (`Bearer Bearer …`
        // stays linear), while another shape's hit there is still checked (a PEM block after `Bearer`).
        let mut covered = [0usize; SHAPE_TRIGGERS.len()];
        self.shapes.each(text, |pattern, p, end| {
            triggered = true;
            if covered.get(pattern).is_some_and(|c| p < *c) {
                return;
            }
            let span = match self.kinds.get(pattern).copied() {
                Some(Trigger::Bearer) => bearer(b, p),
                Some(Trigger::Basic) => basic(b, p),
                Some(Trigger::Url) => url_userinfo(b, p),
                Some(Trigger::Jwt) => jwt(b, p),
                Some(Trigger::Pem) => pem(text, p),
                Some(Trigger::AwsKeyId) => aws_key_id(b, p),
                Some(Trigger::AwsName) => {
                    aws_secret(b, end, &mut spans);
                    None
                }
                Some(Trigger::GcpKey) => gcp_key(b, p),
                Some(Trigger::GitHub) => github(b, p, end),
                Some(Trigger::Slack) => slack(b, p),
                Some(Trigger::SlackHook) => slack_hook(b, end),
                None => None,
            };
            if let Some(sp) = span {
                if let Some(c) = covered.get_mut(pattern) {
                    *c = sp.1;
                }
                spans.push(sp);
            }
        });
        Found {
            spans: if spans.is_empty() {
                spans
            } else {
                merge(spans, b)
            },
            triggered,
        }
    }
}

/// Sorts, drops empty spans and spans that are already the mask, and merges overlapping ones.
fn merge(mut spans: Vec<(usize, usize)>, b: &[u8]) -> Vec<(usize, usize)> {
    spans.retain(|&(s, e)| s < e && e <= b.len() && &b[s..e] != super::MASK.as_bytes());
    spans.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Which separator a value follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// `=` (or `=>`): an unquoted value ends at a space or a list separator.
    Equals,
    /// `:` (or `:=`): a header or YAML value, which runs to the end of its line.
    Colon,
    /// `%3D` or `%3A`: a URL-encoded value, which ends where `&` or a space would (`%26`, `%20`).
    Encoded,
}

/// Key characters: brackets and `%` too, so `user[password]` and `user%5Bpassword%5D` are keys.
fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'[' | b']' | b'%')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t')
}

/// Ends an unquoted value.
fn ends_value(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'&' | b',' | b';' | b'"' | b'\'' | b'`')
}

fn is_token68(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')
}

fn run(b: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while i < b.len() && ok(b[i]) {
        i += 1;
    }
    i
}

fn starts_word(b: &[u8], p: usize) -> bool {
    p == 0 || !b[p - 1].is_ascii_alphanumeric()
}

/// The key in front of the separator at `q`: back over spaces, then over up to three closing quotes
/// or backslashes (`"password":`, `\\"password\\":`), then over key characters.
fn key_before(b: &[u8], q: usize) -> Option<(usize, usize)> {
    let mut ke = q;
    while ke > 0 && is_space(b[ke - 1]) {
        ke -= 1;
    }
    let mut quotes = 0;
    while ke > 0 && quotes < 8 && matches!(b[ke - 1], b'"' | b'\'' | b'\\') {
        ke -= 1;
        quotes += 1;
    }
    // A key is at most `MAX_KEY` bytes long (its tail is read): the walk back stays bounded.
    let mut ks = ke;
    while ks > 0 && ke - ks < MAX_KEY && is_key_char(b[ks - 1]) {
        ks -= 1;
    }
    // A key has at least two letters: `10:00:00`, `[1]:` and `a=b` end here cheaply.
    (ke - ks >= 2
        && b[ks..ke]
            .iter()
            .filter(|c| c.is_ascii_alphabetic())
            .take(2)
            .count()
            == 2)
        .then_some((ks, ke))
}

/// Where the value after the separator at `q` starts (`=`, `=>`, `:`, `:=`, `%3D`, then spaces); `None`
/// for `://`, which starts a URL, not a value. A value on the next, indented line (a folded header,
/// a YAML scalar) is the value.
fn value_start(b: &[u8], q: usize, sep: Sep) -> Option<usize> {
    if sep == Sep::Encoded {
        // Encoded spaces (`%20`, `+`) in front of the value are skipped too.
        let mut i = q + 3;
        loop {
            match b.get(i) {
                Some(b' ' | b'\t' | b'+') => i += 1,
                Some(b'%') if b.get(i + 1..i + 3) == Some(b"20") => i += 3,
                _ => return Some(i),
            }
        }
    }
    let mut i = q + 1;
    match b[q] {
        b':' if b.get(i) == Some(&b'/') && b.get(i + 1) == Some(&b'/') => return None,
        b':' if b.get(i) == Some(&b'=') => i += 1,
        b'=' if b.get(i) == Some(&b'>') => i += 1,
        _ => {}
    }
    let v = run(b, i, is_space);
    let nl = match b.get(v) {
        Some(b'\r') if b.get(v + 1) == Some(&b'\n') => v + 2,
        Some(b'\n') => v + 1,
        _ => return Some(v),
    };
    let next = run(b, nl, is_space);
    Some(if next > nl { next } else { v })
}

/// The span of a value starting at `v`: quoted (`"…"`, `'…'`, `` `…` ``, `\"…\"`, `\\\"…\\\"`) or up
/// to the next separator (for `:`, the end of the line); an authorization scheme in front of it is
/// kept (`Bearer ***`). A bracketed value is masked like any other (JSON text is parsed first).
fn value_span(b: &[u8], v: usize, sep: Sep) -> Option<(usize, usize)> {
    let unquoted_end = |from: usize| match sep {
        Sep::Equals => run(b, from, |c| !ends_value(c)),
        Sep::Colon => run(b, from, |c| !matches!(c, b'\r' | b'\n')),
        Sep::Encoded => {
            let mut e = from;
            while e < b.len()
                && !ends_value(b[e])
                && !(b[e] == b'%'
                    && matches!(b.get(e + 1..e + 3), Some(b"26" | b"20" | b"3B" | b"3b")))
            {
                e += 1;
            }
            e
        }
    };
    let (start, end, quoted) = match b.get(v)? {
        // Escaped quotes, as deep as JSON inside JSON inside JSON makes them.
        b'\\' if b.get(run(b, v, |c| c == b'\\')) == Some(&b'"') => {
            let s = run(b, v, |c| c == b'\\') + 1;
            (s, find(b, s, &b[v..s]).unwrap_or(b.len()), true)
        }
        q @ (b'"' | b'\'' | b'`') => {
            let s = v + 1;
            let mut e = s;
            while e < b.len() && !(b[e] == *q && b[e - 1] != b'\\') {
                e += 1;
            }
            (s, e, true)
        }
        _ => (v, unquoted_end(v), false),
    };
    let w = run(b, start, |c| c.is_ascii_alphabetic());
    if w < b.len()
        && is_space(b[w])
        && SCHEMES
            .iter()
            .any(|sc| sc.as_bytes().eq_ignore_ascii_case(&b[start..w]))
    {
        let after = run(b, w, is_space);
        // After `Authorization: Digest` the parameters run to the end of the line, quotes and all.
        let cred_end = match sep {
            Sep::Colon if b[start..w].eq_ignore_ascii_case(b"digest") => {
                run(b, after, |c| !matches!(c, b'\r' | b'\n'))
            }
            _ if quoted => end,
            // A scheme's credential is one token (`Bearer abc" ok`).
            _ => run(b, after, |c| !ends_value(c)),
        };
        if after < cred_end {
            return Some((after, cred_end));
        }
    }
    (start < end).then_some((start, end))
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= b.len() {
        return None;
    }
    b[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

/// `Bearer <credential>` with a credential of at least 8 token68 characters.
fn bearer(b: &[u8], p: usize) -> Option<(usize, usize)> {
    if !starts_word(b, p) {
        return None;
    }
    let i = p + 6;
    let t = run(b, i, is_space);
    if t == i {
        return None;
    }
    let e = run(b, t, is_token68);
    (e - t >= 8).then_some((t, e))
}

/// `Basic <credential>` where the credential is base64 of `user:password`.
fn basic(b: &[u8], p: usize) -> Option<(usize, usize)> {
    if !starts_word(b, p) {
        return None;
    }
    let t = run(b, p + 6, is_space);
    let e = run(b, t, |c| {
        c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
    });
    (e - t >= 8 && base64_has_colon(&b[t..e])).then_some((t, e))
}

/// Whether standard base64 `s` decodes to bytes holding a `:`.
fn base64_has_colon(s: &[u8]) -> bool {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => break,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if (acc >> bits) & 0xff == u32::from(b':') {
                return true;
            }
        }
    }
    false
}

/// `scheme://userinfo@host`: the password after `:` or, without one, the whole userinfo.
fn url_userinfo(b: &[u8], p: usize) -> Option<(usize, usize)> {
    if p == 0 || !b[p - 1].is_ascii_alphanumeric() {
        return None;
    }
    let a = p + 3;
    let e = run(b, a, |c| {
        !(c.is_ascii_whitespace()
            || matches!(c, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\'))
    })
    .min(a + MAX_USERINFO);
    let at = b[a..e].iter().rposition(|&c| c == b'@')? + a;
    match b[a..at].iter().position(|&c| c == b':') {
        Some(c) => Some((a + c + 1, at)),
        None => Some((a, at)),
    }
}

/// `eyJ<header>.<payload>.<signature>` (the signature may be empty: `alg: none`).
fn jwt(b: &[u8], p: usize) -> Option<(usize, usize)> {
    if b.get(p..p + 3)? != b"eyJ" || (p > 0 && is_b64url(b[p - 1])) {
        return None;
    }
    let e1 = run(b, p, is_b64url);
    if e1 - p < 10 || b.get(e1) != Some(&b'.') {
        return None;
    }
    let e2 = run(b, e1 + 1, is_b64url);
    if e2 - e1 < 3 || b.get(e2) != Some(&b'.') {
        return None;
    }
    Some((p, run(b, e2 + 1, is_b64url)))
}

/// The body of a `-----BEGIN … PRIVATE KEY-----` block, up to its `-----END` (or the end of text).
fn pem(text: &str, p: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let label_start = p + "-----BEGIN ".len();
    let close = find(b, label_start, b"-----")?;
    let label = b.get(label_start..close)?;
    if label.len() > 64
        || !label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b' ')
        || !label
            .windows(11)
            .any(|w| w.eq_ignore_ascii_case(b"PRIVATE KEY"))
    {
        return None;
    }
    let body = close + 5;
    let end = find(b, body, b"-----END").unwrap_or(b.len());
    Some((body, end))
}

/// `AKIA`/`ASIA` followed by exactly 16 upper-case letters or digits; the prefix is kept.
fn aws_key_id(b: &[u8], p: usize) -> Option<(usize, usize)> {
    let prefix = b.get(p..p + 4)?;
    if (prefix != b"AKIA" && prefix != b"ASIA") || !starts_word(b, p) {
        return None;
    }
    let e = run(b, p + 4, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
    (e - (p + 4) == 16 && b.get(e).is_none_or(|c| !c.is_ascii_alphanumeric())).then_some((p + 4, e))
}

/// A run of exactly 40 base64 characters starting within [`AWS_WINDOW`] bytes after `aws`.
fn aws_secret(b: &[u8], from: usize, spans: &mut Vec<(usize, usize)>) {
    let is_b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'/' || c == b'+';
    let limit = (from + AWS_WINDOW).min(b.len());
    let mut i = from;
    while i < limit {
        if is_b64(b[i]) && (i == 0 || !(is_b64(b[i - 1]) || b[i - 1] == b'=')) {
            let e = run(b, i, is_b64);
            if e - i == 40
                && b.get(e)
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'='))
            {
                spans.push((i, e));
            }
            i = e;
        } else {
            i += 1;
        }
    }
}

/// `AIza` followed by at least 30 (normally 35) URL-safe characters; the prefix is kept.
fn gcp_key(b: &[u8], p: usize) -> Option<(usize, usize)> {
    if b.get(p..p + 4)? != b"AIza" || !starts_word(b, p) {
        return None;
    }
    let e = run(b, p + 4, is_b64url);
    (e - (p + 4) >= 30).then_some((p + 4, e))
}

/// A GitHub token: the lower-case prefix ending at `pe`, then at least 20 characters; the prefix is kept.
fn github(b: &[u8], p: usize, pe: usize) -> Option<(usize, usize)> {
    if !b[p..pe].iter().all(|c| !c.is_ascii_uppercase()) || !starts_word(b, p) {
        return None;
    }
    let e = run(b, pe, |c| c.is_ascii_alphanumeric() || c == b'_');
    (e - pe >= 20).then_some((pe, e))
}

/// A Slack token `xox?-…`; the `xox?-` prefix is kept.
fn slack(b: &[u8], p: usize) -> Option<(usize, usize)> {
    if b.get(p..p + 3)? != b"xox"
        || !matches!(b.get(p + 3), Some(b'b' | b'p' | b'a' | b'r' | b's'))
        || b.get(p + 4) != Some(&b'-')
        || !starts_word(b, p)
    {
        return None;
    }
    let e = run(b, p + 5, |c| c.is_ascii_alphanumeric() || c == b'-');
    (e - (p + 5) >= 10).then_some((p + 5, e))
}

/// A Slack webhook: `hooks.slack.com/<kind>/` is kept, the path after it masked.
fn slack_hook(b: &[u8], host_end: usize) -> Option<(usize, usize)> {
    if b.get(host_end) != Some(&b'/') {
        return None;
    }
    let kind_end = run(b, host_end + 1, |c| c.is_ascii_alphabetic());
    if b.get(kind_end) != Some(&b'/') {
        return None;
    }
    let s = kind_end + 1;
    let e = run(b, s, |c| {
        c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'/')
    });
    (e - s >= 8).then_some((s, e))
}
