//! The stylesheet against the templates: every class a template (or live.js) can put on a page has a
//! rule, no template writes an inline style (the CSP would drop it), and the stylesheet's text colours
//! keep a contrast of at least 4.5:1 (WCAG AA) on their backgrounds.
//!
//! The templates are read from the source files of `src/ui/` at test time (a new page file is checked
//! without being listed here). Classes built from a value (`class={ "sev sev-" (severity) }`) are
//! expanded with every value of that kind; a class built in a way this reader does not know fails
//! the test, so nothing slips past it.

use super::style_check::{contrast, defined_classes, hex, problems, property, rules, used_classes};
use super::{APP_CSS, LIVE_JS};
use sentinel_core::{ActionState, Mode, Severity, Verdict};
use std::collections::{BTreeMap, BTreeSet};

/// Every value a class prefix is followed by when a template builds the class from a value.
fn prefix_values() -> BTreeMap<&'static str, Vec<String>> {
    use ActionState::*;
    let states = [Planned, Applied, Failed, Reverted, Expired, Refused];
    // A new state is a compile error here until it is listed above (and styled).
    for s in states {
        match s {
            Planned | Applied | Failed | Reverted | Expired | Refused => {}
        }
    }
    let verdicts = [
        Verdict::Malicious,
        Verdict::Suspicious,
        Verdict::Benign,
        Verdict::Unknown,
    ];
    for v in verdicts {
        match v {
            Verdict::Malicious | Verdict::Suspicious | Verdict::Benign | Verdict::Unknown => {}
        }
    }
    let modes = [Mode::Observe, Mode::Enforce];
    for m in modes {
        match m {
            Mode::Observe | Mode::Enforce => {}
        }
    }
    BTreeMap::from([
        (
            "sev-",
            Severity::ALL
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ),
        (
            "state-",
            states.iter().map(|s| s.as_str().to_string()).collect(),
        ),
        (
            "verdict-",
            verdicts
                .iter()
                .map(|v| {
                    serde_json::to_value(v)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .collect(),
        ),
        (
            "mode-",
            modes.iter().map(|m| m.as_str().to_string()).collect(),
        ),
    ])
}

/// The template sources of `src/ui/`, without their `#[cfg(test)]` parts, by file name.
fn templates() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            code,
        ));
    }
    assert!(
        out.iter().any(|(n, _)| n == "alerts.rs") && out.len() >= 8,
        "the templates were not found in {dir:?}"
    );
    out
}

/// The string literals in `s` (Rust `"…"`, no raw strings).
fn literals(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        lit.push(n);
                    }
                }
                '"' => break,
                _ => lit.push(c),
            }
        }
        out.push(lit);
    }
    out
}

/// The text from `open` (an opening bracket at the start of `s`) to its match, both excluded.
fn bracketed(s: &str, open: char, close: char) -> &str {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return &s[1..i];
            }
        }
    }
    panic!("unbalanced {open} in {s:.80}")
}

/// What `class` tokens can be: literal classes, and prefixes a value is appended to.
#[derive(Default, Debug)]
struct Found {
    classes: BTreeSet<String>,
    prefixes: BTreeSet<String>,
}

impl Found {
    fn tokens(&mut self, lits: &[String]) {
        for lit in lits {
            for t in lit.split_whitespace() {
                if t.ends_with('-') {
                    self.prefixes.insert(t.to_string());
                } else {
                    self.classes.insert(t.to_string());
                }
            }
        }
    }
}

const TAGS: &[&str] = &[
    "a", "article", "button", "caption", "code", "dd", "details", "div", "dl", "dt", "em",
    "figure", "form", "h1", "h2", "h3", "header", "input", "label", "li", "main", "nav", "ol", "p",
    "pre", "section", "select", "small", "span", "strong", "summary", "svg", "table", "tbody",
    "td", "th", "thead", "time", "tr", "ul",
];

/// Maud's `tag.class#id {` / `tag.class;` shorthand at the start of a line.
fn shorthand(line: &str, found: &mut Found) {
    let line = line.trim_start();
    let tag: String = line
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    if !TAGS.contains(&tag.as_str()) {
        return;
    }
    let mut rest = &line[tag.len()..];
    let mut classes = Vec::new();
    while let Some(sigil) = rest.chars().next().filter(|c| *c == '.' || *c == '#') {
        let name: String = rest[1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if name.is_empty() {
            return;
        }
        if sigil == '.' {
            classes.push(name.clone());
        }
        rest = &rest[1 + name.len()..];
    }
    let after = rest.trim_start();
    if !classes.is_empty() && (after.starts_with('{') || after.starts_with(';')) {
        found.classes.extend(classes);
    }
}

/// Every class the Rust templates can write.
fn template_classes(name: &str, code: &str, found: &mut Found) {
    for line in code.lines() {
        shorthand(line, found);
    }
    let mut rest = code;
    while let Some(at) = rest.find("class=") {
        rest = &rest[at + 6..];
        let value = if let Some(r) = rest.strip_prefix("\\\"") {
            // Inside a Rust string (`"<svg class=\"chart\""`).
            vec![r.split("\\\"").next().unwrap_or("").to_string()]
        } else if let Some(r) = rest.strip_prefix('"') {
            vec![r.split('"').next().unwrap_or("").to_string()]
        } else if rest.starts_with('{') {
            // `class={ "sev sev-" (value) }`: the literals; a prefix must be followed by a value.
            let inner = bracketed(rest, '{', '}');
            literals(inner)
        } else if rest.starts_with('[') {
            // `class=[cond.then_some("silent")]`.
            literals(bracketed(rest, '[', ']'))
        } else {
            panic!(
                "{name}: a class written in a way this test cannot read: class={:.40} \
                 (use a literal, `class={{ \"prefix-\" (value) }}` with a known prefix, or `class=[… \"name\" …]`)",
                rest
            );
        };
        found.tokens(&value);
    }
}

/// Every class live.js can write: the second argument of its `text(tag, classes, value)` helper,
/// and the prefixes of its `cls(prefix, value)` helper. Its only `className` write is in `text`.
fn script_classes(js: &str, found: &mut Found) {
    assert_eq!(
        js.matches("className").count(),
        1,
        "live.js sets classes only through text(tag, cls, value)"
    );
    assert!(
        !js.contains("classList"),
        "live.js sets classes only through text()"
    );
    let mut rest = js;
    while let Some(at) = rest.find("text(\"") {
        rest = &rest[at + 5..];
        let args = literals(rest.split(')').next().unwrap_or(""));
        // text("span", "sev " + cls("sev-", sev), sev): the tag, then the classes.
        found.tokens(&args.into_iter().skip(1).take(1).collect::<Vec<_>>());
    }
    let mut rest = js;
    while let Some(at) = rest.find("cls(\"") {
        rest = &rest[at + 4..];
        found.tokens(&literals(rest.split(',').next().unwrap_or("")));
    }
}

#[test]
fn every_class_a_page_can_use_has_a_rule() {
    let mut found = Found::default();
    for (name, code) in templates() {
        template_classes(&name, &code, &mut found);
    }
    script_classes(LIVE_JS, &mut found);
    let values = prefix_values();
    let mut needed = found.classes.clone();
    for p in &found.prefixes {
        let vs = values.get(p.as_str()).unwrap_or_else(|| {
            panic!("class prefix {p:?} is built from a value this test does not know: list its values in prefix_values()")
        });
        needed.extend(vs.iter().map(|v| format!("{p}{v}")));
    }
    // The reader found what it should (a broken reader would pass everything).
    for c in [
        "sev-critical",
        "state-refused",
        "verdict-malicious",
        "mode-observe",
        "silent",
        "proof-bad",
        "chart",
        "action-kind",
        "field-error",
        "windows",
    ] {
        assert!(needed.contains(c), "the reader missed {c}: {needed:?}");
    }
    let defined = defined_classes(APP_CSS);
    let missing: Vec<&String> = needed.iter().filter(|c| !defined.contains(*c)).collect();
    assert!(
        missing.is_empty(),
        "classes used by the templates or live.js with no rule in app.css: {missing:?}"
    );
}

#[test]
fn no_template_writes_an_inline_style() {
    for (name, code) in templates() {
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        assert!(
            !code.contains("style=") && !code.contains("<style"),
            "{name}: the CSP (style-src 'self') drops inline styles; use a class"
        );
    }
    assert!(
        !LIVE_JS.contains(".style"),
        "live.js: use classes, not inline styles"
    );
}

#[test]
fn the_stylesheet_is_well_formed() {
    assert_eq!(problems(APP_CSS), Vec::<String>::new());
    // What an edit that cut a rule in half looks like.
    let broken = "td.num, th@media (max-width: 40rem) {\n  table { display: block; }\n}\n";
    assert!(!problems(broken).is_empty());
    assert!(!problems(".a { color: red").is_empty());
    assert!(!problems(".a { color red }").is_empty());
}

#[test]
fn the_stylesheet_reader_reads_selectors() {
    let css = "/* .commented { } */\n:root { --x: #fff; }\ntr.silent > th:first-child, .a-b::before { x: 1 }\n\
               @media (max-width: 40rem) { .inner[data-x=\"y.z\"] { y: 2 } }\n";
    let d = defined_classes(css);
    assert_eq!(
        d.into_iter().collect::<Vec<_>>(),
        vec!["a-b", "inner", "silent"]
    );
    assert_eq!(
        used_classes("<p class=\"a b\"><svg class=\"chart\" x>").len(),
        3
    );
    let mut found = Found::default();
    template_classes(
        "t.rs",
        "html! { span class={ \"sev sev-\" (s) } {}\n    p.note { }\n    tr class=[x.then_some(\"silent\")] {} }",
        &mut found,
    );
    assert_eq!(
        found.classes.iter().map(String::as_str).collect::<Vec<_>>(),
        vec!["note", "sev", "silent"]
    );
    assert_eq!(found.prefixes.len(), 1);
}

/// Resolves `var(--name)` against `:root`.
fn resolve<'a>(v: &'a str, vars: &'a BTreeMap<String, String>) -> Option<[u8; 3]> {
    let v = v.trim();
    match v.strip_prefix("var(").and_then(|r| r.strip_suffix(')')) {
        Some(name) => hex(vars.get(name.trim())?),
        None => hex(v),
    }
}

#[test]
fn text_colours_keep_a_contrast_of_at_least_4_5() {
    let all = rules(APP_CSS);
    let root = &all.iter().find(|(s, _)| s == ":root").unwrap().1;
    let vars: BTreeMap<String, String> = root
        .split(';')
        .filter_map(|d| d.split_once(':'))
        .filter(|(k, _)| k.trim().starts_with("--"))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut checked = 0;
    // Every rule that sets both a text colour and a plain background colour.
    for (sel, decls) in &all {
        let fg = property(decls, "color").and_then(|v| resolve(v, &vars));
        let bg = property(decls, "background")
            .or_else(|| property(decls, "background-color"))
            .and_then(|v| resolve(v, &vars));
        if let (Some(fg), Some(bg)) = (fg, bg) {
            let r = contrast(fg, bg);
            assert!(r >= 4.5, "{sel}: contrast {r:.2} is under 4.5:1");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} rules with both colours");
    // The page's text colours on the page's backgrounds.
    for fg in [
        "--fg", "--muted", "--link", "--ok", "--warn", "--bad", "--accent",
    ] {
        for bg in ["--bg", "--panel"] {
            let (f, b) = (hex(&vars[fg]).unwrap(), hex(&vars[bg]).unwrap());
            let r = contrast(f, b);
            assert!(r >= 4.5, "{fg} on {bg}: contrast {r:.2} is under 4.5:1");
        }
    }
    // The focus ring is a non-text element: at least 3:1 on the page.
    let focus = hex(&vars["--focus"]).unwrap();
    for bg in ["--bg", "--panel"] {
        assert!(contrast(focus, hex(&vars[bg]).unwrap()) >= 3.0);
    }
}

#[test]
fn a_source_that_matched_nothing_stands_out_without_colour() {
    let all = rules(APP_CSS);
    let decls = |want: &str| -> String {
        all.iter()
            .filter(|(s, _)| s.split(',').any(|one| one.trim() == want))
            .map(|(_, d)| d.as_str())
            .collect::<Vec<_>>()
            .join(";")
    };
    // A thick bar at the row's start (a border: kept in forced-colours mode) and bold text.
    let head = decls("tr.silent > th:first-child");
    let bar = property(&head, "border-left").unwrap_or("");
    let width: f64 = bar
        .split_whitespace()
        .find_map(|w| w.strip_suffix("px")?.parse().ok())
        .unwrap_or(0.0);
    assert!(width >= 4.0 && bar.contains("solid"), "{head}");
    assert_eq!(property(&head, "font-weight"), Some("700"));
    // A hatched row, not only a tinted one.
    let row = decls("tr.silent");
    assert!(
        property(&row, "background").is_some_and(|b| b.starts_with("repeating-linear-gradient")),
        "{row}"
    );
    // The words "matched nothing" carry a warning sign and a border of their own.
    let badge = decls(".state-silent::before");
    assert!(
        property(&badge, "content").is_some_and(|c| c.contains("\\26A0")),
        "{badge}"
    );
    assert!(property(&decls(".state-silent"), "border").is_some());
}
