//! fail2ban filter files (`filter.d/*.conf`) as line parsers, so users bring the filters they already have.
//!
//! [`Fail2banFilter::load`] reads a filter the way fail2ban 1.0.2 does (`[INCLUDES]`, `.local` overrides,
//! `[DEFAULT]`/`[Definition]`/`[Init]` precedence, caller variables such as `mode` and `logtype`, `%(name)s`,
//! `%(sec/opt)s`, `<tag>`, `<sec/opt>` and `known/` references), translates its Python regexes to Rust (the
//! linear-time `regex` crate when possible, `fancy_regex` for look-around and backreferences) and reports
//! anything it cannot honour, including a tag left unresolved, as a [`FilterError`] naming file, section and key.
//! Parsing a line finds and cuts its date, applies `prefregex`, the failregexes and the ignoreregexes, keeps
//! fail2ban's multi-line state (a `maxlines` buffer with `<SKIPLINES>`, `<F-MLFID>` sessions) inside the filter,
//! and never resolves a host name: a `<HOST>` that is not an address makes the line `Malformed`.

mod build;
mod config;
pub mod date;
mod error;
mod ini;
mod jail;
mod pyregex;
mod session;

pub use error::FilterError;
pub use jail::{
    read_jails, str2seconds, Backend, BanIncrement, BanTime, Jail, JailFilter, JailProblem, JailSet,
};

use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use pyregex::{Compiled, Hit, Key, Role};
use sentinel_core::Timestamp;
use session::{Failure, Sessions};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Caller-supplied filter parameters, as in a jail's `filter = sshd[mode=aggressive, key=value]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOptions {
    /// The filter's `mode` (`normal`, `aggressive`, `ddos`, `extra` for sshd); `None` keeps the file's.
    pub mode: Option<String>,
    /// Further variables; they override `[Init]` and `[Definition]` values of the same name.
    pub vars: Vec<(String, String)>,
}

/// A loaded fail2ban filter: a [`LineParser`] whose matches are [`LogKind::RuleMatch`].
///
/// Multi-line filters keep their state (line buffer, sessions) behind a mutex, so one filter serves one
/// stream of lines in order; give each log its own filter.
#[derive(Debug)]
pub struct Fail2banFilter {
    name: String,
    parts: build::Parts,
    state: Mutex<State>,
    /// The time of the last line that had one (unix ms; `i64::MIN`: none yet), for lines without a date.
    last_date: AtomicI64,
}

/// Multi-line state.
#[derive(Debug, Default)]
struct State {
    /// The last `maxlines` lines: (the line as read, the line without its date).
    buffer: VecDeque<(String, String)>,
    /// Lines dropped from the buffer early because it held more than [`MAX_BUFFER_BYTES`].
    buffer_trimmed: u64,
    sessions: Sessions,
}

/// The most bytes (lines as read plus without their dates) a `maxlines` buffer holds.
const MAX_BUFFER_BYTES: usize = 256 * 1024;

/// Counters of a filter's multi-line state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// `<F-MLFID>` sessions live now.
    pub live: usize,
    /// Sessions evicted because the cap was reached.
    pub evicted: u64,
    /// Sessions forgotten after 5 minutes (log time) without a line.
    pub expired: u64,
    /// Lines that matched a failregex before their session's host was known (held as pending failures).
    pub pending: u64,
    /// User names not remembered because their session already had many (see the session cap).
    pub users_dropped: u64,
    /// Lines dropped from the `maxlines` buffer before their turn because it was over its byte budget.
    pub buffer_trimmed: u64,
}

impl Fail2banFilter {
    /// Loads `path` (e.g. `/etc/fail2ban/filter.d/sshd.conf`) with its includes and overrides. The filter's
    /// name is the file stem.
    pub fn load(path: &Path, opts: &FilterOptions) -> Result<Self, FilterError> {
        let cfg = config::Config::load(path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self::new(name, build::build(&cfg, opts)?))
    }

    fn new(name: String, parts: build::Parts) -> Self {
        Self {
            name,
            parts,
            state: Mutex::new(State::default()),
            last_date: AtomicI64::new(i64::MIN),
        }
    }

    /// Loads a filter from text, as if it were `include_dir/name.conf`: includes resolve in `include_dir`
    /// and `include_dir/name.local` is read when present. Without a directory, includes other than optional
    /// `.local` files are errors. Uses default [`FilterOptions`]; see [`Fail2banFilter::from_str_with`].
    pub fn from_str(
        name: &str,
        text: &str,
        include_dir: Option<&Path>,
    ) -> Result<Self, FilterError> {
        Self::from_str_with(name, text, include_dir, &FilterOptions::default())
    }

    /// [`Fail2banFilter::from_str`] with options (`mode`, variables).
    pub fn from_str_with(
        name: &str,
        text: &str,
        include_dir: Option<&Path>,
        opts: &FilterOptions,
    ) -> Result<Self, FilterError> {
        let cfg = config::Config::from_text(name, text, include_dir)?;
        Ok(Self::new(name.to_string(), build::build(&cfg, opts)?))
    }

    /// How many failregexes the filter has (after `mode` selection).
    pub fn failregex_count(&self) -> usize {
        self.parts.failregex.len()
    }

    /// How many failregexes need the backtracking engine (look-around, backreferences, …).
    pub fn backtracking_count(&self) -> usize {
        self.parts.failregex.iter().filter(|f| f.is_fancy()).count()
    }

    /// The filter's `journalmatch`, one expression per entry (`_SYSTEMD_UNIT=sshd.service + _COMM=sshd`):
    /// what a journald source should read for it. Empty when the filter names none.
    pub fn journalmatch(&self) -> &[String] {
        &self.parts.journalmatch
    }

    /// How many lines multi-line failregexes see at once (`maxlines`; 1 for single-line filters).
    pub fn maxlines(&self) -> usize {
        self.parts.maxlines
    }

    /// Whether the filter correlates lines of one session (`<F-MLFID>`).
    pub fn correlates_sessions(&self) -> bool {
        self.parts.mlfid
    }

    /// Counters of the multi-line session state.
    pub fn session_stats(&self) -> SessionStats {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        SessionStats {
            live: st.sessions.len(),
            evicted: st.sessions.evicted,
            expired: st.sessions.expired,
            pending: st.sessions.pending,
            users_dropped: st.sessions.users_dropped,
            buffer_trimmed: st.buffer_trimmed,
        }
    }

    fn stateful(&self) -> bool {
        self.parts.maxlines > 1 || self.parts.mlfid
    }
}

impl LineParser for Fail2banFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let found = self.parts.dates.find(line, ctx);
        let ts = match found.as_ref().and_then(|f| f.ts) {
            Some(ts) => {
                self.last_date.store(ts.as_millis(), Ordering::Relaxed);
                Some(ts)
            }
            // No date (or an optional one left empty): fail2ban takes the last line's when it is recent.
            None => {
                let last = self.last_date.load(Ordering::Relaxed);
                (last != i64::MIN && last > ctx.reference.as_millis().saturating_sub(60_000))
                    .then(|| Timestamp::from_millis(last))
            }
        };
        let Some(f) = found.filter(|f| f.start < f.end) else {
            return self.run(line, line, ts);
        };
        // The line without its date, built in a per-thread buffer (no allocation per line once warm).
        SCRATCH.with(|scratch| {
            let Ok(mut text) = scratch.try_borrow_mut() else {
                let text = format!("{}{}", &line[..f.start], &line[f.end..]);
                return self.run(line, &text, ts);
            };
            text.clear();
            text.push_str(&line[..f.start]);
            text.push_str(&line[f.end..]);
            let r = self.run(line, &text, ts);
            if text.capacity() > 64 * 1024 {
                *text = String::new();
            }
            r
        })
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Lines of a multi-line buffer, split by a match.
struct Split {
    matched: Vec<usize>,
    unmatched: Vec<usize>,
}

impl Fail2banFilter {
    fn run(&self, line: &str, text: &str, ts: Option<Timestamp>) -> Result<Parsed, Unparsed> {
        if !self.stateful() {
            return self.find_failure(line, text, ts, None);
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.find_failure(line, text, ts, Some(&mut st))
    }

    /// fail2ban's `findFailure` for one line (`text` is the line without its date).
    fn find_failure(
        &self,
        line: &str,
        text: &str,
        ts: Option<Timestamp>,
        mut state: Option<&mut State>,
    ) -> Result<Parsed, Unparsed> {
        let p = &self.parts;
        let buffered = p.maxlines > 1;
        let mut buf: Cow<'_, str> = Cow::Borrowed(text);
        if let (true, Some(st)) = (buffered, state.as_deref_mut()) {
            st.buffer.push_back((line.to_string(), text.to_string()));
            while st.buffer.len() > p.maxlines {
                st.buffer.pop_front();
            }
            // Long lines cannot make the buffer (and the text searched per line) grow to `maxlines` × the
            // line cap: past a byte budget the oldest lines go, counted.
            let mut bytes: usize = st.buffer.iter().map(|(l, t)| l.len() + t.len()).sum();
            while st.buffer.len() > 1 && bytes > MAX_BUFFER_BYTES {
                if let Some((l, t)) = st.buffer.pop_front() {
                    bytes -= l.len() + t.len();
                    st.buffer_trimmed += 1;
                }
            }
            buf = Cow::Owned(joined(&st.buffer));
        }
        // A few ignoreregexes against many failregexes are checked first, as fail2ban does.
        if !p.ignoreregex.is_empty() && p.ignoreregex.len() + 2 < p.failregex.len() {
            for ig in &p.ignoreregex {
                if let Some(hit) = ig.find(&buf).map_err(|_| backtrack())? {
                    if let (true, Some(st)) = (buffered, state.as_deref_mut()) {
                        let split = split(&buf, &hit, ig, st.buffer.len());
                        keep_lines(&mut st.buffer, &split.unmatched);
                    }
                    return Err(Unparsed::Ignored);
                }
            }
        }
        let mut pre: Failure = Failure::default();
        let mut pre_hit: Option<(&Compiled, Hit)> = None;
        let mut content = (0, buf.len());
        let mut pre_nofail = false;
        let mut pre_forget = false;
        let mut pre_gained = false;
        // The prefregex's own groups are needed only when a failregex matches: with a `pref_head`, a DFA finds
        // where the content starts and the capture step waits for a failregex hit (`lazy_pre`).
        let head_end = match (&p.pref_head, buffered) {
            (Some(head), false) if !buf.contains('\n') => head.match_end(&buf),
            _ => None,
        };
        let mut lazy_pre = None;
        match (head_end, &p.prefregex) {
            (Some(None), Some(_)) => return Err(Unparsed::NoMatch),
            // HEAD's leftmost-first match leaves text for `.+$`: the whole prefregex takes the same path.
            (Some(Some(end)), Some(_)) if end < buf.len() => {
                content = (end, buf.len());
                lazy_pre = p.pref_head.as_ref();
            }
            _ => {}
        }
        if let (None, Some(prefregex)) = (lazy_pre, &p.prefregex) {
            let hit = prefregex
                .find(&buf)
                .map_err(|_| backtrack())?
                .ok_or(Unparsed::NoMatch)?;
            pre_nofail = flag(prefregex, &hit, Role::NoFail);
            pre_forget = flag(prefregex, &hit, Role::MlfForget);
            pre_gained = flag(prefregex, &hit, Role::MlfGained);
            let span = span_of(prefregex, &hit, Role::Content).filter(|(a, b)| a < b);
            match (span, buffered, state.as_deref_mut()) {
                (Some((a, b)), true, Some(st)) => {
                    collect(prefregex, &hit, &buf, &mut pre.groups);
                    let owned = buf[a..b].to_string();
                    st.buffer.clear();
                    st.buffer.push_back((owned.clone(), owned.clone()));
                    buf = Cow::Owned(format!("{owned}\n"));
                    content = (0, buf.len());
                }
                (Some(range), _, _) => {
                    content = range;
                    pre_hit = Some((prefregex, hit));
                }
                (None, _, _) => pre_hit = Some((prefregex, hit)),
            }
        }
        let whole = buf.as_ref();
        let buf = &whole[content.0..content.1];
        for (index, fail) in p.failregex.iter().enumerate() {
            let Some(hit) = fail.find(buf).map_err(|_| backtrack())? else {
                continue;
            };
            // HEAD takes the path the whole prefregex takes, so its groups are the prefregex's (but the content).
            if let Some(prefregex) = lazy_pre.take() {
                let ph = prefregex
                    .find(whole)
                    .map_err(|_| backtrack())?
                    .ok_or(Unparsed::NoMatch)?;
                pre_nofail = flag(prefregex, &ph, Role::NoFail);
                pre_forget = flag(prefregex, &ph, Role::MlfForget);
                pre_gained = flag(prefregex, &ph, Role::MlfGained);
                pre_hit = Some((prefregex, ph));
            }
            let mut lines = 1;
            let mut context = None;
            if let (true, Some(st)) = (buffered, state.as_deref_mut()) {
                let split = split(buf, &hit, fail, st.buffer.len());
                lines = split.matched.len().max(1);
                if !p.ignoreregex.is_empty() {
                    let matched: VecDeque<(String, String)> = split
                        .matched
                        .iter()
                        .filter_map(|i| st.buffer.get(*i).cloned())
                        .collect();
                    let mbuf = joined(&matched);
                    for ig in &p.ignoreregex {
                        if let Some(ih) = ig.find(&mbuf).map_err(|_| backtrack())? {
                            let isplit = split_lines(&mbuf, &ih, ig, matched.len());
                            st.buffer = isplit
                                .unmatched
                                .iter()
                                .filter_map(|i| matched.get(*i).cloned())
                                .collect();
                            return Err(Unparsed::Ignored);
                        }
                    }
                }
                let earlier: Vec<&str> = split
                    .matched
                    .iter()
                    .filter_map(|i| st.buffer.get(*i).map(|(full, _)| full.as_str()))
                    .filter(|l| *l != line)
                    .collect();
                if !earlier.is_empty() {
                    context = Some(earlier.join("\n"));
                }
                keep_lines(&mut st.buffer, &split.unmatched);
            } else {
                for ig in &p.ignoreregex {
                    if ig.find(buf).map_err(|_| backtrack())?.is_some() {
                        return Err(Unparsed::Ignored);
                    }
                }
            }
            let mut cur = Failure {
                groups: pre.groups.clone(),
                ..Default::default()
            };
            if let Some((pc, ph)) = &pre_hit {
                collect(pc, ph, whole, &mut cur.groups);
            }
            collect(fail, &hit, buf, &mut cur.groups);
            // `<F-ALT_USER>` stands in for a user the failregex did not capture.
            if cur.get("user").is_none_or(str::is_empty) {
                if let Some(alt) = cur.get("alt_user").filter(|a| !a.is_empty()) {
                    let alt = alt.to_string();
                    cur.groups.push((Key::Known("user"), alt));
                }
            }
            cur.nofail = pre_nofail || flag(fail, &hit, Role::NoFail);
            cur.gained = pre_gained || flag(fail, &hit, Role::MlfGained);
            let forget = pre_forget || flag(fail, &hit, Role::MlfForget);
            let mlfid = cur.get("mlfid").map(str::to_string);
            let session = match (&mlfid, state.as_deref_mut()) {
                (Some(id), Some(st)) => {
                    let merged = st.sessions.merge(id, cur, forget, lines, ts);
                    Some((id.as_str(), st, merged))
                }
                _ => {
                    cur.matches = lines;
                    if cur.nofail {
                        return Err(Unparsed::Ignored);
                    }
                    return report(self, cur, index, ts, context);
                }
            };
            let Some((id, st, merged)) = session else {
                return Err(Unparsed::NoMatch);
            };
            let mut f = merged.failure;
            if f.nofail {
                if merged.keep {
                    st.sessions.put(id, f, ts);
                }
                return Err(Unparsed::Ignored);
            }
            let has_host = ["ip4", "ip6", "dns", "fid"]
                .iter()
                .any(|k| f.get(k).is_some());
            if !has_host {
                // A failure before the session's host is known: pending until a line gives it.
                f.pending = true;
                st.sessions.pending += 1;
                if merged.keep {
                    st.sessions.put(id, f, ts);
                }
                return Err(Unparsed::Ignored);
            }
            if merged.keep {
                st.sessions.put(id, f.clone(), ts);
            }
            return report(self, f, index, ts, context);
        }
        Err(Unparsed::NoMatch)
    }
}

fn backtrack() -> Unparsed {
    Unparsed::Malformed("regex_backtrack_limit")
}

/// The buffer as fail2ban searches it: the lines without their dates, each ended by `\n`.
fn joined(buffer: &VecDeque<(String, String)>) -> String {
    let mut s = String::with_capacity(buffer.iter().map(|(_, t)| t.len() + 1).sum());
    for (_, t) in buffer {
        s.push_str(t);
        s.push('\n');
    }
    s
}

fn keep_lines(buffer: &mut VecDeque<(String, String)>, keep: &[usize]) {
    let old = std::mem::take(buffer);
    *buffer = old
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, l)| l)
        .collect();
}

fn split(buf: &str, hit: &Hit, c: &Compiled, n: usize) -> Split {
    split_lines(buf, hit, c, n)
}

/// Which of the `n` buffered lines a match spans (less the lines `<SKIPLINES>` stepped over) and which it
/// leaves for later matches.
fn split_lines(buf: &str, hit: &Hit, c: &Compiled, n: usize) -> Split {
    let upto_start = (hit.start + 1).min(buf.len());
    let line_start = buf[..upto_start].rfind('\n').map_or(0, |i| i + 1);
    let from_end = hit.end.saturating_sub(1).min(buf.len());
    let line_end = buf[from_end..]
        .find('\n')
        .map_or(buf.len(), |i| from_end + i + 1);
    let first = buf[..line_start].matches('\n').count().min(n);
    let last = buf[..line_end].matches('\n').count().clamp(first, n);
    let lines: Vec<&str> = buf.split('\n').collect();
    let mut matched: Vec<usize> = (first..last).collect();
    let mut unmatched: Vec<usize> = (0..first).collect();
    let skipped: Vec<&str> = c
        .groups
        .iter()
        .zip(&hit.spans)
        .filter(|((_, r), _)| *r == Role::SkipLines)
        .filter_map(|(_, s)| s.and_then(|(a, b)| buf.get(a..b)))
        .flat_map(str::lines)
        .collect();
    let mut from = 0;
    for skip in skipped {
        if let Some(pos) = matched
            .iter()
            .skip(from)
            .position(|i| lines.get(*i) == Some(&skip))
        {
            unmatched.push(matched.remove(from + pos));
            from += pos;
        }
    }
    unmatched.extend(last..n);
    Split { matched, unmatched }
}

fn span_of(c: &Compiled, hit: &Hit, role: Role) -> Option<(usize, usize)> {
    c.groups
        .iter()
        .zip(&hit.spans)
        .find_map(|((_, r), s)| if *r == role { *s } else { None })
}

/// Whether a flag group (`<F-NOFAIL>`, …) matched something.
fn flag(c: &Compiled, hit: &Hit, role: Role) -> bool {
    span_of(c, hit, role).is_some_and(|(a, b)| a < b)
}

/// Adds the values of the groups that took part, by fail2ban's key; later groups of a key win.
fn collect(c: &Compiled, hit: &Hit, text: &str, out: &mut session::Groups) {
    for ((_, role), span) in c.groups.iter().zip(&hit.spans) {
        let (Some(key), Some((a, b))) = (role.key(), span) else {
            continue;
        };
        let Some(v) = text.get(*a..*b) else { continue };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v.to_string(),
            None => out.push((key, v.to_string())),
        }
    }
}

/// Turns a failure into the parsed line: the source address, the user and the other fields.
fn report(
    filter: &Fail2banFilter,
    f: Failure,
    index: usize,
    ts: Option<Timestamp>,
    context: Option<String>,
) -> Result<Parsed, Unparsed> {
    let addr = |s: &str| {
        s.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
    };
    let mut parsed = Parsed {
        ts,
        service: Cow::Owned(filter.name.clone()),
        kind: LogKind::RuleMatch,
        src_ip: None,
        fields: Vec::new(),
        extra: Vec::new(),
    };
    let fid = f.get("fid");
    let host = f.get("ip4").or_else(|| f.get("ip6"));
    match (host, f.get("dns")) {
        (Some(h), _) => {
            parsed.src_ip = Some(addr(h).ok_or(Unparsed::Malformed("host_not_an_address"))?);
            if let Some(id) = fid.filter(|id| *id != h) {
                parsed.fields.push(("id", id.to_string()));
            }
        }
        (None, Some(_)) => return Err(Unparsed::Malformed("host_not_an_address")),
        (None, None) => match fid {
            Some(id) => match addr(id) {
                Some(ip) => parsed.src_ip = Some(ip),
                None => parsed.fields.push(("id", id.to_string())),
            },
            None => return Err(Unparsed::Malformed("no_host")),
        },
    }
    // A user group that took part is reported even when empty (`Invalid user  from …`), as fail2ban does.
    let user = f.get("user").or_else(|| f.get("alt_user"));
    if let Some(user) = user {
        parsed.fields.push(("user", user.to_string()));
    }
    if f.users.len() > 1 {
        parsed.fields.push(("users", f.users.join(",")));
    }
    parsed.fields.push(("rule", index.to_string()));
    if f.matches > 1 {
        parsed.fields.push(("attempts", f.matches.to_string()));
    }
    if let Some(port) = f.get("fport") {
        parsed.fields.push(("port", port.to_string()));
    }
    if let Some(cidr) = f.get("cidr") {
        parsed.fields.push(("cidr", cidr.to_string()));
    }
    if let Some(context) = context {
        parsed.fields.push(("context", context));
    }
    for (key, v) in &f.groups {
        if matches!(
            key.as_str(),
            "ip4" | "ip6" | "dns" | "fid" | "user" | "alt_user" | "fport" | "cidr" | "mlfid"
        ) {
            continue;
        }
        if parsed.get(key.as_str()).is_some() {
            continue;
        }
        match key {
            Key::Known(k) => parsed.fields.push((k, v.clone())),
            Key::Field(k) => parsed.extra.push((k.clone(), v.clone())),
        }
    }
    Ok(parsed)
}
