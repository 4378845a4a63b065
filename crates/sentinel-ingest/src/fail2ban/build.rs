//! From a merged filter configuration to compiled regexes, the way fail2ban's `FilterReader` resolves a filter:
//! the `[Definition]` options (`failregex`, `ignoreregex`, `prefregex`, `datepattern`, `maxlines`, `usedns`,
//! `journalmatch`) expanded with the caller's variables, overridden by the caller's variables and `[Init]`
//! (which also gives `known/<opt>`), then `<tag>` substitution where a tag is one of those values or any option
//! of `[Definition]`/`[DEFAULT]` (`<sec/opt>` for another section, `<known/opt>`). A tag that still looks like an
//! option name after substitution is a load error: a filter never compiles into a regex that matches nothing.

use super::config::{self, Config};
use super::date::DateMatcher;
use super::error::FilterError;
use super::pyregex::{self, Compiled, Flavor, Role};
use super::FilterOptions;
use std::collections::HashMap;

/// The compiled parts of a filter.
#[derive(Debug)]
pub(crate) struct Parts {
    pub dates: DateMatcher,
    pub prefregex: Option<Compiled>,
    /// For a single-line `prefregex` of the form `HEAD<F-CONTENT>.+</F-CONTENT>$` (most stock filters): HEAD
    /// alone, so the content's start is found by a DFA without the capture step; the whole prefregex runs only
    /// on lines a failregex matches (see `Fail2banFilter::find_failure`).
    pub pref_head: Option<Compiled>,
    pub failregex: Vec<Compiled>,
    pub ignoreregex: Vec<Compiled>,
    /// Lines buffered for multi-line failregexes (1: single-line).
    pub maxlines: usize,
    /// `journalmatch`: one match expression per line (`_SYSTEMD_UNIT=sshd.service + _COMM=sshd`).
    pub journalmatch: Vec<String>,
    /// Whether a regex carries `<F-MLFID>` (failures correlated across the lines of one session).
    pub mlfid: bool,
}

const DEF: &str = "definition";
/// How most stock prefregexes end: the rest of the line is the content.
const CONTENT_TAIL: &str = "<F-CONTENT>.+</F-CONTENT>$";
/// The options fail2ban's filter reader takes from `[Definition]`.
const OPTIONS: [&str; 7] = [
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];
/// Tags the regex translator knows; everything else left after substitution is an unresolved option.
const REGEX_TAGS: [&str; 8] = [
    "HOST",
    "ADDR",
    "IP4",
    "IP6",
    "DNS",
    "CIDR",
    "SUBNET",
    "SKIPLINES",
];

/// The resolved (expanded and substituted) filter options.
struct Resolver<'a> {
    cfg: &'a Config,
    /// The caller's variables (a jail's `filter = name[key=value]`), lower-cased keys.
    pvars: HashMap<String, String>,
    /// The options and `[Init]` values, before substitution.
    combined: HashMap<String, String>,
    /// Fully substituted values, by tag name (`None`: no such option).
    done: HashMap<String, Option<String>>,
    /// Tags being substituted (cycle detection).
    chain: Vec<String>,
}

impl<'a> Resolver<'a> {
    fn new(cfg: &'a Config, opts: &FilterOptions) -> Result<Self, FilterError> {
        let mut pvars: HashMap<String, String> = HashMap::new();
        for (k, v) in &opts.vars {
            pvars.insert(k.to_lowercase(), v.clone());
        }
        if let Some(mode) = &opts.mode {
            pvars.insert("mode".into(), mode.clone());
        }
        let mut combined = HashMap::new();
        for opt in OPTIONS {
            if pvars.contains_key(opt) {
                continue;
            }
            if let Some(v) = cfg.get(DEF, opt, &pvars)? {
                combined.insert(opt.to_string(), v);
            }
        }
        // [Init] values (and their `known/` copies) under the caller's variables, which win.
        let mut init = pvars.clone();
        if cfg.has_section("init") {
            for key in cfg.own_keys("init") {
                let v = cfg.get("init", &key, &HashMap::new())?.unwrap_or_default();
                if !key.starts_with("known/") {
                    init.insert(format!("known/{key}"), v.clone());
                }
                init.entry(key).or_insert(v);
            }
        }
        combined.extend(init);
        Ok(Self {
            cfg,
            pvars,
            combined,
            done: HashMap::new(),
            chain: Vec::new(),
        })
    }

    /// The substituted value of tag `name`, or `None` when no option has that name.
    fn tag(&mut self, name: &str) -> Result<Option<String>, String> {
        if let Some(v) = self.done.get(name) {
            return Ok(v.clone());
        }
        if self.chain.iter().any(|c| c == name) {
            self.chain.push(name.to_string());
            return Err(format!(
                "self-referencing tags cannot be resolved: <{}>",
                self.chain.join("> -> <")
            ));
        }
        let raw = match self.combined.get(name) {
            Some(v) => Some(v.clone()),
            None => self
                .cfg
                .get_ex(DEF, name, &self.pvars)
                .map_err(|e| e.to_string())?,
        };
        let value = match raw {
            Some(raw) => {
                self.chain.push(name.to_string());
                let r = config::substitute(&raw, &mut |inner: &str| self.tag(inner));
                self.chain.pop();
                Some(r?)
            }
            None => None,
        };
        self.done.insert(name.to_string(), value.clone());
        Ok(value)
    }

    /// A filter option, substituted and trimmed; unresolved option-like tags are an error.
    fn option(&mut self, key: &str) -> Result<Option<String>, FilterError> {
        if !self.combined.contains_key(key) {
            return Ok(None);
        }
        let v = self.tag(key).map_err(|what| interp(self.cfg, key, what))?;
        let Some(v) = v else { return Ok(None) };
        if let Some(tag) = unresolved(&v) {
            return Err(interp(
                self.cfg,
                key,
                format!(
                    "tag <{tag}> names no option of the filter (unresolved after substitution)"
                ),
            ));
        }
        if let Some((tag, meant)) = misspelt_regex_tag(&v) {
            return Err(interp(
                self.cfg,
                key,
                format!("tag <{tag}> is not a fail2ban tag (a misspelt <{meant}>?); it would stay literal text"),
            ));
        }
        Ok(Some(v.trim().to_string()))
    }
}

/// The first upper-case tag in `text` one typo (a changed, added, dropped or swapped character) away from a
/// regex tag, e.g. `<HOTS>` or `<IP5>`: fail2ban keeps it as literal text, so the regex silently never
/// matches. Other upper-case tags (`<NOSRV>`, `<W>`) are log text some filters really match.
fn misspelt_regex_tag(text: &str) -> Option<(&str, &'static str)> {
    config::tags(text).into_iter().find_map(|(_, name)| {
        let bare = name.trim_start_matches('/');
        if REGEX_TAGS.contains(&bare) || !bare.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        REGEX_TAGS
            .iter()
            .find(|t| one_typo(bare.as_bytes(), t.as_bytes()))
            .map(|t| (name, *t))
    })
}

/// Whether `a` and `b` differ by exactly one edit (substitution, insertion, deletion or adjacent swap).
fn one_typo(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return false;
    }
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[p..], &b[p..]);
    match ra.len() as isize - rb.len() as isize {
        0 => {
            ra[1..] == rb[1..]
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        1 => ra[1..] == *rb,
        -1 => *ra == rb[1..],
        _ => false,
    }
}

/// The first tag in `text` that looks like an option reference and is not a regex tag.
fn unresolved(text: &str) -> Option<&str> {
    config::tags(text).into_iter().find_map(|(at, name)| {
        let before = &text[..at];
        if before.ends_with("(?P") || before.ends_with("\\k") || before.ends_with("(?") {
            return None;
        }
        let bare = name.trim_start_matches('/').trim_end_matches('/');
        if REGEX_TAGS.contains(&bare) || bare.starts_with("F-") {
            return None;
        }
        let (head, opt) = match bare.split_once('/') {
            Some((h, o)) => (h, Some(o)),
            None => (bare, None),
        };
        // Option names are lower case (fail2ban lower-cases keys); `<NOSRV>`, `<W>` are log text.
        let word = |s: &str| {
            s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        let qualified = opt.is_some_and(|o| !o.is_empty());
        ((word(head) && opt.is_none_or(word)) || qualified).then_some(name)
    })
}

/// Builds the filter parts from `cfg`.
pub(crate) fn build(cfg: &Config, opts: &FilterOptions) -> Result<Parts, FilterError> {
    let mut r = Resolver::new(cfg, opts)?;
    let maxlines = match r.option("maxlines")? {
        Some(m) if !m.is_empty() => m
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                invalid(
                    cfg,
                    "maxlines",
                    format!("not a number from 1 to 1000: {m:?}"),
                )
            })?,
        _ => 1,
    };
    let usedns = r.option("usedns")?.unwrap_or_default();
    if !["", "yes", "warn", "no", "raw"]
        .iter()
        .any(|v| usedns.eq_ignore_ascii_case(v))
    {
        // fail2ban falls back to `no` with a log warning; a load error is harder to miss.
        return Err(invalid(
            cfg,
            "usedns",
            format!("{usedns:?} is not one of yes, warn, no, raw"),
        ));
    }
    let flavor = Flavor {
        addr_only: usedns.eq_ignore_ascii_case("no"),
        multiline: maxlines > 1,
    };
    let datepattern = r.option("datepattern")?;
    let dates = DateMatcher::new(datepattern.as_deref())
        .map_err(|what| invalid(cfg, "datepattern", what))?;
    let mut pref_head = None;
    let prefregex = match r.option("prefregex")? {
        Some(p) if !p.is_empty() => {
            if !flavor.multiline {
                pref_head = p
                    .strip_suffix(CONTENT_TAIL)
                    .and_then(|head| pyregex::compile_with(head, &flavor).ok())
                    .filter(|h| h.match_end("").is_some());
            }
            let c = compile_one(cfg, "prefregex", &p, &flavor)?;
            if !c.has(|r| *r == Role::Content) {
                return Err(invalid(
                    cfg,
                    "prefregex",
                    "has no <F-CONTENT>…</F-CONTENT> group".into(),
                ));
            }
            Some(c)
        }
        _ => None,
    };
    let failregex = compile_list(cfg, "failregex", r.option("failregex")?, &flavor)?;
    if failregex.is_empty() {
        return Err(invalid(
            cfg,
            "failregex",
            "missing or empty: a filter needs at least one failregex".into(),
        ));
    }
    let ignoreregex = compile_list(cfg, "ignoreregex", r.option("ignoreregex")?, &flavor)?;
    let journalmatch = r
        .option("journalmatch")?
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();

    let has = |c: &Compiled, role: Role| c.has(|r| *r == role);
    let mlfid = prefregex.as_ref().is_some_and(|p| has(p, Role::Mlfid))
        || failregex.iter().any(|f| has(f, Role::Mlfid));
    let prefix_host = prefregex.as_ref().is_some_and(|p| p.has(Role::is_host));
    for (i, f) in failregex.iter().enumerate() {
        if mlfid || prefix_host || f.has(Role::is_host) {
            continue;
        }
        return Err(invalid(
            cfg,
            "failregex",
            format!(
                "failregex {i} has no <HOST>, <ADDR>, <IP4>, <IP6>, <SUBNET>, <F-ID> or <F-MLFID>"
            ),
        ));
    }
    Ok(Parts {
        dates,
        prefregex,
        pref_head,
        failregex,
        ignoreregex,
        maxlines,
        journalmatch,
        mlfid,
    })
}

fn compile_list(
    cfg: &Config,
    key: &str,
    value: Option<String>,
    flavor: &Flavor,
) -> Result<Vec<Compiled>, FilterError> {
    value
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| compile_one(cfg, key, l, flavor))
        .collect()
}

fn compile_one(
    cfg: &Config,
    key: &str,
    regex: &str,
    flavor: &Flavor,
) -> Result<Compiled, FilterError> {
    // Multi-line filters search a buffer where `$` and `^` also match at line breaks: not checked.
    if key != "ignoreregex" && !flavor.multiline {
        if let Some(why) = pyregex::translate_with(regex, flavor.addr_only)
            .ok()
            .and_then(|t| never_matches(if t.fancy { &t.relaxed } else { &t.pattern }))
        {
            return Err(FilterError::Regex {
                file: cfg.file.clone(),
                section: "Definition".into(),
                key: key.into(),
                regex: regex.into(),
                what: format!("can never match: {why}"),
            });
        }
    }
    pyregex::compile_with(regex, flavor).map_err(|what| {
        if what.starts_with("unsupported: ") {
            unsupported(
                cfg,
                key,
                what.trim_start_matches("unsupported: ").to_string(),
            )
        } else {
            FilterError::Regex {
                file: cfg.file.clone(),
                section: "Definition".into(),
                key: key.into(),
                regex: regex.into(),
                what,
            }
        }
    })
}

/// Why a pattern (in `regex` crate syntax, or a superset of the real one) can match no text at all, when
/// that is plain from its structure: text required after the end of the input (`<HOST>$ from`), before its
/// start (`x^`), or an empty class. Conservative: `None` says nothing.
fn never_matches(pattern: &str) -> Option<&'static str> {
    use regex_syntax::hir::{Hir, HirKind, Look};
    fn min_len(h: &Hir) -> usize {
        h.properties().minimum_len().unwrap_or(usize::MAX)
    }
    /// Every match of `h` ends (starts) at the end (start) of the input.
    fn anchored(h: &Hir, look: Look) -> bool {
        match h.kind() {
            HirKind::Look(l) => *l == look,
            HirKind::Capture(c) => anchored(&c.sub, look),
            HirKind::Concat(items) => {
                let mut it: Box<dyn Iterator<Item = &Hir>> = if look == Look::End {
                    Box::new(items.iter().rev())
                } else {
                    Box::new(items.iter())
                };
                it.find(|i| !matches!(i.kind(), HirKind::Look(l) if *l != look))
                    .is_some_and(|i| anchored(i, look))
            }
            HirKind::Alternation(alts) => alts.iter().all(|a| anchored(a, look)),
            _ => false,
        }
    }
    fn walk(h: &Hir) -> Option<&'static str> {
        match h.kind() {
            HirKind::Class(c) if c.is_empty() => Some("an empty character class"),
            HirKind::Capture(c) => walk(&c.sub),
            HirKind::Repetition(r) if r.min > 0 => walk(&r.sub),
            HirKind::Alternation(alts) => {
                let why: Vec<_> = alts.iter().map(walk).collect();
                why.iter().all(Option::is_some).then(|| why[0]).flatten()
            }
            HirKind::Concat(items) => {
                if let Some(why) = items.iter().find_map(walk) {
                    return Some(why);
                }
                for (i, item) in items.iter().enumerate() {
                    if anchored(item, Look::End) && items[i + 1..].iter().any(|r| min_len(r) > 0) {
                        return Some("text is required after `$` (the end of the line)");
                    }
                    if anchored(item, Look::Start) && items[..i].iter().any(|r| min_len(r) > 0) {
                        return Some("text is required before `^` (the start of the line)");
                    }
                }
                None
            }
            _ => None,
        }
    }
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    walk(&hir)
}

fn interp(cfg: &Config, key: &str, what: String) -> FilterError {
    FilterError::Interpolation {
        file: cfg.file.clone(),
        section: "Definition".into(),
        key: key.into(),
        what,
    }
}

fn invalid(cfg: &Config, key: &str, what: String) -> FilterError {
    FilterError::Invalid {
        file: cfg.file.clone(),
        section: "Definition".into(),
        key: key.into(),
        what,
    }
}

fn unsupported(cfg: &Config, key: &str, what: String) -> FilterError {
    FilterError::Unsupported {
        file: cfg.file.clone(),
        section: "Definition".into(),
        key: key.into(),
        what,
    }
}
