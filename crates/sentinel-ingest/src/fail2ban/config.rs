//! Reading a filter's files into one merged configuration, and expanding values the way fail2ban does.
//!
//! Owns `[INCLUDES]` (`before`/`after`, relative to the including file, cycle-checked), the `.local` and
//! `name.d/` overrides, `%(name)s` interpolation (`%%` is a literal `%`, `%(known/name)s` the value before the
//! last override, `%(__name__)s` the section) and `<name>` substitution of one value into another. It must not
//! know what a `failregex` is: that is the filter builder's job.

use super::error::FilterError;
use super::ini;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Expansion gives up beyond this depth or size (a runaway definition, not a real filter).
const MAX_DEPTH: usize = 64;
const MAX_LEN: usize = 1 << 20;
/// A filter file (or include) larger than this is refused: stock filters are a few KiB.
const MAX_FILE: u64 = 4 << 20;

/// Reads a filter file as UTF-8 text, refusing anything that is not a regular file (a FIFO would block, a
/// device like `/dev/zero` would never end) and anything over [`MAX_FILE`] bytes.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {MAX_FILE} bytes"),
        ));
    }
    Ok(text)
}

/// All sections of a filter and its includes, merged in reading order (later files override).
#[derive(Debug, Default)]
pub(crate) struct Config {
    /// The top file, for errors.
    pub file: String,
    /// Lower-cased section name → key → every value it was given, oldest first.
    sections: HashMap<String, HashMap<String, Vec<String>>>,
    /// Lower-cased section name → how many files defined it (fail2ban keeps a `KNOWN/section` once a later
    /// file overrides a section).
    readings: HashMap<String, usize>,
}

impl Config {
    /// Reads `path` with its includes, then `path.d/*.conf`, `path.local`, `path.d/*.local`.
    pub(crate) fn load(path: &Path) -> Result<Self, FilterError> {
        let mut cfg = Config {
            file: path.display().to_string(),
            ..Default::default()
        };
        let mut stack = Vec::new();
        cfg.read_file(path, &mut stack)?;
        cfg.read_overrides(path, &mut stack)?;
        Ok(cfg)
    }

    /// Reads `text` as if it were `dir/name.conf`: includes resolve in `dir`, and `dir/name.local` is read.
    pub(crate) fn from_text(
        name: &str,
        text: &str,
        dir: Option<&Path>,
    ) -> Result<Self, FilterError> {
        let mut cfg = Config {
            file: format!("{name}.conf"),
            ..Default::default()
        };
        let mut stack = Vec::new();
        let label = cfg.file.clone();
        cfg.read_text(&label, text, dir, &mut stack)?;
        if let Some(dir) = dir {
            cfg.read_overrides(&dir.join(format!("{name}.conf")), &mut stack)?;
        }
        Ok(cfg)
    }

    fn read_overrides(&mut self, conf: &Path, stack: &mut Vec<PathBuf>) -> Result<(), FilterError> {
        let dropins = conf.with_extension("d");
        for ext in ["conf", "local"] {
            if ext == "local" {
                let local = conf.with_extension("local");
                if local.exists() {
                    self.read_file(&local, stack)?;
                }
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dropins)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.retain(|p| p.extension().is_some_and(|e| e == ext));
            files.sort();
            for f in files {
                self.read_file(&f, stack)?;
            }
        }
        Ok(())
    }

    fn read_file(&mut self, path: &Path, stack: &mut Vec<PathBuf>) -> Result<(), FilterError> {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if stack.contains(&canon) {
            return Err(FilterError::Syntax {
                file: path.display().to_string(),
                line: 0,
                what: "include cycle: the file includes itself (directly or through others)".into(),
            });
        }
        let text = read_bounded(path).map_err(|source| FilterError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        stack.push(canon);
        let r = self.read_text(&path.display().to_string(), &text, path.parent(), stack);
        stack.pop();
        r
    }

    fn read_text(
        &mut self,
        label: &str,
        text: &str,
        dir: Option<&Path>,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), FilterError> {
        let sections = ini::parse(label, text)?;
        let mut before = Vec::new();
        let mut after = Vec::new();
        for s in sections
            .iter()
            .filter(|s| s.name.eq_ignore_ascii_case("includes"))
        {
            for (k, v) in &s.entries {
                let list = match k.as_str() {
                    "before" => &mut before,
                    "after" => &mut after,
                    _ => {
                        return Err(FilterError::Invalid {
                            file: label.into(),
                            section: s.name.clone(),
                            key: k.clone(),
                            what: "unknown key (only `before` and `after` are allowed)".into(),
                        })
                    }
                };
                list.extend(
                    v.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| (k.clone(), l.to_string())),
                );
            }
        }
        self.include(label, &before, dir, stack)?;
        for s in sections
            .into_iter()
            .filter(|s| !s.name.eq_ignore_ascii_case("includes"))
        {
            *self.readings.entry(s.name.to_lowercase()).or_default() += 1;
            let sec = self.sections.entry(s.name.to_lowercase()).or_default();
            for (k, v) in s.entries {
                sec.entry(k).or_default().push(v);
            }
        }
        self.include(label, &after, dir, stack)
    }

    fn include(
        &mut self,
        label: &str,
        list: &[(String, String)],
        dir: Option<&Path>,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), FilterError> {
        for (key, rel) in list {
            let path = match dir {
                Some(d) => d.join(rel),
                None => PathBuf::from(rel),
            };
            if path.exists() {
                // A directory, FIFO or device is refused by `read_file` with a clear error.
                self.read_file(&path, stack)?;
            } else if !rel.ends_with(".local") {
                // `.local` files are optional overrides by convention; a missing `.conf` is a broken filter.
                return Err(FilterError::MissingInclude {
                    file: label.into(),
                    key: key.clone(),
                    path,
                });
            }
        }
        Ok(())
    }

    /// Every section name read (lower-cased), `default` included.
    pub(crate) fn section_names(&self) -> Vec<String> {
        self.sections.keys().cloned().collect()
    }

    /// The raw (unexpanded) value of `key` in `section`: the section's own, else `[DEFAULT]`'s.
    pub(crate) fn raw(&self, section: &str, key: &str) -> Option<&str> {
        [section, "default"]
            .iter()
            .filter_map(|s| self.sections.get(*s)?.get(key)?.last())
            .map(String::as_str)
            .next()
    }

    /// Whether the section exists (`[DEFAULT]` always does, as in Python).
    pub(crate) fn has_section(&self, section: &str) -> bool {
        section == "default" || self.sections.contains_key(section)
    }

    /// The keys the section itself defines (not `[DEFAULT]`'s).
    pub(crate) fn own_keys(&self, section: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .sections
            .get(section)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// The value `key` of `section` had before a later file overrode it (fail2ban's `KNOWN/section`).
    fn known_own(&self, section: &str, key: &str) -> Option<&str> {
        let v = self.sections.get(section)?.get(key)?;
        v.len()
            .checked_sub(2)
            .and_then(|i| v.get(i))
            .map(String::as_str)
    }

    /// Whether fail2ban would have a `KNOWN/section` (the section was read from more than one file).
    fn has_known(&self, section: &str) -> bool {
        self.readings.get(section).is_some_and(|n| *n > 1)
    }

    /// The raw value for `%(known/key)s`: the section's value before its last override, else `[DEFAULT]`'s.
    fn known(&self, section: &str, key: &str) -> Option<&str> {
        self.known_own(section, key).or_else(|| {
            self.sections
                .get("default")?
                .get(key)?
                .last()
                .map(String::as_str)
        })
    }

    /// The raw value for `%(sec/key)s`: `key` of `sec`, else `[DEFAULT]`'s; `None` when neither exists.
    fn qualified(&self, sec: &str, key: &str) -> Option<&str> {
        let sec = sec.to_lowercase();
        let default = || {
            self.sections
                .get("default")?
                .get(key)?
                .last()
                .map(String::as_str)
        };
        if sec == "default" {
            return default();
        }
        self.sections
            .get(&sec)?
            .get(key)
            .and_then(|v| v.last())
            .map(String::as_str)
            .or_else(default)
    }

    /// fail2ban's `get_ex`: `key` may be `sec/opt` (a value of another section, `known/opt` for the value
    /// before the last override, `default/opt`); otherwise the `%(…)s`-expanded value of `key` in `section`.
    pub(crate) fn get_ex(
        &self,
        section: &str,
        key: &str,
        vars: &HashMap<String, String>,
    ) -> Result<Option<String>, FilterError> {
        if let Some((sec, opt)) = split_qualified(key) {
            let sec = sec.to_lowercase();
            let opt = opt.to_lowercase();
            let candidates: Vec<&str> = match sec.as_str() {
                "known" => vec!["known", section],
                "default" => vec!["default"],
                other => vec![other],
            };
            for sec in candidates {
                if sec == "known" {
                    if !self.has_known(section) {
                        continue;
                    }
                    let raw = self.known_own(section, &opt).or_else(|| {
                        self.sections
                            .get("default")?
                            .get(&opt)?
                            .last()
                            .map(String::as_str)
                    });
                    if let Some(raw) = raw {
                        return self.expand(section, &opt, raw, &HashMap::new()).map(Some);
                    }
                    continue;
                }
                if !self.has_section(sec) {
                    continue;
                }
                if let Some(v) = self.get(sec, &opt, &HashMap::new())? {
                    return Ok(Some(v));
                }
            }
        }
        self.get(section, &key.to_lowercase(), vars)
    }

    /// The `%(…)s`-expanded value of `key` in `section`; `vars` win over the file (Python's `vars=`).
    pub(crate) fn get(
        &self,
        section: &str,
        key: &str,
        vars: &HashMap<String, String>,
    ) -> Result<Option<String>, FilterError> {
        let raw = match vars.get(key) {
            Some(v) => v.as_str(),
            None => match self.raw(section, key) {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        self.expand(section, key, raw, vars).map(Some)
    }

    /// Expands `raw`, the value of `key`, in the context of `section`.
    fn expand(
        &self,
        section: &str,
        key: &str,
        raw: &str,
        vars: &HashMap<String, String>,
    ) -> Result<String, FilterError> {
        let mut chain = vec![key.to_string()];
        self.interpolate(section, raw, vars, &mut chain)
            .map_err(|what| FilterError::Interpolation {
                file: self.file.clone(),
                section: section_label(section),
                key: key.into(),
                what,
            })
    }

    fn interpolate(
        &self,
        section: &str,
        value: &str,
        vars: &HashMap<String, String>,
        chain: &mut Vec<String>,
    ) -> Result<String, String> {
        if chain.len() > MAX_DEPTH {
            return Err(format!(
                "interpolation deeper than {MAX_DEPTH}: {}",
                chain.join(" -> ")
            ));
        }
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(pos) = rest.find('%') {
            out.push_str(&rest[..pos]);
            let tail = &rest[pos + 1..];
            if let Some(t) = tail.strip_prefix('%') {
                out.push('%');
                rest = t;
                continue;
            }
            let Some(t) = tail.strip_prefix('(') else {
                return Err(format!(
                    "'%' must be followed by '%' or '(' (write %% for a literal %): {value:?}"
                ));
            };
            let Some(close) = t.find(")s") else {
                return Err(format!(
                    "bad interpolation syntax, expected %(name)s: {:?}",
                    &rest[pos..]
                ));
            };
            let name = t[..close].to_lowercase();
            rest = &t[close + 2..];
            let qualified = if vars.contains_key(&name) {
                None
            } else {
                split_qualified(&name)
            };
            let expanded = if name == "__name__" {
                section_label(section)
            } else if let Some((sec, k)) = qualified {
                let raw = if sec.eq_ignore_ascii_case("known") {
                    self.known(section, k)
                } else {
                    self.qualified(sec, k)
                };
                let Some(raw) = raw else {
                    return Err(format!(
                        "%({name})s refers to a key that is not defined (chain {})",
                        chain.join(" -> ")
                    ));
                };
                if chain.contains(&name) {
                    chain.push(name);
                    return Err(format!("interpolation cycle: {}", chain.join(" -> ")));
                }
                chain.push(name.clone());
                let v = self.interpolate(section, raw, vars, chain)?;
                chain.pop();
                v
            } else {
                if chain.contains(&name) {
                    chain.push(name);
                    return Err(format!("interpolation cycle: {}", chain.join(" -> ")));
                }
                let raw = vars
                    .get(&name)
                    .map(String::as_str)
                    .or_else(|| self.raw(section, &name));
                let Some(raw) = raw else {
                    return Err(format!(
                        "%({name})s refers to a key that is not defined (chain {})",
                        chain.join(" -> ")
                    ));
                };
                chain.push(name);
                let v = self.interpolate(section, raw, vars, chain)?;
                chain.pop();
                v
            };
            out.push_str(&expanded);
            if out.len() > MAX_LEN {
                return Err(format!("interpolation result over {MAX_LEN} bytes"));
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `sec/opt` as fail2ban's `SECTION_OPTNAME_CRE` splits it (`^([\w\-]+)/([^\s>]+)$`).
fn split_qualified(name: &str) -> Option<(&str, &str)> {
    let (sec, opt) = name.split_once('/')?;
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    (!sec.is_empty()
        && sec.bytes().all(word)
        && !opt.is_empty()
        && !opt.contains(|c: char| c.is_whitespace() || c == '>'))
    .then_some((sec, opt))
}

/// The section name as fail2ban users write it.
pub(crate) fn section_label(lower: &str) -> String {
    match lower {
        "definition" => "Definition".into(),
        "init" => "Init".into(),
        "default" => "DEFAULT".into(),
        other => other.into(),
    }
}

/// Replaces each `<name>` for which `lookup` has a value (itself already substituted), innermost first, so
/// `<lt_<logtype>/__prefix_line>` works. Tags `lookup` does not know (`<HOST>`, `<F-USER>`, …) stay.
pub(crate) fn substitute(
    text: &str,
    lookup: &mut dyn FnMut(&str) -> Result<Option<String>, String>,
) -> Result<String, String> {
    let mut out = text.to_string();
    let mut from = 0;
    let mut budget = 10_000usize;
    while let Some((start, end)) = next_tag(&out, from) {
        let name = out[start + 1..end - 1].to_string();
        let Some(value) = lookup(&name)? else {
            from = start + 1;
            continue;
        };
        budget = budget
            .checked_sub(1)
            .ok_or("substitution does not terminate")?;
        out.replace_range(start..end, &value);
        if out.len() > MAX_LEN {
            return Err(format!("substitution result over {MAX_LEN} bytes"));
        }
        // A replacement can complete an outer tag (`<mdre-<mode>>`): look again from the `<` before it.
        from = out[..start].rfind('<').unwrap_or(start);
    }
    Ok(out)
}

/// Every `<name>` left in `text` (name without space, `<` or `>`), with its byte offset.
pub(crate) fn tags(text: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some((start, end)) = next_tag(text, from) {
        found.push((start, &text[start + 1..end - 1]));
        from = start + 1;
    }
    found
}

/// The next `<name>` (no space, `<` or `>` inside) at or after `from`: its byte range including brackets.
fn next_tag(s: &str, from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(p) = s.get(i..)?.find('<') {
        let start = i + p;
        let body = &s[start + 1..];
        let len = body.find(['<', '>', ' ', '\n', '\t']).unwrap_or(body.len());
        if len > 0 && body[len..].starts_with('>') {
            return Some((start, start + 1 + len + 1));
        }
        i = start + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nested_tags() {
        let v = vals(&[("mode", "normal"), ("mdre-normal", "^x <HOST>")]);
        let mut lookup = |n: &str| Ok(v.get(n).cloned());
        assert_eq!(
            substitute("<mdre-<mode>>", &mut lookup).unwrap(),
            "^x <HOST>"
        );
    }

    #[test]
    fn qualified_and_known_interpolation() {
        let cfg = Config::from_text(
            "t",
            "[DEFAULT]\nd = D\n[a]\nx = A-%(d)s\n[Definition]\ny = %(a/x)s|%(default/d)s|%(a/d)s\n",
            None,
        )
        .unwrap();
        let none = HashMap::new();
        assert_eq!(
            cfg.get("definition", "y", &none).unwrap().unwrap(),
            "A-D|D|D"
        );
        assert_eq!(
            cfg.get_ex("definition", "a/x", &none).unwrap().unwrap(),
            "A-D"
        );
    }

    #[test]
    fn interpolation() {
        let cfg = Config::from_text(
            "t",
            "[DEFAULT]\nd = D\n[Definition]\na = %(b)s-%%-%(d)s\nb = B\nx = %(y)s\ny = %(x)s\n",
            None,
        )
        .unwrap();
        let none = HashMap::new();
        assert_eq!(cfg.get("definition", "a", &none).unwrap().unwrap(), "B-%-D");
        let e = cfg.get("definition", "x", &none).unwrap_err().to_string();
        assert!(e.contains("cycle") && e.contains("[Definition] x"), "{e}");
    }
}
