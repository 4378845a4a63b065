//! fail2ban filter files (`filter.d/*.conf`) as line parsers, so users bring the filters they already have.
//!
//! [`Fail2banFilter::load`] reads a filter the way fail2ban does (`[INCLUDES]`, `.local` overrides, `[Init]`
//! and caller variables such as `mode`, `%(name)s` and `<name>` expansion), translates its Python regexes to
//! Rust (the linear-time `regex` crate when possible, `fancy_regex` for look-around and backreferences) and
//! reports anything it cannot honour as a [`FilterError`] naming file, section and key. Parsing a line finds
//! and cuts its date, applies `prefregex`, the failregexes and the ignoreregexes, and never resolves a host
//! name: a `<HOST>` that is not an address makes the line `Malformed`. Multi-line filters (`maxlines` > 1,
//! `<SKIPLINES>`, host-less `<F-MLFID>` correlation) are refused at load time.

mod build;
mod config;
pub mod date;
mod error;
mod ini;
mod pyregex;

pub use error::FilterError;

use crate::{LineParser, LogKind, ParseCtx, Parsed, Unparsed};
use pyregex::{Compiled, Hit, Role};
use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;

/// Caller-supplied filter parameters, as in a jail's `filter = sshd[mode=aggressive, key=value]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOptions {
    /// The filter's `mode` (`normal`, `aggressive`, `ddos`, `extra` for sshd); `None` keeps the file's.
    pub mode: Option<String>,
    /// Further variables; they override `[Init]` and `[Definition]` values of the same name.
    pub vars: Vec<(String, String)>,
}

/// A loaded fail2ban filter: a [`LineParser`] whose matches are [`LogKind::RuleMatch`].
#[derive(Debug)]
pub struct Fail2banFilter {
    name: String,
    parts: build::Parts,
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
        Ok(Self {
            parts: build::build(&cfg, opts)?,
            name,
        })
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
        Ok(Self {
            parts: build::build(&cfg, opts)?,
            name: name.to_string(),
        })
    }

    /// How many failregexes the filter has (after `mode` selection).
    pub fn failregex_count(&self) -> usize {
        self.parts.failregex.len()
    }

    /// How many failregexes need the backtracking engine (look-around, backreferences, …).
    pub fn backtracking_count(&self) -> usize {
        self.parts.failregex.iter().filter(|f| f.is_fancy()).count()
    }
}

impl LineParser for Fail2banFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn parse(&self, line: &str, ctx: &ParseCtx) -> Result<Parsed, Unparsed> {
        let p = &self.parts;
        let found = p.dates.find(line, ctx);
        let text: Cow<'_, str> = match &found {
            Some(f) => Cow::Owned(format!("{}{}", &line[..f.start], &line[f.end..])),
            None => Cow::Borrowed(line),
        };
        let text = text.as_ref();
        let mut prefix: Option<(&Compiled, Hit)> = None;
        let content = match &p.prefregex {
            Some(pre) => {
                let hit = pre
                    .find(text)
                    .map_err(|_| Unparsed::Malformed("regex_backtrack_limit"))?;
                let hit = hit.ok_or(Unparsed::NoMatch)?;
                let span = span_of(pre, &hit, Role::Content).ok_or(Unparsed::NoMatch)?;
                prefix = Some((pre, hit));
                &text[span.0..span.1]
            }
            None => text,
        };
        for (index, fail) in p.failregex.iter().enumerate() {
            let hit = fail
                .find(content)
                .map_err(|_| Unparsed::Malformed("regex_backtrack_limit"))?;
            let Some(hit) = hit else { continue };
            for ignore in &p.ignoreregex {
                if matches!(ignore.find(text), Ok(Some(_))) {
                    return Err(Unparsed::Ignored);
                }
            }
            if span_of(fail, &hit, Role::NoFail).is_some() {
                return Err(Unparsed::Ignored);
            }
            let mut groups: Vec<(Role, &str)> = Vec::new();
            if let Some((pre, phit)) = &prefix {
                groups.extend(values(pre, phit, text));
            }
            groups.extend(values(fail, &hit, content));
            let mut parsed = Parsed {
                ts: found.as_ref().and_then(|f| f.ts),
                service: Cow::Owned(self.name.clone()),
                kind: LogKind::RuleMatch,
                src_ip: None,
                fields: Vec::new(),
            };
            fill(&mut parsed, &groups, index)?;
            return Ok(parsed);
        }
        Err(Unparsed::NoMatch)
    }
}

fn span_of(c: &Compiled, hit: &Hit, role: Role) -> Option<(usize, usize)> {
    c.groups
        .iter()
        .zip(&hit.spans)
        .find_map(|((_, r), s)| if *r == role { *s } else { None })
}

fn values<'t>(c: &Compiled, hit: &Hit, text: &'t str) -> Vec<(Role, &'t str)> {
    c.groups
        .iter()
        .zip(&hit.spans)
        .filter_map(|((_, r), s)| s.and_then(|(a, b)| text.get(a..b)).map(|v| (*r, v)))
        .collect()
}

/// Sets the source address and fields from the matched groups.
fn fill(parsed: &mut Parsed, groups: &[(Role, &str)], index: usize) -> Result<(), Unparsed> {
    let first = |want: Role| {
        groups
            .iter()
            .find(|(r, v)| *r == want && !v.is_empty())
            .map(|(_, v)| *v)
    };
    let addr = |s: &str| {
        s.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .ok()
    };
    let host = first(Role::Ip4)
        .or_else(|| first(Role::Ip6))
        .or_else(|| first(Role::Dns));
    match host {
        Some(h) => parsed.src_ip = Some(addr(h).ok_or(Unparsed::Malformed("host_not_an_address"))?),
        None => match first(Role::Fid) {
            Some(id) => match addr(id) {
                Some(ip) => parsed.src_ip = Some(ip),
                None => parsed.fields.push(("id", id.to_string())),
            },
            None => return Err(Unparsed::Malformed("no_host")),
        },
    }
    if let Some(user) = first(Role::User).or_else(|| first(Role::AltUser)) {
        parsed.fields.push(("user", user.to_string()));
    }
    parsed.fields.push(("rule", index.to_string()));
    if let Some(port) = first(Role::Port) {
        parsed.fields.push(("port", port.to_string()));
    }
    if let Some(cidr) = first(Role::Cidr) {
        parsed.fields.push(("cidr", cidr.to_string()));
    }
    for (role, v) in groups {
        if let Role::Field(name) = role {
            if !parsed.fields.iter().any(|(k, _)| k == name) {
                parsed.fields.push((name, v.to_string()));
            }
        }
    }
    Ok(())
}
