//! From a merged filter configuration to compiled regexes: resolves `[Init]` and the caller's variables over
//! `[Definition]`, expands `%(…)s` and `<…>`, splits `failregex`/`ignoreregex` into one regex per line and
//! rejects what Sentinel cannot honour (multi-line filters, host-less failregexes that rely on `<F-MLFID>`).

use super::config::{self, Config};
use super::date::DateMatcher;
use super::error::FilterError;
use super::pyregex::{self, Compiled, Role};
use super::FilterOptions;
use std::collections::HashMap;

/// The compiled parts of a filter.
#[derive(Debug)]
pub(crate) struct Parts {
    pub dates: DateMatcher,
    pub prefregex: Option<Compiled>,
    pub failregex: Vec<Compiled>,
    pub ignoreregex: Vec<Compiled>,
}

const DEF: &str = "definition";

/// Builds the filter parts from `cfg`.
pub(crate) fn build(cfg: &Config, opts: &FilterOptions) -> Result<Parts, FilterError> {
    // [Init] values, then the caller's, override [Definition] (fail2ban's `filter = name[key=value]`).
    let mut vars: HashMap<String, String> = HashMap::new();
    for key in cfg.keys("init") {
        if let Some(v) = cfg.get("init", &key, &HashMap::new())? {
            vars.insert(key, v.replace('%', "%%"));
        }
    }
    for (k, v) in &opts.vars {
        vars.insert(k.to_lowercase(), v.clone());
    }
    if let Some(mode) = &opts.mode {
        vars.insert("mode".into(), mode.clone());
    }
    // Every value, expanded, for `<name>` substitution. A value that fails to expand only matters if used.
    let mut values = HashMap::new();
    let mut broken = HashMap::new();
    let mut keys = cfg.keys(DEF);
    keys.extend(vars.keys().cloned());
    for key in keys {
        match cfg.get(DEF, &key, &vars) {
            Ok(Some(v)) => {
                values.insert(key, v);
            }
            Ok(None) => {}
            Err(e) => {
                broken.insert(key, e.to_string());
            }
        }
    }
    let value = |key: &str| -> Result<Option<String>, FilterError> {
        let Some(v) = cfg.get(DEF, key, &vars)? else {
            return Ok(None);
        };
        let mut out = config::substitute(&v, &values).map_err(|what| interp(cfg, key, what))?;
        // A `<name>` left in place whose value failed to expand: report that failure, not a regex error.
        for (name, err) in &broken {
            if out.contains(&format!("<{name}>")) {
                return Err(interp(
                    cfg,
                    key,
                    format!("uses <{name}>, which does not expand: {err}"),
                ));
            }
        }
        out = out.trim().to_string();
        Ok(Some(out))
    };

    if let Some(maxlines) = value("maxlines")? {
        let n: u32 = maxlines
            .parse()
            .map_err(|_| invalid(cfg, "maxlines", format!("not a number: {maxlines:?}")))?;
        if n > 1 {
            return Err(unsupported(
                cfg,
                "maxlines",
                format!("maxlines = {n} (multi-line filters)"),
            ));
        }
    }
    let dates = DateMatcher::new(value("datepattern")?.as_deref())
        .map_err(|what| invalid(cfg, "datepattern", what))?;
    let prefregex = match value("prefregex")? {
        Some(p) if !p.is_empty() => {
            let c = compile_one(cfg, "prefregex", &p)?;
            if !c.has(|r| r == Role::Content) {
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
    let failregex = compile_list(cfg, "failregex", value("failregex")?)?;
    if failregex.is_empty() {
        return Err(invalid(
            cfg,
            "failregex",
            "missing or empty: a filter needs at least one failregex".into(),
        ));
    }
    let ignoreregex = compile_list(cfg, "ignoreregex", value("ignoreregex")?)?;

    let prefix_host = prefregex.as_ref().is_some_and(|p| p.has(Role::is_host));
    let mlfid = prefregex
        .as_ref()
        .is_some_and(|p| p.has(|r| r == Role::Mlfid))
        || failregex.iter().any(|f| f.has(|r| r == Role::Mlfid));
    for (i, f) in failregex.iter().enumerate() {
        if prefix_host || f.has(Role::is_host) || f.has(|r| r == Role::NoFail) {
            continue;
        }
        return Err(if mlfid {
            unsupported(
                cfg,
                "failregex",
                format!("<F-MLFID> multi-line correlation: failregex {i} has no host and would take it from an earlier line"),
            )
        } else {
            invalid(
                cfg,
                "failregex",
                format!("failregex {i} has no <HOST>, <ADDR>, <IP4>, <IP6>, <SUBNET> or <F-ID>"),
            )
        });
    }
    Ok(Parts {
        dates,
        prefregex,
        failregex,
        ignoreregex,
    })
}

fn compile_list(
    cfg: &Config,
    key: &str,
    value: Option<String>,
) -> Result<Vec<Compiled>, FilterError> {
    value
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| compile_one(cfg, key, l))
        .collect()
}

fn compile_one(cfg: &Config, key: &str, regex: &str) -> Result<Compiled, FilterError> {
    pyregex::compile(regex).map_err(|what| {
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
