//! One date template: a fail2ban date pattern (directives, `{^LN-BEG}`, `{UNB}`, `**`, `{EPOCH}`) compiled to a
//! regex with fail2ban's anchoring and word-boundary rules, and the search that yields the date's span and time.
//!
//! The rules follow fail2ban 1.0.2's `DateTemplate.setRegex`: a pattern gets a word-begin guard unless it starts
//! with `^` or `**`, a word-end guard unless it ends with `$`, `\b`, `\s` or `**`, and is wrapped in a group when
//! it has no capturing group of its own; group 1 is the span cut from the line. The linear-time `regex` crate
//! runs every template it can; a pattern with back-references or look-around goes to `fancy_regex`.

use super::strptime::{Expander, Field, Fields, Resolve};
use sentinel_core::Timestamp;
use std::sync::Mutex;

/// Word-begin handling of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Begin {
    /// No guard (`{UNB}`, or a pattern that anchors itself).
    None,
    /// The date starts a word (fail2ban's `(?=^|\b|\W)`).
    Word,
    /// The date starts the line, after at most two non-word characters (`{^LN-BEG}`).
    Line,
}

/// A compiled template.
#[derive(Debug)]
pub(super) struct Template {
    engine: Engine,
    /// Capture index → meaning, for the groups that carry a date field.
    fields: Vec<(usize, Field)>,
    /// Capture indexes whose first participating one is the date's span (group 1 for patterns).
    span_groups: Vec<usize>,
    /// Anchored at line begin or end: a match is final (fail2ban's `LINE_BEGIN`/`LINE_END`).
    pub anchored: bool,
    /// The regex text; equal keys are the same template.
    pub key: String,
    /// Reused capture buffer and the last result, so a search allocates nothing and a repeated date is not
    /// parsed again.
    scratch: Mutex<Scratch>,
}

#[derive(Debug)]
struct Scratch {
    locs: regex::CaptureLocations,
    memo: Option<Memo>,
}

/// The last resolved match: its text, what surrounds it, and what it gave.
#[derive(Debug)]
struct Memo {
    key: MemoKey,
    text: String,
    start: usize,
    end: usize,
    ts: Option<Timestamp>,
}

/// What besides the matched text decides the result: the bytes around it (boundary assertions) and the
/// reference time and offset (year inference, zoneless dates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemoKey {
    prev: Option<u8>,
    next: Option<u8>,
    now_ms: i64,
    offset: i32,
}

#[derive(Debug)]
enum Engine {
    Fast(regex::Regex),
    Fancy(Box<fancy_regex::Regex>),
}

/// A template's match on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Match {
    /// Start of the whole match (fail2ban's "distance").
    pub at: usize,
    /// The date's span.
    pub start: usize,
    /// End of the date's span.
    pub end: usize,
}

const WORD_BEGIN_PY: &str = r"(?=^|\b|\W)";
const WORD_END_PY: &str = r"(?=\b|\W|$)";
/// The same guard without look-ahead: false only between two word characters (ASCII word characters: the
/// Unicode tables would multiply the automaton's states).
const WORD_EDGE_RS: &str = r"(?:(?-u:\b{start-half})|(?-u:\b{end-half}))";
const LINE_BEGIN_PY: &str = r"^(?:\W{0,2})?";
const LINE_BEGIN_RS: &str = r"^(?:[^0-9A-Za-z_]{0,2})?";

/// `EPOCH`'s value: ten or eleven digits, optionally with a fraction.
pub(super) const EPOCH_RE: &str = r"[0-9]{10,11}(?-u:\b)(?:\.[0-9]{3,6})?";
/// `LEPOCH`'s value: also milliseconds or microseconds.
pub(super) const LONG_EPOCH_RE: &str = r"[0-9]{10,11}(?:[0-9]{3}(?:\.[0-9]{1,6}|[0-9]{3})?)?";

impl Template {
    /// A date pattern as a filter's `datepattern` line or a default template states it.
    pub(super) fn pattern(pattern: &str, exp: &mut Expander) -> Result<Self, String> {
        let mut begin = Begin::Word;
        let mut end = true;
        let mut p = pattern.trim();
        if let Some(rest) = p.strip_prefix("{UNB}") {
            p = rest;
            begin = Begin::None;
            end = false;
        } else if let Some(rest) = p.strip_prefix("{^LN-BEG}") {
            p = rest;
            begin = Begin::Line;
        }
        let p = unroll_separator_backref(p);
        let expanded = exp.expand(&p)?;
        Self::regex(&expanded.text, begin, end, expanded.alpha)
            .map_err(|e| format!("datepattern {pattern:?}: {e}"))
    }

    /// A pattern containing `{EPOCH}` or `{LEPOCH}` (epoch value inside custom text).
    pub(super) fn epoch_in(pattern: &str) -> Result<Self, String> {
        let mut text = String::from("(");
        let mut rest = pattern;
        while let Some(at) = rest.find('{') {
            text.push_str(&rest[..at]);
            let tail = &rest[at..];
            let upper = tail
                .get(..8)
                .map(str::to_ascii_uppercase)
                .unwrap_or_default();
            if upper.starts_with("{EPOCH}") {
                text.push_str(&format!("(?P<epoch__0>{EPOCH_RE})"));
                rest = &tail[7..];
            } else if upper.starts_with("{LEPOCH}") {
                text.push_str(&format!("(?P<lepoch__0>{LONG_EPOCH_RE})"));
                rest = &tail[8..];
            } else {
                text.push('{');
                rest = &tail[1..];
            }
        }
        text.push_str(rest);
        text.push(')');
        Self::regex(&text, Begin::Word, true, false)
            .map_err(|e| format!("datepattern {pattern:?}: {e}"))
    }

    /// `EPOCH`/`LEPOCH`: at line start, in `[…]` at line start, or in an SELinux `audit(…:serial)`.
    pub(super) fn epoch(long: bool, line_begin: bool) -> Result<Self, String> {
        let (v, name) = if long {
            (LONG_EPOCH_RE, "lepoch")
        } else {
            (EPOCH_RE, "epoch")
        };
        let text = if line_begin {
            format!(
                r"^(?:\[(?P<{name}__0>{v})\]|(?:[^0-9A-Za-z_]{{0,2}})?(?P<{name}__1>{v}){WORD_EDGE_RS})"
            )
        } else {
            format!(
                r"(?:^(?P<{name}__0>{v}){WORD_EDGE_RS}|^\[(?P<{name}__1>{v})\]|(?-u:\b)audit\((?P<{name}__2>{v}):[0-9]+\))"
            )
        };
        Self::build(&text, None, line_begin, true)
    }

    /// `TAI64N` (`@4000000052b1a1f6…`), at line start or anywhere.
    pub(super) fn tai64n(line_begin: bool) -> Result<Self, String> {
        let body = format!(r"(?P<tai__0>@[0-9a-f]{{24}}){WORD_EDGE_RS}");
        let text = if line_begin {
            format!("{LINE_BEGIN_RS}{body}")
        } else {
            body
        };
        Self::build(&text, None, line_begin, true)
    }

    /// fail2ban's `setRegex`: guards, the implicit group, `**` removal, global flags.
    fn regex(regex: &str, begin: Begin, end: bool, alpha: bool) -> Result<Self, String> {
        let mut regex = regex.trim().to_string();
        let mut flags = String::new();
        if alpha {
            flags.push('i');
        }
        if let Some((at, len, f)) = global_flags(&regex) {
            flags.push_str(f);
            regex.replace_range(at..at + len, "");
        }
        let bound_begin = begin != Begin::None && !no_word_bound_begin(&regex);
        let bound_end = end && !no_word_bound_end(&regex);
        if !has_plain_group(&regex) {
            regex = wrap_in_group(&regex);
        }
        let (mut py, mut rs) = (String::new(), String::new());
        if bound_begin {
            match begin {
                Begin::Line => {
                    py.push_str(LINE_BEGIN_PY);
                    rs.push_str(LINE_BEGIN_RS);
                }
                _ => {
                    py.push_str(WORD_BEGIN_PY);
                    rs.push_str(WORD_EDGE_RS);
                }
            }
        }
        py.push_str(&regex);
        rs.push_str(&regex);
        if bound_end {
            py.push_str(WORD_END_PY);
            rs.push_str(WORD_EDGE_RS);
        }
        let anchored =
            (bound_begin && begin == Begin::Line) || line_bound_begin(&py) || line_bound_end(&py);
        let (py, rs) = (remove_star_bounds(&py), remove_star_bounds(&rs));
        let flags: String = flags
            .chars()
            .filter(|c| matches!(c, 'i' | 'm' | 's' | 'x'))
            .collect();
        let prefix = if flags.is_empty() {
            String::new()
        } else {
            format!("(?{flags})")
        };
        Self::build(
            &format!("{prefix}{rs}"),
            Some(&format!("{prefix}{py}")),
            anchored,
            false,
        )
    }

    /// Compiles `rs` with the linear-time engine, or `py` (Python look-around syntax) with the backtracking one.
    fn build(
        rs: &str,
        py: Option<&str>,
        anchored: bool,
        value_spans: bool,
    ) -> Result<Self, String> {
        let (engine, names): (Engine, Vec<Option<String>>) = match regex::Regex::new(rs) {
            Ok(re) => {
                let names = re.capture_names().map(|n| n.map(str::to_string)).collect();
                (Engine::Fast(re), names)
            }
            Err(fast_err) => {
                let py = py.unwrap_or(rs).replace(r"\Z", r"\z");
                let re = fancy_regex::Regex::new(&py).map_err(|e| match fast_err {
                    regex::Error::Syntax(_) => format!("not a valid regex: {e}"),
                    other => format!("{other}"),
                })?;
                let names = re.capture_names().map(|n| n.map(str::to_string)).collect();
                (Engine::Fancy(Box::new(re)), names)
            }
        };
        let fields: Vec<(usize, Field)> = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((i, Field::from_group_name(n.as_deref()?)?)))
            .collect();
        let span_groups = if value_spans {
            fields
                .iter()
                .filter(|(_, f)| matches!(f, Field::Epoch | Field::LongEpoch | Field::Tai64n))
                .map(|(i, _)| *i)
                .collect()
        } else {
            vec![1]
        };
        if names.len() < 2 {
            return Err("the date pattern has no group".into());
        }
        let locs = match &engine {
            Engine::Fast(re) => re.capture_locations(),
            // Unused by the backtracking engine; any empty buffer will do.
            Engine::Fancy(_) => regex::Regex::new("")
                .map_err(|e| e.to_string())?
                .capture_locations(),
        };
        Ok(Self {
            engine,
            fields,
            span_groups,
            anchored,
            key: rs.to_string(),
            scratch: Mutex::new(Scratch { locs, memo: None }),
        })
    }

    /// Where the template matches in `line` (the whole match), without resolving groups: the fast engine
    /// runs its DFA only.
    pub(super) fn locate(&self, line: &str) -> Option<(usize, usize)> {
        match &self.engine {
            Engine::Fast(re) => re.find(line).map(|m| (m.start(), m.end())),
            Engine::Fancy(re) => re.find(line).ok()?.map(|m| (m.start(), m.end())),
        }
    }

    /// The date's span and time for a match `whole` that [`Template::locate`] found. Consecutive lines often
    /// carry the same date text: then the previous result is reused instead of running the capture engine.
    pub(super) fn resolve(
        &self,
        line: &str,
        whole: (usize, usize),
        r: Resolve,
    ) -> (Match, Option<Timestamp>) {
        let (at, end) = whole;
        let bytes = line.as_bytes();
        let key = MemoKey {
            prev: at.checked_sub(1).and_then(|i| bytes.get(i)).copied(),
            next: bytes.get(end).copied(),
            now_ms: r.now_ms,
            offset: r.default_offset,
        };
        let text = &line[at..end];
        // An uncontended lock reuses the buffers; another thread holding it works without them.
        let mut guard = self.scratch.try_lock().ok();
        // The backtracking engine's look-around may reach further than one byte: no reuse there.
        let reuse = matches!(self.engine, Engine::Fast(_));
        if let Some(memo) = guard
            .as_ref()
            .filter(|_| reuse)
            .and_then(|g| g.memo.as_ref())
        {
            if memo.key == key && memo.text == text {
                let m = Match {
                    at,
                    start: at + memo.start,
                    end: at + memo.end,
                };
                return (m, memo.ts);
            }
        }
        let (m, ts) = match &self.engine {
            Engine::Fast(re) => {
                let mut fresh = None;
                let locs = match guard.as_mut() {
                    Some(g) => &mut g.locs,
                    None => fresh.insert(re.capture_locations()),
                };
                match re.captures_read_at(locs, line, at) {
                    Some(_) => self.finish(at, |i| locs.get(i), line, r),
                    None => (Match { at, start: at, end }, None),
                }
            }
            Engine::Fancy(re) => match re.captures_from_pos(line, at) {
                Ok(Some(caps)) => {
                    self.finish(at, |i| caps.get(i).map(|m| (m.start(), m.end())), line, r)
                }
                _ => (Match { at, start: at, end }, None),
            },
        };
        if let Some(g) = guard.as_mut() {
            let memo = g.memo.get_or_insert_with(|| Memo {
                key,
                text: String::new(),
                start: 0,
                end: 0,
                ts: None,
            });
            memo.key = key;
            memo.text.clear();
            memo.text.push_str(text);
            memo.start = m.start - at;
            memo.end = m.end - at;
            memo.ts = ts;
        }
        (m, ts)
    }

    fn finish(
        &self,
        at: usize,
        group: impl Fn(usize) -> Option<(usize, usize)>,
        line: &str,
        r: Resolve,
    ) -> (Match, Option<Timestamp>) {
        let (start, end) = self
            .span_groups
            .iter()
            .find_map(|&i| group(i))
            .unwrap_or((at, at));
        let mut fields = Fields::default();
        for &(i, f) in &self.fields {
            if let Some(v) = group(i).and_then(|(s, e)| line.get(s..e)) {
                fields.set(f, v);
            }
        }
        // An empty span (`{NONE}`, `^WARNING:()**`): the line has no date of its own.
        let ts = if start == end {
            None
        } else {
            fields.resolve(r)
        };
        (Match { at, start, end }, ts)
    }
}

/// fail2ban's separator trick, `(?P<_sep>[-/.])…(?P=_sep)`, unrolled into alternatives so the linear-time engine
/// can run it: `(?:-…-|/…/|\.….)`. Left as is (for the backtracking engine) when the shape differs.
fn unroll_separator_backref(p: &str) -> String {
    let Some(open) = p.find("(?P<") else {
        return p.to_string();
    };
    let after = &p[open + 4..];
    let Some(name_end) = after.find(">[") else {
        return p.to_string();
    };
    let name = &after[..name_end];
    let class_start = open + 4 + name_end + 2;
    let Some(class_len) = p[class_start..].find("])") else {
        return p.to_string();
    };
    let class = &p[class_start..class_start + class_len];
    let body_start = class_start + class_len + 2;
    let backref = format!("(?P={name})");
    let Some(body_len) = p[body_start..].find(&backref) else {
        return p.to_string();
    };
    let body = &p[body_start..body_start + body_len];
    let simple_class = !class.is_empty()
        && class.chars().all(|c| !matches!(c, '\\' | '^' | '[' | ']'))
        && !class.trim_matches('-').contains('-');
    if !simple_class || !balanced(body) || body.contains(&format!("(?P={name})")) {
        return p.to_string();
    }
    let alts: Vec<String> = class
        .chars()
        .map(|c| {
            let lit = regex::escape(&c.to_string());
            format!("{lit}{body}{lit}")
        })
        .collect();
    format!(
        "{}(?:{}){}",
        &p[..open],
        alts.join("|"),
        unroll_separator_backref(&p[body_start + body_len + backref.len()..])
    )
}

fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    let mut escaped = false;
    for c in s.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '(') => depth += 1,
            (false, ')') => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// The first inline global flag group `(?aiLmsux)`: position, length, letters.
fn global_flags(s: &str) -> Option<(usize, usize, &str)> {
    let mut from = 0;
    while let Some(i) = s[from..].find("(?") {
        let at = from + i;
        let rest = &s[at + 2..];
        let n = rest.chars().take_while(char::is_ascii_lowercase).count();
        if n > 0 && rest[n..].starts_with(')') {
            return Some((at, n + 3, &rest[..n]));
        }
        from = at + 2;
    }
    None
}

/// A plain capturing group: an unescaped `(` not followed by `?` (and not a conditional's `(?(`).
fn has_plain_group(s: &str) -> bool {
    let b = s.as_bytes();
    let mut escaped = false;
    for (i, &c) in b.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            b'\\' => escaped = true,
            b'(' if b.get(i + 1) != Some(&b'?') && !(i >= 2 && &b[i - 2..i] == b"(?") => {
                return true
            }
            _ => {}
        }
    }
    false
}

/// Leading flag groups and `^` stay outside; a trailing `$` too.
fn wrap_in_group(s: &str) -> String {
    let mut head = 0;
    let flag_len = |from: usize| {
        global_flags(&s[from..])
            .filter(|(at, _, _)| *at == 0)
            .map(|(_, l, _)| l)
    };
    if let Some(l) = flag_len(head) {
        head += l;
    }
    if s[head..].starts_with('^') {
        head += 1;
    }
    if let Some(l) = flag_len(head) {
        head += l;
    }
    let body = &s[head..];
    let (body, tail) = match body.strip_suffix('$') {
        Some(b) if !b.ends_with('\\') => (b, "$"),
        _ => (body, ""),
    };
    format!("{}({body}){tail}", &s[..head])
}

fn skip_flag(s: &str) -> &str {
    match global_flags(s) {
        Some((0, len, _)) => &s[len..],
        _ => s,
    }
}

/// `^`, `(^`, `(?:^` or `**` at the start: no word-begin guard.
fn no_word_bound_begin(s: &str) -> bool {
    let parens = s.len() - s.trim_start_matches('(').len();
    (0..=parens).any(|k| {
        let t = skip_flag(&s[k..]);
        t.starts_with('^')
            || t.trim_start_matches('(').starts_with("**")
            || t.starts_with("(^")
            || t.starts_with("(?:^")
    })
}

/// `$`, `$)`, `\b`, `\s` or `**` (then closing parens) at the end: no word-end guard.
fn no_word_bound_end(s: &str) -> bool {
    let t = s.trim_end_matches(')');
    if t.ends_with("**") {
        return !t.ends_with("\\**");
    }
    let unescaped = |suffix: &str| {
        s.strip_suffix(suffix)
            .is_some_and(|head| !head.ends_with('\\'))
    };
    unescaped("$") || unescaped("$)") || unescaped(r"\b") || unescaped(r"\s")
}

fn line_bound_begin(s: &str) -> bool {
    let s = skip_flag(s);
    s.starts_with('^')
        || ((s.starts_with("(^") || s.starts_with("(?:^"))
            && !s
                .trim_start_matches("(?:")
                .trim_start_matches('(')
                .starts_with("^|"))
}

fn line_bound_end(s: &str) -> bool {
    let t = s.strip_suffix(')').unwrap_or(s);
    t.ends_with('$') && !t.ends_with("\\$") && !t.ends_with("|$")
}

/// Drops the `**` markers at the pattern's ends.
fn remove_star_bounds(s: &str) -> String {
    let mut out = s.to_string();
    let lead = out.len() - out.trim_start_matches('(').len();
    let after_parens = &out[lead..];
    let flag = match global_flags(after_parens) {
        Some((0, l, _)) => l,
        _ => 0,
    };
    let more = after_parens[flag..].len() - after_parens[flag..].trim_start_matches('(').len();
    let at = lead + flag + more;
    if out[at..].starts_with("**") {
        out.replace_range(at..at + 2, "");
    }
    let trimmed = out.trim_end_matches(')').len();
    if out[..trimmed].ends_with("**") && !out[..trimmed].ends_with("\\**") {
        out.replace_range(trimmed - 2..trimmed, "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_unrolled() {
        assert_eq!(
            unroll_separator_backref("%Y(?P<_sep>[-/.])%m(?P=_sep)%d"),
            r"%Y(?:\-%m\-|/%m/|\.%m\.)%d"
        );
        // Not a simple shape: left for the backtracking engine.
        assert_eq!(
            unroll_separator_backref("(?P<x>a|b)(?P=x)"),
            "(?P<x>a|b)(?P=x)"
        );
    }

    #[test]
    fn guards_follow_fail2ban() {
        assert!(no_word_bound_begin("^abc"));
        assert!(no_word_bound_begin("(?:^abc)"));
        assert!(no_word_bound_begin("(**abc"));
        assert!(!no_word_bound_begin("abc"));
        assert!(no_word_bound_end(r"abc\s"));
        assert!(no_word_bound_end("I\\(()**"));
        assert!(!no_word_bound_end("abc)"));
        assert_eq!(remove_star_bounds(r"^I\(()**"), r"^I\(()");
        assert_eq!(wrap_in_group("(?i)^abc$"), "(?i)^(abc)$");
        assert!(has_plain_group(r"^[^\[]*\[(x)"));
        assert!(!has_plain_group(r"(?P<Y>\d)(?:x)\("));
    }

    #[test]
    fn bad_patterns_are_errors_not_panics() {
        let mut e = Expander::new(2026);
        for bad in ["(", "%H:%M:%S)", "[", "%Y(?P<a>x", "%"] {
            assert!(Template::pattern(bad, &mut e).is_err(), "{bad}");
        }
    }
}
