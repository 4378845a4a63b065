//! Python `re` syntax with fail2ban's tags (`<HOST>`, `<F-USER>…</F-USER>`, …) translated to Rust regexes.
//!
//! The `regex` crate is used when the pattern allows it (linear time); look-around, backreferences, atomic
//! groups, possessive quantifiers and conditionals go to `fancy_regex`. Python-only constructs neither crate
//! has are reported by name; nothing is silently dropped. This module knows nothing about files or sections:
//! callers wrap its messages with the file, section and key.

use std::sync::Arc;

/// What a capture group means to fail2ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// An IPv4 address (from `<HOST>`, `<ADDR>`, `<IP4>`, `<SUBNET>`).
    Ip4,
    /// An IPv6 address.
    Ip6,
    /// A host name (the non-address branch of `<HOST>`, or `<DNS>`).
    Dns,
    /// The prefix length of `<SUBNET>`/`<CIDR>`.
    Cidr,
    /// `<F-ID>`: the failure id; an address when it parses as one.
    Fid,
    /// `<F-USER>`.
    User,
    /// `<F-ALT_USER…>`: the user when `<F-USER>` did not match.
    AltUser,
    /// `<F-PORT>`.
    Port,
    /// `<F-CONTENT>` of `prefregex`.
    Content,
    /// `<F-MLFID>`: the multi-line failure id.
    Mlfid,
    /// `<F-NOFAIL>`: the match is not a failure.
    NoFail,
    /// `<F-MLFFORGET>`: the session ends here (its state is forgotten after this line).
    MlfForget,
    /// `<F-MLFGAINED>`: the session gained access (earlier failures of it are not failures).
    MlfGained,
    /// The lines skipped by `<SKIPLINES>`.
    SkipLines,
    /// Any other `<F-NAME>`: a field named after it, lower-cased (owned by the filter, shared with the
    /// failures and parsed lines that carry it).
    Field(Arc<str>),
    /// A group the pattern named itself (`(?P<name>…)`).
    Named,
}

impl Role {
    /// The key fail2ban gives the group's value in a failure (`ip4`, `user`, `fport`, …); `None` for groups
    /// that carry no failure data.
    pub(crate) fn key(&self) -> Option<Key> {
        Some(Key::Known(match self {
            Role::Ip4 => "ip4",
            Role::Ip6 => "ip6",
            Role::Dns => "dns",
            Role::Cidr => "cidr",
            Role::Fid => "fid",
            Role::User => "user",
            Role::AltUser => "alt_user",
            Role::Port => "fport",
            Role::Mlfid => "mlfid",
            Role::Field(name) => return Some(Key::Field(name.clone())),
            Role::Content
            | Role::NoFail
            | Role::MlfForget
            | Role::MlfGained
            | Role::SkipLines
            | Role::Named => return None,
        }))
    }
}

/// A failure value's key: one of fail2ban's own (`ip4`, `user`, `fport`, …) or a field a filter names itself.
#[derive(Debug, Clone, Eq)]
pub(crate) enum Key {
    /// fail2ban's own keys.
    Known(&'static str),
    /// A lower-cased `<F-NAME>`, shared with the filter's [`Role::Field`].
    Field(Arc<str>),
}

impl Key {
    /// The key's text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Key::Known(k) => k,
            Key::Field(k) => k,
        }
    }
}

/// Keys are equal when their text is, whichever kind they are.
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Role {
    /// Whether the group can give the failure's source.
    pub(crate) fn is_host(&self) -> bool {
        matches!(self, Role::Ip4 | Role::Ip6 | Role::Dns | Role::Fid)
    }
}

/// A pattern ready to run.
#[derive(Debug)]
pub(crate) struct Compiled {
    engine: Engine,
    /// Named groups and what they mean, in pattern order.
    pub groups: Vec<(String, Role)>,
    /// The capture index of each of `groups` (aligned), so a match reads its groups without name look-ups.
    index: Vec<Option<usize>>,
}

/// The capture index of each group name.
fn indexes<'a>(
    groups: &[(String, Role)],
    names: impl Iterator<Item = Option<&'a str>>,
) -> Vec<Option<usize>> {
    let names: Vec<Option<&str>> = names.collect();
    groups
        .iter()
        .map(|(g, _)| names.iter().position(|n| *n == Some(g.as_str())))
        .collect()
}

#[derive(Debug)]
enum Engine {
    Fast(regex::Regex),
    /// The backtracking engine, with a linear-time superset to rule lines out first (when it compiles).
    Fancy(Box<fancy_regex::Regex>, Option<regex::Regex>),
}

/// One match: its span and the span of each group of [`Compiled::groups`] (aligned), if it took part.
#[derive(Debug)]
#[allow(dead_code)] // `start`/`end`: the whole match's span, read by no caller at the moment.
pub(crate) struct Hit {
    /// Start of the whole match.
    pub start: usize,
    /// End of the whole match.
    pub end: usize,
    /// Group spans, aligned with [`Compiled::groups`].
    pub spans: Vec<Option<(usize, usize)>>,
}

/// The backtracking engine gave up (catastrophic pattern on this input).
#[derive(Debug)]
pub(crate) struct BacktrackLimit;

impl Compiled {
    /// Searches `text` (Python `re.search`).
    pub(crate) fn find(&self, text: &str) -> Result<Option<Hit>, BacktrackLimit> {
        match &self.engine {
            // Most lines match no failregex: the DFA-only `is_match` answers them without allocating captures.
            Engine::Fast(re) if !re.is_match(text) => Ok(None),
            Engine::Fancy(_, Some(pre)) if !pre.is_match(text) => Ok(None),
            _ => self.find_candidate(text),
        }
    }

    /// The capture step of [`Compiled::find`], without the linear-time check first.
    fn find_candidate(&self, text: &str) -> Result<Option<Hit>, BacktrackLimit> {
        match &self.engine {
            Engine::Fast(re) => Ok(re.captures(text).and_then(|c| {
                let m = c.get(0)?;
                let spans = self
                    .index
                    .iter()
                    .map(|i| i.and_then(|i| c.get(i)).map(|g| (g.start(), g.end())))
                    .collect();
                Some(Hit {
                    start: m.start(),
                    end: m.end(),
                    spans,
                })
            })),
            Engine::Fancy(re, _) => match re.captures(text) {
                Ok(c) => Ok(c.and_then(|c| {
                    let m = c.get(0)?;
                    let spans = self
                        .index
                        .iter()
                        .map(|i| i.and_then(|i| c.get(i)).map(|g| (g.start(), g.end())))
                        .collect();
                    Some(Hit {
                        start: m.start(),
                        end: m.end(),
                        spans,
                    })
                })),
                Err(_) => Err(BacktrackLimit),
            },
        }
    }

    /// The end of the leftmost-first match of a pattern the linear-time engine runs, found without capture
    /// groups (no backtracking engine step): `Some(None)` when it does not match, `None` for a pattern that
    /// needs the backtracking engine.
    pub(crate) fn match_end(&self, text: &str) -> Option<Option<usize>> {
        match &self.engine {
            Engine::Fast(re) => Some(re.find(text).map(|m| m.end())),
            Engine::Fancy(..) => None,
        }
    }

    /// Whether any group has this role.
    pub(crate) fn has(&self, pred: impl Fn(&Role) -> bool) -> bool {
        self.groups.iter().any(|(_, r)| pred(r))
    }

    /// Whether the backtracking engine is used.
    pub(crate) fn is_fancy(&self) -> bool {
        matches!(self.engine, Engine::Fancy(..))
    }
}

/// Translates and compiles a Python/fail2ban regex. The error text names the construct or the compiler's
/// complaint.
#[cfg(test)]
pub(crate) fn compile(py: &str) -> Result<Compiled, String> {
    compile_with(py, &Flavor::default())
}

/// How a pattern is compiled: fail2ban's `usedns = no` (`<HOST>` matches addresses only) and multi-line
/// buffers (`^`/`$` match at every line of the buffer, as Python's `re.MULTILINE`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flavor {
    /// `<HOST>` is `<ADDR>` (no host names).
    pub addr_only: bool,
    /// The pattern runs over a buffer of several lines joined by `\n`.
    pub multiline: bool,
}

/// [`compile`] with a [`Flavor`].
pub(crate) fn compile_with(py: &str, flavor: &Flavor) -> Result<Compiled, String> {
    let mut t = translate_with(py, flavor.addr_only)?;
    if flavor.multiline {
        t.pattern.insert_str(0, "(?m)");
        t.relaxed.insert_str(0, "(?m)");
    }
    if !t.fancy {
        if let Ok(re) = regex::Regex::new(&t.pattern) {
            let index = indexes(&t.groups, re.capture_names());
            return Ok(Compiled {
                engine: Engine::Fast(re),
                groups: t.groups,
                index,
            });
        }
    }
    match fancy_regex::Regex::new(&t.pattern) {
        Ok(re) => Ok(Compiled {
            index: indexes(&t.groups, re.capture_names()),
            engine: Engine::Fancy(Box::new(re), regex::Regex::new(&t.relaxed).ok()),
            groups: t.groups,
        }),
        Err(e) => Err(format!(
            "does not compile ({e}); translated to {:?}",
            t.pattern
        )),
    }
}

/// A Python pattern in Rust syntax.
#[derive(Debug)]
pub(crate) struct Translated {
    /// The Rust pattern.
    pub pattern: String,
    /// A superset of `pattern` in `regex` crate syntax (see `Dual`), for prefiltering backtracking patterns.
    pub relaxed: String,
    /// Whether it needs `fancy_regex`.
    pub fancy: bool,
    /// Named groups and their roles.
    pub groups: Vec<(String, Role)>,
}

const IP4: &str = r"(?:25[0-5]|2[0-4]\d|[01]?\d\d?)(?:\.(?:25[0-5]|2[0-4]\d|[01]?\d\d?)){3}";
// fail2ban's IPv6 pattern ends in `(?<=:):`; without the look-behind the last `:` is accepted alone and the
// parse of the address rejects what is not one.
const IP6: &str = r"(?:[0-9a-fA-F]{1,4}::?|:){1,7}(?:[0-9a-fA-F]{1,4}|:)";
const DNS: &str = r"[\w\-.^_]*\w";
const RUST_META: &str = r"\.+*?()|[]{}^$#&-~";

/// The translated pattern and its relaxed twin: a superset the `regex` crate can run, where look-around becomes
/// optional, conditionals become alternatives and backreferences match anything. A line the relaxed pattern
/// does not match cannot match the real one, so it is a linear-time prefilter for backtracking patterns.
#[derive(Default)]
struct Dual {
    main: String,
    relaxed: String,
}

impl Dual {
    fn push(&mut self, c: char) {
        self.main.push(c);
        self.relaxed.push(c);
    }

    fn push_str(&mut self, s: &str) {
        self.main.push_str(s);
        self.relaxed.push_str(s);
    }

    fn split(&mut self, main: &str, relaxed: &str) {
        self.main.push_str(main);
        self.relaxed.push_str(relaxed);
    }
}

/// Any text, newlines included: what a backreference becomes in the relaxed pattern.
const ANY: &str = "(?s:.*)";

struct Translator<'a> {
    src: &'a str,
    out: Dual,
    /// How each open group closes in the relaxed pattern (`)?` for look-around and conditionals).
    closers: Vec<&'static str>,
    fancy: bool,
    groups: Vec<(String, Role)>,
    /// fail2ban's name of an `<F-…>` group (`user`, `mlfid`, …) → its name in the Rust pattern, for `(?P=user)`.
    tag_names: Vec<(String, String)>,
    addr_only: bool,
}

impl Translator<'_> {
    fn close(&mut self) {
        let closer = self.closers.pop().unwrap_or(")");
        self.out.split(")", closer);
    }

    fn group(&mut self, role: Role) -> String {
        let name = format!("f2b{}", self.groups.len());
        self.groups.push((name.clone(), role));
        name
    }

    fn addr(&mut self, subnet: bool) {
        let v4 = self.group(Role::Ip4);
        let v6 = self.group(Role::Ip6);
        self.out.push_str(&format!(
            r"\[?(?:(?:::f{{4,6}}:)?(?P<{v4}>{IP4})|(?P<{v6}>{IP6}))"
        ));
        if subnet {
            let c = self.group(Role::Cidr);
            self.out.push_str(&format!(r"(?:/(?P<{c}>\d+))?"));
        }
        self.out.push_str(r"\]?");
    }

    fn single(&mut self, role: Role, body: &str) {
        let g = self.group(role);
        self.out.push_str(&format!("(?P<{g}>{body})"));
    }

    /// Handles a `<…>` tag at `rest`; returns the bytes consumed, or 0 when it is not a tag.
    fn tag(&mut self, rest: &str) -> Result<usize, String> {
        let Some(close) = rest.find('>') else {
            return Ok(0);
        };
        let inner = &rest[1..close];
        let len = close + 1;
        let (closing, name, self_closed) = match (inner.strip_prefix('/'), inner.strip_suffix('/'))
        {
            (Some(n), _) => (true, n, false),
            (None, Some(n)) => (false, n, true),
            (None, None) => (false, inner, false),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Ok(0);
        }
        let bare = name.strip_prefix("F-");
        match (bare, closing, self_closed) {
            (None, false, false) => match name {
                "HOST" if self.addr_only => self.addr(false),
                "HOST" => {
                    self.out.push_str("(?:");
                    self.addr(false);
                    self.out.push('|');
                    self.single(Role::Dns, DNS);
                    self.out.push(')');
                }
                "ADDR" => self.addr(false),
                "SUBNET" => self.addr(true),
                "IP4" => self.single(Role::Ip4, IP4),
                "IP6" => self.single(Role::Ip6, IP6),
                "DNS" => self.single(Role::Dns, DNS),
                "CIDR" => self.single(Role::Cidr, r"\d+"),
                "SKIPLINES" => {
                    self.out.push_str(r"\n");
                    let g = self.group(Role::SkipLines);
                    self.out.push_str(&format!(r"(?P<{g}>(?:.*\n)*?)"));
                }
                _ => return Ok(0),
            },
            (Some(tag), false, true) => match tag {
                "ID" => self.single(Role::Fid, r"\S+"),
                "PORT" => self.single(Role::Port, r"\w+"),
                "IP4" => self.single(Role::Ip4, IP4),
                "IP6" => self.single(Role::Ip6, IP6),
                "DNS" => self.single(Role::Dns, DNS),
                "CIDR" => self.single(Role::Cidr, r"\d+"),
                "ADDR" => self.addr(false),
                "SUBNET" => self.addr(true),
                _ => return Err(format!("unknown self-closing tag <F-{tag}/>")),
            },
            (Some(tag), true, false) => {
                // Like fail2ban, a closing tag that was never opened stays literal text.
                if !self
                    .tag_names
                    .iter()
                    .any(|(n, _)| *n == tag.to_ascii_lowercase())
                {
                    return Ok(0);
                }
                self.out.push(')')
            }
            (Some(tag), false, false) => {
                let role = match tag {
                    "ID" => Role::Fid,
                    "USER" => Role::User,
                    "PORT" => Role::Port,
                    "IP4" => Role::Ip4,
                    "IP6" => Role::Ip6,
                    "DNS" => Role::Dns,
                    "CONTENT" => Role::Content,
                    "MLFID" => Role::Mlfid,
                    "NOFAIL" => Role::NoFail,
                    "MLFFORGET" => Role::MlfForget,
                    "MLFGAINED" => Role::MlfGained,
                    t if t == "ALT_USER"
                        || t.strip_prefix("ALT_USER_").is_some_and(|d| {
                            !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
                        }) =>
                    {
                        Role::AltUser
                    }
                    t => Role::Field(Arc::from(t.to_ascii_lowercase())),
                };
                let g = self.group(role);
                self.tag_names.push((tag.to_ascii_lowercase(), g.clone()));
                self.out.push_str(&format!("(?P<{g}>"));
                self.closers.push(")");
            }
            _ => return Ok(0),
        }
        Ok(len)
    }

    /// Handles `(` at `rest`; returns bytes consumed.
    fn open(&mut self, rest: &str) -> Result<usize, String> {
        let Some(after) = rest.strip_prefix("(?") else {
            self.out.push('(');
            self.closers.push(")");
            return Ok(1);
        };
        if let Some(r) = after.strip_prefix("P<") {
            let end = r.find('>').ok_or("unterminated group name (?P<")?;
            let name = &r[..end];
            self.groups.push((name.to_string(), Role::Named));
            self.out.push_str(&format!("(?P<{name}>"));
            self.closers.push(")");
            return Ok(4 + end + 1);
        }
        if let Some(r) = after.strip_prefix("P=") {
            let end = r.find(')').ok_or("unterminated backreference (?P=")?;
            let name = &r[..end];
            // `(?P=user)` refers to the `<F-USER>` group by fail2ban's name for it.
            let target = self
                .tag_names
                .iter()
                .find(|(n, _)| n == name)
                .map_or(name, |(_, g)| g.as_str());
            self.out.split(&format!(r"\k<{target}>"), ANY);
            self.fancy = true;
            return Ok(4 + end + 1);
        }
        if after.starts_with('#') {
            let end = after.find(')').ok_or("unterminated comment (?#")?;
            return Ok(2 + end + 1);
        }
        for look in ["=", "!", "<=", "<!", ">"] {
            if after.starts_with(look) {
                self.out.split(&format!("(?{look}"), "(?:");
                self.closers.push(if look == ">" { ")" } else { ")?" });
                self.fancy = true;
                return Ok(2 + look.len());
            }
        }
        if let Some(r) = after.strip_prefix('(') {
            let end = r.find(')').ok_or("unterminated conditional (?(")?;
            let id = &r[..end];
            if id.bytes().all(|b| b.is_ascii_digit()) {
                self.out.split(&format!("(?({id})"), "(?:");
            } else {
                self.out.split(&format!("(?(<{id}>)"), "(?:");
            }
            self.closers.push(")?");
            self.fancy = true;
            return Ok(3 + end + 1);
        }
        if after.starts_with(':') {
            self.out.push_str("(?:");
            self.closers.push(")");
            return Ok(3);
        }
        // Flags: (?aiLmsux) or (?flags-flags:…)
        let end = after
            .find([')', ':'])
            .ok_or("unterminated group flags (?")?;
        let flags = &after[..end];
        let mut kept = String::new();
        for c in flags.chars() {
            match c {
                'i' | 'm' | 's' | 'x' | '-' => kept.push(c),
                'u' => {}
                'a' => return Err("unsupported construct (?a) (ASCII-only matching)".into()),
                'L' => return Err("unsupported construct (?L) (locale-dependent matching)".into()),
                other => return Err(format!("unknown group flag {other:?} in (?{flags}")),
            }
        }
        let closer = &after[end..end + 1];
        if kept.is_empty() || kept == "-" {
            if closer == ":" {
                self.out.push_str("(?:");
            }
        } else {
            self.out.push_str(&format!("(?{kept}{closer}"));
        }
        if closer == ":" {
            self.closers.push(")");
        }
        Ok(2 + end + 1)
    }

    /// Handles `\` at `rest` (outside or inside a class); returns bytes consumed.
    fn escape(&mut self, rest: &str, in_class: bool) -> Result<usize, String> {
        let mut it = rest.chars();
        it.next();
        let Some(c) = it.next() else {
            return Err("trailing backslash".into());
        };
        let consumed = 1 + c.len_utf8();
        match c {
            '0'..='7' if c == '0' || in_class => {
                let digits: String = rest[1..]
                    .chars()
                    .take_while(|d| ('0'..='7').contains(d))
                    .take(3)
                    .collect();
                let v = u32::from_str_radix(&digits, 8).map_err(|e| e.to_string())?;
                self.out.push_str(&format!(r"\x{{{v:x}}}"));
                return Ok(1 + digits.len());
            }
            '1'..='9' => {
                let digits: String = rest[1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .take(2)
                    .collect();
                self.out.split(&format!("\\{digits}"), ANY);
                self.fancy = true;
                return Ok(1 + digits.len());
            }
            'Z' if !in_class => self.out.push_str(r"\z"),
            'A' | 'B' if !in_class => self.out.push_str(&rest[..2]),
            'b' if in_class => self.out.push_str(r"\x{8}"),
            'b' | 'd' | 'D' | 'w' | 'W' | 's' | 'S' | 'n' | 't' | 'r' | 'f' | 'v' | 'a' | 'x'
            | 'u' | 'U' => self.out.push_str(&rest[..2]),
            'N' => return Err(r"unsupported construct \N{...} (named Unicode character)".into()),
            c if c.is_ascii_alphanumeric() => {
                return Err(format!(r"bad escape \{c} (Python rejects it too)"))
            }
            c if RUST_META.contains(c) => {
                self.out.push('\\');
                self.out.push(c);
            }
            c => self.out.push_str(&format!(r"\x{{{:x}}}", c as u32)),
        }
        Ok(consumed)
    }
}

/// Translates a Python/fail2ban regex to Rust syntax.
#[cfg(test)]
pub(crate) fn translate(py: &str) -> Result<Translated, String> {
    translate_with(py, false)
}

/// [`translate`]; with `addr_only`, `<HOST>` matches addresses only (`usedns = no`).
pub(crate) fn translate_with(py: &str, addr_only: bool) -> Result<Translated, String> {
    let mut t = Translator {
        src: py,
        out: Dual::default(),
        closers: Vec::new(),
        fancy: false,
        groups: Vec::new(),
        tag_names: Vec::new(),
        addr_only,
    };
    let mut i = 0;
    let mut in_class = false;
    let mut class_len = 0usize;
    let mut after_quantifier = false;
    while i < t.src.len() {
        let rest = &t.src[i..];
        let Some(c) = rest.chars().next() else { break };
        let was_quantifier = std::mem::replace(&mut after_quantifier, false);
        if in_class {
            class_len += 1;
            i += match c {
                '\\' => t.escape(rest, true)?,
                ']' if class_len > 1 => {
                    in_class = false;
                    t.out.push(']');
                    1
                }
                '[' | '&' | '~' | ']' => {
                    t.out.push('\\');
                    t.out.push(c);
                    1
                }
                '-' if rest[1..].starts_with('-') => {
                    t.out.push_str(r"\-");
                    1
                }
                c => {
                    t.out.push(c);
                    c.len_utf8()
                }
            };
            if c == '^' && class_len == 1 {
                class_len = 0;
            }
            continue;
        }
        i += match c {
            '\\' => t.escape(rest, false)?,
            '[' => {
                in_class = true;
                class_len = 0;
                t.out.push('[');
                1
            }
            '(' => t.open(rest)?,
            '<' => match t.tag(rest)? {
                0 => {
                    t.out.push('<');
                    1
                }
                n => n,
            },
            '{' => match quantifier(rest) {
                Some((text, n)) => {
                    t.out.push_str(&text);
                    after_quantifier = true;
                    n
                }
                None => {
                    t.out.push_str(r"\{");
                    1
                }
            },
            '}' => {
                t.out.push_str(r"\}");
                1
            }
            '*' | '+' | '?' => {
                if c == '+' && was_quantifier {
                    t.fancy = true; // possessive; the relaxed pattern keeps the plain quantifier
                    t.out.main.push(c);
                } else {
                    after_quantifier = c != '?' || !was_quantifier;
                    t.out.push(c);
                }
                1
            }
            ')' => {
                t.close();
                1
            }
            c => {
                t.out.push(c);
                c.len_utf8()
            }
        };
    }
    if in_class {
        return Err("unterminated character set [".into());
    }
    Ok(Translated {
        relaxed: t.out.relaxed,
        pattern: t.out.main,
        fancy: t.fancy,
        groups: t.groups,
    })
}

/// A `{m}`, `{m,}`, `{m,n}` or `{,n}` quantifier at the start of `rest`, in Rust syntax, and its length.
fn quantifier(rest: &str) -> Option<(String, usize)> {
    let end = rest.find('}')?;
    let body = &rest[1..end];
    let (lo, hi) = match body.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (body, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(lo) || !hi.is_none_or(digits) || (lo.is_empty() && hi.is_none_or(str::is_empty)) {
        return None;
    }
    let lo = if lo.is_empty() { "0" } else { lo };
    let text = match hi {
        Some(hi) => format!("{{{lo},{hi}}}"),
        None => format!("{{{lo}}}"),
    };
    Some((text, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_specifics_translate() {
        assert_eq!(translate(r"a{,3}\Z").unwrap().pattern, r"a{0,3}\z");
        assert_eq!(translate(r"{foo}").unwrap().pattern, r"\{foo\}");
        assert_eq!(translate(r"[[a&&b]").unwrap().pattern, r"[\[a\&\&b]");
        assert_eq!(translate(r"[]a]").unwrap().pattern, r"[\]a]");
        assert_eq!(translate(r"\<x\>").unwrap().pattern, r"\x{3c}x\x{3e}");
        assert_eq!(translate(r"(?u)a(?#c)b").unwrap().pattern, "ab");
        let t = translate(r"(?P<x>a)(?P=x)").unwrap();
        assert!(t.fancy);
        assert_eq!(t.pattern, r"(?P<x>a)\k<x>");
        assert!(translate(r"a++").unwrap().fancy);
        assert!(!translate(r"a+?b*").unwrap().fancy);
    }

    #[test]
    fn tags_become_groups() {
        let c = compile(r"^Failed for <F-USER>\S+</F-USER> from <HOST> port <F-PORT/>$").unwrap();
        assert!(!c.is_fancy());
        let hit = c
            .find("Failed for root from 10.0.0.1 port 22")
            .unwrap()
            .unwrap();
        let ip4 = c.groups.iter().position(|(_, r)| *r == Role::Ip4).unwrap();
        assert_eq!(hit.spans[ip4], Some((21, 29)));
    }

    #[test]
    fn relaxed_pattern_is_a_linear_superset() {
        let t = translate(r"^a(?!b)(?P<x>c)(?(x)d|e)(?P=x)(?<=c)x++$").unwrap();
        assert!(t.fancy);
        assert_eq!(t.relaxed, r"^a(?:b)?(?P<x>c)(?:d|e)?(?s:.*)(?:c)?x+$");
        let c =
            compile(r"^Failed (?:(?!publickey)\S+) for <F-USER>\S+</F-USER> from <HOST>$").unwrap();
        assert!(matches!(&c.engine, Engine::Fancy(_, Some(_))));
        assert!(c
            .find("Failed password for root from 192.0.2.1")
            .unwrap()
            .is_some());
        assert!(c
            .find("Failed publickey for root from 192.0.2.1")
            .unwrap()
            .is_none());
        assert!(c.find("Accepted password for root").unwrap().is_none());
    }

    #[test]
    fn unsupported_constructs_are_named() {
        assert!(compile(r"(?a)x").unwrap_err().contains("(?a)"));
        assert!(compile(r"\N{DIGIT ONE}").unwrap_err().contains(r"\N{"));
        let c = compile(r"^a$<SKIPLINES>^b (?P<u>x)(?P=u)$").unwrap();
        assert!(c.has(|r| *r == Role::SkipLines));
    }
}
