//! fail2ban 1.0.2's default date templates, in its order, and the `datepattern` keywords that select them
//! (`{^LN-BEG}`, `{DEFAULT}`, `{DATE}`, `{NONE}`, `EPOCH`, `LEPOCH`, `TAI64N`).

use super::strptime::Expander;
use super::template::Template;

/// fail2ban's `DateDetectorCache.DEFAULT_TEMPLATES`.
const DEFAULT_TEMPLATES: [&str; 17] = [
    // 2005-01-23 21:59:59, 2005/01/23T21:59:59.123+0100, 2005.01.23 21:59:59
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    // Sun Jan 23 21:59:59 2005, Jan 23 21:59:59, Jan 23 21:59:59.123
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    // Sun Jan 23 2005 21:59:59
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    // 23-01-2005 21:59:59, 23/01/05 21:59:59
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    // 23-Jan-2005 21:59:59.372, 23/Jan/2005:21:59:59 +0100 (Apache/CLF)
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    // 01/23/2005:21:59:59
    r"%m/%d/%ExY:%H:%M:%S",
    // 01-23-2005 21:59:59.252 (Asterisk)
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    r"EPOCH",
    // 21:59:59 at line start (the date is today)
    r"{^LN-BEG}%H:%M:%S",
    // <01/23/05@21:59:59>
    r"^<%m/%d/%Exy@%H:%M:%S>",
    // 050123 21:59:59 (MySQL)
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    // Jan 23, 2005 9:59:59 PM (Tomcat/Catalina)
    r"%b %d, %ExY %I:%M:%S %p",
    // Jan-23-05 21:59:59 (ASSP)
    r"^%b-%d-%Exy %k:%M:%S",
    // 20050123T215959, 20050123 215959
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    // PDT Apr 16 21:05:29 (zone name first)
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    // -0700 Apr 16 21:05:29 (offset first)
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"TAI64N",
];

fn anchored_by_name(spec: &str) -> bool {
    spec.starts_with("{^LN-BEG}") || spec.starts_with('^')
}

fn original(spec: &str, exp: &mut Expander) -> Result<Template, String> {
    match spec {
        "EPOCH" => Template::epoch(false, false),
        "TAI64N" => Template::tai64n(false),
        p => Template::pattern(p, exp),
    }
}

/// The full default list: each template anchored at line start, then the originals (fail2ban weighs the anchored
/// copies first).
pub(super) fn all(exp: &mut Expander) -> Result<Vec<Template>, String> {
    let mut out = Vec::with_capacity(31);
    for spec in DEFAULT_TEMPLATES.iter().filter(|s| !anchored_by_name(s)) {
        out.push(match *spec {
            "EPOCH" => Template::epoch(false, true)?,
            "TAI64N" => Template::tai64n(true)?,
            p => Template::pattern(&format!("{{^LN-BEG}}{p}"), exp)?,
        });
    }
    for spec in DEFAULT_TEMPLATES {
        out.push(original(spec, exp)?);
    }
    Ok(out)
}

/// Replaces each `{DATE}` (any case, not escaped) of `premath` by `with`.
fn replace_date(premath: &str, with: &str) -> String {
    let mut out = String::with_capacity(premath.len() + with.len());
    let mut rest = premath;
    while let Some(i) = rest.to_ascii_uppercase().find("{DATE}") {
        let escaped = rest[..i].ends_with('\\');
        out.push_str(&rest[..i]);
        out.push_str(if escaped { &rest[i..i + 6] } else { with });
        rest = &rest[i + 6..];
    }
    out.push_str(rest);
    out
}

/// A default pattern without its own anchoring, for use inside `{DATE}`.
fn unbound(spec: &str) -> &str {
    let s = spec.strip_prefix("{UNB}").unwrap_or(spec);
    let s = s.strip_prefix("{^LN-BEG}").unwrap_or(s);
    let s = s
        .strip_prefix(r"(?:^|\b|\W)")
        .or_else(|| s.strip_prefix(r"(^|\b|\W)"))
        .unwrap_or(s);
    s.strip_suffix(r"(?=\b|\W|$)").unwrap_or(s)
}

/// The templates one `datepattern` line stands for.
pub(super) fn from_line(line: &str, exp: &mut Expander) -> Result<Vec<Template>, String> {
    let key = if line.contains('%') {
        line.to_string()
    } else {
        line.to_ascii_uppercase()
    };
    let one = |t: Result<Template, String>| t.map(|t| vec![t]);
    match key.as_str() {
        "{^LN-BEG}" => return Ok(all(exp)?.into_iter().filter(|t| t.anchored).collect()),
        "{DEFAULT}" => return all(exp),
        "{NONE}" => return one(Template::pattern("{UNB}^", exp)),
        "EPOCH" => return one(Template::epoch(false, false)),
        "{^LN-BEG}EPOCH" | "^EPOCH" => return one(Template::epoch(false, true)),
        "LEPOCH" => return one(Template::epoch(true, false)),
        "{^LN-BEG}LEPOCH" | "^LEPOCH" => return one(Template::epoch(true, true)),
        "TAI64N" => return one(Template::tai64n(false)),
        "{^LN-BEG}TAI64N" | "^TAI64N" => return one(Template::tai64n(true)),
        _ => {}
    }
    if key.contains("{DATE}") {
        // Each default (not the anchored copies) inside the surrounding text. fail2ban would also build
        // "EPOCH"/"TAI64N" here as literal words, which never are dates; they are left out.
        return DEFAULT_TEMPLATES
            .iter()
            .filter(|s| !matches!(**s, "EPOCH" | "TAI64N"))
            .map(|s| Template::pattern(&replace_date(line, unbound(s)), exp))
            .collect();
    }
    let upper = line.to_ascii_uppercase();
    if upper.contains("{EPOCH}") || upper.contains("{LEPOCH}") {
        return one(Template::epoch_in(line));
    }
    one(Template::pattern(line, exp))
}
