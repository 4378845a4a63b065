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

/// All sections of a filter and its includes, merged in reading order (later files override).
#[derive(Debug, Default)]
pub(crate) struct Config {
    /// The top file, for errors.
    pub file: String,
    /// Lower-cased section name → key → every value it was given, oldest first.
    sections: HashMap<String, HashMap<String, Vec<String>>>,
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
                if local.is_file() {
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
        let text = std::fs::read_to_string(path).map_err(|source| FilterError::Read {
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
            if path.is_file() {
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

    /// Every key of `section` and of `[DEFAULT]`.
    pub(crate) fn keys(&self, section: &str) -> Vec<String> {
        let mut keys: Vec<String> = ["default", section]
            .iter()
            .filter_map(|s| self.sections.get(*s))
            .flat_map(|m| m.keys().cloned())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The raw (unexpanded) value of `key` in `section`: the section's own, else `[DEFAULT]`'s.
    pub(crate) fn raw(&self, section: &str, key: &str) -> Option<&str> {
        [section, "default"]
            .iter()
            .filter_map(|s| self.sections.get(*s)?.get(key)?.last())
            .map(String::as_str)
            .next()
    }

    /// The value `key` had before its last override, for `%(known/key)s`.
    fn known(&self, section: &str, key: &str) -> Option<&str> {
        [section, "default"].iter().find_map(|s| {
            let v = self.sections.get(*s)?.get(key)?;
            v.len()
                .checked_sub(2)
                .and_then(|i| v.get(i))
                .map(String::as_str)
        })
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
        let mut chain = vec![key.to_string()];
        self.interpolate(section, raw, vars, &mut chain)
            .map(Some)
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
            let expanded = if name == "__name__" {
                section_label(section)
            } else if let Some(k) = name.strip_prefix("known/") {
                let raw = self.known(section, k).unwrap_or_default();
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

/// The section name as fail2ban users write it.
pub(crate) fn section_label(lower: &str) -> String {
    match lower {
        "definition" => "Definition".into(),
        "init" => "Init".into(),
        "default" => "DEFAULT".into(),
        other => other.into(),
    }
}

/// Replaces `<name>` by `values[name]` (itself substituted), innermost first, so `<mdre-<mode>>` works.
/// Tags that name no value (`<HOST>`, `<F-USER>`, …) are left alone.
pub(crate) fn substitute(text: &str, values: &HashMap<String, String>) -> Result<String, String> {
    let mut chain = Vec::new();
    let mut budget = 10_000usize;
    substitute_in(text, values, &mut chain, &mut budget)
}

fn substitute_in(
    text: &str,
    values: &HashMap<String, String>,
    chain: &mut Vec<String>,
    budget: &mut usize,
) -> Result<String, String> {
    let mut out = text.to_string();
    let mut from = 0;
    while let Some((start, end)) = next_tag(&out, from) {
        let name = &out[start + 1..end - 1];
        let Some(value) = values.get(name) else {
            from = start + 1;
            continue;
        };
        if chain.iter().any(|c| c == name) {
            chain.push(name.to_string());
            return Err(format!("substitution cycle: <{}>", chain.join("> -> <")));
        }
        *budget = budget
            .checked_sub(1)
            .ok_or("substitution does not terminate")?;
        chain.push(name.to_string());
        let v = substitute_in(value, values, chain, budget)?;
        chain.pop();
        out.replace_range(start..end, &v);
        if out.len() > MAX_LEN {
            return Err(format!("substitution result over {MAX_LEN} bytes"));
        }
        // A replacement can complete an outer tag (`<mdre-<mode>>`): look again from the `<` before it.
        from = out[..start].rfind('<').unwrap_or(start);
    }
    Ok(out)
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
        let v = vals(&[
            ("mode", "normal"),
            ("mdre-normal", "^x <HOST>"),
            ("a", "<b>"),
            ("b", "<a>"),
        ]);
        assert_eq!(substitute("<mdre-<mode>>", &v).unwrap(), "^x <HOST>");
        assert!(substitute("<a>", &v).unwrap_err().contains("cycle"));
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
